use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use image::{GenericImageView, ImageFormat};

use crate::helpers::{multipart, spawn_app, Part, TestApp, BOUNDARY};
use crate::images::{self, decode_png, encode, photo, EXIF_SECRET};

async fn dropbox_blobs(app: &TestApp) -> usize {
    app.state.blobs.list("dropbox").await.unwrap().len()
}

#[tokio::test]
async fn every_accepted_format_uploads_and_ids_start_at_1001_and_increase() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let img = photo(64, 48);
    let mut last = 1000;
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Bmp,
        ImageFormat::WebP,
    ] {
        let r = c.upload(&encode(&img, format)).await;
        assert_eq!(r.status, StatusCode::OK, "{format:?}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("text/plain"));
        let id: i64 = r
            .text()
            .parse()
            .unwrap_or_else(|_| panic!("body {:?}", r.text()));
        assert_eq!(r.text(), id.to_string(), "nothing but the id");
        assert!(id > last, "{id} after {last}");
        last = id;
        let got = c.get(&format!("/api/dropbox/pictures/{id}")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.header("content-type"), Some("image/png"));
        assert!(got.header("content-security-policy").is_some());
        assert_eq!(decode_png(&got.body).dimensions(), (64, 48), "{format:?}");
    }
    assert_eq!(last, 1005);
}

#[tokio::test]
async fn svg_html_and_random_bytes_are_415_whatever_their_name_says() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>"#;
    let html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>";
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for bytes in [&svg[..], &html[..], &random[..]] {
        let part = Part {
            name: "Profile",
            filename: Some("avatar.png"),
            content_type: Some("image/png"),
            data: bytes,
        };
        let r = c.upload_parts("", &[part]).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    }
    assert_eq!(
        dropbox_blobs(&app).await,
        0,
        "refused uploads leave no blob"
    );
}

#[tokio::test]
async fn garbage_behind_a_jpeg_signature_is_422() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let mut bytes = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00".to_vec();
    bytes.extend(std::iter::repeat_n(0x5Au8, 2000));
    let r = c.upload(&bytes).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    // A real JPEG cut in half fails too.
    let jpeg = images::jpeg(300, 300);
    let r = c.upload(&jpeg[..jpeg.len() / 3]).await;
    assert!(
        r.status == StatusCode::UNPROCESSABLE_ENTITY || r.status == StatusCode::OK,
        "a truncated JPEG is refused or decoded as far as it goes: {}",
        r.status
    );
    assert_eq!(
        app.state
            .meta
            .count_live_pictures(pixdrop::meta::now_ms())
            .await
            .unwrap(),
        u64::from(r.status == StatusCode::OK)
    );
}

#[tokio::test]
async fn a_100_byte_png_claiming_60000_squared_is_refused_from_its_header() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let bomb = images::png_claiming(60000, 60000);
    assert!(bomb.len() < 100, "{}", bomb.len());
    let start = Instant::now();
    let req = c
        .request(Method::POST, "/api/dropbox/pictures")
        .header(header::ACCEPT, "application/json")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(multipart(&[Part::file("Profile", &bomb)])))
        .unwrap();
    let r = c.send(req).await;
    // Not a speed measurement: decoding 3.6 gigapixels would take minutes and ~11 GB.
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.json();
    assert_eq!(body["code"], "side_too_long");
    assert!(body["message"].as_str().unwrap().contains("16384"));
}

