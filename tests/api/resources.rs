use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn site_admin_creates_users_and_emails_are_unique_per_tenant() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let r = admin
        .post_json(
            "/api/users",
            json!({"Email": "Ann@Example.com", "Password": "pw-123456", "Name": "Ann"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json()["UserID"].as_str().unwrap().to_string();
    assert!(id.ends_with(".default") && id.len() == 36 + ".default".len());
    let dup = admin
        .post_json(
            "/api/users",
            json!({"Email": "ann@example.COM", "Password": "pw-123456", "Name": "Ann 2"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    // The same email in another tenant is another user.
    app.add_tenant("acme", &["acme.test"]).await;
    let created = app
        .state
        .meta
        .create_user(pixdrop::meta::NewUser {
            tenant: "acme".into(),
            email: "ann@example.com".into(),
            name: "Ann".into(),
            password_hash: "x".into(),
            site_admin: false,
        })
        .await;
    assert!(created.is_ok());
    let bad = admin
        .post_json(
            "/api/users",
            json!({"Email": "nope", "Password": "pw-123456"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let short = admin
        .post_json("/api/users", json!({"Email": "s@x", "Password": "short"}))
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_site_admins_create_users_apis_groups_and_businesses() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let (mut user, _) = app.user(&mut admin, "u@example.com").await;
    let r = user
        .post_json(
            "/api/users",
            json!({"Email": "v@x", "Password": "pw-123456"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for kind in ["apis", "groups", "businesses"] {
        let r = user
            .post_json(&format!("/api/{kind}"), json!({"Name": "n"}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{kind}");
        let r = admin
            .post_json(&format!("/api/{kind}"), json!({"Name": "n"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{kind}");
        let id = r.json()["ID"].as_str().unwrap().to_string();
        let got = user.get(&format!("/api/{kind}/{id}")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.json()["Name"], "n");
    }
}

#[tokio::test]
async fn any_user_creates_an_app_and_becomes_its_admin() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let (mut user, uid) = app.user(&mut admin, "u@example.com").await;
    let r = user
        .post_json("/api/apps", json!({"Name": "Weather"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let body = r.json();
    let id = body["ID"].as_str().unwrap();
    assert_eq!(body["Admins"], json!([uid]));
    let got = user.get(&format!("/api/apps/{id}")).await.json();
    assert_eq!(got["ID"], id);
    assert_eq!(got["Name"], "Weather");
    assert_eq!(got["HasPicture"], false);
    assert_eq!(got["AvatarVersionID"], serde_json::Value::Null);
    assert_eq!(got["AvatarURL"], format!("/api/apps/{id}/avatar"));
    let r = user
        .post_json(
            "/api/apps",
            json!({"Name": "X", "Admins": ["nobody.default"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = user.post_json("/api/apps", json!({"Name": ""})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn managers_update_names_and_only_site_admins_change_admins() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let (mut owner, owner_id) = app.user(&mut admin, "owner@example.com").await;
    let (mut other, other_id) = app.user(&mut admin, "other@example.com").await;
    let id = owner.create_app("A").await;
    let path = format!("/api/apps/{id}");

    let r = other.put_json(&path, json!({"Name": "hijacked"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = owner
        .put_json(&path, json!({"Name": "B", "Ignored": 1}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["Name"], "B");
    let r = owner
        .put_json(
            &path,
            json!({"Admins": [owner_id.clone(), other_id.clone()]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(owner.get(&path).await.json()["Name"], "B");

    let r = admin
        .put_json(&path, json!({"Admins": [other_id.clone()]}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["Admins"], json!([other_id]));
    assert_eq!(
        other.put_json(&path, json!({"Name": "C"})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        owner.put_json(&path, json!({"Name": "D"})).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn users_manage_their_own_profile_only() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let (mut ann, ann_id) = app.user(&mut admin, "ann@example.com").await;
    let (_, bob_id) = app.user(&mut admin, "bob@example.com").await;
    let r = ann
        .put_json(&format!("/api/users/{ann_id}"), json!({"Name": "Ann B."}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["Name"], "Ann B.");
    let r = ann
        .put_json(&format!("/api/users/{bob_id}"), json!({"Name": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = admin
        .put_json(&format!("/api/users/{bob_id}"), json!({"Name": "Bob"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn another_tenants_resource_is_404() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let id = admin.create_app("A").await;
    let (mut acme, acme_admin_id) = app.acme_admin().await;
    assert_eq!(
        acme.get(&format!("/api/apps/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        acme.put_json(&format!("/api/apps/{id}"), json!({"Name": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The same id with the tenant suffix swapped is simply unknown.
    let swapped = id.replace(".default", ".acme");
    assert_eq!(
        acme.get(&format!("/api/apps/{swapped}")).await.status,
        StatusCode::NOT_FOUND
    );
    // And the default admin cannot see acme's users.
    assert_eq!(
        admin
            .get(&format!("/api/users/{acme_admin_id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn malformed_ids_are_400_and_unknown_kinds_404() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    assert_eq!(
        admin.get("/api/apps/not-an-id").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        admin
            .get("/api/widgets/00000000-0000-0000-0000-000000000000.default")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_picture_id_that_names_no_live_picture_is_404_and_changes_nothing() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let id = admin.create_app("A").await;
    let path = format!("/api/apps/{id}");
    let r = admin
        .put_json(&path, json!({"Name": "B", "PictureID": 1001}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(admin.get(&path).await.json()["Name"], "A");
    let r = admin
        .put_json(&path, json!({"Name": "B", "PictureID": ""}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = admin.put_json(&path, json!({"PictureID": null})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = admin.put_json(&path, json!({"PictureID": "abc"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
