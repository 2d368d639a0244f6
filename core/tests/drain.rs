//! Shutdown drain against a real server, over raw keep-alive TCP
//! connections: every request whose bytes were written gets a complete
//! response (200, or 503 after the drain deadline), and each connection ends
//! with `Connection: close` followed by an orderly close, never a reset or
//! an EOF in place of a response.
//!
//! Nothing here asserts on timing: the clients' loops are bounded by a
//! request count and a time limit, and the server's linger is far longer
//! than anything the clients wait for, so a slow machine only slows the test.

mod common;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::TestServer;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    sync::mpsc,
};
use xcore::AppState;

/// Clients sending back to back on keep-alive connections.
const ACTIVE_CLIENTS: usize = 6;
/// Clients whose connection is idle when shutdown starts, and that send
/// once the server is draining (a request "already on the wire").
const IDLE_CLIENTS: usize = 2;
/// Answers each active client collects before the test starts shutdown.
const WARM_UP_ANSWERS: u64 = 50;
/// Bounds on one active client: requests, and wall-clock time.
const MAX_REQUESTS_PER_CLIENT: u64 = 1_000_000;
const MAX_CLIENT_TIME: Duration = Duration::from_secs(120);
/// Longest wait for one response before the request counts as lost.
const READ_BOUND: Duration = Duration::from_secs(30);
/// Far longer than any client needs to send its next request.
const TEST_LINGER_MS: u64 = 10_000;

const REQUEST: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: xcore.test\r\n\r\n";

/// One parsed HTTP/1.1 response.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    /// Requests whose bytes were all written.
    sent: u64,
    /// Complete responses read.
    answered: u64,
    /// Sent, but the connection ended (EOF, reset) before a full response.
    lost: u64,
    /// Responses by status.
    statuses: BTreeMap<u16, u64>,
    /// Connections that ended with `Connection: close` then a clean EOF.
    closed_cleanly: u64,
    /// Connections the server ended any other way after a close response.
    closed_badly: u64,
    /// 503s without `Retry-After` or the standard error body.
    bad_503s: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.lost += other.lost;
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        self.closed_cleanly += other.closed_cleanly;
        self.closed_badly += other.closed_badly;
        self.bad_503s += other.bad_503s;
    }

    /// Records an answer; returns whether the connection must be dropped.
    async fn record(&mut self, answer: &Answer, reader: &mut BufReader<TcpStream>) -> bool {
        self.answered += 1;
        *self.statuses.entry(answer.status).or_default() += 1;
        if answer.status == 503 && !is_standard_503(answer) {
            self.bad_503s += 1;
        }
        if !answer.closes() {
            return false;
        }
        // After `Connection: close` the server must end the connection
        // with an orderly close (EOF), not a reset.
        let mut byte = [0u8; 1];
        match tokio::time::timeout(READ_BOUND, reader.read(&mut byte)).await {
            Ok(Ok(0)) => self.closed_cleanly += 1,
            _ => self.closed_badly += 1,
        }
        true
    }
}

fn is_standard_503(answer: &Answer) -> bool {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    answer.header("retry-after").is_some()
        && answer.header("x-request-id").is_some()
        && body["error"]["code"] == "INTERNAL_ERROR"
        && body["error"]["request_id"].is_string()
        && body["error"]["message"].is_string()
}

/// Reads one response; an error if the connection ends before it is whole.
async fn read_answer(reader: &mut BufReader<TcpStream>) -> std::io::Result<Answer> {
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed mid-response");
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err(eof());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(eof());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(length) = answer.header("content-length") {
        let length: usize = length.parse().map_err(std::io::Error::other)?;
        answer.body.resize(length, 0);
        reader.read_exact(&mut answer.body).await?;
    } else if answer
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Err(eof());
            }
            let size = usize::from_str_radix(line.trim_end(), 16).map_err(std::io::Error::other)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            chunk.truncate(size);
            answer.body.extend_from_slice(&chunk);
        }
    }
    Ok(answer)
}

