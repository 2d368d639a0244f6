//! The HTTP/1.1 server loop and how it drains at shutdown.
//!
//! `axum::serve` drained by calling hyper's graceful shutdown on every
//! connection the moment the signal arrived: an idle keep-alive connection
//! was closed at once, so a request a client had just sent on it met a closed
//! socket, with no response and no way for the client to know whether it was
//! applied (3-5 such requests per run under load). The loop is ours now, and
//! shutdown goes in stages so that every request the server reads gets an
//! answer:
//!
//! 1. **Stop accepting.** Connections the kernel has already completed are
//!    accepted and served, then the listening socket is closed: a client that
//!    reconnects from then on is refused (it knows nothing was sent) rather
//!    than reset after writing its request.
//! 2. **`Connection: close` on every response.** hyper closes a connection
//!    after writing a response that carries it, so a keep-alive client gets an
//!    answer to its next request and learns, from that answer, to go elsewhere.
//! 3. **Linger, then close what is idle.** Idle connections stay open
//!    `server.shutdown_linger_ms`, so a request already on the wire is read and
//!    answered (step 2); then hyper's graceful shutdown closes the idle ones
//!    and lets each busy one finish its response before closing.
//! 4. **The deadline.** At `server.shutdown_timeout_secs`, requests that still
//!    arrive are answered 503 with `Retry-After` in the standard error body;
//!    [`DEADLINE_GRACE`] later, the connections left are closed, in-flight
//!    requests included.
//!
//! What remains is inherent to HTTP/1.1: a client that sends on a connection
//! idle for the whole linger, at the instant it is closed, sees the close
//! (RFC 9112 §9.6 tells clients to retry such requests when idempotent).
//! HTTP/2 is not served (axum is built with `http1` only), as before.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::atomic::{AtomicU8, Ordering},
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::ConnectInfo,
    http::{header, HeaderValue, Request, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    Router,
};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
    time::{sleep_until, Instant},
};
use tower::ServiceExt;

use crate::{error::ApiError, http::request_context};

/// After the deadline: time for the 503s (and any response being written)
/// to reach their clients before the remaining connections are closed. A
/// 503 is written within milliseconds; a second covers a loaded machine.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// The `Retry-After` of a 503 after the deadline: by then a load balancer
/// has had the whole drain to take this instance out, so a prompt retry
/// lands on another one.
const RETRY_AFTER_SECS: u64 = 1;

/// At most this many already-completed connections are taken from the
/// kernel's queue when accepting stops (its default length is 1024; 4096 is
/// Linux's `somaxconn`), so a connection flood cannot hold shutdown up.
const BACKLOG_DRAIN_MAX: usize = 4096;

/// After an accept error other than a vanished client (out of file
/// descriptors, ...), wait this long before accepting again rather than spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

const SERVING: u8 = 0;
const DRAINING: u8 = 1;
const PAST_DEADLINE: u8 = 2;

/// Where the server is in its shutdown: read by every response (one atomic
/// load) and by the readiness check.
#[derive(Debug)]
pub struct Drain {
    stage: AtomicU8,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            stage: AtomicU8::new(SERVING),
        }
    }
}

impl Drain {
    /// Whether shutdown has started (accepting stopped, responses carry
    /// `Connection: close`).
    pub fn is_draining(&self) -> bool {
        self.stage.load(Ordering::Relaxed) >= DRAINING
    }

    /// Whether the drain deadline has passed (new requests get 503).
    pub fn is_past_deadline(&self) -> bool {
        self.stage.load(Ordering::Relaxed) >= PAST_DEADLINE
    }

    /// Stages only move forward.
    fn advance(&self, stage: u8) {
        self.stage.fetch_max(stage, Ordering::Relaxed);
    }
}

