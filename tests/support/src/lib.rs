//! Test fixtures shared by the sidecar's integration tests (`secret-sidecar/tests`) and the
//! end-to-end tests (`tests/e2e`): child processes killed (by PID) and reaped when their guard
//! drops, free loopback ports, temp dirs, moto's server, `redis-server` and a three-node Redis
//! Cluster, `redis-cli`, an OpenBao dev server.
//!
//! Nothing is skipped: a missing tool fails with the script to run. Every wait is bounded.

mod openbao;
mod process;
mod redis;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

pub use openbao::{bao_binary, Answer as BaoAnswer, OpenBao};
pub use process::Process;
pub use redis::{keys, redis_cli, RedisCluster, RedisServer};

/// How long moto, a Redis server, the cluster or OpenBao may take to come up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether something accepts connections on `127.0.0.1:<port>`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// `name` on `PATH`, or an error telling how to install it.
pub fn on_path(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{name} not found on PATH: run scripts/deps.sh"))
}

/// The last `n` lines of a log, for error messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A directory under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Result<TempDir> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
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

/// moto's server mode (`moto_server`) on a free loopback port, standing in for AWS Secrets
/// Manager; killed (by PID) when dropped.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    process: Process,
}

impl Moto {
    /// Starts `bin` (its output to `log`, or nowhere) and waits until it accepts connections.
    pub fn start(bin: &Path, log: Option<&Path>) -> Result<Moto> {
        let port = free_port()?;
        let mut command = Command::new(bin);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let mut process = Process::spawn("moto", command, log.map(Path::to_path_buf))?;
        process.wait_for_port(port, READY_TIMEOUT)?;
        Ok(Moto { port, process })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Fails with the log tail when moto has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.process.ensure_running()
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Kills it now (SIGKILL, by PID) and reaps it.
    pub fn stop(&mut self) {
        self.process.kill();
    }
}
