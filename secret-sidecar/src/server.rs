//! The HTTP/1.1 server around the router, hardened against slow and numerous clients:
//!
//! * **Connection cap:** at most `max_connections` connections are served at once; the next one
//!   is accepted only when one closes (meanwhile it waits in the kernel's listen backlog).
//! * **Header-read timeout:** a request's headers must be complete within
//!   `header_read_timeout`, counted from connecting for the first request and from its first
//!   byte for a later one on a kept-alive connection. A client that dribbles its headers (or
//!   connects and sends nothing) is disconnected, so it holds a slot for at most that long.
//! * **Idle timeout:** a kept-alive connection with no request in progress and no traffic for
//!   `idle_timeout` is closed.
//! * A refused token answers with `Connection: close` (see `api.rs`), so clients without the
//!   token cannot keep connections open either.
//!
//! It listens on TCP or on a Unix socket (created with the configured file mode; a stale socket
//! file left by an earlier run is replaced, anything else at that path is an error). On
//! shutdown it stops accepting, lets open requests finish, and removes its socket file.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::{Listen, ServerConfig};

/// How long open connections get to finish their requests after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// The socket and its path (removed on shutdown).
    Unix(UnixListener, PathBuf),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

/// Why the sidecar could not listen.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {listen}: {source}")]
    Io {
        listen: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on unix:{}: the path exists and is not a socket (refusing to replace it)", .0.display())]
    NotASocket(PathBuf),
    #[error("cannot listen on unix:{}: another process is listening on it (refusing to replace it)", .0.display())]
    InUse(PathBuf),
}

impl Listener {
    /// Binds `listen`. A Unix socket gets file mode `socket_mode`; a stale socket file at its
    /// path is removed first. The socket is created under a temporary name, given its mode and
    /// then renamed into place, so it is never reachable with looser permissions.
    pub async fn bind(listen: &Listen, socket_mode: u32) -> Result<Listener, BindError> {
        let io_error = |source| BindError::Io {
            listen: listen.to_string(),
            source,
        };
        match listen {
            Listen::Tcp(addr) => TcpListener::bind(addr)
                .await
                .map(Listener::Tcp)
                .map_err(io_error),
            Listen::Unix(path) => {
                if let Some(e) = remove_stale_socket(path)? {
                    return Err(io_error(e));
                }
                let tmp = temporary_path(path);
                let _ = std::fs::remove_file(&tmp);
                let listener = UnixListener::bind(&tmp).map_err(io_error)?;
                let placed =
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(socket_mode))
                        .and_then(|()| std::fs::rename(&tmp, path));
                if let Err(e) = placed {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(io_error(e));
                }
                Ok(Listener::Unix(listener, path.clone()))
            }
        }
    }

    /// Where it listens, for the log (`127.0.0.1:7070`, `unix:/run/sidecar.sock`).
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|e| format!("tcp ({e})")),
            Listener::Unix(_, path) => Listen::Unix(path.clone()).to_string(),
        }
    }
}

/// Removes a socket file left at `path` by an earlier run. `Ok(Some(e))`: it could not be
/// removed; `Err`: something other than a socket is there, or a live socket (one that accepts
/// a connection: another sidecar still runs there).
fn remove_stale_socket(path: &Path) -> Result<Option<io::Error>, BindError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Ok(Some(e)),
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            Ok(std::fs::remove_file(path).err())
        }
        Ok(_) => Err(BindError::NotASocket(path.to_path_buf())),
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Serves `app` on `listener` with the limits of `config` until `shutdown` completes, then
/// stops accepting and drains open connections (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: Listener,
    app: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // reap finished connections
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        let app = app.clone();
        let stop = stop_rx.clone();
        match accepted {
            Ok(Stream::Tcp(s)) => {
                connections.spawn(async move {
                    serve_connection(s, app, config, stop).await;
                    drop(slot);
                });
            }
            Ok(Stream::Unix(s)) => {
                connections.spawn(async move {
                    serve_connection(s, app, config, stop).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // e.g. out of file descriptors: wait a little instead of spinning
                tracing::warn!(error = %e, "accepting a connection failed");
                drop(slot);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = stop_tx.send(true);
    close_listener(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period: closing them"
        );
        connections.abort_all();
    }
    Ok(())
}

/// Stops listening; a Unix socket's file is removed.
fn close_listener(listener: Listener) {
    if let Listener::Unix(l, path) = listener {
        drop(l);
        let _ = std::fs::remove_file(&path);
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<Stream> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Stream::Tcp(s)),
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
    }
}

/// What a connection has been doing, for its deadlines.
struct Activity {
    /// Requests whose response has not been produced yet.
    in_flight: AtomicUsize,
    state: Mutex<ActivityState>,
    /// Signalled when a request starts or ends (the deadline may then be earlier or later).
    changed: Notify,
}

struct ActivityState {
    /// No request started yet on this connection.
    first: bool,
    /// The last read or write.
    last_io: Instant,
    /// The first byte read while no request was in progress (a request's head is arriving).
    head_started: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            state: Mutex::new(ActivityState {
                first: true,
                last_io: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn on_read(&self, bytes: usize) {
        let now = Instant::now();
        let mut state = self.state();
        state.last_io = now;
        if bytes > 0 && self.in_flight.load(Ordering::SeqCst) == 0 && state.head_started.is_none() {
            state.head_started = Some(now);
        }
    }

    fn on_write(&self) {
        self.state().last_io = Instant::now();
    }

    /// A request's head has been read: its handler runs.
    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let mut state = self.state();
        state.first = false;
        state.head_started = None;
        drop(state);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// When the connection is to be closed if nothing changes; `None` while a request is in
    /// progress.
    fn deadline(&self, connected: Instant, config: &ServerConfig) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let state = self.state();
        Some(match (state.first, state.head_started) {
            (true, _) => connected + config.header_read_timeout,
            (false, Some(started)) => started + config.header_read_timeout,
            (false, None) => state.last_io + config.idle_timeout,
        })
    }
}

/// Marks a request finished when dropped (also when its handler is cancelled).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.state().last_io = Instant::now();
        self.0.changed.notify_one();
    }
}

/// A connection's I/O, noting each read and write in its [`Activity`].
struct Tracked<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.activity.on_read(buf.filled().len() - before);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.activity.on_write();
            }
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves one connection until it ends, a deadline passes (see [`Activity::deadline`]) or the
/// server shuts down (then open requests finish first).
async fn serve_connection<IO>(
    io: IO,
    app: Router,
    config: ServerConfig,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connected = Instant::now();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        io,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = activity.request_started();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(in_flight);
                response
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let deadline = activity
            .deadline(connected, &config)
            // a request in progress: look again later
            .unwrap_or_else(|| Instant::now() + config.idle_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                let expired = activity
                    .deadline(connected, &config)
                    .is_some_and(|d| d <= Instant::now());
                if expired {
                    tracing::debug!("closing a connection: no complete request in time, or idle");
                    return;
                }
            }
            () = activity.changed.notified() => {}
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_live_socket_is_not_replaced_a_stale_one_is() {
        let dir = std::env::temp_dir().join(format!("sidecar-server-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listen = Listen::Unix(path.clone());
        // another process (here: a listener we keep) serves on the path
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let e = Listener::bind(&listen, 0o600).await.unwrap_err();
        assert!(matches!(e, BindError::InUse(_)), "{e}");
        assert!(path.exists());
        // once it is gone, its file is stale and replaced
        drop(live);
        let bound = Listener::bind(&listen, 0o600).await.unwrap();
        close_listener(bound);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
