//! The `secret-sidecar` binary as an operator runs it: token from the environment, `--listen`,
//! the token check over real HTTP, a clean exit on SIGTERM (also with an answer in flight),
//! SIGHUP reloading the config without dropping the cache, and JSON logs.

// A test crate: its helpers may fail loudly (clippy.toml allows this only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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

const TUTORIAL_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";

/// Starts the binary serving `config` on a free port with token `tok`, and waits until it
/// listens.
fn start_sidecar(config: &std::path::Path, extra: &[&str]) -> (Sidecar, u16) {
    let port = test_support::free_port().unwrap();
    let mut sidecar = Sidecar(
        Command::new(env!("CARGO_BIN_EXE_secret-sidecar"))
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
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
    (sidecar, port)
}

fn signal(sidecar: &Sidecar, name: &str) {
    let pid = sidecar.0.id().to_string();
    assert!(Command::new("kill")
        .args([format!("-{name}").as_str(), &pid])
        .status()
        .unwrap()
        .success());
}

/// Waits (at most 15 s) for the process to exit and returns its stderr.
fn wait_exit(mut sidecar: Sidecar) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = sidecar.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "sidecar did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut logs = String::new();
    sidecar
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    (status, logs)
}

/// `POST /v1/resolve` with token `tok`; the status line and the JSON body.
fn resolve(port: u16, refs: &[&str]) -> (String, serde_json::Value) {
    let body = serde_json::json!({ "refs": refs }).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_string();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// A TCP proxy to `127.0.0.1:upstream` that holds each new connection for `delay` before
/// passing anything on: a slow provider. Its threads end with the test process.
fn delaying_proxy(upstream: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

fn aws_provider(id: &str, endpoint: &str) -> String {
    format!(
        "[[providers]]\nid = \"{id}\"\nkind = \"aws\"\nregion = \"us-east-1\"\n\
         endpoint_url = \"{endpoint}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n"
    )
}

/// SIGTERM while a slow answer is in flight: no new connection is accepted, the answer
/// completes, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_answer_in_flight_finish() {
    let moto = common::start_moto();
    let client = common::sdk_client(&moto.endpoint()).await;
    common::create_secret(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key"}"#,
    )
    .await;
    let slow = delaying_proxy(moto.port(), Duration::from_secs(2));
    let dir = common::TempDir::new("sidecar-sigterm").unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "token_env = \"TEST_SIDECAR_TOKEN\"\n{}",
            aws_provider("my-secrets-manager", &format!("http://127.0.0.1:{slow}"))
        ),
    )
    .unwrap();
    let (sidecar, port) = start_sidecar(&config, &[]);
    let in_flight = std::thread::spawn(move || resolve(port, &[TUTORIAL_REF]));
    std::thread::sleep(Duration::from_millis(300));
    signal(&sidecar, "TERM");
    // new connections are refused while the answer is still being worked on
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!in_flight.is_finished(), "the slow answer was already done");
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        body,
        serde_json::json!({"results": [{"ref": TUTORIAL_REF, "value": "alice-key", "stale": false}]})
    );
    let (exit, logs) = wait_exit(sidecar);
    assert!(exit.success(), "{exit}: {logs}");
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(logs.contains("secret-sidecar stopped"), "{logs}");
}

/// SIGHUP: a new provider in the edited config resolves, a value cached before is still
/// served without a provider call, a broken config is logged and the running one kept; logs
/// are JSON lines (`--log-format json`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_and_keeps_the_cache() {
    let moto = common::start_moto();
    let client = common::sdk_client(&moto.endpoint()).await;
    common::create_secret(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key"}"#,
    )
    .await;
    common::create_secret(&client, "bob", r#"{"k":"bob-value"}"#).await;
    let dir = common::TempDir::new("sidecar-sighup").unwrap();
    let config = dir.path().join("sidecar.toml");
    let first = format!(
        "token_env = \"TEST_SIDECAR_TOKEN\"\n[cache]\nttl_seconds = 600\n{}",
        aws_provider("my-secrets-manager", &moto.endpoint())
    );
    std::fs::write(&config, &first).unwrap();
    let (sidecar, port) = start_sidecar(&config, &["--log-format", "json"]);
    let (_, v) = resolve(port, &[TUTORIAL_REF]);
    assert_eq!(v["results"][0]["value"], "alice-key");

    common::put_secret_value(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key-2"}"#,
    )
    .await;
    std::fs::write(
        &config,
        format!("{first}{}", aws_provider("second", &moto.endpoint())),
    )
    .unwrap();
    signal(&sidecar, "HUP");
    let reloads = |result: &str| {
        let text = http_get(port, "/metrics", None);
        let series = format!("secret_sidecar_config_reloads_total{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .map(|n| n.trim().parse::<u64>().unwrap())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads("ok") < 1 {
        assert!(Instant::now() < deadline, "no reload after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    // the new provider is probed: ready again without traffic to it
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = http_get(port, "/readyz", None);
        if ready.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(ready.contains("second"), "{ready}");
        assert!(
            Instant::now() < deadline,
            "not ready after the reload: {ready}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // the new provider resolves (the new value: it has no cached entry of its own)
    let second = "$secret://aws/second/alice-credentials/alice-key-auth";
    let (_, v) = resolve(port, &[second]);
    assert_eq!(v["results"][0]["value"], "alice-key-2", "{v}");
    // the old provider's cached value is still served, without a provider call
    let (_, v) = resolve(port, &[TUTORIAL_REF]);
    assert_eq!(v["results"][0]["value"], "alice-key", "{v}");
    let metrics = http_get(port, "/metrics", None);
    let get_ok = "secret_sidecar_provider_calls_total{provider=\"my-secrets-manager\",call=\"get\",outcome=\"ok\"} 1\n";
    assert!(metrics.contains(get_ok), "{metrics}");

    // a broken config: logged, the running one stays
    std::fs::write(&config, format!("{first}[[providers]]\nid = 1\n")).unwrap();
    signal(&sidecar, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads("error") < 1 {
        assert!(Instant::now() < deadline, "no failed reload after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, v) = resolve(port, &["$secret://aws/second/bob/k"]);
    assert_eq!(v["results"][0]["value"], "bob-value", "{v}");

    signal(&sidecar, "TERM");
    let (exit, logs) = wait_exit(sidecar);
    assert!(exit.success(), "{exit}: {logs}");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in {logs}"))
    };
    let reloaded = find("config reloaded (cache kept)");
    assert_eq!(reloaded["level"], "INFO");
    assert!(
        reloaded["providers"].as_str().unwrap().contains("second"),
        "{reloaded}"
    );
    let failed = find("config reload failed: the running config stays in force");
    assert_eq!(failed["level"], "ERROR");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("providers[1].id"),
        "{failed}"
    );
    assert!(
        !logs.contains("alice-key") && !logs.contains("bob-value"),
        "{logs}"
    );
}
