//! Test harness: a fresh store per test, the router driven in-process, and a small client
//! that keeps cookies and sends the CSRF header the way a portal page does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use pixdrop::config::Config;
use pixdrop::{App, AppState};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub _dir: TempDir,
}

/// A fresh store: SQLite and local files in a temporary directory, or a fresh PostgreSQL
/// database and S3 prefix when the suite runs against the scale-out pair.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    if let Some(scale_out) = crate::backend::scale_out() {
        scale_out.configure(&mut config).await;
    }
    tweak(&mut config);
    let (app, _) = App::open(config, Some(ADMIN_PASSWORD.to_string()))
        .await
        .expect("open app");
    let state = AppState(Arc::new(app));
    let router = pixdrop::router(state.clone());
    TestApp {
        state,
        router,
        _dir: dir,
    }
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
}

impl TestApp {
    /// A browser on `host` with no cookies, connecting from 10.0.0.1.
    pub fn client(&self, host: &str) -> Client<'_> {
        Client {
            app: self,
            host: host.to_string(),
            cookies: BTreeMap::new(),
            send_csrf: true,
            address: "10.0.0.1:5000".parse().expect("address"),
        }
    }

    /// The site admin of tenant `default`, logged in.
    pub async fn admin(&self) -> Client<'_> {
        let mut c = self.client("portal.test");
        let r = c.login("admin@localhost", ADMIN_PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        c
    }

    /// Changes a tenant setting and makes it visible at once (servers see it within 2 s).
    pub async fn set(&self, tenant: &str, key: &str, value: &str) {
        self.state
            .meta
            .set_tenant_setting(tenant, key, value)
            .await
            .expect("set tenant setting");
        self.state.tenants.invalidate().await;
    }

    pub async fn add_tenant(&self, name: &str, hosts: &[&str]) {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        self.state
            .meta
            .add_tenant(name, &hosts)
            .await
            .expect("add tenant");
        self.state.tenants.invalidate().await;
    }

    /// Tenant `acme` (host `acme.test`) with its site admin `root@acme`, logged in there.
    /// Returns the client and the admin's UserID.
    pub async fn acme_admin(&self) -> (Client<'_>, String) {
        self.add_tenant("acme", &["acme.test"]).await;
        let hash = self
            .state
            .passwords
            .hash("acme-password".into())
            .await
            .expect("hash");
        let id = self
            .state
            .meta
            .create_user(pixdrop::meta::NewUser {
                tenant: "acme".into(),
                email: "root@acme".into(),
                name: "root".into(),
                password_hash: hash,
                site_admin: true,
            })
            .await
            .expect("acme admin")
            .id;
        let mut c = self.client("acme.test");
        let r = c.login("root@acme", "acme-password").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        (c, id)
    }

    /// Creates a user through the API as the site admin of `admin`'s tenant.
    pub async fn create_user(&self, admin: &mut Client<'_>, email: &str) -> String {
        let r = admin
            .post_json(
                "/api/users",
                serde_json::json!({"Email": email, "Password": "user-password", "Name": email}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["UserID"].as_str().expect("UserID").to_string()
    }

    /// A new user of the admin's tenant, logged in on the same host.
    pub async fn user<'a>(&'a self, admin: &mut Client<'a>, email: &str) -> (Client<'a>, String) {
        let id = self.create_user(admin, email).await;
        let mut c = self.client(&admin.host);
        let r = c.login(email, "user-password").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        (c, id)
    }
}

pub struct Client<'a> {
    pub app: &'a TestApp,
    pub host: String,
    pub cookies: BTreeMap<String, String>,
    /// Send `X-Csrf-Token_{tenant}` from the `Csrf-Token_{tenant}` cookie, as portal pages do.
    pub send_csrf: bool,
    pub address: SocketAddr,
}

impl Client<'_> {
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    pub async fn login(&mut self, email: &str, password: &str) -> TestResponse {
        self.post_json(
            "/api/login",
            serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    pub fn request(&self, method: Method, path: &str) -> axum::http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            b = b.header(header::COOKIE, jar.join("; "));
        }
        if self.send_csrf {
            for (name, value) in &self.cookies {
                if let Some(tenant) = name.strip_prefix("Csrf-Token_") {
                    b = b.header(format!("X-Csrf-Token_{tenant}"), value);
                }
            }
        }
        b
    }

    pub async fn send(&mut self, req: Request<Body>) -> TestResponse {
        let mut req = req;
        req.extensions_mut().insert(ConnectInfo(self.address));
        let response = self
            .app
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().expect("cookie header");
            let pair = set.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || set.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> TestResponse {
        let req = self
            .request(Method::GET, path)
            .body(Body::empty())
            .expect("request");
        self.send(req).await
    }

    pub async fn json(&mut self, method: Method, path: &str, body: Value) -> TestResponse {
        let req = self
            .request(method, path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        self.send(req).await
    }

    pub async fn post_json(&mut self, path: &str, body: Value) -> TestResponse {
        self.json(Method::POST, path, body).await
    }

    pub async fn put_json(&mut self, path: &str, body: Value) -> TestResponse {
        self.json(Method::PUT, path, body).await
    }
}

/// One part of a multipart body.
pub struct Part<'b> {
    pub name: &'b str,
    pub filename: Option<&'b str>,
    pub content_type: Option<&'b str>,
    pub data: &'b [u8],
}

impl<'b> Part<'b> {
    pub fn file(name: &'b str, data: &'b [u8]) -> Part<'b> {
        Part {
            name,
            filename: Some("picture.jpg"),
            content_type: Some("application/octet-stream"),
            data,
        }
    }

    pub fn text(name: &'b str, data: &'b str) -> Part<'b> {
        Part {
            name,
            filename: None,
            content_type: None,
            data: data.as_bytes(),
        }
    }
}

pub const BOUNDARY: &str = "----pixdropTestBoundary7MA4YWxkTrZu0gW";

pub fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", p.name);
        if let Some(f) = p.filename {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = p.content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

impl Client<'_> {
    /// Uploads `parts` to the dropbox (`query` is appended to the path).
    pub async fn upload_parts(&mut self, query: &str, parts: &[Part<'_>]) -> TestResponse {
        let body = multipart(parts);
        let req = self
            .request(Method::POST, &format!("/api/dropbox/pictures{query}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .expect("request");
        self.send(req).await
    }

    /// Uploads one image as the `Profile` part; returns the response.
    pub async fn upload(&mut self, image: &[u8]) -> TestResponse {
        self.upload_parts("", &[Part::file("Profile", image)]).await
    }

    /// Uploads one image and returns its PictureID, asserting success.
    pub async fn upload_ok(&mut self, image: &[u8]) -> i64 {
        let r = self.upload(image).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.text().parse().expect("PictureID")
    }

    /// Creates an app named `name` and returns its id.
    pub async fn create_app(&mut self, name: &str) -> String {
        let r = self
            .post_json("/api/apps", serde_json::json!({"Name": name}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["ID"].as_str().expect("ID").to_string()
    }

    pub async fn form(&mut self, method: Method, path: &str, form: &str) -> TestResponse {
        let req = self
            .request(method, path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .expect("request");
        self.send(req).await
    }
}
