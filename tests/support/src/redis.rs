//! `redis-server` processes on free loopback ports (single servers and a three-node Redis
//! Cluster), `redis-cli` to set them up and look at the counters they hold.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{free_port, on_path, Process, TempDir, READY_TIMEOUT};

/// A `redis-server` on a free loopback port, without persistence, its files and log in its own
/// directory; killed (by PID) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    process: Option<Process>,
    /// The directory when the server made its own (removed after the server is killed).
    _temp: Option<TempDir>,
}

impl RedisServer {
    /// Starts `redis-server` in `dir` (created) with `extra` arguments (`--user ...`,
    /// `--cluster-enabled yes`, ...) and waits until it accepts connections.
    pub fn start(dir: &Path, extra: &[&str]) -> Result<RedisServer> {
        RedisServer::start_with(Some(dir), |_| {
            extra.iter().map(|s| (*s).to_owned()).collect()
        })
    }

    /// [`RedisServer::start`] in a temp dir of its own.
    pub fn start_temp(extra: &[&str]) -> Result<RedisServer> {
        RedisServer::start_with(None, |_| extra.iter().map(|s| (*s).to_owned()).collect())
    }

    /// Starts `redis-server` in `dir` (`None`: a temp dir of its own) with the arguments
    /// `extra(port)` gives, which may override `--port` (e.g. for a TLS-only server on that port).
    pub fn start_with(
        dir: Option<&Path>,
        extra: impl FnOnce(u16) -> Vec<String>,
    ) -> Result<RedisServer> {
        let (dir, temp) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                (dir.to_path_buf(), None)
            }
            None => {
                let temp = TempDir::new("redis")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let port = free_port()?;
        let mut server = RedisServer {
            port,
            dir,
            args: extra(port),
            process: None,
            _temp: temp,
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

    /// Its working directory (data files, `redis.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts it (again) on the same port with the same arguments and an empty dataset.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let mut command = Command::new(on_path("redis-server")?);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args);
        let mut process =
            Process::spawn("redis-server", command, Some(self.dir.join("redis.log")))?;
        process.wait_for_port(self.port, READY_TIMEOUT)?;
        self.process = Some(process);
        Ok(())
    }

    /// Kills the server now (SIGKILL, by PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Before the temp dir goes.
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

/// Three `redis-server` nodes in cluster mode, no replicas, slots spread in order by
/// `redis-cli --cluster create`; up once every node reports `cluster_state:ok`.
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// The nodes in `dir/node0..2` (`None`: temp dirs of their own).
    pub fn start(dir: Option<&Path>) -> Result<RedisCluster> {
        let nodes = (0..3)
            .map(|i| {
                let node_dir = dir.map(|d| d.join(format!("node{i}")));
                RedisServer::start_with(node_dir.as_deref(), |_| {
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ]
                    .map(str::to_owned)
                    .to_vec()
                })
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
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in &nodes {
            loop {
                let info = redis_cli(node.port(), &["CLUSTER", "INFO"])?;
                if info.contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "node {} did not reach cluster_state:ok within {READY_TIMEOUT:?}:\n{info}",
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
