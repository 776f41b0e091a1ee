//! The `secret-sidecar` binary as an operator runs it: token from the environment, `--listen`,
//! the token check over real HTTP, and a clean exit on SIGTERM.

// A test crate: its helpers may fail loudly (clippy.toml allows this only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sidecar process, killed (by PID) if the test ends early.
struct Sidecar(Child);

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str, token: Option<&str>) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_checks_the_token_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("sidecar-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        "token_env = \"TEST_SIDECAR_TOKEN\"\n\n[[providers]]\nid = \"p\"\nkind = \"aws\"\n\
         region = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:1\"\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
    )
    .unwrap();

    // without the token variable it refuses to start, naming the variable
    let out = Command::new(env!("CARGO_BIN_EXE_secret-sidecar"))
        .arg("--config")
        .arg(&config)
        .env_remove("TEST_SIDECAR_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("token_env: environment variable TEST_SIDECAR_TOKEN is not set"),
        "{stderr}"
    );

    let port = test_support::free_port().unwrap();
    let mut sidecar = Sidecar(
        Command::new(env!("CARGO_BIN_EXE_secret-sidecar"))
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("TEST_SIDECAR_TOKEN", "tok")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            sidecar.0.try_wait().unwrap().is_none(),
            "sidecar exited early"
        );
        assert!(
            Instant::now() < deadline,
            "sidecar did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let ok = http_get(port, "/healthz", Some("tok"));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nok"), "{ok}");
    assert!(http_get(port, "/healthz", None).starts_with("HTTP/1.1 401"));
    assert!(http_get(port, "/healthz", Some("nope")).starts_with("HTTP/1.1 403"));

    let pid = sidecar.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = sidecar.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "sidecar did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let mut logs = String::new();
    sidecar
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("secret-sidecar listening"), "{logs}");
    assert!(
        !logs.contains("tok\""),
        "the token never appears in logs: {logs}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
