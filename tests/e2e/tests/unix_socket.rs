//! Issue #7, item 10: the sidecar on a Unix socket, Envoy reaching it through a `pipe` address
//! (docs/SECURITY.md "Recommended: a Unix socket").
//!
//! The sidecar's `listen` / `[server]` TOML and Envoy's `secret_sidecar` cluster are read from
//! that section of docs/SECURITY.md and used as written (only the socket path is replaced by one
//! in this test's directory), so the documented snippets are the ones that run. The rest of the
//! stack is the usual one: moto with the tutorial's `alice-credentials`, the echo upstream, and
//! lib.rs's Envoy config with its sidecar cluster swapped for the documented one.
//!
//! lib.rs's `Sidecar` fixture waits for the sidecar on `127.0.0.1:<port>`, so the sidecar is
//! started here, under test-support's process guard (killed by PID on drop). Evidence on failure is in
//! `.run/e2e/unix_socket/` (`sidecar.log`, `envoy.log`, the generated configs).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{
    clusters_mut, get, render_sidecar_config, test_dir, wait_for, workspace_root,
    yaml_file_as_json, Envoy, EnvoyConfig, EnvoySpec, Moto, Paths, SidecarCache, Upstream,
    SIDECAR_CLUSTER,
};
use serde_json::{json, Value};
use test_support::Process;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALICE_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
/// The section of docs/SECURITY.md whose snippets this test runs.
const SECTION: &str = "## Recommended: a Unix socket";
/// The socket path the snippets use; replaced by one in the test's directory.
const DOC_SOCKET: &str = "/run/secret-sidecar/sidecar.sock";
/// The whole test (moto, sidecar and Envoy starts included) stays under this.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);
/// One exchange with the sidecar over its socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(3);
/// `sun_path` holds 108 bytes on Linux, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// The tutorial's secret.
fn alice_secret() -> Value {
    json!({
        "alice-key-auth": "alice-key",
        "alice-basic-auth": "alice-password",
        "alice-jwt-auth": "alice-secret",
        "alice-hmac-auth": "alice-secret-key"
    })
}

fn filter_config() -> Value {
    json!({
        "sidecar": e2e::filter_sidecar_section(),
        "refresh_interval_s": 30,
        "startup_wait_ms": 5000,
        "consumers": [{
            "username": "alice",
            "credentials": [{"id": "alice-key-auth", "type": "key-auth", "key": ALICE_REF}]
        }],
        "plugins": {"key-auth": {"header": "apikey", "query": "apikey", "hide_credentials": false}}
    })
}

// ------------------------------------------------------------------------------------------------
// The documented snippets

