//! Scale-out: several `pixdrop serve` nodes sharing one PostgreSQL database and one S3
//! bucket, and outages of either. Ignored by a plain `cargo test`; `scripts/test.sh` starts
//! the servers and runs them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::backend::{require_scale_out, s3_config};
use crate::helpers::spawn_app_with;
use crate::images;
use crate::process::{admin_login, upload_request, Server, BIN};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL and S3: run by scripts/test.sh"]
async fn two_nodes_share_sessions_ids_pictures_and_sweeps() {
    let so = require_scale_out();
    let db = so.new_database().await;
    let storage = so.new_storage_url();
    let mut env = so.env(&db, &storage);
    for (k, v) in [
        ("PIXDROP_SWEEP_INTERVAL", "1s"),
        ("PIXDROP_TENANT_DEFAULTS__UPLOADS_PER_MINUTE", "100000"),
        ("PIXDROP_TENANT_DEFAULTS__MAX_LIVE_PICTURES", "100000"),
    ] {
        env.push((k.into(), v.into()));
    }
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Server::start_with(dir_a.path(), &env_refs(&env));
    let mut b = Server::start_with(dir_b.path(), &env_refs(&env));

    // A session made on A works on B (cookies are per host, not per port).
    let (http, csrf) = admin_login(&a.base).await;
    let me: Value = http
        .post(format!("{}/api/login/renewToken", b.base))
        .header("X-Csrf-Token_default", &csrf)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let me = me["userFDN"].as_str().unwrap().to_string();

    // Upload on A, crop on B, attach on A, read the avatar on B.
    let r = upload_request(&http, &a.base, &csrf, images::png(300, 200))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pid: i64 = r.text().await.unwrap().parse().unwrap();
    let r = http
        .put(format!("{}/api/dropbox/pictures/{pid}", b.base))
        .header("X-Csrf-Token_default", &csrf)
        .form(&[("x", "10"), ("y", "20"), ("w", "120"), ("h", "120")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .put(format!("{}/api/users/{me}", a.base))
        .header("X-Csrf-Token_default", &csrf)
        .json(&json!({"PictureID": pid}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/api/users/{me}/avatar", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let png = r.bytes().await.unwrap();
    assert_eq!(images::decode_png(&png).width(), 120);

    // 200 concurrent uploads over both nodes: 200 distinct ids.
    let small = images::png(16, 16);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let req = upload_request(&http, &base, &csrf, small.clone());
            tokio::spawn(async move {
                let r = req.send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.text().await.unwrap().parse::<i64>().unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    assert!(ids[0] > pid);

    // Two sweeps at once (beside both servers' own sweepers, every second) leave a store
    // that fsck finds clean.
    let gc = || {
        Command::new(BIN)
            .arg("gc")
            .envs(env_refs(&env))
            .env("PIXDROP_ORPHAN_GRACE", "0s")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (g1, g2) = (gc(), gc());
    for g in [g1, g2] {
        let out = g.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(BIN)
        .arg("fsck")
        .envs(env_refs(&env))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("0 problems\n"));

    a.signal("TERM");
    b.signal("TERM");
    assert!(a.wait(Duration::from_secs(20)).success());
    assert!(b.wait(Duration::from_secs(20)).success());
}

/// A PostgreSQL server of the test's own, so that the test can stop and restart it.
struct OwnPostgres {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn pg_bin(tool: &str) -> String {
    let dir = std::env::var("PXTEST_PG_BIN").expect("PXTEST_PG_BIN (set by scripts/test.sh)");
    format!("{dir}/{tool}")
}

fn as_postgres(tool: &str) -> Command {
    // initdb and postgres refuse to run as root.
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &pg_bin(tool)]);
        c
    } else {
        Command::new(pg_bin(tool))
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let dir = tempfile::tempdir().unwrap();
        let _ = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status();
        let out = as_postgres("initdb")
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "--auth=trust"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = OwnPostgres {
            dir,
            port: free_port(),
            child: None,
        };
        pg.run();
        pg
    }

    fn run(&mut self) {
        let child = as_postgres("postgres")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn postmaster_pid(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).ok()?;
        text.lines().next().map(str::to_string)
    }

    /// Stops the server (fast shutdown), by the postmaster's pid.
    fn stop(&mut self) {
        if let Some(pid) = self.postmaster_pid() {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let start = Instant::now();
        while self.dir.path().join("data/postmaster.pid").exists() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not stop"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An S3 server (moto) of the test's own.
struct OwnS3 {
    port: u16,
    child: Option<Child>,
}

impl OwnS3 {
    fn start() -> OwnS3 {
        let mut s3 = OwnS3 {
            port: free_port(),
            child: None,
        };
        s3.run();
        s3
    }

    fn run(&mut self) {
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let created = Command::new("curl")
                .args(["-fs", "-X", "PUT", &format!("{}/bucket", self.endpoint())])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if created {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_ready(c: &mut crate::helpers::Client<'_>) {
    let start = Instant::now();
    while c.get("/readyz").await.status != StatusCode::OK {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "pixdrop did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and S3: run by scripts/test.sh"]
async fn outages_of_postgres_and_s3_are_503_and_pixdrop_recovers_without_a_restart() {
    require_scale_out();
    let mut pg = OwnPostgres::start();
    let mut s3 = OwnS3::start();
    let (db, endpoint) = (pg.url(), s3.endpoint());
    let app = spawn_app_with(move |c| {
        c.database_url = Some(db);
        c.storage_url = Some("s3://bucket/outage".into());
        c.s3 = s3_config(&endpoint);
    })
    .await;
    let mut c = app.admin().await;
    let pid = c.upload_ok(&images::png(20, 20)).await;
    let picture = format!("/api/dropbox/pictures/{pid}");

    pg.stop();
    let r = c.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.header("retry-after").is_some());
    for r in [c.get(&picture).await, c.upload(&images::png(5, 5)).await] {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert!(r.header("retry-after").is_some());
        assert!(!r.text().contains("127.0.0.1") && !r.text().to_lowercase().contains("sql"));
    }
    let mut anon = app.client("portal.test");
    assert_eq!(
        anon.login("admin@localhost", "x").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    pg.run();
    wait_ready(&mut c).await;
    assert_eq!(c.get(&picture).await.status, StatusCode::OK);

    s3.stop();
    assert_eq!(
        c.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    for r in [c.get(&picture).await, c.upload(&images::png(5, 5)).await] {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert!(!r.text().contains("127.0.0.1"));
    }
    // moto keeps its objects in memory: a restart comes back empty, with a new bucket.
    s3.run();
    wait_ready(&mut c).await;
    c.upload_ok(&images::png(5, 5)).await;
}
