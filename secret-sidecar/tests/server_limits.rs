//! The HTTP server's defences, over real sockets: a client that never finishes its headers is
//! disconnected after `header_read_timeout_ms`; idle kept-alive connections are closed after
//! `idle_timeout_ms`; connections beyond `max_connections` wait but are served once the slow
//! ones are cut off (bounded in time); and the Unix socket listener (mode, stale socket file,
//! a real request over it).

// A test crate: its helpers may fail loudly (clippy.toml allows this only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secret_ref::SecretValue;
use secret_sidecar::clock::ManualClock;
use secret_sidecar::config::{Config, Listen};
use secret_sidecar::{build_resolver, run, AppState, Listener};
use tokio::sync::oneshot;

use common::TempDir;

const TOKEN: &str = "server-token";

fn config(listen: &str, server: &str) -> Config {
    let text = format!(
        "listen = \"{listen}\"\n[server]\n{server}\n\n[[providers]]\nid = \"p\"\nkind = \"aws\"\n\
         region = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:1\"\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\n"
    );
    Config::parse(&text, &|_| None).unwrap()
}

/// The sidecar serving `config` in this process; stops when dropped.
struct Server {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    listener_desc: String,
}

impl Server {
    async fn start(config: &Config) -> Server {
        let listener = Listener::bind(&config.listen, config.server.socket_mode)
            .await
            .unwrap();
        let listener_desc = listener.describe();
        let resolver = build_resolver(config, Arc::new(ManualClock::new()))
            .await
            .unwrap();
        let state = AppState::new(SecretValue::new(TOKEN), resolver, config.limit.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, state, config.server, async move {
            let _ = stopped.await;
        }));
        Server {
            stop: Some(stop),
            task: Some(task),
            listener_desc,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener_desc.parse().unwrap()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("the server stops")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

const HEALTHZ: &str =
    "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer server-token\r\n\r\n";

/// Reads until the connection closes (or `limit` passes: then fails); returns what was read.
fn read_until_closed<S: Read>(s: &mut S, limit: Duration, started: Instant) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "connection still open after {:?} (limit {limit:?})",
                    started.elapsed()
                )
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One `GET /healthz` on a fresh connection; the whole answer.
fn healthz(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer server-token\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    read_until_closed(&mut s, Duration::from_secs(10), Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_do_not_starve_the_service() {
    let header_timeout = Duration::from_millis(400);
    let config = config(
        "127.0.0.1:0",
        "header_read_timeout_ms = 400\nidle_timeout_ms = 60000\nmax_connections = 2",
    );
    let server = Server::start(&config).await;
    let addr = server.addr();

    tokio::task::spawn_blocking(move || {
        // a client that starts a request and never finishes its headers
        let started = Instant::now();
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let answer = read_until_closed(&mut slow, Duration::from_secs(5), started);
        let took = started.elapsed();
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer:?}"
        );
        assert!(
            took >= header_timeout - Duration::from_millis(50) && took < Duration::from_secs(3),
            "disconnected after {took:?}"
        );

        // a client that connects and sends nothing at all
        let started = Instant::now();
        let mut silent = TcpStream::connect(addr).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        read_until_closed(&mut silent, Duration::from_secs(5), started);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );

        // both slots taken by slow clients: a good request still gets through, once the
        // header timeout has cut them off
        let hogs: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
                s
            })
            .collect();
        let started = Instant::now();
        let answer = healthz(addr);
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
        assert!(took < Duration::from_secs(3), "served after {took:?}");
        drop(hogs);

        // a good client on a kept-alive connection can send several requests
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..3 {
            s.write_all(HEALTHZ.as_bytes()).unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        }
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_refused_tokens_close_at_once() {
    let config = config(
        "127.0.0.1:0",
        "header_read_timeout_ms = 5000\nidle_timeout_ms = 500\nmax_connections = 8",
    );
    let server = Server::start(&config).await;
    let addr = server.addr();
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(HEALTHZ.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        // idle: closed after idle_timeout (not after the longer header timeout)
        let started = Instant::now();
        read_until_closed(&mut s, Duration::from_secs(5), started);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "closed after {took:?}"
        );

        // without the token: 401 and the connection is closed right away
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let started = Instant::now();
        let answer = read_until_closed(&mut s, Duration::from_secs(5), started);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(started.elapsed() < Duration::from_millis(400));
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_listener() {
    let dir = TempDir::new("unix").unwrap();
    let path = dir.path().join("sidecar.sock");
    // a stale socket file from an earlier run is replaced
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());

    let listen = format!("unix:{}", path.display());
    let config = config(&listen, "");
    assert_eq!(config.listen, Listen::Unix(path.clone()));
    let server = Server::start(&config).await;
    assert_eq!(server.listener_desc, listen);
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // no temporary file left beside it
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let request_path = path.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = UnixStream::connect(&request_path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let body = r#"{"refs": ["$env://TOKEN"]}"#;
        let request = format!(
            "POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer server-token\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        read_until_closed(&mut s, Duration::from_secs(5), Instant::now())
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"code\":\"invalid_reference\""),
        "{answer}"
    );

    // the socket file is removed on shutdown
    server.stop().await;
    assert!(!path.exists());

    // a configurable mode
    let config_0660 = self::config(&listen, "socket_mode = \"0660\"");
    let server = Server::start(&config_0660).await;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o660
    );
    server.stop().await;

    // something else at the path is never removed
    std::fs::write(&path, "not a socket").unwrap();
    let err = Listener::bind(&config.listen, 0o600).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot listen on unix:{}: the path exists and is not a socket (refusing to replace it)",
            path.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}