/// Sends one request and reads its answer; `None` when the request could
/// not be written whole (then it was never sent).
async fn exchange(
    reader: &mut BufReader<TcpStream>,
    tally: &mut Tally,
) -> Option<std::io::Result<Answer>> {
    if reader.get_mut().write_all(REQUEST).await.is_err() {
        return None;
    }
    tally.sent += 1;
    let answer = match tokio::time::timeout(READ_BOUND, read_answer(reader)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::other("no response in time")),
    };
    if answer.is_err() {
        tally.lost += 1;
    }
    Some(answer)
}

/// Sends back to back, reconnecting after each `Connection: close`, until
/// a reconnect is refused (the server stopped accepting) or a bound is hit.
async fn active_client(addr: SocketAddr, warmed: mpsc::Sender<()>) -> Tally {
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut connection: Option<BufReader<TcpStream>> = None;
    let mut warm_up_reported = false;
    while tally.sent < MAX_REQUESTS_PER_CLIENT && started.elapsed() < MAX_CLIENT_TIME {
        let reader = match connection.as_mut() {
            Some(reader) => reader,
            None => match TcpStream::connect(addr).await {
                Ok(stream) => connection.insert(BufReader::new(stream)),
                // Refused: nothing was sent; the server is gone.
                Err(_) => break,
            },
        };
        let drop_connection = match exchange(reader, &mut tally).await {
            Some(Ok(answer)) => tally.record(&answer, reader).await,
            Some(Err(_)) | None => true,
        };
        if drop_connection {
            connection = None;
        }
        if !warm_up_reported && tally.answered >= WARM_UP_ANSWERS {
            warm_up_reported = true;
            let _ = warmed.send(()).await;
        }
    }
    tally
}

