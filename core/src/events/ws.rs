//! `/ws`: live events over WebSocket.
//!
//! A client authenticates with `?token=<access token>` or, within
//! `websocket.auth_timeout_secs`, a first message
//! `{"type":"auth","token":"Bearer ..."}`; then subscribes with
//! `{"type":"subscribe","topics":["plugin.*"]}` (and `unsubscribe`). Every
//! command gets a reply `{"type": <command>, "success": bool, ...}`; events
//! arrive as `{"type":"event","id","topic","data","timestamp"}`.
//!
//! A client only receives the topics its permissions allow (see
//! [`permission_for_topic`]), checked per event against the rights it
//! authenticated with, and an event published for one user (a plugin's
//! `Host::publish_to`) only on that user's sockets; the socket closes when
//! its access token expires.
//!
//! Each socket has a reader loop (commands, bus events, pings) and a writer
//! task fed by a bounded queue (`websocket.queue_capacity`). A client whose
//! queue stays full for `websocket.stall_timeout_ms`, or that falls behind
//! the whole bus buffer, is disconnected (close code 4008). Only that
//! client's own loop ever waits for it: the bus and the other sockets never
//! do. Close codes: 4401 failed
//! authentication or expired token, 4408 no authentication in time, 4008
//! too slow, 4000 no answer to pings, 1001 server shutting down.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
        FromRef, Query, State,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use futures_util::{SinkExt, StreamExt};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast::error::RecvError, mpsc, oneshot};

use super::{topics, EventBus};
use crate::{
    auth::{extract::authenticate, AuthUser, Gate},
    config::WebSocketConfig,
    error::{ApiError, ErrorCode},
};

/// Close code: authentication failed or the token expired.
pub const CLOSE_AUTH_FAILED: u16 = 4401;
/// Close code: no authentication within the allowed time.
pub const CLOSE_AUTH_TIMEOUT: u16 = 4408;
/// Close code: the client did not keep up with its events.
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Close code: the client stopped answering pings.
pub const CLOSE_PING_TIMEOUT: u16 = 4000;

/// Longest a single write to a client may take before the writer gives up
/// on it.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Topic patterns one socket may hold.
const MAX_PATTERNS: usize = 64;
/// Largest command a client may send.
const MAX_COMMAND_BYTES: usize = 16 * 1024;

/// Open sockets and their metrics.
#[derive(Debug)]
pub struct WsHub {
    config: WebSocketConfig,
    open: AtomicUsize,
    connections: IntGauge,
    disconnects: IntCounterVec,
    /// Flips to `true` when the server shuts down.
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl WsHub {
    /// Registers `xcore_ws_connections` and `xcore_ws_disconnects_total`.
    pub fn new(config: WebSocketConfig, registry: &Registry) -> anyhow::Result<Self> {
        let connections = IntGauge::new("xcore_ws_connections", "Open WebSocket connections")?;
        let disconnects = IntCounterVec::new(
            Opts::new(
                "xcore_ws_disconnects_total",
                "WebSocket connections closed by the server, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(disconnects.clone()))?;
        Ok(Self {
            config,
            open: AtomicUsize::new(0),
            connections,
            disconnects,
            shutdown: tokio::sync::watch::channel(false).0,
        })
    }

    /// Closes every socket with 1001 (server going away).
    pub fn close_all(&self) {
        self.shutdown.send_replace(true);
    }

    /// A connection slot, or `None` at the limit.
    fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let limit = self.config.max_connections;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < limit).then_some(open + 1)
            })
            .ok()?;
        self.connections.inc();
        Some(Slot(self.clone()))
    }
}

/// One counted connection; dropping it frees the slot.
struct Slot(Arc<WsHub>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.connections.dec();
    }
}

/// What `/ws` uses.
#[derive(Debug)]
pub struct WsState {
    /// The connections.
    pub ws: Arc<WsHub>,
    /// What the sockets forward.
    pub events: EventBus,
    /// Authenticates the sockets.
    pub gate: Arc<Gate>,
}

/// `/ws`, for any application state that provides [`WsState`].
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<WsState>: FromRef<S>,
{
    Router::new().route("/ws", get(upgrade))
}

/// `GET /ws` query.
#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

