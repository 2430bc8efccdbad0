//! Who is calling and what they may do: passwords, session tokens, CSRF, login throttling,
//! and the extractors that put those rules into handler signatures.

pub mod extract;
pub mod password;
pub mod throttle;
pub mod tokens;

pub use extract::{LoggedIn, Manager, Session, SiteAdmin};
