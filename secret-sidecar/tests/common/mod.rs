//! Fixtures shared by the integration tests: moto's server, Redis servers, temp dirs, ports.
//! Every process is started on a free loopback port and killed (by PID) when its guard drops.
//! Missing tools fail the test with what to run; nothing is skipped.

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::Client;

pub fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`, failing if `child` exits first.
fn wait_for_port(child: &mut Child, port: u16, what: &str, limit: Duration) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + limit;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early ({status})");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sidecar-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `name` on `PATH`, or a failure telling how to install it.
pub fn find_on_path(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found on PATH: run scripts/deps.sh"))
}

// --- moto -----------------------------------------------------------------------------------

/// A moto server on a free loopback port, killed (by PID) when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = std::env::var_os("MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server")
            });
        assert!(
            bin.exists(),
            "moto_server not found at {}: run scripts/deps.sh (or set MOTO_SERVER)",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        wait_for_port(
            &mut moto.child,
            port,
            "moto_server",
            Duration::from_secs(30),
        );
        moto
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

pub async fn sdk_client(endpoint: &str) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    Client::new(&config)
}

pub async fn create_secret(client: &Client, name: &str, value: &str) {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
}

pub async fn put_secret_value(client: &Client, name: &str, value: &str) {
    client
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutSecretValue {name}: {e:?}"));
}

/// `DeleteSecret`: with a recovery window of `recovery_days` (the secret is "marked for
/// deletion"), or at once without one.
pub async fn delete_secret(client: &Client, name: &str, recovery_days: Option<i64>) {
    let request = client.delete_secret().secret_id(name);
    let request = match recovery_days {
        Some(days) => request.recovery_window_in_days(days),
        None => request.force_delete_without_recovery(true),
    };
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteSecret {name}: {e:?}"));
}

// --- redis ----------------------------------------------------------------------------------

/// A `redis-server` on a free loopback port, no persistence, its files in its own temp dir;
/// killed (by PID) when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    dir: TempDir,
}

impl Redis {
    /// Starts `redis-server` with `extra` arguments (`--requirepass`, `--user`, ...).
    pub fn start(extra: &[&str]) -> Redis {
        Redis::start_with(|_| extra.iter().map(|s| s.to_string()).collect())
    }

    /// Starts `redis-server` with the arguments `extra(port)` gives (which may override
    /// `--port`, e.g. for a TLS-only server on that port).
    pub fn start_with(extra: impl FnOnce(u16) -> Vec<String>) -> Redis {
        let port = free_port();
        let mut redis = Redis {
            child: None,
            port,
            args: extra(port),
            dir: TempDir::new("redis"),
        };
        redis.restart();
        redis
    }

    /// Starts it (again) on the same port, with the same arguments and an empty dataset.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let mut child = Command::new(find_on_path("redis-server"))
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        wait_for_port(
            &mut child,
            self.port,
            "redis-server",
            Duration::from_secs(10),
        );
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `redis-cli -p <port> <args>` (auth arguments go in `args`), failing on a non-zero exit.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out: Output = Command::new(find_on_path("redis-cli"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--no-auth-warning",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli: {e}"));
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
