use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

/// Fills a documented path template with values of the right shape.
fn concrete(template: &str) -> String {
    template
        .replace("{kind}", "apps")
        .replace("{id}", "00000000-0000-0000-0000-000000000000.default")
        .replace("{file}", "00.png")
        .replace(
            "/api/dropbox/pictures/00000000-0000-0000-0000-000000000000.default",
            "/api/dropbox/pictures/1001",
        )
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_every_route_is_documented() {
    let app = spawn_app().await;
    let mut c = app.admin().await;
    let r = c.get("/api/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();

    // The document is the router's: split the same registrations and compare.
    let (_, from_routes) = pixdrop::http::api_routes().split_for_parts();
    let from_routes: Value = serde_json::from_str(&from_routes.to_json().unwrap()).unwrap();
    assert_eq!(&from_routes["paths"], &doc["paths"]);

    // Walk the documented operations: each one reaches a handler (no 404 from the router's
    // fallback, no 405), as the route-template label of the metrics shows.
    let mut operations = 0;
    for (template, item) in paths {
        for method in ["get", "put", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let req = c
                .request(
                    method.to_uppercase().parse::<Method>().unwrap(),
                    &concrete(template),
                )
                .body(Body::empty())
                .unwrap();
            let r = c.send(req).await;
            assert_ne!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {template}"
            );
        }
    }
    assert!(operations >= 20, "{operations}");
    let metrics = c.get("/metrics").await.text();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("pixdrop_http_requests_total")
                && l.contains(r#"route="unmatched""#)),
        "a documented operation did not reach a handler:\n{metrics}"
    );

    // Every route the README's API table lists is documented, with the right methods.
    for (method, template) in [
        ("post", "/api/login"),
        ("post", "/api/login/renewToken"),
        ("post", "/api/logout"),
        ("post", "/api/users"),
        ("post", "/api/apps"),
        ("post", "/api/apis"),
        ("post", "/api/groups"),
        ("post", "/api/businesses"),
        ("get", "/api/{kind}/{id}"),
        ("put", "/api/{kind}/{id}"),
        ("post", "/api/dropbox/pictures"),
        ("get", "/api/dropbox/pictures/{id}"),
        ("put", "/api/dropbox/pictures/{id}"),
        ("get", "/api/{kind}/{id}/avatar"),
        ("get", "/api/{kind}/{id}/avatars/{file}"),
        ("delete", "/api/{kind}/{id}/picture"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/api/openapi.json"),
    ] {
        assert!(
            paths.get(template).and_then(|p| p.get(method)).is_some(),
            "{method} {template} undocumented"
        );
    }

    // Bodies: the multipart upload and the form-encoded crop.
    let upload = &paths["/api/dropbox/pictures"]["post"];
    assert!(upload["requestBody"]["content"]
        .get("multipart/form-data")
        .is_some());
    for status in ["200", "400", "401", "413", "415", "422", "429", "503"] {
        assert!(upload["responses"].get(status).is_some(), "upload {status}");
    }
    let crop = &paths["/api/dropbox/pictures/{id}"]["put"];
    assert!(crop["requestBody"]["content"]
        .get("application/x-www-form-urlencoded")
        .is_some());
    let params: Vec<&str> = paths["/api/{kind}/{id}/avatar"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["kind", "id", "size"]);
}
