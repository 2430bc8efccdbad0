//! Tests of the real `pixdrop` binary: start-up, signals, and the admin CLI beside a
//! running server. Servers listen on 127.0.0.1, on a port they pick, and are stopped by pid.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

pub const BIN: &str = env!("CARGO_BIN_EXE_pixdrop");
const PASSWORD: &str = "process-test-password";

fn pixdrop(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir")
        .arg(dir)
        .env("PIXDROP_ADMIN_PASSWORD", PASSWORD);
    c
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(dir: &std::path::Path) -> Server {
        Server::start_with(dir, &[])
    }

    pub fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let mut child = pixdrop(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pixdrop serve");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("pixdrop listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("server did not start: {:?}", lines.lock().unwrap()));
        Server {
            child,
            base,
            stderr: lines,
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Sends `signal` and asserts a clean exit (status 0) within 20 seconds.
    pub fn stop(&mut self, signal: &str) {
        self.signal(signal);
        let status = self.wait(Duration::from_secs(20));
        assert!(status.success(), "exit status {status:?}");
    }

    /// Waits for the process to exit (killing it after `limit`).
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("server did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client")
}

#[tokio::test]
async fn serve_answers_logins_over_http_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let http = client();
    let r = http
        .post(format!("{}/api/login", server.base))
        .json(&json!({"email": "admin@localhost", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["loginState"], "LoggedIn");
    let r = http
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    server.stop("TERM");
    assert!(server
        .stderr
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("stopped")));
    // The same store opens again, with the same admin.
    let mut again = Server::start(dir.path());
    let r = client()
        .post(format!("{}/api/login", again.base))
        .json(&json!({"email": "admin@localhost", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    again.stop("INT");
}

#[test]
fn a_new_store_prints_a_generated_admin_password_once_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["tenant", "list"])
            .env_remove("PIXDROP_ADMIN_PASSWORD")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success());
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("admin@localhost has password: "),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&first.stdout), "default\t*\t\n");
    let second = run();
    assert!(!String::from_utf8_lossy(&second.stderr).contains("password"));
}

#[test]
fn an_unknown_pixdrop_variable_stops_start_up_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = pixdrop(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PIXDROP_LISTNE", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.to_lowercase().contains("listne"), "{stderr}");
    let out = pixdrop(dir.path())
        .args(["tenant", "list"])
        .env("PIXDROP_MASTER_SIZE", "huge")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("master_size"));
}

