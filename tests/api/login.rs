use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, ADMIN_PASSWORD};

#[tokio::test]
async fn login_answers_the_portal_json_and_sets_both_cookies() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    let r = c.login("admin@localhost", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["loginState"], "LoggedIn");
    assert_eq!(body["status"], "success");
    assert_eq!(body["userName"], "Site Administrator");
    let fdn = body["userFDN"].as_str().unwrap();
    assert!(fdn.ends_with(".default"), "{fdn}");
    assert_eq!(body["avatarURL"], format!("/api/users/{fdn}/avatar"));
    let until = body["authTokenValidUntil"].as_i64().unwrap();
    let now = pixdrop::meta::now_ms();
    assert!(until > now + 29 * 60 * 1000 && until <= now + 30 * 60 * 1000);

    let cookies = r.set_cookies();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("AtmoAuthToken_default="))
        .unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && session.contains("Path=/")
    );
    assert!(!session.contains("Secure"));
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("Csrf-Token_default="))
        .unwrap();
    assert!(!csrf.contains("HttpOnly") && csrf.contains("Path=/"));
    // 256-bit tokens.
    assert!(c.cookie("AtmoAuthToken_default").unwrap().len() >= 43);
}

#[tokio::test]
async fn secure_cookies_when_configured() {
    let app = crate::helpers::spawn_app_with(|c| c.cookie_secure = true).await;
    let mut c = app.client("portal.test");
    let r = c.login("admin@localhost", ADMIN_PASSWORD).await;
    assert!(r.set_cookies().iter().all(|c| c.contains("; Secure")));
}