/// Upgrades to a WebSocket; the protocol is in the module docs.
#[utoipa::path(
    get, path = "/ws", tag = "events",
    params(("token" = Option<String>, Query, description = "Access token; otherwise send `{\"type\":\"auth\",\"token\":\"Bearer ...\"}` first")),
    responses(
        (status = 101, description = "Switching to the WebSocket event protocol: `auth`, `subscribe`, `unsubscribe`, `ping` commands; `event` frames for the topics the caller's permissions allow"),
        (status = 400, description = "Not a WebSocket upgrade request", body = crate::error::ErrorBody),
        (status = 503, description = "Too many open sockets", body = crate::error::ErrorBody),
    )
)]
pub async fn upgrade(
    State(state): State<Arc<WsState>>,
    Query(query): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(slot) = state.ws.try_acquire() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError,
            "too many WebSocket connections; retry later",
        )
        .into_response();
    };
    // Clients only send small commands: small read buffers and message
    // limits keep a socket's memory low and its input bounded.
    ws.read_buffer_size(MAX_COMMAND_BYTES)
        .write_buffer_size(0)
        .max_message_size(MAX_COMMAND_BYTES)
        .max_frame_size(MAX_COMMAND_BYTES)
        .on_upgrade(move |socket| serve(state, socket, query.token, slot))
}

/// The permission a client needs to receive `topic`: `user.*` needs
/// `users:read`; `plugin.*` and `task.*` need `plugins:manage` (or
/// `tasks:manage` for `task.*`); a plugin's `<id>.*` needs `<id>:read`.
pub fn permission_for_topic(topic: &str) -> Vec<String> {
    match topic.split('.').next().unwrap_or_default() {
        "user" => vec!["users:read".into()],
        "plugin" => vec!["plugins:manage".into()],
        "task" => vec!["plugins:manage".into(), "tasks:manage".into()],
        resource => vec![format!("{resource}:read")],
    }
}

/// Whether `user` may receive `event`: the topic's permission, and for an
/// event published for one user, being that user (an administrator does
/// not see other people's private notices either).
fn may_receive(user: &AuthUser, event: &super::Event) -> bool {
    event.to_user.is_none_or(|addressee| addressee == user.id)
        && event
            .reader_permissions()
            .iter()
            .any(|permission| user.has_permission(permission))
}

/// Why the reader loop ended.
enum Ending {
    /// The client went away or closed.
    Gone,
    /// The server closes with this code and reason.
    Close(u16, String, &'static str),
}

/// One socket's session state.
struct Session {
    user: Option<AuthUser>,
    patterns: Vec<String>,
    /// The client has sent a `subscribe`. Until then an authenticated
    /// client gets every event its permissions allow (seed 001's client
    /// authenticates and only listens); its first `subscribe` replaces
    /// that default with exactly the topics it asks for.
    chose_topics: bool,
}

impl Session {
    /// Whether the client asked for (or by default gets) `topic`; the
    /// permission check comes after.
    fn wants(&self, topic: &str) -> bool {
        !self.chose_topics || self.patterns.iter().any(|p| topics::matches(p, topic))
    }
}

async fn serve(state: Arc<WsState>, socket: WebSocket, query_token: Option<String>, slot: Slot) {
    let config = state.ws.config.clone();
    let (sink, mut stream) = socket.split();
    let (outgoing, queue) = mpsc::channel::<Message>(config.queue_capacity.max(1));
    let (close_sender, close_signal) = oneshot::channel::<CloseFrame>();
    let writer = tokio::spawn(write_loop(sink, queue, close_signal));
    let mut events = state.events.subscribe();
    let mut shutdown = state.ws.shutdown.subscribe();
    let mut session = Session {
        user: None,
        patterns: Vec::new(),
        chose_topics: false,
    };
    let stall = Duration::from_millis(config.stall_timeout_ms.max(1));
    // `None` once queued; else why the session ends: the queue stayed full
    // (too slow) or the writer is gone (the client left).
    let push = |message: Message| {
        let outgoing = outgoing.clone();
        async move {
            match outgoing.send_timeout(message, stall).await {
                Ok(()) => None,
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => Some(too_slow(stall)),
                Err(mpsc::error::SendTimeoutError::Closed(_)) => Some(Ending::Gone),
            }
        }
    };

    let ending = 'session: {
        if let Some(token) = query_token {
            match login(&state, &mut session, &token).await {
                Ok(reply) => {
                    if let Some(ending) = push(reply).await {
                        break 'session ending;
                    }
                }
                Err(reason) => break 'session Ending::Close(CLOSE_AUTH_FAILED, reason, "auth"),
            }
        }
        let auth_deadline = tokio::time::sleep(Duration::from_secs(config.auth_timeout_secs));
        tokio::pin!(auth_deadline);
        // The futures below live across iterations: built inside
        // `select!` they would register a timer entry and a watch waiter
        // again on every wake-up, i.e. once per event per socket.
        let shutting_down = async {
            let _ = shutdown.wait_for(|closing| *closing).await;
        };
        tokio::pin!(shutting_down);
        let token_expired = tokio::time::sleep_until(token_expiry(session.user.as_ref()));
        tokio::pin!(token_expired);
        let ping_every = Duration::from_secs(config.ping_interval_secs.max(1));
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                // `wait_for`, not `changed`: a socket upgraded after
                // `close_all` (during the drain) closes at once too.
                () = &mut shutting_down => {
                    break 'session Ending::Close(1001, "server shutting down".into(), "shutdown");
                }
                () = &mut auth_deadline, if session.user.is_none() => {
                    break 'session Ending::Close(
                        CLOSE_AUTH_TIMEOUT,
                        format!("no authentication within {} s: send {{\"type\":\"auth\",\"token\":\"Bearer ...\"}}", config.auth_timeout_secs),
                        "auth_timeout",
                    );
                }
                () = &mut token_expired, if session.user.is_some() => {
                    break 'session Ending::Close(CLOSE_AUTH_FAILED, "access token expired; reconnect with a fresh one".into(), "token_expired");
                }
                incoming = stream.next() => {
                    let text = match incoming {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break 'session Ending::Gone,
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(_)) => {
                            last_heard = Instant::now();
                            continue;
                        }
                    };
                    last_heard = Instant::now();
                    let reply = command(&state, &mut session, text.as_str()).await;
                    // A command may have signed the client in (or in again).
                    token_expired
                        .as_mut()
                        .reset(token_expiry(session.user.as_ref()));
                    match reply {
                        Reply::Send(reply) => {
                            if let Some(ending) = push(reply).await {
                                break 'session ending;
                            }
                        }
                        Reply::Close(reason) => break 'session Ending::Close(CLOSE_AUTH_FAILED, reason, "auth"),
                    }
                }
                event = events.recv() => match event {
                    Ok(event) => {
                        let Some(user) = &session.user else { continue };
                        if session.wants(&event.topic) && may_receive(user, &event) {
                            if let Some(ending) = push(Message::Text(event.wire())).await {
                                break 'session ending;
                            }
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        if session.user.is_some() {
                            break 'session Ending::Close(
                                CLOSE_TOO_SLOW,
                                format!("client too slow: {missed} events were dropped"),
                                "too_slow",
                            );
                        }
                    }
                    Err(RecvError::Closed) => break 'session Ending::Close(1001, "server shutting down".into(), "shutdown"),
                },
                _ = pings.tick() => {
                    if last_heard.elapsed() > 2 * ping_every {
                        break 'session Ending::Close(CLOSE_PING_TIMEOUT, "no answer to pings".into(), "ping_timeout");
                    }
                    if let Some(ending) = push(Message::Ping(Default::default())).await {
                        break 'session ending;
                    }
                }
            }
        }
    };
    match ending {
        Ending::Close(code, reason, label) => {
            state.ws.disconnects.with_label_values(&[label]).inc();
            tracing::debug!(code, reason = reason.as_str(), "closing WebSocket");
            let _ = close_sender.send(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            });
        }
        // Dropping the sender tells the writer there is no close to send.
        Ending::Gone => drop(close_sender),
    }
    drop(outgoing);
    // The writer ends within SEND_TIMEOUT even on a stuck client; the
    // connection counts until its socket is really released.
    let _ = writer.await;
    drop(slot);
}