fn user_add(
    dir: &std::path::Path,
    tenant: &str,
    email: &str,
    password: &str,
) -> std::process::Output {
    let mut child = pixdrop(dir)
        .args([
            "user",
            "add",
            "--tenant",
            tenant,
            "--email",
            email,
            "--name",
            "Some One",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\nignored second line\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn the_cli_manages_tenants_and_users_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let out = pixdrop(dir.path())
        .args(["tenant", "add", "acme", "--host", "Acme.Localhost"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user_add(dir.path(), "acme", "ops@acme.test", "ops-password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(id.ends_with(".acme\n") && id.lines().count() == 1, "{id:?}");
    let dup = user_add(dir.path(), "acme", "OPS@acme.test", "ops-password");
    assert!(!dup.status.success());
    assert!(dup.stdout.is_empty());

    // The new user logs in at acme's host (the password is the first line, without "\n").
    let http = client();
    let login = || async {
        http.post(format!("{}/api/login", server.base))
            .header("host", "acme.localhost")
            .json(&json!({"email": "ops@acme.test", "password": "ops-password"}))
            .send()
            .await
            .unwrap()
    };
    let r = login().await;
    assert_eq!(r.status(), 200);
    let csrf_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("Csrf-Token_acme="));
    assert!(csrf_cookie);

    // A setting changed by the CLI reaches the running server within 5 seconds.
    let out = pixdrop(dir.path())
        .args(["tenant", "set", "acme", "write_csrf", "false"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let start = Instant::now();
    loop {
        let r = http
            .post(format!("{}/api/apps", server.base))
            .header("host", "acme.localhost")
            .json(&json!({"Name": "App"}))
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            break;
        }
        assert_eq!(r.status(), 401);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "setting not seen after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let out = pixdrop(dir.path())
        .args(["tenant", "set", "acme", "session_ttl", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = pixdrop(dir.path())
        .args(["tenant", "set", "nope", "session_ttl", "1m"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = pixdrop(dir.path())
        .args(["tenant", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains("acme\tacme.localhost\twrite_csrf=false"),
        "{list}"
    );

    // passwd changes the password.
    let mut child = pixdrop(dir.path())
        .args([
            "user",
            "passwd",
            "--tenant",
            "acme",
            "--email",
            "ops@acme.test",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"new-ops-password\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(login().await.status(), 401);
}

/// Logs in as the site admin; returns the client (cookies kept) and the CSRF token.
pub async fn admin_login(base: &str) -> (reqwest::Client, String) {
    let http = client();
    let r = http
        .post(format!("{base}/api/login"))
        .json(&json!({"email": "admin@localhost", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csrf = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find_map(|c| c.strip_prefix("Csrf-Token_default="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    (http, csrf)
}

pub fn upload_request(
    http: &reqwest::Client,
    base: &str,
    csrf: &str,
    image: Vec<u8>,
) -> reqwest::RequestBuilder {
    let part = reqwest::multipart::Part::bytes(image).file_name("p.jpg");
    http.post(format!("{base}/api/dropbox/pictures"))
        .header("X-Csrf-Token_default", csrf)
        .multipart(reqwest::multipart::Form::new().part("Profile", part))
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_uploads_survive_sigkill_and_a_sweep_leaves_no_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let quotas = [
        ("PIXDROP_TENANT_DEFAULTS__UPLOADS_PER_MINUTE", "100000"),
        ("PIXDROP_TENANT_DEFAULTS__MAX_LIVE_PICTURES", "100000"),
    ];
    let mut server = Server::start_with(dir.path(), &quotas);
    let (http, csrf) = admin_login(&server.base).await;
    let image = crate::images::jpeg(320, 240);
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let mut writers = Vec::new();
    for _ in 0..6 {
        let (http, csrf, base, image, acked) = (
            http.clone(),
            csrf.clone(),
            server.base.clone(),
            image.clone(),
            acked.clone(),
        );
        writers.push(tokio::spawn(async move {
            // Bounded: stops at the first failed request (the kill) or after 2,000 uploads.
            for _ in 0..2000 {
                match upload_request(&http, &base, &csrf, image.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        let id = r.text().await.map(|t| t.parse::<i64>().unwrap());
                        match id {
                            Ok(id) => acked.lock().unwrap().push(id),
                            Err(_) => return,
                        }
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return,
                }
            }
        }));
    }
    let start = Instant::now();
    while acked.lock().unwrap().len() < 40 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "uploads too slow"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("KILL");
    server.wait(Duration::from_secs(10));
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40);

    let mut again = Server::start_with(dir.path(), &quotas);
    let (http, _) = admin_login(&again.base).await;
    for id in &acked {
        let r = http
            .get(format!("{}/api/dropbox/pictures/{id}", again.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged picture {id} lost");
        let png = r.bytes().await.unwrap();
        assert_eq!(crate::images::decode_png(&png).width(), 320);
    }
    again.stop("TERM");

    let out = pixdrop(dir.path())
        .arg("gc")
        .env("PIXDROP_ORPHAN_GRACE", "0s")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every file left in the blob store is a picture the store names as live.
    let mut again = Server::start_with(dir.path(), &quotas);
    let (http, _) = admin_login(&again.base).await;
    let left = files(&dir.path().join("blobs"));
    assert!(left.len() >= acked.len());
    for file in left {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let id: i64 = name
            .strip_suffix(".png")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("stray file {name}"));
        let r = http
            .get(format!("{}/api/dropbox/pictures/{id}", again.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "blob {name} names no live picture");
    }
    again.stop("TERM");

    // migrate-storage copies everything, and a re-run finds it all there.
    let copy = dir.path().join("copy");
    let to = format!("file://{}", copy.display());
    let migrate = || {
        pixdrop(dir.path())
            .args(["migrate-storage", "--to", &to])
            .output()
            .unwrap()
    };
    let out = migrate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = files(&dir.path().join("blobs")).len();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("copied {n} blobs")));
    assert_eq!(files(&copy).len(), n);
    let out = migrate();
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with(&format!("copied 0 blobs (0 bytes), {n} already there")));

    // fsck agrees; a blob removed by hand is a problem until --repair.
    let fsck = |args: &[&str]| pixdrop(dir.path()).arg("fsck").args(args).output().unwrap();
    let out = fsck(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("0 problems\n"));
    std::fs::remove_file(&files(&dir.path().join("blobs"))[0]).unwrap();
    let out = fsck(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("blob missing"));
    assert!(fsck(&["--repair"]).status.success());
    assert!(fsck(&[]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_upload_in_flight_finish_and_its_picture_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let (http, csrf) = admin_login(&server.base).await;
    let image = crate::images::png(200, 200);
    let boundary = "InFlightBoundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"Profile\"; filename=\"a.png\"\r\n\r\n"
    );
    let (first, rest) = image.split_at(image.len() / 2);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let request = http
        .post(format!("{}/api/dropbox/pictures", server.base))
        .header("X-Csrf-Token_default", &csrf)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let response = tokio::spawn(request);
    tx.send(Ok([head.as_bytes(), first].concat()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(Ok(
        [rest, format!("\r\n--{boundary}--\r\n").as_bytes()].concat()
    ))
    .await
    .unwrap();
    drop(tx);
    let r = response.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let id: i64 = r.text().await.unwrap().parse().unwrap();
    assert!(server.wait(Duration::from_secs(20)).success());

    let mut again = Server::start(dir.path());
    let (http, _) = admin_login(&again.base).await;
    let r = http
        .get(format!("{}/api/dropbox/pictures/{id}", again.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    again.stop("TERM");
}

#[test]
fn config_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = pixdrop(dir.path())
        .args(["config", "--listen", "127.0.0.1:9999"])
        .env(
            "PIXDROP_DATABASE_URL",
            "postgres://pixdrop:hunter2@db.internal/pixdrop",
        )
        .env("PIXDROP_S3__SECRET_ACCESS_KEY", "topsecretkey")
        .env("PIXDROP_TENANT_DEFAULTS__SESSION_TTL", "2h")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:9999\""), "{text}");
    assert!(text.contains("session_ttl = \"2h\""), "{text}");
    assert!(
        text.contains("postgres://pixdrop:<redacted>@db.internal/pixdrop"),
        "{text}"
    );
    assert!(!text.contains("hunter2") && !text.contains("topsecretkey"));
    // Printing the configuration opens no store.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn logs_carry_request_fields_and_never_a_password_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(
        dir.path(),
        &[("PIXDROP_LOG_FORMAT", "json"), ("PIXDROP_LOG", "debug")],
    );
    let http = client();
    let r = http
        .post(format!("{}/api/login", server.base))
        .json(&json!({"email": "admin@localhost", "password": "Wrong-Password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/api/login", server.base))
        .json(&json!({"email": "admin@localhost", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = |name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|c| c.to_str().ok())
            .find_map(|c| {
                c.strip_prefix(&format!("{name}="))
                    .map(|v| v.split(';').next().unwrap().to_string())
            })
            .unwrap()
    };
    let (token, csrf) = (
        cookie("AtmoAuthToken_default"),
        cookie("Csrf-Token_default"),
    );
    let r = upload_request(&http, &server.base, &csrf, crate::images::png(10, 10))
        .header("x-request-id", "trace-this-upload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.text().await.unwrap();
    server.stop("TERM");

    let logs = server.stderr.lock().unwrap().join("\n");
    let upload_line = logs
        .lines()
        .find(|l| l.contains("trace-this-upload") && l.contains(r#""status":200"#))
        .unwrap_or_else(|| panic!("no access line for the upload in\n{logs}"));
    for field in [
        r#""route":"/api/dropbox/pictures""#,
        r#""tenant":"default""#,
        r#""user":""#,
        "latency_ms",
        r#""method":"POST""#,
    ] {
        assert!(
            upload_line.contains(field),
            "{field} missing: {upload_line}"
        );
    }
    assert!(logs.contains(&format!(r#""picture":{id}"#)));
    for secret in [
        PASSWORD,
        "Wrong-Password-123",
        token.as_str(),
        csrf.as_str(),
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}
