//! The HTML wrapper of hidden-iframe uploads (SPEC §6.4, compat): jquery.form reads the
//! body text and the `status`/`statusText` attributes of a document the browser loaded into
//! an iframe, so the upload's answer, success or error, is wrapped in one.

use axum::http::{Method, StatusCode, Uri};

use crate::tenants::normalize_host;

pub const CONTENT_TYPE: &str = "text/html;charset=UTF-8";

/// The route whose answers can be wrapped.
pub const UPLOAD_PATH: &str = "/api/dropbox/pictures";

/// The smallest document size: older browsers show their own error page in place of a
/// shorter one.
const MIN_LEN: usize = 512;

/// `Some(domain)` when the request is an upload asking for the wrapper; the domain is kept
/// only when it is a valid host name.
pub fn requested(method: &Method, uri: &Uri) -> Option<Option<String>> {
    if method != Method::POST || uri.path() != UPLOAD_PATH {
        return None;
    }
    let mut wrap = false;
    let mut domain = None;
    for (key, value) in form_urlencoded_pairs(uri.query().unwrap_or("")) {
        match key.as_str() {
            "wrapInHTML" => wrap = value.eq_ignore_ascii_case("true"),
            "document.domain" => domain = normalize_host(&value),
            _ => {}
        }
    }
    wrap.then_some(domain)
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The wrapper document for `payload` (the PictureID or the error message).
pub fn document(status: StatusCode, payload: &str, domain: Option<&str>) -> String {
    let text = if status == StatusCode::OK {
        "success"
    } else {
        status.canonical_reason().unwrap_or("Error")
    };
    let attrs = format!(
        r#"status="{}" statusText="{}""#,
        status.as_u16(),
        escape(text)
    );
    let script = domain
        .and_then(normalize_host)
        .map(|d| format!(r#"<script>document.domain="{d}";</script>"#))
        .unwrap_or_default();
    let body = format!("<body {attrs}>{}</body></html>", escape(payload.trim()));
    let head_open = format!("<html {attrs}><head>{script}");
    let bare = head_open.len() + "<!--  --></head>".len() + body.len();
    let padding = " ".repeat(MIN_LEN.saturating_sub(bare));
    format!("{head_open}<!-- {padding} --></head>{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_padded_and_escaped() {
        let d = document(StatusCode::OK, "1001", Some("portal.example.com"));
        assert!(d.len() >= MIN_LEN);
        assert!(d.starts_with(r#"<html status="200" statusText="success"><head><script>document.domain="portal.example.com";</script>"#));
        assert!(d.ends_with(r#"<body status="200" statusText="success">1001</body></html>"#));
        let e = document(StatusCode::UNSUPPORTED_MEDIA_TYPE, "<b>x</b>", None);
        assert!(e.contains("&lt;b&gt;x&lt;/b&gt;</body>"));
        assert!(e.contains(r#"statusText="Unsupported Media Type""#));
        assert!(!e.contains("<script>"));
    }

    #[test]
    fn only_valid_domains_reach_the_script() {
        let uri: Uri =
            "/api/dropbox/pictures?wrapInHTML=true&document.domain=a.example%22;alert(1)//"
                .parse()
                .unwrap();
        assert_eq!(requested(&Method::POST, &uri), Some(None));
        let uri: Uri = "/api/dropbox/pictures?wrapInHTML=true&document.domain=Example.com"
            .parse()
            .unwrap();
        assert_eq!(
            requested(&Method::POST, &uri),
            Some(Some("example.com".to_string()))
        );
        let uri: Uri = "/api/dropbox/pictures?wrapInHTML=false".parse().unwrap();
        assert_eq!(requested(&Method::POST, &uri), None);
    }
}