#[tokio::test]
async fn over_max_side_and_over_max_pixels_are_422_naming_the_limit() {
    let app = spawn_app().await;
    app.set("default", "max_side", "100").await;
    let mut c = app.admin().await;
    c.send_csrf = true;
    let r = c.upload(&images::png(101, 10)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("max_side is 100"), "{}", r.text());
    app.set("default", "max_side", "16384").await;
    app.set("default", "max_pixels", "5000").await;
    let r = c.upload(&images::png(100, 51)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("max_pixels is 5000"), "{}", r.text());
    assert_eq!(c.upload(&images::png(100, 50)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn over_max_upload_bytes_is_413_with_and_without_content_length() {
    let app = spawn_app().await;
    app.set("default", "max_upload_bytes", "10000").await;
    let mut c = app.admin().await;
    let big = images::png(400, 400);
    assert!(big.len() > 10_000);
    // Declared too large by Content-Length: refused before reading.
    let r = c.upload(&big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().contains("10000"));

    // A file part over the limit inside a body within the overhead allowance.
    let just_over = vec![0x89u8; 10_001];
    let r = c.upload(&just_over).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Streamed without Content-Length: refused as the stream passes the limit; the rest of
    // an endless body is never read.
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"Profile\"; filename=\"a.png\"\r\n\r\n"
    );
    let chunks = std::iter::once(Ok::<_, std::io::Error>(bytes::Bytes::from(head))).chain(
        std::iter::repeat_with(|| Ok(bytes::Bytes::from(vec![0u8; 4096]))),
    );
    let stream = futures_util::stream::iter(chunks);
    let req = c
        .request(Method::POST, "/api/dropbox/pictures")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from_stream(stream))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(dropbox_blobs(&app).await, 0);
}

#[tokio::test]
async fn no_file_part_or_no_multipart_is_400() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let r = c
        .upload_parts("", &[Part::text("Profile", "not a file")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c.form(Method::POST, "/api/dropbox/pictures", "a=b").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let req = c
        .request(Method::POST, "/api/dropbox/pictures")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from("this is not multipart"))
        .unwrap();
    assert_eq!(c.send(req).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_profile_part_is_preferred_over_an_earlier_file_part() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let other = images::png(10, 10);
    let profile = images::png(20, 30);
    let id: i64 = {
        let r = c
            .upload_parts(
                "",
                &[
                    Part::text("note", "hello"),
                    Part::file("other", &other),
                    Part::file("Profile", &profile),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.text().parse().unwrap()
    };
    let got = c.get(&format!("/api/dropbox/pictures/{id}")).await;
    assert_eq!(decode_png(&got.body).dimensions(), (20, 30));
    // Without a Profile part, the first file part is the image.
    let r = c
        .upload_parts(
            "",
            &[Part::file("first", &other), Part::file("second", &profile)],
        )
        .await;
    let id: i64 = r.text().parse().unwrap();
    let got = c.get(&format!("/api/dropbox/pictures/{id}")).await;
    assert_eq!(decode_png(&got.body).dimensions(), (10, 10));
}

#[tokio::test]
async fn exif_orientation_6_turns_200x100_into_100x200_and_exif_is_not_kept() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let jpeg = images::jpeg_with_exif(200, 100, 6);
    assert!(jpeg
        .windows(EXIF_SECRET.len())
        .any(|w| w == EXIF_SECRET.as_bytes()));
    let id = c.upload_ok(&jpeg).await;
    let got = c.get(&format!("/api/dropbox/pictures/{id}")).await;
    assert_eq!(decode_png(&got.body).dimensions(), (100, 200));
    let stored = app
        .state
        .blobs
        .get(&pixdrop::blobs::picture_key(id))
        .await
        .unwrap();
    for needle in [
        EXIF_SECRET.as_bytes(),
        b"eXIf",
        b"Exif",
        b"tEXt",
        b"iTXt",
        b"zTXt",
    ] {
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle),
            "{:?} found",
            String::from_utf8_lossy(needle)
        );
    }
}

#[tokio::test]
async fn masters_fit_within_master_size_without_upscaling() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let id = c.upload_ok(&images::jpeg(1024, 512)).await;
    let got = c.get(&format!("/api/dropbox/pictures/{id}")).await;
    assert_eq!(decode_png(&got.body).dimensions(), (512, 256));
    let small = c.upload_ok(&images::png(30, 40)).await;
    let got = c.get(&format!("/api/dropbox/pictures/{small}")).await;
    assert_eq!(decode_png(&got.body).dimensions(), (30, 40));
}

