use axum::http::StatusCode;

use crate::helpers::spawn_app;
use crate::images;

fn metric_value(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name_and_labels} in\n{text}"))
}

#[tokio::test]
async fn metrics_count_by_route_template_and_upload_outcome_with_bounded_labels() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let a = c.create_app("A").await;
    let b = c.create_app("B").await;
    assert_eq!(
        c.get(&format!("/api/apps/{a}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&format!("/api/apps/{b}")).await.status,
        StatusCode::OK
    );
    c.get("/no/such/route/12345").await;
    let png = images::png(30, 20);
    c.upload_ok(&png).await;
    c.upload(b"<svg/>").await;
    c.upload(&images::png_claiming(60000, 60000)).await;
    pixdrop::sweeper::sweep_once(&app.state).await.unwrap();

    let r = c.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    assert_eq!(
        metric_value(
            &text,
            r#"pixdrop_http_requests_total{method="GET",route="/api/{kind}/{id}",status="2xx"}"#
        ),
        2.0
    );
    assert_eq!(
        metric_value(
            &text,
            r#"pixdrop_http_requests_total{method="GET",route="unmatched",status="4xx"}"#
        ),
        1.0
    );
    // Raw paths never become labels.
    assert!(!text.contains(&a) && !text.contains("12345"));
    assert_eq!(metric_value(&text, "pixdrop_pictures_accepted_total"), 1.0);
    assert_eq!(
        metric_value(&text, r#"pixdrop_pictures_refused_total{reason="415"}"#),
        1.0
    );
    assert_eq!(
        metric_value(&text, r#"pixdrop_pictures_refused_total{reason="422"}"#),
        1.0
    );
    assert!(metric_value(&text, "pixdrop_upload_bytes_total") >= png.len() as f64);
    assert_eq!(
        metric_value(&text, "pixdrop_image_decode_seconds_count"),
        1.0
    );
    assert_eq!(
        metric_value(&text, "pixdrop_image_encode_seconds_count"),
        1.0
    );
    assert_eq!(metric_value(&text, "pixdrop_dropbox_live_pictures"), 1.0);
    assert_eq!(metric_value(&text, "pixdrop_sweeper_runs_total"), 1.0);
    assert!(text.contains("pixdrop_http_request_duration_seconds_bucket"));

    // A store outage is counted as such.
    app.state.meta.close().await;
    c.get(&format!("/api/apps/{a}")).await;
    let text = c.get("/metrics").await.text();
    assert!(metric_value(&text, r#"pixdrop_store_errors_total{store="metadata"}"#) >= 1.0);
}
