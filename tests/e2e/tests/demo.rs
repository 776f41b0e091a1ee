//! `scripts/demo.sh` is the tutorial, and what it prints works: the test runs the demo (on free
//! ports, with the test build's sidecar), runs every command it prints and checks its output,
//! including the rotation step, checks that README.md shows the same commands, and that stopping
//! the demo stops every process it started.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{free_port, test_dir, workspace_root, Paths};
use serde_json::Value;
use test_support::redis_cli;

/// How long the demo may take to print its commands (moto, Redis, sidecar, Envoy start-up).
const DEMO_READY: Duration = Duration::from_secs(120);
/// How long after the rotation the old key must be refused and the new one accepted: the demo's
/// refresh_interval_s (10) + the sidecar's ttl_seconds (10), with room for a slow machine.
const ROTATION_BOUND: Duration = Duration::from_secs(60);
/// One printed command (a few curl calls, a Python helper).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The ports the demo uses by hand, as README.md shows them.
const DEFAULT_PORTS: [(&str, u16); 5] = [
    ("moto", 5000),
    ("sidecar", 7070),
    ("upstream", 8081),
    ("envoy", 9080),
    ("admin", 9901),
];

/// `scripts/demo.sh` running in the background; stopped with SIGTERM (by PID) when dropped, and
/// what it started is killed by PID if it did not stop it.
struct Demo {
    child: Option<Child>,
    run_dir: PathBuf,
    output: PathBuf,
}

impl Demo {
    fn start(paths: &Paths, dir: &Path, commands: &Path) -> Result<Demo> {
        let run_dir = dir.join("run");
        let output = dir.join("demo.out");
        let out = std::fs::File::create(&output)?;
        let mut command = Command::new("bash");
        command
            .arg(paths.root.join("scripts/demo.sh"))
            .current_dir(&paths.root)
            .env("DEMO_SKIP_SETUP", "1")
            .env("DEMO_SIDECAR_BIN", &paths.sidecar)
            .env("DEMO_WASM", &paths.wasm)
            .env("DEMO_RUN_DIR", &run_dir)
            .env("DEMO_COMMANDS_FILE", commands)
            // A safety net: the demo ends by itself even if this test is killed.
            .env("DEMO_SECONDS", "600");
        for name in ["MOTO", "SIDECAR", "UPSTREAM", "ENVOY", "ADMIN", "REDIS"] {
            command.env(format!("DEMO_{name}_PORT"), free_port()?.to_string());
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting scripts/demo.sh")?;
        Ok(Demo {
            child: Some(child),
            run_dir,
            output,
        })
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Fails with the demo's output when it has exited.
    fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            bail!("scripts/demo.sh exited ({status}):\n{}", self.output());
        }
        Ok(())
    }