#[tokio::test]
async fn no_csrf_cookie_when_both_csrf_settings_are_off() {
    let app = spawn_app().await;
    app.set("default", "write_csrf", "false").await;
    let mut c = app.client("portal.test");
    let r = c.login("admin@localhost", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .set_cookies()
        .iter()
        .all(|c| !c.starts_with("Csrf-Token_")));
    // Without CSRF, state-changing calls need only the session.
    c.send_csrf = false;
    let r = c.post_json("/api/apps", json!({"Name": "A"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_401() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    let wrong = c.login("admin@localhost", "not-the-password").await;
    let unknown = c.login("nobody@localhost", "not-the-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    assert!(wrong.set_cookies().is_empty());
}

#[tokio::test]
async fn email_is_case_insensitive_at_login() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    let r = c.login("Admin@LOCALHOST", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_login_json_is_400() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    let req = c
        .request(Method::POST, "/api/login")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(c.send(req).await.status, StatusCode::BAD_REQUEST);
    let r = c.post_json("/api/login", json!({"email": "a@b"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_expired_session_is_401() {
    let app = spawn_app().await;
    app.set("default", "session_ttl", "1s").await;
    let mut c = app.admin().await;
    let me = c.post_json("/api/login/renewToken", json!({})).await;
    assert_eq!(me.status, StatusCode::OK);
    let id = me.json()["userFDN"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = c.get(&format!("/api/users/{id}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = c.post_json("/api/login/renewToken", json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn renew_extends_the_session() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    let first = c.login("admin@localhost", ADMIN_PASSWORD).await.json();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = c.post_json("/api/login/renewToken", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    let renewed = r.json();
    assert_eq!(renewed["loginState"], "LoggedIn");
    assert_eq!(renewed["userFDN"], first["userFDN"]);
    assert!(renewed["authTokenValidUntil"].as_i64() > first["authTokenValidUntil"].as_i64());
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_cookies() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let token = c.cookie("AtmoAuthToken_default").unwrap().to_string();
    let csrf = c.cookie("Csrf-Token_default").unwrap().to_string();
    let r = c.post_json("/api/logout", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    let cleared = r.set_cookies();
    assert!(cleared
        .iter()
        .any(|c| c.starts_with("AtmoAuthToken_default=;") && c.contains("Max-Age=0")));
    assert!(cleared
        .iter()
        .any(|c| c.starts_with("Csrf-Token_default=;") && c.contains("Max-Age=0")));
    // The old token no longer works even if a client kept it.
    c.cookies.insert("AtmoAuthToken_default".into(), token);
    c.cookies.insert("Csrf-Token_default".into(), csrf);
    let r = c.post_json("/api/apps", json!({"Name": "x"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = c.post_json("/api/logout", json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn not_logged_in_is_401() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    assert_eq!(
        c.post_json("/api/apps", json!({"Name": "x"})).await.status,
        StatusCode::UNAUTHORIZED
    );
    c.cookies
        .insert("AtmoAuthToken_default".into(), "forged".into());
    assert_eq!(
        c.post_json("/api/apps", json!({"Name": "x"})).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_cookie_of_tenant_a_is_401_at_a_host_of_tenant_b() {
    let app = spawn_app().await;
    app.add_tenant("acme", &["acme.test"]).await;
    let mut a = app.admin().await;
    let user = app.create_user(&mut a, "x@acme").await;
    // The same cookie value, renamed for tenant acme, presented at acme's host.
    let token = a.cookie("AtmoAuthToken_default").unwrap().to_string();
    let csrf = a.cookie("Csrf-Token_default").unwrap().to_string();
    let mut b = app.client("acme.test");
    b.cookies.insert("AtmoAuthToken_acme".into(), token.clone());
    b.cookies.insert("Csrf-Token_acme".into(), csrf);
    let r = b.get(&format!("/api/users/{user}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // And the default-tenant cookie name at acme's host means nothing there.
    let mut b = app.client("acme.test");
    b.cookies.insert("AtmoAuthToken_default".into(), token);
    assert_eq!(
        b.post_json("/api/apps", json!({"Name": "x"})).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn csrf_missing_wrong_or_of_another_session_is_401() {
    let app = spawn_app().await;
    let mut a = app.admin().await;
    let mut other = app.admin().await;
    let other_csrf = other.cookie("Csrf-Token_default").unwrap().to_string();
    assert_ne!(other_csrf, a.cookie("Csrf-Token_default").unwrap());

    a.send_csrf = false;
    let missing = a.post_json("/api/apps", json!({"Name": "x"})).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);

    let req = a
        .request(Method::POST, "/api/apps")
        .header("content-type", "application/json")
        .header("X-Csrf-Token_default", "wrong")
        .body(Body::from(r#"{"Name":"x"}"#))
        .unwrap();
    assert_eq!(a.send(req).await.status, StatusCode::UNAUTHORIZED);

    let req = a
        .request(Method::POST, "/api/apps")
        .header("content-type", "application/json")
        .header("X-Csrf-Token_default", &other_csrf)
        .body(Body::from(r#"{"Name":"x"}"#))
        .unwrap();
    assert_eq!(a.send(req).await.status, StatusCode::UNAUTHORIZED);

    a.send_csrf = true;
    assert_eq!(
        a.post_json("/api/apps", json!({"Name": "x"})).await.status,
        StatusCode::CREATED
    );
    // The other session's own token still works for it.
    assert_eq!(
        other
            .post_json("/api/apps", json!({"Name": "y"}))
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn login_is_exempt_from_csrf_and_reads_are_free_by_default() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    c.send_csrf = false;
    assert_eq!(
        c.login("admin@localhost", ADMIN_PASSWORD).await.status,
        StatusCode::OK
    );
    let me = c.cookie("AtmoAuthToken_default").is_some();
    assert!(me);
    let r = c
        .get("/api/apps/00000000-0000-0000-0000-000000000000.default")
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "reads pass without CSRF: {}",
        r.text()
    );
}

#[tokio::test]
async fn with_read_csrf_a_get_without_the_header_is_401() {
    let app = spawn_app().await;
    app.set("default", "read_csrf", "true").await;
    let mut c = app.admin().await;
    let app_id = c.create_app("A").await;
    let path = format!("/api/apps/{app_id}");
    assert_eq!(c.get(&path).await.status, StatusCode::OK);
    c.send_csrf = false;
    assert_eq!(c.get(&path).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_eleventh_failed_login_for_one_email_is_429_until_the_window_passes() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    app.create_user(&mut admin, "bob@example.com").await;
    let mut c = app.client("portal.test");
    for _ in 0..10 {
        let r = c.login("admin@localhost", "wrong-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = c.login("admin@localhost", "wrong-password").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 800 && retry <= 900, "{retry}");
    // Even the right password waits, from any address.
    c.address = "10.9.9.9:1".parse().unwrap();
    let r = c.login("ADMIN@localhost", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Other emails are not affected.
    let r = c.login("bob@example.com", "user-password").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_success_before_the_limit_resets_the_email_count() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    for _ in 0..9 {
        c.login("admin@localhost", "wrong-password").await;
    }
    assert_eq!(
        c.login("admin@localhost", ADMIN_PASSWORD).await.status,
        StatusCode::OK
    );
    for _ in 0..10 {
        assert_eq!(
            c.login("admin@localhost", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn more_than_100_failures_from_one_address_is_429() {
    let app = spawn_app().await;
    let mut c = app.client("portal.test");
    c.address = "192.0.2.7:4444".parse().unwrap();
    for i in 0..100 {
        let r = c.login(&format!("user{i}@example.com"), "wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = c.login("admin@localhost", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    // Another address is not throttled.
    c.address = "192.0.2.8:4444".parse().unwrap();
    assert_eq!(
        c.login("admin@localhost", ADMIN_PASSWORD).await.status,
        StatusCode::OK
    );
}
