use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;
use crate::images;

#[tokio::test]
async fn migrate_storage_copies_verifies_resumes_and_the_copy_serves() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let app_id = c.create_app("A").await;
    let attached = c.upload_ok(&images::png(60, 60)).await;
    c.put_json(
        &format!("/api/apps/{app_id}"),
        json!({"PictureID": attached}),
    )
    .await;
    c.get(&format!("/api/apps/{app_id}/avatar?size=25")).await;
    let live = c.upload_ok(&images::png(30, 30)).await;

    let dest_dir = tempfile::tempdir().unwrap();
    let dest_url = format!("file://{}", dest_dir.path().display());
    let dest = pixdrop::blobs::Blobs::open(&dest_url, &app.state.config.s3).unwrap();
    let report = app.state.blobs.copy_all_to(&dest).await.unwrap();
    // The live picture, the avatar master and its 25px rendition.
    assert_eq!(report.copied, 3);
    assert_eq!(report.already_there, 0);
    for prefix in ["dropbox", "avatars"] {
        for blob in app.state.blobs.list(prefix).await.unwrap() {
            assert_eq!(
                app.state.blobs.get(&blob.key).await.unwrap(),
                dest.get(&blob.key).await.unwrap()
            );
        }
    }

    // A re-run (after an interruption) copies only what is missing or different.
    let some = pixdrop::blobs::picture_key(live);
    dest.put_durable(&some, bytes::Bytes::from_static(b"torn write"))
        .await
        .unwrap();
    let again = app.state.blobs.copy_all_to(&dest).await.unwrap();
    assert_eq!((again.copied, again.already_there), (1, 2));

    // Switch-over: the same database with the new storage serves everything.
    let mut config = app.state.config.clone();
    config.storage_url = Some(dest_url);
    let (moved, _) = pixdrop::App::open(config, None).await.unwrap();
    let moved = pixdrop::AppState(Arc::new(moved));
    let moved_app = crate::helpers::TestApp {
        router: pixdrop::router(moved.clone()),
        state: moved,
        _dir: tempfile::tempdir().unwrap(),
    };
    let mut m = moved_app.admin().await;
    assert_eq!(
        m.get(&format!("/api/dropbox/pictures/{live}")).await.status,
        StatusCode::OK
    );
    let r = m.get(&format!("/api/apps/{app_id}/avatar?size=25")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(pixdrop::fsck::check(&moved_app.state)
        .await
        .unwrap()
        .is_empty());
}
