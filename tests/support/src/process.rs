//! A child process that is killed (by PID) and reaped when dropped.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::{port_open, tail};

#[derive(Debug)]
pub struct Process {
    name: &'static str,
    child: Option<Child>,
    /// Where its stdout and stderr go; `None`: nowhere.
    log: Option<PathBuf>,
}

impl Process {
    /// Spawns `command`, stdin closed, stdout and stderr to `log` (or nowhere).
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log: Option<PathBuf>,
    ) -> Result<Process> {
        command.stdin(Stdio::null());
        match &log {
            Some(log) => {
                let out =
                    File::create(log).with_context(|| format!("creating {}", log.display()))?;
                let err = out.try_clone()?;
                command.stdout(Stdio::from(out)).stderr(Stdio::from(err));
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Process {
            name,
            child: Some(child),
            log,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Its log so far (empty without one).
    pub fn logs(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| std::fs::read(log).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Fails with the log tail when the process has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.exited() {
            None => Ok(()),
            Some(status) => Err(anyhow!(
                "{} exited ({status}); log {}:\n{}",
                self.name,
                self.log
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |l| l.display().to_string()),
                tail(&self.logs(), 40)
            )),
        }
    }

    /// Waits until something accepts connections on `port`; fails if the process exits first or
    /// after `limit`.
    pub fn wait_for_port(&mut self, port: u16, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while !port_open(port) {
            self.ensure_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} did not listen on {port} within {limit:?}:\n{}",
                    self.name,
                    tail(&self.logs(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills the process now (SIGKILL, by PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