#[tokio::test]
async fn size_fits_the_preview_and_bad_sizes_are_400() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let id = c.upload_ok(&images::png(300, 150)).await;
    let path = format!("/api/dropbox/pictures/{id}");
    let r = c.get(&format!("{path}?size=100")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(decode_png(&r.body).dimensions(), (100, 50));
    let r = c.get(&format!("{path}?size=512")).await;
    assert_eq!(
        decode_png(&r.body).dimensions(),
        (300, 150),
        "never upscaled"
    );
    for bad in ["0", "-5", "abc", "1.5", ""] {
        assert_eq!(
            c.get(&format!("{path}?size={bad}")).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    assert_eq!(
        c.get("/api/dropbox/pictures/abc").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.get("/api/dropbox/pictures/999999").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn crop_is_checked_against_the_master_and_owned_by_the_uploader() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let (mut ann, _) = app.user(&mut admin, "ann@example.com").await;
    let (mut bob, _) = app.user(&mut admin, "bob@example.com").await;
    let id = ann.upload_ok(&images::png(200, 100)).await;
    let path = format!("/api/dropbox/pictures/{id}");

    let r = ann.form(Method::PUT, &path, "x=10&y=20&w=50&h=60").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"PictureID": id, "x": 10, "y": 20, "w": 50, "h": 60})
    );

    for bad in [
        "x=0&y=0&w=0&h=10",
        "x=0&y=0&w=10&h=0",
        "x=190&y=0&w=11&h=10",
        "x=0&y=50&w=10&h=51",
        "x=-1&y=0&w=10&h=10",
        "x=a&y=0&w=10&h=10",
        "x=0&y=0&w=10",
    ] {
        assert_eq!(
            ann.form(Method::PUT, &path, bad).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    assert_eq!(
        ann.form(Method::PUT, &path, "x=0&y=0&w=200&h=100")
            .await
            .status,
        StatusCode::OK
    );
    // Another user may see the picture (same tenant) but not crop it.
    assert_eq!(
        bob.form(Method::PUT, &path, "x=0&y=0&w=10&h=10")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // A site admin may.
    assert_eq!(
        admin
            .form(Method::PUT, &path, "x=0&y=0&w=10&h=10")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        ann.form(
            Method::PUT,
            "/api/dropbox/pictures/424242",
            "x=0&y=0&w=1&h=1"
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn another_tenants_picture_is_404() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let id = admin.upload_ok(&images::png(10, 10)).await;
    let (mut acme, _) = app.acme_admin().await;
    let path = format!("/api/dropbox/pictures/{id}");
    assert_eq!(acme.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        acme.form(Method::PUT, &path, "x=0&y=0&w=1&h=1")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn uploads_need_a_login_and_the_csrf_token_in_a_header_or_a_leading_form_field() {
    let app = spawn_app().await;
    let png = images::png(10, 10);
    let mut anon = app.client("portal.test");
    assert_eq!(anon.upload(&png).await.status, StatusCode::UNAUTHORIZED);

    let mut c = app.admin().await;
    let token = c.cookie("Csrf-Token_default").unwrap().to_string();
    c.send_csrf = false;
    assert_eq!(c.upload(&png).await.status, StatusCode::UNAUTHORIZED);
    let r = c
        .upload_parts(
            "",
            &[
                Part::text("X-Csrf-Token_default", &token),
                Part::file("Profile", &png),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = c
        .upload_parts(
            "",
            &[
                Part::text("X-Csrf-Token_default", "wrong"),
                Part::file("Profile", &png),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // After the file part is too late: the file is never read without a valid token.
    let r = c
        .upload_parts(
            "",
            &[
                Part::file("Profile", &png),
                Part::text("X-Csrf-Token_default", &token),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(dropbox_blobs(&app).await, 1);
}

/// The exact wrapper document jquery.form reads from the hidden iframe.
fn wrapped(status: &str, text: &str, script: &str, payload: &str) -> String {
    let attrs = format!(r#"status="{status}" statusText="{text}""#);
    let head = format!("<html {attrs}><head>{script}");
    let body = format!("<body {attrs}>{payload}</body></html>");
    let pad = 512usize.saturating_sub(head.len() + "<!--  --></head>".len() + body.len());
    format!("{head}<!-- {} --></head>{body}", " ".repeat(pad))
}

#[tokio::test]
async fn the_html_wrapper_matches_byte_for_byte() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let png = images::png(10, 10);
    let r = c
        .upload_parts(
            "?wrapInHTML=true&document.domain=portal.example.com",
            &[Part::file("Profile", &png)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("text/html;charset=UTF-8"));
    let id = r
        .text()
        .rsplit("statusText=\"success\">")
        .next()
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    id.parse::<i64>().unwrap();
    let expected = wrapped(
        "200",
        "success",
        r#"<script>document.domain="portal.example.com";</script>"#,
        &id,
    );
    assert_eq!(r.text(), expected);
    assert!(r.body.len() >= 512);

    // No domain, no script.
    let r = c
        .upload_parts("?wrapInHTML=true", &[Part::file("Profile", &png)])
        .await;
    assert!(!r.text().contains("<script"));
    assert!(r
        .text()
        .starts_with(r#"<html status="200" statusText="success"><head><!-- "#));

    // An injection attempt in document.domain is neither executed nor echoed.
    let r = c
        .upload_parts(
            "?wrapInHTML=true&document.domain=x.com%22%3Balert(1)%2F%2F%3C%2Fscript%3E",
            &[Part::file("Profile", &png)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.text().contains("<script") && !r.text().contains("alert"),
        "{}",
        r.text()
    );

    // Errors are wrapped too, with their real status.
    let r = c
        .upload_parts(
            "?wrapInHTML=true&document.domain=portal.example.com",
            &[Part::file("Profile", b"<svg/>")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let expected = wrapped(
        "415",
        "Unsupported Media Type",
        r#"<script>document.domain="portal.example.com";</script>"#,
        "not a supported image format (JPEG, PNG, GIF, BMP or WebP)",
    );
    assert_eq!(r.text(), expected);

    let mut anon = app.client("portal.test");
    let r = anon
        .upload_parts("?wrapInHTML=true", &[Part::file("Profile", &png)])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.text(),
        wrapped("401", "Unauthorized", "", "not logged in")
    );
}

#[tokio::test]
async fn a_picture_expires_at_once_and_the_sweeper_removes_its_blob() {
    let app = spawn_app().await;
    app.set("default", "dropbox_ttl", "1s").await;
    let mut c = app.admin().await;
    let id = c.upload_ok(&images::png(10, 10)).await;
    let path = format!("/api/dropbox/pictures/{id}");
    assert_eq!(c.get(&path).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        c.form(Method::PUT, &path, "x=0&y=0&w=1&h=1").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(dropbox_blobs(&app).await, 1);
    let counts = pixdrop::sweeper::sweep_once(&app.state).await.unwrap();
    assert_eq!(counts.pictures_expired, 1);
    assert_eq!(dropbox_blobs(&app).await, 0);
}

#[tokio::test]
async fn live_picture_and_upload_rate_quotas_are_429_with_retry_after() {
    let app = spawn_app().await;
    app.set("default", "max_live_pictures", "2").await;
    let mut c = app.admin().await;
    let png = images::png(8, 8);
    c.upload_ok(&png).await;
    c.upload_ok(&png).await;
    let r = c.upload(&png).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((3000..=3600).contains(&retry), "{retry}");
    assert!(r.text().contains("max_live_pictures is 2"));

    app.set("default", "max_live_pictures", "100").await;
    app.set("default", "uploads_per_minute", "3").await;
    c.upload_ok(&png).await;
    let r = c.upload(&png).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(r.text().contains("uploads_per_minute is 3"));
    // Another user has their own quota.
    let mut admin = app.admin().await;
    let (mut ann, _) = app.user(&mut admin, "ann@example.com").await;
    ann.upload_ok(&png).await;
}

#[tokio::test]
async fn a_failed_upload_leaves_no_record_and_no_blob() {
    let app = spawn_app().await;
    app.set("default", "max_live_pictures", "1").await;
    let mut c = app.admin().await;
    for bad in [&b"<svg/>"[..], b"\xFF\xD8\xFF\xE0garbage-garbage-garbage"] {
        c.upload(bad).await;
    }
    // Give the guard's clean-up task a moment, then the one live slot is still free.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = c.upload_ok(&images::png(5, 5)).await;
    assert_eq!(dropbox_blobs(&app).await, 1);
    assert_eq!(
        app.state
            .meta
            .count_live_pictures(pixdrop::meta::now_ms())
            .await
            .unwrap(),
        1
    );
    assert!(app
        .state
        .meta
        .picture("default", id)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn orphan_blobs_are_swept_after_the_grace_and_live_ones_kept() {
    let app = crate::helpers::spawn_app_with(|c| c.orphan_grace = Duration::ZERO).await;
    let mut c = app.admin().await;
    let id = c.upload_ok(&images::png(5, 5)).await;
    // A blob written by an upload that crashed before its commit.
    let orphan = pixdrop::blobs::picture_key(999_999);
    app.state
        .blobs
        .put_durable(&orphan, bytes::Bytes::from_static(b"x"))
        .await
        .unwrap();
    // And one whose upload died after writing its blob, before its commit.
    let now = pixdrop::meta::now_ms();
    let reserved = app
        .state
        .meta
        .reserve_picture(&pixdrop::meta::NewPicture {
            tenant: "default",
            owner: "someone.default",
            now,
            expires_at: now + 3_600_000,
            max_live: 10,
            per_minute: 10,
        })
        .await
        .unwrap();
    let pixdrop::meta::Reservation::Granted(stuck) = reserved else {
        panic!("{reserved:?}")
    };
    let stuck_key = pixdrop::blobs::picture_key(stuck);
    app.state
        .blobs
        .put_durable(&stuck_key, bytes::Bytes::from_static(b"y"))
        .await
        .unwrap();
    assert_eq!(dropbox_blobs(&app).await, 3);
    let counts = pixdrop::sweeper::sweep_once(&app.state).await.unwrap();
    assert_eq!(counts.orphan_blobs, 1);
    assert_eq!(counts.pictures_expired, 1);
    assert_eq!(dropbox_blobs(&app).await, 1);
    assert_eq!(
        c.get(&format!("/api/dropbox/pictures/{id}")).await.status,
        StatusCode::OK
    );
}
