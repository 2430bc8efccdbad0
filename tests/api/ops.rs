use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_response_has_nosniff_and_a_request_id() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    for path in ["/healthz", "/readyz", "/nope", "/api/apps/x"] {
        let r = c.get(path).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(
            r.header("x-request-id").is_some_and(|v| !v.is_empty()),
            "{path}"
        );
    }
    let req = c
        .request(axum::http::Method::GET, "/healthz")
        .header("x-request-id", "trace-me-42")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(
        c.send(req).await.header("x-request-id"),
        Some("trace-me-42")
    );
}

#[tokio::test]
async fn errors_are_a_text_line_or_json_when_preferred() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    let r = c.post_json("/api/apps", json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.text(), "not logged in\n");

    let req = c
        .request(axum::http::Method::POST, "/api/apps")
        .header("accept", "application/json")
        .body(axum::body::Body::empty())
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        json!({"code": "not_logged_in", "message": "not logged in"})
    );
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    let r = c.get("/api/login").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.header("allow").is_some_and(|a| a.contains("POST")));
    assert_eq!(r.text(), "method not allowed\n");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    assert_eq!(c.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(c.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_store_is_503_with_retry_after_and_no_detail() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    app.state.meta.close().await;
    let r = admin.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.header("retry-after").is_some());
    let r = admin.post_json("/api/apps", json!({"Name": "x"})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let text = r.text().to_lowercase();
    assert!(
        !text.contains("pool") && !text.contains("sql") && !text.contains('/'),
        "{text}"
    );
    // Login too: an outage is never a 401 or a 404.
    let mut c = app.client("portal.test");
    let r = c.login("admin@localhost", "whatever").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn hosts_pick_the_tenant_case_insensitively_and_ignore_ports() {
    let app = spawn_app().await;
    app.add_tenant("Acme_1", &["portal.acme.test"]).await;
    let root_hash = app
        .state
        .passwords
        .hash("acme-password".into())
        .await
        .unwrap();
    app.state
        .meta
        .create_user(pixdrop::meta::NewUser {
            tenant: "Acme_1".into(),
            email: "root@acme".into(),
            name: "root".into(),
            password_hash: root_hash,
            site_admin: true,
        })
        .await
        .unwrap();
    let mut c = app.client("PORTAL.Acme.test:8443");
    let r = c.login("root@acme", "acme-password").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json()["userFDN"].as_str().unwrap().ends_with(".Acme_1"));
    assert!(c.cookie("AtmoAuthToken_Acme_1").is_some());
    // Unlisted hosts belong to the default tenant, where that user does not exist.
    let mut d = app.client("elsewhere.test");
    assert_eq!(
        d.login("root@acme", "acme-password").await.status,
        StatusCode::UNAUTHORIZED
    );
}