fn too_slow(stall: Duration) -> Ending {
    Ending::Close(
        CLOSE_TOO_SLOW,
        format!(
            "client too slow: its queue stayed full for {} ms",
            stall.as_millis()
        ),
        "too_slow",
    )
}

fn token_expiry(user: Option<&AuthUser>) -> tokio::time::Instant {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let left = user
        .and_then(AuthUser::expires_at)
        .map(|at| u64::try_from(at).unwrap_or(0))
        .unwrap_or(u64::MAX / 4)
        .saturating_sub(now_unix);
    tokio::time::Instant::now() + Duration::from_secs(left.min(365 * 24 * 3600))
}

/// Writes queued messages; on a close signal, sends the close frame and
/// stops. Every write is bounded by `SEND_TIMEOUT`.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    mut close_signal: oneshot::Receiver<CloseFrame>,
) {
    loop {
        tokio::select! {
            biased;
            frame = &mut close_signal => {
                if let Ok(frame) = frame {
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame)))).await;
                }
                break;
            }
            message = queue.recv() => match message {
                Some(message) => {
                    match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
                        Ok(Ok(())) => {}
                        _ => break,
                    }
                }
                None => {
                    // The reader ended without a close of its own; a close
                    // signal may still be on its way.
                    if let Ok(frame) = close_signal.await {
                        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame)))).await;
                    }
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

enum Reply {
    Send(Message),
    Close(String),
}

fn reply(value: Value) -> Reply {
    Reply::Send(Message::Text(value.to_string().into()))
}

async fn login(state: &WsState, session: &mut Session, token: &str) -> Result<Message, String> {
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token)
        .trim();
    let user = authenticate(&state.gate, token)
        .await
        .map_err(|error| format!("authentication failed: {}", error.message()))?;
    let answer = json!({"type": "auth", "success": true, "user_id": user.id, "email": user.email});
    session.user = Some(user);
    Ok(Message::Text(answer.to_string().into()))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Command {
    Auth { token: String },
    Subscribe { topics: Vec<String> },
    Unsubscribe { topics: Vec<String> },
    Ping,
}

