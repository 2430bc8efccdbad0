use axum::http::{header, Method, StatusCode};
use image::GenericImageView;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, Client, TestApp};
use crate::images::{self, decode_png};

async fn attach(
    c: &mut Client<'_>,
    kind: &str,
    id: &str,
    picture: serde_json::Value,
) -> crate::helpers::TestResponse {
    c.put_json(&format!("/api/{kind}/{id}"), json!({"PictureID": picture}))
        .await
}

async fn avatar_blobs(app: &TestApp) -> usize {
    app.state.blobs.list("avatars").await.unwrap().len()
}

async fn fsck_problems(app: &TestApp) -> Vec<String> {
    pixdrop::fsck::check(&app.state)
        .await
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect()
}

async fn lifecycle(kind: &str) {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let (mut ann, ann_id) = app.user(&mut admin, "ann@example.com").await;
    let id = if kind == "users" {
        ann_id.clone()
    } else {
        ann.create_app("App").await
    };
    let base = format!("/api/{kind}/{id}");

    // Before: the default picture.
    let r = ann.get(&format!("{base}/avatar")).await;
    assert_eq!(r.status, StatusCode::OK);
    let default = r.body.clone();

    // Upload, crop, attach (as a number for users, a string for apps).
    let pid = ann.upload_ok(&images::jpeg(640, 480)).await;
    let r = ann
        .form(
            Method::PUT,
            &format!("/api/dropbox/pictures/{pid}"),
            "x=100&y=40&w=300&h=300",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let value = if kind == "users" {
        json!(pid)
    } else {
        json!(pid.to_string())
    };
    let r = attach(&mut ann, kind, &id, value).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["HasPicture"], true);
    let v1 = body["AvatarVersionID"].as_str().unwrap().to_string();
    assert_eq!(body["AvatarURL"], format!("{base}/avatars/{v1}.png"));
    assert_eq!(ann.get(&base).await.json()["AvatarVersionID"], v1.as_str());
    // The picture is consumed.
    assert_eq!(
        ann.get(&format!("/api/dropbox/pictures/{pid}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        attach(&mut ann, kind, &id, json!(pid)).await.status,
        StatusCode::NOT_FOUND
    );

    // Served at the stored size (the 300² crop) and exactly N×N at any size.
    let r = ann.get(&format!("{base}/avatar")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.body, default);
    assert_eq!(decode_png(&r.body).dimensions(), (300, 300));
    for n in [25u32, 75, 300, 333, 512, 1024, 1] {
        let r = ann.get(&format!("{base}/avatar?size={n}")).await;
        assert_eq!(r.status, StatusCode::OK, "{n}");
        assert_eq!(decode_png(&r.body).dimensions(), (n, n), "{n}");
        let r = ann.get(&format!("{base}/avatars/{v1}.png?size={n}")).await;
        assert_eq!(decode_png(&r.body).dimensions(), (n, n), "{n}");
    }

    // Replace: a new version and URL; the old URL still serves the old version.
    let pid2 = ann.upload_ok(&images::png(100, 100)).await;
    let r = attach(&mut ann, kind, &id, json!(pid2)).await;
    let v2 = r.json()["AvatarVersionID"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!(
        decode_png(&ann.get(&format!("{base}/avatar")).await.body).dimensions(),
        (100, 100)
    );
    assert_eq!(
        decode_png(&ann.get(&format!("{base}/avatars/{v1}.png")).await.body).dimensions(),
        (300, 300)
    );

    if kind == "users" {
        let r = ann
            .send(
                ann.request(Method::DELETE, &format!("{base}/picture"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        let after = ann.get(&base).await.json();
        assert_eq!(after["HasPicture"], false);
        assert_eq!(after["AvatarURL"], format!("{base}/avatar"));
        assert_eq!(ann.get(&format!("{base}/avatar")).await.body, default);
    } else {
        let r = ann
            .send(
                ann.request(Method::DELETE, &format!("{base}/picture"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(r.header("allow").is_some());
    }
    assert!(
        fsck_problems(&app).await.is_empty(),
        "{:?}",
        fsck_problems(&app).await
    );
}

#[tokio::test]
async fn the_full_lifecycle_for_a_user() {
    lifecycle("users").await;
}

#[tokio::test]
async fn the_full_lifecycle_for_an_app() {
    lifecycle("apps").await;
}

fn colour_at(png: &[u8], x: u32, y: u32) -> [u8; 3] {
    let p = decode_png(png).get_pixel(x, y);
    [p[0], p[1], p[2]]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) < 16)
}

#[tokio::test]
async fn the_crop_is_applied() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let red = [255, 0, 0];
    let blue = [0, 0, 255];

    // Cropped to the right half: all blue.
    let a = c.create_app("App").await;
    let pid = c.upload_ok(&images::two_colours(200, 100)).await;
    c.form(
        Method::PUT,
        &format!("/api/dropbox/pictures/{pid}"),
        "x=100&y=0&w=100&h=100",
    )
    .await;
    attach(&mut c, "apps", &a, json!(pid)).await;
    let png = c.get(&format!("/api/apps/{a}/avatar")).await.body;
    assert_eq!(decode_png(&png).dimensions(), (100, 100));
    for (x, y) in [(0, 0), (50, 50), (99, 99)] {
        assert!(
            close(colour_at(&png, x, y), blue),
            "{x},{y}: {:?}",
            colour_at(&png, x, y)
        );
    }

    // Not cropped: the centred square, half red and half blue.
    let b = c.create_app("App").await;
    let pid = c.upload_ok(&images::two_colours(200, 100)).await;
    attach(&mut c, "apps", &b, json!(pid)).await;
    let png = c.get(&format!("/api/apps/{b}/avatar")).await.body;
    assert_eq!(decode_png(&png).dimensions(), (100, 100));
    assert!(close(colour_at(&png, 5, 50), red));
    assert!(close(colour_at(&png, 95, 50), blue));
}

#[tokio::test]
async fn attach_needs_a_manager_and_the_callers_own_live_picture() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let (mut ann, ann_id) = app.user(&mut admin, "ann@example.com").await;
    let (mut bob, _) = app.user(&mut admin, "bob@example.com").await;
    let anns_app = ann.create_app("App").await;
    let bobs_app = bob.create_app("App").await;
    let anns_picture = ann.upload_ok(&images::png(50, 50)).await;

    // Not a manager: 403, even with a good picture, and the picture stays.
    assert_eq!(
        attach(&mut bob, "apps", &anns_app, json!(anns_picture))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        attach(&mut bob, "users", &ann_id, json!(anns_picture))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A manager with someone else's picture: 404.
    assert_eq!(
        attach(&mut bob, "apps", &bobs_app, json!(anns_picture))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Unknown picture: 404, and the Name in the same PUT is not applied.
    let r = bob
        .put_json(
            &format!("/api/apps/{bobs_app}"),
            json!({"Name": "New", "PictureID": 987654}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        bob.get(&format!("/api/apps/{bobs_app}")).await.json()["Name"],
        "App"
    );
    // A site admin may attach anyone's picture.
    assert_eq!(
        attach(&mut admin, "apps", &bobs_app, json!(anns_picture))
            .await
            .status,
        StatusCode::OK
    );

    // Expired: 404.
    app.set("default", "dropbox_ttl", "1s").await;
    let p = ann.upload_ok(&images::png(10, 10)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        attach(&mut ann, "apps", &anns_app, json!(p)).await.status,
        StatusCode::NOT_FOUND
    );

    // Another tenant's picture: 404.
    app.set("default", "dropbox_ttl", "1h").await;
    let (mut acme, _) = app.acme_admin().await;
    let acme_app = acme.create_app("App").await;
    let default_picture = ann.upload_ok(&images::png(10, 10)).await;
    assert_eq!(
        attach(&mut acme, "apps", &acme_app, json!(default_picture))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        attach(&mut acme, "apps", &acme_app, json!("x1"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_attaches_of_one_picture_make_one_version() {
    for _ in 0..5 {
        let app = spawn_app().await;
        let mut c1 = app.admin().await;
        let a = c1.create_app("App").await;
        let b = c1.create_app("App").await;
        let pid = c1.upload_ok(&images::png(64, 64)).await;
        let mut c2 = app.admin().await;
        let (r1, r2) = tokio::join!(
            attach(&mut c1, "apps", &a, json!(pid)),
            attach(&mut c2, "apps", &b, json!(pid))
        );
        let mut statuses = [r1.status, r2.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::NOT_FOUND]);
        let has = |r: serde_json::Value| r["HasPicture"].as_bool().unwrap();
        let with = has(c1.get(&format!("/api/apps/{a}")).await.json()) as u8
            + has(c1.get(&format!("/api/apps/{b}")).await.json()) as u8;
        assert_eq!(with, 1);
        assert_eq!(app.state.meta.all_avatar_versions().await.unwrap().len(), 1);
        // The loser's rendered blob is gone too.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            fsck_problems(&app).await.is_empty(),
            "{:?}",
            fsck_problems(&app).await
        );
    }
}

#[tokio::test]
async fn current_avatars_revalidate_by_etag_and_versions_are_immutable() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let a = c.create_app("App").await;
    let pid = c.upload_ok(&images::png(80, 80)).await;
    let v = attach(&mut c, "apps", &a, json!(pid)).await.json()["AvatarVersionID"]
        .as_str()
        .unwrap()
        .to_string();

    let path = format!("/api/apps/{a}/avatar?size=75&cache=123&time=99&s=abc");
    let r = c.get(&path).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(decode_png(&r.body).dimensions(), (75, 75));
    let req = c
        .request(Method::GET, &path)
        .header(header::IF_NONE_MATCH, &etag)
        .body(axum::body::Body::empty())
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    // Another size is another entity.
    let other = c.get(&format!("/api/apps/{a}/avatar?size=76")).await;
    assert_ne!(other.header("etag").unwrap(), etag);

    let r = c.get(&format!("/api/apps/{a}/avatars/{v}.png")).await;
    assert_eq!(r.status, StatusCode::OK);
    let cc = r.header("cache-control").unwrap();
    assert!(
        cc.contains("max-age=31536000") && cc.contains("immutable"),
        "{cc}"
    );
    assert!(r.header("content-security-policy").is_some());
    for bad in ["0000.png", "nothex.png", &format!("{v}.jpg")] {
        assert_eq!(
            c.get(&format!("/api/apps/{a}/avatars/{bad}")).await.status,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }
    // A version of another resource is not served under this one.
    let b = c.create_app("App").await;
    assert_eq!(
        c.get(&format!("/api/apps/{b}/avatars/{v}.png"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for bad in ["0", "1025", "-1", "x", "2.5"] {
        assert_eq!(
            c.get(&format!("/api/apps/{a}/avatar?size={bad}"))
                .await
                .status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn every_kind_has_a_default_picture_at_every_size() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let (_, uid) = app.user(&mut c, "u@example.com").await;
    let mut ids = vec![("users", uid)];
    for kind in ["apps", "apis", "groups", "businesses"] {
        let r = c
            .post_json(&format!("/api/{kind}"), json!({"Name": "x"}))
            .await;
        ids.push((kind, r.json()["ID"].as_str().unwrap().to_string()));
    }
    let mut seen = Vec::new();
    for (kind, id) in &ids {
        for n in [25u32, 75, 512] {
            let r = c.get(&format!("/api/{kind}/{id}/avatar?size={n}")).await;
            assert_eq!(r.status, StatusCode::OK, "{kind}");
            assert_eq!(r.header("content-type"), Some("image/png"));
            assert_eq!(decode_png(&r.body).dimensions(), (n, n));
            assert!(r.header("etag").is_some());
        }
        seen.push(c.get(&format!("/api/{kind}/{id}/avatar")).await.body);
    }
    seen.dedup();
    assert_eq!(seen.len(), 5, "each kind has its own default");
}

#[tokio::test]
async fn avatars_need_a_login_unless_public() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let a = c.create_app("App").await;
    let mut anon = app.client("portal.test");
    assert_eq!(
        anon.get(&format!("/api/apps/{a}/avatar")).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.set("default", "public_avatars", "true").await;
    assert_eq!(
        anon.get(&format!("/api/apps/{a}/avatar")).await.status,
        StatusCode::OK
    );
    let pid = c.upload_ok(&images::png(20, 20)).await;
    let v = attach(&mut c, "apps", &a, json!(pid)).await.json()["AvatarVersionID"]
        .as_str()
        .unwrap()
        .to_string();
    let r = anon.get(&format!("/api/apps/{a}/avatars/{v}.png")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("cache-control").unwrap().starts_with("public"));
}

#[tokio::test]
async fn only_the_user_or_a_site_admin_deletes_a_user_picture() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let (mut ann, ann_id) = app.user(&mut admin, "ann@example.com").await;
    let (mut bob, _) = app.user(&mut admin, "bob@example.com").await;
    let pid = ann.upload_ok(&images::png(20, 20)).await;
    attach(&mut ann, "users", &ann_id, json!(pid)).await;
    let del = |c: &Client<'_>| {
        c.request(Method::DELETE, &format!("/api/users/{ann_id}/picture"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let req = del(&bob);
    assert_eq!(bob.send(req).await.status, StatusCode::FORBIDDEN);
    let req = del(&admin);
    assert_eq!(admin.send(req).await.status, StatusCode::OK);
    assert_eq!(
        ann.get(&format!("/api/users/{ann_id}")).await.json()["HasPicture"],
        false
    );
}

#[tokio::test]
async fn old_versions_beyond_the_configured_count_are_pruned_with_their_renditions() {
    let app = spawn_app_with(|c| c.keep_avatar_versions = 2).await;
    let mut c = app.admin().await;
    let a = c.create_app("App").await;
    let mut versions = Vec::new();
    for _ in 0..4 {
        let pid = c.upload_ok(&images::png(40, 40)).await;
        let v = attach(&mut c, "apps", &a, json!(pid)).await.json()["AvatarVersionID"]
            .as_str()
            .unwrap()
            .to_string();
        // A cached rendition per version.
        c.get(&format!("/api/apps/{a}/avatars/{v}.png?size=25"))
            .await;
        versions.push(v);
    }
    assert_eq!(avatar_blobs(&app).await, 8);
    let counts = pixdrop::sweeper::sweep_once(&app.state).await.unwrap();
    assert_eq!(counts.avatar_versions_pruned, 2);
    assert_eq!(avatar_blobs(&app).await, 4);
    for (i, v) in versions.iter().enumerate() {
        let status = c
            .get(&format!("/api/apps/{a}/avatars/{v}.png"))
            .await
            .status;
        assert_eq!(
            status,
            if i < 2 {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            },
            "version {i}"
        );
    }
    assert_eq!(
        c.get(&format!("/api/apps/{a}/avatar")).await.status,
        StatusCode::OK
    );
    assert!(fsck_problems(&app).await.is_empty());
}

#[tokio::test]
async fn fsck_finds_a_blob_removed_by_hand_and_repair_clears_it() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let a = c.create_app("App").await;
    let pid = c.upload_ok(&images::png(40, 40)).await;
    let v = attach(&mut c, "apps", &a, json!(pid)).await.json()["AvatarVersionID"]
        .as_str()
        .unwrap()
        .to_string();
    let live = c.upload_ok(&images::png(40, 40)).await;
    assert!(fsck_problems(&app).await.is_empty());

    app.state
        .blobs
        .delete(&pixdrop::blobs::avatar_master_key(&v))
        .await
        .unwrap();
    app.state
        .blobs
        .delete(&pixdrop::blobs::picture_key(live))
        .await
        .unwrap();
    app.state
        .blobs
        .put_durable(
            &pixdrop::blobs::picture_key(55555),
            bytes::Bytes::from_static(b"stray"),
        )
        .await
        .unwrap();
    let problems = pixdrop::fsck::check(&app.state).await.unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    pixdrop::fsck::repair(&app.state, &problems).await.unwrap();
    assert!(fsck_problems(&app).await.is_empty());
    // The resource fell back to its default picture; the lost picture is gone.
    assert_eq!(
        c.get(&format!("/api/apps/{a}")).await.json()["HasPicture"],
        false
    );
    assert_eq!(
        c.get(&format!("/api/apps/{a}/avatar")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&format!("/api/dropbox/pictures/{live}")).await.status,
        StatusCode::NOT_FOUND
    );
}