    /// The PIDs in the demo's pid files (`<run dir>/<name>.pid`), by name.
    fn started_pids(&self) -> Result<Vec<(String, u32)>> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir(&self.run_dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "pid") {
                let name = path.file_stem().unwrap_or_default().to_string_lossy();
                let pid = std::fs::read_to_string(&path)?.trim().parse()?;
                pids.push((name.into_owned(), pid));
            }
        }
        pids.sort();
        Ok(pids)
    }

    /// SIGTERM to the script (as Ctrl-C would stop it), then waits up to `limit` for it to exit.
    fn stop(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        let child = self
            .child
            .as_mut()
            .context("the demo was stopped already")?;
        signal(child.id(), "TERM");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("scripts/demo.sh did not stop within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let pids = self.started_pids().unwrap_or_default();
        if self.child.is_some() && self.stop(Duration::from_secs(20)).is_err() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Whatever the script did not stop (it was killed, or failed to).
        for (_, pid) in pids {
            if alive(pid) {
                signal(pid, "KILL");
            }
        }
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether a process with this PID exists (and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            // "pid (comm) STATE ...": the state follows the last ')'.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// One command the demo printed, with the texts its output must contain.
#[derive(Debug)]
struct Example {
    phase: String,
    comment: String,
    command: String,
    expect: Vec<String>,
}

/// The demo's commands file: a first line `{"ports": {...}}`, then one example per line.
fn read_commands(path: &Path) -> Result<(Value, Vec<Example>)> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().context("empty commands file")?)?;
    let ports = header["ports"].clone();
    let examples = lines
        .map(|line| {
            let v: Value = serde_json::from_str(line)?;
            let text = |k: &str| v[k].as_str().map(str::to_owned).context(k.to_owned());
            Ok(Example {
                phase: text("phase")?,
                comment: text("comment")?,
                command: text("command")?,
                expect: v["expect"]
                    .as_array()
                    .context("expect")?
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((ports, examples))
}

/// Runs `command` with bash in the repository root (as a reader pastes it), bounded by
/// [`COMMAND_TIMEOUT`]; returns stdout and stderr.
async fn run(root: &Path, command: &str) -> Result<String> {
    let child = tokio::process::Command::new("bash")
        .args(["-c", command])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("{command:?} did not finish within {COMMAND_TIMEOUT:?}"))??;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The texts of `expect` missing from `output`.
fn missing<'a>(example: &'a Example, output: &str) -> Vec<&'a str> {
    example
        .expect
        .iter()
        .map(String::as_str)
        .filter(|e| !output.contains(e))
        .collect()
}

/// `command` with this run's ports replaced by the demo's defaults, as README.md shows it.
fn with_default_ports(command: &str, ports: &Value) -> Result<String> {
    let mut command = command.to_owned();
    for (name, default) in DEFAULT_PORTS {
        let port = ports[name].as_u64().context(name)?;
        command = command.replace(
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{default}"),
        );
    }
    Ok(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_commands_that_work_and_the_readme_shows_them() -> Result<()> {
    let paths = Paths::locate()?;
    // Its own directory per run: the demo's pid files must not be another test run's.
    let dir = test_dir(&format!("demo-{}", std::process::id()))?;
    let commands_file = dir.join("commands.jsonl");
    let mut demo = Demo::start(&paths, &dir, &commands_file)?;

    let deadline = Instant::now() + DEMO_READY;
    while !commands_file.is_file() {
        demo.ensure_running()?;
        ensure!(
            Instant::now() < deadline,
            "the demo printed no commands within {DEMO_READY:?}:\n{}",
            demo.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ports, examples) = read_commands(&commands_file)?;
    let printed = demo.output();

    // Every plugin of the tutorial, and the rotation, has a command.
    for needle in [
        "/ip -H 'apikey: alice-key'",
        "/basic -u alice:alice-password",
        "scripts/sign.py jwt",
        "scripts/sign.py hmac",
        "/limit",
        "put_secret.py",
        "'apikey: alice-key-2'",
    ] {
        ensure!(
            examples.iter().any(|e| e.command.contains(needle)),
            "no printed command contains {needle:?}"
        );
    }
    ensure!(
        examples.iter().any(|e| e.phase == "rotated"),
        "no rotation step"
    );

    // Each command, in order; after the rotation the demo's refresh must take effect in time.
    let mut rotated_at = None;
    for example in &examples {
        ensure!(
            printed.contains(&example.command) && printed.contains(&example.comment),
            "the demo did not print {:?}",
            example.command
        );
        ensure!(!example.expect.is_empty(), "{example:?} expects nothing");
        match example.phase.as_str() {
            "now" => {
                let output = run(&paths.root, &example.command).await?;
                let absent = missing(example, &output);
                ensure!(
                    absent.is_empty(),
                    "{:?} printed no {absent:?}:\n{output}",
                    example.command
                );
                if example.command.contains("put_secret.py") {
                    rotated_at = Some(Instant::now());
                }
            }
            "rotated" => {
                let since = rotated_at.context("a rotated step before the rotation")?;
                loop {
                    let output = run(&paths.root, &example.command).await?;
                    let absent = missing(example, &output);
                    if absent.is_empty() {
                        break;
                    }
                    ensure!(
                        since.elapsed() < ROTATION_BOUND,
                        "{ROTATION_BOUND:?} after the rotation, {:?} still printed no \
                         {absent:?}:\n{output}",
                        example.command
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            other => bail!("unknown phase {other:?}"),
        }
    }

    // limit-count counted in the tutorial's Redis database 1, as its ACL user.
    let redis_port = u16::try_from(ports["redis"].as_u64().context("redis port")?)?;
    let auth = ["--user", "api7", "--pass", "redis-api7"];
    let counter = redis_cli(
        redis_port,
        &[
            &auth[..],
            &["-n", "1", "GET", "limit-count:route:limit:127.0.0.1"],
        ]
        .concat(),
    )?;
    ensure!(counter == "-1", "the counter in database 1 is {counter:?}");
    let db0 = redis_cli(redis_port, &[&auth[..], &["-n", "0", "DBSIZE"]].concat())?;
    ensure!(db0 == "0", "database 0 holds {db0} keys");

    // README.md shows the very same commands (with the demo's default ports), and no other
    // request to the demo's Envoy.
    let readme = std::fs::read_to_string(workspace_root().join("README.md"))?;
    let mut shown = Vec::new();
    for example in &examples {
        let command = with_default_ports(&example.command, &ports)?;
        ensure!(
            readme.lines().any(|l| l.trim() == command),
            "README.md does not show the demo's command\n  {command}"
        );
        shown.push(command);
    }
    for line in readme.lines().map(str::trim) {
        if line.contains("http://127.0.0.1:9080") && !line.starts_with('#') {
            ensure!(
                shown.iter().any(|c| c == line),
                "README.md shows a command the demo does not print (or test):\n  {line}"
            );
        }
    }

    // Stopping the demo (SIGTERM, as Ctrl-C) stops everything it started.
    let started = demo.started_pids()?;
    let names: Vec<&str> = started.iter().map(|(n, _)| n.as_str()).collect();
    ensure!(
        names == ["envoy", "moto", "redis", "sidecar", "upstream"],
        "the demo recorded {names:?}"
    );
    let status = demo.stop(Duration::from_secs(30))?;
    ensure!(status.code() == Some(143), "the demo exited with {status}");
    let left: Vec<_> = started.iter().filter(|(_, pid)| alive(*pid)).collect();
    ensure!(
        left.is_empty(),
        "still running after the demo stopped: {left:?}"
    );
    drop(demo);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