async fn command(state: &WsState, session: &mut Session, text: &str) -> Reply {
    let command: Command = match serde_json::from_str(text) {
        Ok(command) => command,
        Err(error) => {
            return reply(json!({
                "type": "error",
                "success": false,
                "error": format!("unreadable command ({error}); expected auth, subscribe, unsubscribe or ping"),
            }))
        }
    };
    match command {
        Command::Ping => reply(json!({"type": "pong", "success": true})),
        Command::Auth { token } => match login(state, session, &token).await {
            Ok(message) => Reply::Send(message),
            Err(reason) => Reply::Close(reason),
        },
        Command::Subscribe { .. } | Command::Unsubscribe { .. } if session.user.is_none() => {
            reply(json!({"type": kind(&command), "success": false, "error": "authenticate first"}))
        }
        Command::Subscribe { topics: wanted } => {
            let invalid: Vec<&String> = wanted
                .iter()
                .filter(|p| !topics::is_valid_pattern(p))
                .collect();
            if !invalid.is_empty() {
                return reply(json!({
                    "type": "subscribe",
                    "success": false,
                    "error": format!("invalid topic patterns: {invalid:?} (dotted segments of a-z0-9_-, or *)"),
                }));
            }
            session.chose_topics = true;
            for pattern in wanted {
                if !session.patterns.contains(&pattern) {
                    session.patterns.push(pattern);
                }
            }
            if session.patterns.len() > MAX_PATTERNS {
                session.patterns.truncate(MAX_PATTERNS);
                return reply(json!({
                    "type": "subscribe",
                    "success": false,
                    "error": format!("at most {MAX_PATTERNS} patterns per connection"),
                    "topics": session.patterns,
                }));
            }
            reply(json!({"type": "subscribe", "success": true, "topics": session.patterns}))
        }
        Command::Unsubscribe { topics: unwanted } => {
            // Taking topics away is choosing too: what is left is exactly
            // the subscribed patterns (none, before any subscribe).
            session.chose_topics = true;
            session.patterns.retain(|p| !unwanted.contains(p));
            reply(json!({"type": "unsubscribe", "success": true, "topics": session.patterns}))
        }
    }
}

fn kind(command: &Command) -> &'static str {
    match command {
        Command::Auth { .. } => "auth",
        Command::Subscribe { .. } => "subscribe",
        Command::Unsubscribe { .. } => "unsubscribe",
        Command::Ping => "ping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_to_the_permission_that_reveals_them() {
        assert_eq!(permission_for_topic("user.login"), vec!["users:read"]);
        assert_eq!(
            permission_for_topic("plugin.reloaded"),
            vec!["plugins:manage"]
        );
        assert_eq!(
            permission_for_topic("task.completed"),
            vec!["plugins:manage", "tasks:manage"]
        );
        assert_eq!(permission_for_topic("hello.greeted"), vec!["hello:read"]);
        assert_eq!(
            permission_for_topic("products.created"),
            vec!["products:read"]
        );
    }

    #[test]
    fn an_event_for_one_user_reaches_only_that_user_with_the_permission() {
        let user = |id: i64, permissions: &[&str]| AuthUser {
            id,
            email: format!("u{id}@example.com"),
            roles: std::collections::BTreeSet::new(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            credential: crate::auth::extract::Credential::Token {
                jti: String::new(),
                expires_at: 0,
                session: String::new(),
            },
        };
        let bus = EventBus::new(&Registry::new()).expect("bus");
        let private = bus.publish_for(Some(7), "pricing.alert", json!({}));
        let public = bus.publish("pricing.alert", json!({}));
        let owner = user(7, &["pricing:read"]);
        let administrator = user(1, &["pricing:read", "users:read", "plugins:manage"]);
        let owner_without_the_right = user(7, &[]);
        assert!(may_receive(&owner, &private));
        assert!(!may_receive(&administrator, &private));
        assert!(!may_receive(&owner_without_the_right, &private));
        assert!(may_receive(&administrator, &public));
        assert!(!may_receive(&owner_without_the_right, &public));
    }

    #[test]
    fn commands_parse_by_type() {
        assert!(matches!(
            serde_json::from_str::<Command>(r#"{"type":"subscribe","topics":["plugin.*"]}"#),
            Ok(Command::Subscribe { .. })
        ));
        assert!(matches!(
            serde_json::from_str::<Command>(r#"{"type":"auth","token":"Bearer x"}"#),
            Ok(Command::Auth { .. })
        ));
        assert!(serde_json::from_str::<Command>(r#"{"type":"shout"}"#).is_err());
    }
}
