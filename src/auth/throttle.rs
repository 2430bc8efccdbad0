//! Failed-login throttling (SPEC §4): more than [`EMAIL_LIMIT`] failures for one email of a
//! tenant, or more than [`ADDRESS_LIMIT`] from one client address, within [`WINDOW`], and
//! further attempts are refused until the oldest failure leaves the window. The counts live
//! in the metadata store, so every node sees the same ones.

use std::time::Duration;

use crate::meta::{MetaStore, StoreError};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const EMAIL_LIMIT: u32 = 10;
pub const ADDRESS_LIMIT: u32 = 100;

fn window_ms() -> i64 {
    i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX)
}

/// `Some(seconds to wait)` when this login attempt must be refused.
pub async fn retry_after(
    meta: &dyn MetaStore,
    tenant: &str,
    email: &str,
    address: &str,
    now: i64,
) -> Result<Option<u64>, StoreError> {
    let counts = meta
        .login_failures(tenant, email, address, now - window_ms())
        .await?;
    let wait = |oldest: Option<i64>| {
        let until = oldest.unwrap_or(now) + window_ms();
        u64::try_from((until - now + 999) / 1000)
            .unwrap_or(1)
            .max(1)
    };
    let mut waits = Vec::new();
    if counts.email >= EMAIL_LIMIT {
        waits.push(wait(counts.email_oldest));
    }
    if counts.address >= ADDRESS_LIMIT {
        waits.push(wait(counts.address_oldest));
    }
    Ok(waits.into_iter().max())
}