/// The `toml` and `yaml` code blocks of [`SECTION`] in docs/SECURITY.md.
fn documented_snippets() -> Result<(String, String)> {
    let path = workspace_root().join("docs/SECURITY.md");
    let doc = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let start = doc
        .find(&format!("\n{SECTION}\n"))
        .with_context(|| format!("no section {SECTION:?} in docs/SECURITY.md"))?;
    let section = &doc[start + SECTION.len() + 2..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let block = |lang: &str| -> Result<String> {
        let open = format!("```{lang}\n");
        ensure!(
            section.matches(&open).count() == 1,
            "expected one {lang} block in {SECTION:?}"
        );
        let body = &section[section.find(&open).unwrap_or(0) + open.len()..];
        let end = body.find("```").context("an unclosed code block")?;
        Ok(body[..end].to_owned())
    };
    Ok((block("toml")?, block("yaml")?))
}

/// Replaces `from` (which must occur exactly once, so that drift is noticed) with `to`.
fn replace_once(text: &str, from: &str, to: &str) -> Result<String> {
    match text.matches(from).count() {
        1 => Ok(text.replacen(from, to, 1)),
        n => bail!("expected {from:?} once in\n{text}\nfound it {n} times"),
    }
}

/// The sidecar config: the documented top-level keys and `[server]` table around lib.rs's
/// provider (moto), cache and `[limit]` tables.
fn sidecar_config(documented: &str, socket: &Path, moto: &Moto) -> Result<String> {
    let documented = replace_once(documented, DOC_SOCKET, &socket.display().to_string())?;
    let (top, server) = documented
        .split_once("[server]\n")
        .context("the documented TOML has no [server] table")?;
    let rendered = render_sidecar_config(0, &moto.endpoint(), SidecarCache::default());
    let tables = replace_once(
        &rendered,
        "listen = \"127.0.0.1:0\"\ntoken_env = \"SECRET_SIDECAR_TOKEN\"\n",
        "",
    )?;
    Ok(format!("{top}{tables}\n[server]\n{server}"))
}

/// The `socket_mode` the documented TOML sets.
fn documented_socket_mode(documented: &str) -> Result<u32> {
    let value = documented
        .lines()
        .find_map(|l| l.trim().strip_prefix("socket_mode = \""))
        .and_then(|rest| rest.split('"').next())
        .context("the documented TOML sets no socket_mode")?;
    u32::from_str_radix(value, 8).with_context(|| format!("socket_mode {value:?}"))
}

/// lib.rs's Envoy config with its `secret_sidecar` cluster replaced by the documented one.
fn envoy_config(
    documented_yaml: &str,
    socket: &Path,
    dir: &Path,
    paths: &Paths,
    spec: &EnvoySpec,
) -> Result<EnvoyConfig> {
    let yaml = replace_once(documented_yaml, DOC_SOCKET, &socket.display().to_string())?;
    let yaml_path = dir.join("sidecar-cluster.yaml");
    fs::write(&yaml_path, yaml)?;
    let documented = yaml_file_as_json(&yaml_path)?;
    let documented = match documented.as_array().map(Vec::as_slice) {
        Some([cluster]) => cluster.clone(),
        _ => bail!("the documented YAML must be a list of one cluster: {documented}"),
    };
    ensure!(
        documented["name"] == SIDECAR_CLUSTER,
        "the documented cluster is not {SIDECAR_CLUSTER}: {documented}"
    );
    ensure!(
        documented["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            == json!({"pipe": {"path": socket.display().to_string()}}),
        "the documented cluster's endpoint is not the pipe: {documented}"
    );

    EnvoyConfig::rendered(spec, &paths.wasm, |config| {
        let clusters = clusters_mut(config)?;
        let shipped = clusters
            .iter()
            .find(|c| c["name"] == SIDECAR_CLUSTER)
            .cloned()
            .context("lib.rs's config has no sidecar cluster")?;
        // The documented cluster keeps the settings every shipped sidecar cluster has (Envoy closes
        // idle connections first, docs/SECURITY.md); only the address differs.
        for field in [
            "type",
            "connect_timeout",
            "typed_extension_protocol_options",
        ] {
            ensure!(
                documented[field] == shipped[field],
                "the documented cluster's {field} differs from lib.rs's: {} vs {}",
                documented[field],
                shipped[field]
            );
        }
        clusters.retain(|c| c["name"] != SIDECAR_CLUSTER);
        clusters.push(documented);
        Ok(())
    })
}

// ------------------------------------------------------------------------------------------------
// The sidecar, on its socket

/// Starts the sidecar binary with `config` under test-support's process guard (killed by PID
/// and reaped on drop).
fn spawn_sidecar(paths: &Paths, dir: &Path, config: &str, token: &str) -> Result<Process> {
    let config_path = dir.join("sidecar.toml");
    fs::write(&config_path, config)?;
    let mut command = Command::new(&paths.sidecar);
    command
        .arg("--config")
        .arg(&config_path)
        .env("SECRET_SIDECAR_TOKEN", token)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "info");
    Process::spawn("secret-sidecar", command, Some(dir.join("sidecar.log")))
}

/// SIGTERM (by PID), then waits (bounded) for a clean exit.
async fn terminate(process: &mut Process) -> Result<()> {
    let pid = process.pid().context("already stopped")?;
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill -TERM {pid}: {status}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = process.exited() {
            ensure!(status.success(), "the sidecar exited with {status}");
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the sidecar did not exit within 5 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The status code the sidecar answers `GET /healthz` with over its socket, with `token` as the
/// bearer token (none with `None`).
async fn healthz(socket: &Path, token: Option<&str>) -> Result<u16> {
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: secret-sidecar\r\n{auth}Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        anyhow::Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(SOCKET_TIMEOUT, exchange)
        .await
        .with_context(|| {
            format!(
                "no answer on {} within {SOCKET_TIMEOUT:?}",
                socket.display()
            )
        })??;
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP answer: {answer:?}"))
}

// ------------------------------------------------------------------------------------------------
// What /proc says

/// The effective user id of this process.
fn effective_uid() -> Result<u32> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .context("no effective Uid in /proc/self/status")
}

/// The local addresses of the TCP sockets process `pid` holds in LISTEN state.
fn tcp_listeners(pid: u32) -> Result<Vec<String>> {
    let mut inodes = HashSet::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        // An fd closed meanwhile has no link any more.
        let Ok(target) = fs::read_link(entry?.path()) else {
            continue;
        };
        let target = target.display().to_string();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let mut listening = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{table}"))?;
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                listening.push(format!("{table} {}", cols[1]));
            }
        }
    }
    Ok(listening)
}

// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_reaches_the_sidecar_on_a_unix_socket() -> Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, run())
        .await
        .with_context(|| format!("the test took longer than {TEST_TIMEOUT:?}"))?
}