/// How long each shutdown stage may take.
#[derive(Clone, Copy, Debug)]
pub struct DrainTimes {
    /// How long idle connections stay open once shutdown starts.
    pub linger: Duration,
    /// When requests that still arrive are answered 503 and, after
    /// [`DEADLINE_GRACE`], the remaining connections are closed.
    pub deadline: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains as the
/// module documentation describes and returns once every connection is
/// closed. WebSocket connections leave this loop at their upgrade; closing
/// them is the hub's job.
pub async fn run(
    listener: TcpListener,
    app: Router,
    drain: Arc<Drain>,
    times: DrainTimes,
    shutdown: impl Future<Output = ()>,
) {
    let responder = Responder {
        app,
        refuse: refusing_router(),
        drain: drain.clone(),
    };
    let (close_idle, close_idle_requested) = watch::channel(false);
    let mut connections = JoinSet::new();
    let spawn = |connections: &mut JoinSet<()>, stream: TcpStream, remote: SocketAddr| {
        // Without it, Nagle's algorithm holds a small write back until the
        // client acknowledges the previous one, and clients delay that
        // acknowledgement (up to 40 ms on Linux): a WebSocket event after
        // a quiet spell waited for it (the first event to 1,000 sockets
        // took 47 ms against 10 for the next ones).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        connections.spawn(serve_connection(
            stream,
            remote,
            responder.clone(),
            close_idle_requested.clone(),
        ));
    };

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => spawn(&mut connections, stream, remote),
                Err(error) if is_client_gone(&error) => {}
                Err(error) => {
                    tracing::error!(%error, "accept failed; pausing before the next");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            // Reaps finished connections so the set holds only live ones.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                log_join(joined);
            }
        }
    }

    // Stage 1. A completed connection still queued in the kernel would be
    // reset when the socket closes, after its client may have written a
    // request: take those first. The std listener accepts with a plain
    // system call, so it sees exactly what the kernel holds right now.
    let mut taken = 0;
    match listener.into_std() {
        Ok(listener) => {
            while taken < BACKLOG_DRAIN_MAX {
                match listener.accept() {
                    Ok((stream, remote)) => {
                        let stream = stream
                            .set_nonblocking(true)
                            .and_then(|()| TcpStream::from_std(stream));
                        match stream {
                            Ok(stream) => {
                                spawn(&mut connections, stream, remote);
                                taken += 1;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "cannot serve a queued connection")
                            }
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error)
                        if is_client_gone(&error)
                            || error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        tracing::warn!(%error, "cannot take the queued connections");
                        break;
                    }
                }
            }
            // Dropping it closes the socket: new clients are refused from here.
        }
        Err(error) => tracing::warn!(%error, "cannot take the queued connections"),
    }

    // Stage 2: from here every response carries `Connection: close`.
    drain.advance(DRAINING);
    tracing::info!(
        connections = connections.len(),
        queued_taken = taken,
        linger = ?times.linger,
        deadline = ?times.deadline,
        "stopped accepting; draining connections"
    );

    // Stages 3 and 4.
    let started = Instant::now();
    let linger_end = later(started, times.linger);
    let deadline = later(started, times.deadline);
    let hard_stop = later(linger_end.max(deadline), DEADLINE_GRACE);
    let mut lingering = true;
    let mut before_deadline = true;
    while !connections.is_empty() {
        tokio::select! {
            Some(joined) = connections.join_next() => log_join(joined),
            () = sleep_until(linger_end), if lingering => {
                lingering = false;
                close_idle.send_replace(true);
            }
            () = sleep_until(deadline), if before_deadline => {
                before_deadline = false;
                drain.advance(PAST_DEADLINE);
                tracing::warn!(
                    connections = connections.len(),
                    "drain deadline reached; new requests get 503, the rest is closed in {DEADLINE_GRACE:?}"
                );
            }
            () = sleep_until(hard_stop) => {
                tracing::warn!(
                    connections = connections.len(),
                    "closing connections still open after the drain deadline"
                );
                break;
            }
        }
    }
    // Aborting a connection task drops its socket.
    connections.shutdown().await;
}

/// What every connection answers requests with.
#[derive(Clone)]
struct Responder {
    /// The application.
    app: Router,
    /// Answers everything 503 once the deadline has passed, through the same
    /// request-context layer so the body is the standard one with a request
    /// id; a separate router keeps the check off the application's path.
    refuse: Router,
    drain: Arc<Drain>,
}

impl Responder {
    fn respond(
        &self,
        mut request: Request<Incoming>,
        remote: SocketAddr,
    ) -> impl Future<Output = Result<Response, Infallible>> + Send + 'static {
        // What `into_make_service_with_connect_info` provided: the rate
        // limiter and handlers read the peer address from it.
        request.extensions_mut().insert(ConnectInfo(remote));
        let router = if self.drain.is_past_deadline() {
            self.refuse.clone()
        } else {
            self.app.clone()
        };
        let drain = self.drain.clone();
        async move {
            let mut response = router.oneshot(request).await?;
            // Read after the handler ran, so a request that started before
            // shutdown still ends its connection. A 101 hands the connection
            // to the WebSocket, which the hub closes on its own.
            if drain.is_draining() && response.status() != StatusCode::SWITCHING_PROTOCOLS {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        }
    }
}

fn refusing_router() -> Router {
    Router::new()
        .fallback(past_deadline)
        .layer(middleware::from_fn(request_context::middleware))
}

async fn past_deadline() -> Response {
    ApiError::unavailable("server shutting down; retry the request", RETRY_AFTER_SECS)
        .into_response()
}

/// One connection: HTTP/1.1 with keep-alive and upgrades, closed gracefully
/// (idle at once, busy after the response) when the linger ends.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    responder: Responder,
    mut close_idle: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| responder.respond(request, remote));
    let connection = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let close_requested = async {
        // An error means the server loop is gone: close as well.
        let _ = close_idle.wait_for(|close| *close).await;
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = close_requested => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // Clients that vanish mid-request are routine.
        tracing::debug!(%remote, %error, "connection ended with an error");
    }
}

/// `instant + duration`, saturating: the configured times are not bounded,
/// and "a very long time" must not panic.
fn later(instant: Instant, duration: Duration) -> Instant {
    instant
        .checked_add(duration)
        .unwrap_or_else(|| instant + FAR_FUTURE)
}

/// What [`later`] saturates to (tokio's own sleeps do likewise).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Errors that concern one client that already left, not the listener.
fn is_client_gone(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        if error.is_panic() {
            tracing::error!(%error, "a connection task panicked");
        }
    }
}