/// Opens a keep-alive connection, uses it once, leaves it idle until
/// `sending_time(state)` says so, then sends one more request on it.
async fn idle_client(
    addr: SocketAddr,
    state: AppState,
    sending_time: fn(&AppState) -> bool,
    warmed: mpsc::Sender<()>,
) -> (Tally, Option<Answer>) {
    let mut tally = Tally::default();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut reader = BufReader::new(stream);
    let first = exchange(&mut reader, &mut tally)
        .await
        .expect("written")
        .expect("answered");
    assert!(!first.closes(), "keep-alive before shutdown");
    tally.answered += 1;
    *tally.statuses.entry(first.status).or_default() += 1;
    let _ = warmed.send(()).await;
    let started = Instant::now();
    while !sending_time(&state) {
        assert!(
            started.elapsed() < MAX_CLIENT_TIME,
            "the server never reached the awaited shutdown stage"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = match exchange(&mut reader, &mut tally).await {
        Some(Ok(answer)) => {
            tally.record(&answer, &mut reader).await;
            Some(answer)
        }
        _ => None,
    };
    (tally, last)
}

/// Runs the clients against `server`, shuts it down once every client is
/// warm, and returns the totals and the idle clients' last answers.
async fn shut_down_under_load(
    server: TestServer,
    idle_sends_when: fn(&AppState) -> bool,
) -> (Tally, Vec<Option<Answer>>) {
    let (warmed, mut warm) = mpsc::channel(ACTIVE_CLIENTS + IDLE_CLIENTS);
    let active: Vec<_> = (0..ACTIVE_CLIENTS)
        .map(|_| tokio::spawn(active_client(server.addr, warmed.clone())))
        .collect();
    let idle: Vec<_> = (0..IDLE_CLIENTS)
        .map(|_| {
            tokio::spawn(idle_client(
                server.addr,
                server.state.clone(),
                idle_sends_when,
                warmed.clone(),
            ))
        })
        .collect();
    drop(warmed);
    for _ in 0..ACTIVE_CLIENTS + IDLE_CLIENTS {
        warm.recv().await.expect("every client warms up");
    }

    server.stop().await;

    let mut total = Tally::default();
    for client in active {
        total.add(&client.await.expect("active client"));
    }
    let mut last_answers = Vec::new();
    for client in idle {
        let (tally, last) = client.await.expect("idle client");
        total.add(&tally);
        last_answers.push(last);
    }
    (total, last_answers)
}

fn report(name: &str, total: &Tally) {
    println!(
        "{name}: sent {} answered {} lost {} statuses {:?}; connections closed with \
         `Connection: close` + EOF {}, otherwise {}",
        total.sent,
        total.answered,
        total.lost,
        total.statuses,
        total.closed_cleanly,
        total.closed_badly
    );
}

/// Starts a server that lingers [`TEST_LINGER_MS`] and drains for
/// `timeout_secs`, shuts it down under load (see [`shut_down_under_load`]),
/// prints the tally as `name` and asserts that every request sent was
/// answered.
async fn drain_run(
    name: &str,
    timeout_secs: u64,
    idle_sends_when: fn(&AppState) -> bool,
) -> (Tally, Vec<Option<Answer>>) {
    let server = TestServer::start_with(|config| {
        config.server.shutdown_linger_ms = TEST_LINGER_MS;
        config.server.shutdown_timeout_secs = timeout_secs;
    })
    .await;
    let (total, last_answers) = shut_down_under_load(server, idle_sends_when).await;
    report(name, &total);
    assert_eq!(total.lost, 0, "requests sent but never answered: {total:?}");
    assert_eq!(total.sent, total.answered, "{total:?}");
    (total, last_answers)
}

/// Every connection, active or idle, ended after a response that said so.
fn assert_every_connection_closed_cleanly(total: &Tally) {
    assert_eq!(
        total.closed_cleanly,
        (ACTIVE_CLIENTS + IDLE_CLIENTS) as u64,
        "{total:?}"
    );
    assert_eq!(total.closed_badly, 0, "{total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_clients_get_an_answer_to_every_request_during_shutdown() {
    let (total, last_answers) = drain_run("drain", 60, |state| state.is_shutting_down()).await;
    assert_eq!(
        total.statuses.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "before the deadline every request is served: {total:?}"
    );
    assert_every_connection_closed_cleanly(&total);
    for answer in last_answers {
        let answer = answer.expect("the idle connection's request was answered");
        assert_eq!(answer.status, 200);
        assert!(answer.closes(), "Connection: close while draining");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_drain_deadline_requests_get_503_and_connection_close() {
    // A zero deadline: the drain is past it as soon as it starts, while the
    // linger still keeps idle connections open to answer them.
    let (total, last_answers) =
        drain_run("deadline", 0, |state| state.is_past_drain_deadline()).await;
    assert!(
        total
            .statuses
            .keys()
            .all(|status| [200, 503].contains(status)),
        "{total:?}"
    );
    assert_eq!(
        total.bad_503s, 0,
        "503s carry Retry-After and the standard body"
    );
    assert_every_connection_closed_cleanly(&total);
    for answer in last_answers {
        let answer = answer.expect("the idle connection's request was answered");
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(is_standard_503(&answer), "{answer:?}");
        assert!(answer.closes(), "Connection: close after the deadline");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgraded_while_draining_is_closed_at_once_with_1001() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start_with(|config| {
        config.server.shutdown_linger_ms = TEST_LINGER_MS;
    })
    .await;
    let (addr, state) = (server.addr, server.state.clone());
    // A keep-alive connection opened before shutdown, the only way in once
    // the listener is closed.
    let mut reader = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
    let mut tally = Tally::default();
    let first = exchange(&mut reader, &mut tally)
        .await
        .expect("written")
        .expect("answered");
    assert!(!first.closes());
    assert!(reader.buffer().is_empty(), "nothing past the response");

    let stopping = tokio::spawn(server.stop());
    let started = Instant::now();
    while !state.is_shutting_down() {
        assert!(
            started.elapsed() < MAX_CLIENT_TIME,
            "shutdown never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The hub's close-all was sent before this socket existed; the session
    // must still see it rather than outlive the server.
    let (mut socket, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/ws"), reader.into_inner())
            .await
            .expect("upgrade while draining");
    let code = loop {
        match tokio::time::timeout(READ_BOUND, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|frame| u16::from(frame.code)),
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, Some(1001), "going away");
    stopping.await.expect("server stops");
}