async fn run() -> Result<()> {
    let started = Instant::now();
    let paths = Paths::locate()?;
    let dir = test_dir("unix_socket")?;
    let socket = dir.join("sidecar.sock");
    ensure!(
        socket.as_os_str().len() <= MAX_SOCKET_PATH,
        "{} is too long for a Unix socket path",
        socket.display()
    );
    let (documented_toml, documented_yaml) = documented_snippets()?;
    let mode = documented_socket_mode(&documented_toml)?;
    ensure!(
        mode == 0o600,
        "the recommended socket_mode is 0600, the doc says {mode:o}"
    );

    let moto = Moto::start(&paths, &dir).await?;
    moto.create_secret("alice-credentials", &alice_secret())
        .await?;

    let token = e2e::random_token()?;
    let config = sidecar_config(&documented_toml, &socket, &moto)?;
    let mut sidecar = spawn_sidecar(&paths, &dir, &config, &token)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        sidecar.ensure_running()?;
        if let Ok(200) = healthz(&socket, Some(&token)).await {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "the sidecar did not answer on {} within 10 s:\n{}",
                socket.display(),
                sidecar.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listening_line = format!("unix:{}", socket.display());
    ensure!(
        sidecar
            .logs()
            .lines()
            .any(|l| l.contains("secret-sidecar listening") && l.contains(&listening_line)),
        "the sidecar does not say it listens on {listening_line}:\n{}",
        sidecar.logs()
    );

    // The socket file: a socket, mode 0600 (set before it appeared at its path), ours. With
    // 0600 only its owner may connect (connect(2) needs write permission on the file), so other
    // users of this host get EACCES; that is the kernel's check and is not exercised here (it
    // would need another user; root, which the tests may run as, bypasses it anyway).
    let meta = fs::metadata(&socket)?;
    ensure!(
        meta.file_type().is_socket(),
        "{} is not a socket",
        socket.display()
    );
    ensure!(
        meta.permissions().mode() & 0o7777 == mode,
        "socket mode {:o}, expected {mode:o}",
        meta.permissions().mode() & 0o7777
    );
    let uid = effective_uid()?;
    ensure!(
        meta.uid() == uid,
        "the socket belongs to uid {}, the test runs as {uid}",
        meta.uid()
    );

    // Whoever can connect still needs the token.
    ensure!(
        healthz(&socket, None).await? == 401,
        "no token must be refused with 401"
    );
    ensure!(
        healthz(&socket, Some("not-the-token")).await? == 403,
        "a wrong token must be refused with 403"
    );

    // No TCP port: the sidecar holds no listening TCP socket (Envoy, the control, holds two).
    let sidecar_tcp = tcp_listeners(sidecar.pid().context("the sidecar's pid")?)?;
    ensure!(
        sidecar_tcp.is_empty(),
        "the sidecar listens on TCP: {sidecar_tcp:?}"
    );

    let upstream = Upstream::start().await?;
    // The sidecar port is unused: the cluster is replaced by the documented pipe cluster.
    let spec = EnvoySpec::new(filter_config(), upstream.port(), 0, &token);
    let envoy_config = envoy_config(&documented_yaml, &socket, &dir, &paths, &spec)?;
    let envoy = Envoy::start_with_config(&paths, &dir, &envoy_config).await?;
    let envoy_tcp = tcp_listeners(envoy.pid().context("Envoy's pid")?)?;
    ensure!(
        !envoy_tcp.is_empty(),
        "the TCP listener check sees none of Envoy's listeners"
    );

    // The tutorial's validate step, through the socket.
    let url = envoy.url("/ip");
    let ok = wait_for(Duration::from_secs(8), "alice-key to get 200", || {
        let url = url.clone();
        async move {
            let reply = get(&url, &[("apikey", "alice-key")]).await.ok()?;
            (reply.status == 200).then_some(reply)
        }
    })
    .await
    .with_context(|| format!("sidecar log:\n{}", sidecar.logs()))?;
    let echoed = ok.json()?;
    ensure!(
        echoed["headers"]["x-consumer-username"] == "alice",
        "the upstream saw {}",
        echoed["headers"]
    );
    let wrong = get(&url, &[("apikey", "not-alices-key")]).await?;
    ensure!(
        wrong.status == 401,
        "a wrong key got {}: {}",
        wrong.status,
        wrong.body
    );

    // The callouts went through the pipe cluster (its only endpoint is the socket).
    let callouts = envoy
        .stat(&format!("cluster.{SIDECAR_CLUSTER}.upstream_rq_2xx"))
        .await?
        .unwrap_or(0);
    ensure!(callouts >= 1, "no 2xx callout through {SIDECAR_CLUSTER}");
    let failed = envoy
        .stat(&format!(
            "cluster.{SIDECAR_CLUSTER}.upstream_cx_connect_fail"
        ))
        .await?
        .unwrap_or(0);
    ensure!(failed == 0, "{failed} failed connections to the socket");

    // A clean stop removes the socket file.
    terminate(&mut sidecar).await?;
    ensure!(
        !socket.exists(),
        "{} is left after SIGTERM",
        socket.display()
    );

    eprintln!("unix_socket: done in {:?}", started.elapsed());
    drop(envoy);
    drop(upstream);
    drop(moto);
    Ok(())
}
