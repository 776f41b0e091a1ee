//! Redis for the end-to-end tests: `redis-server` processes on free loopback ports (single
//! servers and a three-node Redis Cluster), `redis-cli` to look at the counters they hold.
//!
//! Every server is killed (by PID) and reaped when its guard drops. A missing `redis-server` or
//! `redis-cli` fails the test with what to run; nothing is skipped. Every wait is bounded.

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use e2e::free_port;

/// How long a server or the cluster may take to come up.
const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// `name` on `PATH`, or an error telling how to install it.
fn on_path(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{name} not found on PATH: run scripts/deps.sh"))
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A `redis-server` on a free loopback port, without persistence, its files and log in its own
/// directory; killed (by PID) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` in `dir` (created) with `extra` arguments (`--user ...`,
    /// `--cluster-enabled yes`, ...) and waits until it accepts connections.
    pub fn start(dir: &Path, extra: &[&str]) -> Result<RedisServer> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut server = RedisServer {
            port: free_port()?,
            dir: dir.to_path_buf(),
            args: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.restart()?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port with the same arguments and an empty dataset.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let log = self.dir.join("redis.log");
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut child = Command::new(on_path("redis-server")?)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .context("starting redis-server")?;
        let deadline = Instant::now() + REDIS_READY_TIMEOUT;
        while !accepts(self.port) {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("redis-server exited early ({status}):\n{log}");
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "redis-server did not listen on {} within {REDIS_READY_TIMEOUT:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Kills the server now (SIGKILL, by PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `redis-cli -h 127.0.0.1 -p <port> <args>` (auth options go in `args`) and returns its
/// trimmed output; fails on a non-zero exit. Note that redis-cli exits 0 on most server errors
/// (`NOAUTH ...`), printing them: callers compare the output.
pub fn redis_cli(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new(on_path("redis-cli")?)
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
        .context("running redis-cli")?;
    if !out.status.success() {
        bail!("redis-cli -p {port} {args:?} failed: {out:?}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The keys matching `pattern` on the server at `port` (only that node's keys in a cluster).
pub fn keys(port: u16, auth: &[&str], pattern: &str) -> Result<Vec<String>> {
    let mut args = auth.to_vec();
    args.extend(["--raw", "KEYS", pattern]);
    let out = redis_cli(port, &args)?;
    let mut keys: Vec<String> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    keys.sort();
    Ok(keys)
}

/// Three `redis-server` nodes in cluster mode, no replicas, slots spread by
/// `redis-cli --cluster create`; up once every node reports `cluster_state:ok`.
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(dir: &Path) -> Result<RedisCluster> {
        let nodes = (0..3)
            .map(|i| {
                RedisServer::start(
                    &dir.join(format!("node{i}")),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let addresses: Vec<String> = nodes.iter().map(RedisServer::address).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let created = redis_cli(nodes[0].port(), &args)?;
        if !created.contains("All 16384 slots covered") {
            bail!("redis-cli --cluster create did not cover all slots:\n{created}");
        }
        let deadline = Instant::now() + REDIS_READY_TIMEOUT;
        for node in &nodes {
            loop {
                let info = redis_cli(node.port(), &["CLUSTER", "INFO"])?;
                if info.contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "node {} did not reach cluster_state:ok within {REDIS_READY_TIMEOUT:?}:\n{info}",
                        node.address()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(RedisCluster { nodes })
    }

    /// `host:port` of every node, for `redis_cluster_nodes`.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::address).collect()
    }
}
