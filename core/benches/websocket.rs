//! WebSocket fan-out benchmark, run with
//! `cargo bench -p xcore --bench websocket`.
//!
//! One server, 1,000 real WebSocket clients on loopback (each authenticated
//! with `?token=` and subscribed to `user.*`), then events published one at
//! a time on the bus: the delay from publishing to each client's receipt,
//! p50/p99/max over every delivery, and the time until the last of the
//! 1,000 had it. Client and server share the machine's cores.
//!
//! Needs about 2,100 file descriptors: it raises its soft limit to the
//! hard one itself.
//!
//! The clients read with 4 KiB buffers: tungstenite's default (128 KiB)
//! is zeroed again before each read, and with 1,000 clients on the same
//! two cores as the server that zeroing alone took a fifth of the CPU of
//! the delivery phase (perf), which measured the clients, not the server.

mod support;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{protocol::WebSocketConfig, Message};
use xcore::AppState;

const SUBSCRIBERS: usize = 1_000;
const EVENTS: usize = 20;

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// User and system CPU time this process has used, in seconds (from
/// `/proc/self/stat`, in clock ticks of 10 ms).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat") + 2..]
        .split(' ')
        .collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// Raises the open-files soft limit to the hard one: 1,000 clients and
/// their server sockets need more than the usual soft limit of 1,024.
#[allow(unsafe_code)]
fn raise_open_files_limit() {
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    raise_open_files_limit();
    let data = tempfile::tempdir().expect("data dir");
    let mut config = support::bench_config(data.path(), &data.path().join("no-plugins"));
    config.websocket.max_connections = SUBSCRIBERS + 10;
    let state = AppState::build(config).await.expect("state");
    let addr = support::serve(state.clone()).await;
    let token = support::bench_token(&reqwest::Client::new(), &format!("http://{addr}")).await;

    let base = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(SUBSCRIBERS * EVENTS)));
    let received = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(AtomicUsize::new(0));
    let rss_before = support::rss_mib("self");
    let connecting = Instant::now();
    let mut clients = Vec::with_capacity(SUBSCRIBERS);
    for chunk in 0..SUBSCRIBERS / 50 {
        let mut batch = Vec::new();
        for _ in 0..50 {
            let url = format!("ws://{addr}/ws?token={token}");
            batch.push(tokio::spawn(async move {
                let client_config = WebSocketConfig::default().read_buffer_size(4096);
                let (mut socket, _) =
                    tokio_tungstenite::connect_async_with_config(url, Some(client_config), false)
                        .await
                        .unwrap_or_else(|error| {
                            panic!("connect failed ({error}); is `ulimit -n` at least 2100?")
                        });
                socket.next().await.expect("auth reply").expect("frame");
                socket
                    .send(Message::Text(
                        json!({"type": "subscribe", "topics": ["user.*"]})
                            .to_string()
                            .into(),
                    ))
                    .await
                    .expect("subscribe");
                socket
                    .next()
                    .await
                    .expect("subscribe reply")
                    .expect("frame");
                socket
            }));
        }
        for connected in batch {
            let mut socket = connected.await.expect("client");
            let (latencies, received, ready) = (latencies.clone(), received.clone(), ready.clone());
            ready.fetch_add(1, Ordering::Relaxed);
            clients.push(tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let arrived = base.elapsed().as_secs_f64();
                    let event: Value = serde_json::from_str(text.as_str()).expect("json");
                    if let Some(sent) = event["data"]["sent"].as_f64() {
                        latencies.lock().expect("lock").push(arrived - sent);
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        if chunk == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let connect_time = connecting.elapsed();
    let rss_connected = support::rss_mib("self");

    let cpu_before = process_cpu_seconds();
    let mut last_arrivals = Vec::with_capacity(EVENTS);
    for sequence in 0..EVENTS {
        let expected = (sequence + 1) * SUBSCRIBERS;
        let sent = base.elapsed().as_secs_f64();
        state
            .events
            .publish("user.bench", json!({"sequence": sequence, "sent": sent}));
        let deadline = Instant::now() + Duration::from_secs(30);
        while received.load(Ordering::Relaxed) < expected {
            assert!(Instant::now() < deadline, "deliveries stalled");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        last_arrivals.push(base.elapsed().as_secs_f64() - sent);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Includes the 50 ms pauses' idle wake-ups, which cost next to nothing.
    let cpu_per_event = (process_cpu_seconds() - cpu_before) / EVENTS as f64;
    // In publishing order: a slow first event is a cold start, a slow
    // event anywhere else is the machine or the host.
    let in_order: Vec<String> = last_arrivals
        .iter()
        .map(|seconds| format!("{:.1}", seconds * 1000.0))
        .collect();
    let mut all = latencies.lock().expect("lock").clone();
    all.sort_by(f64::total_cmp);
    last_arrivals.sort_by(f64::total_cmp);
    let ms = |seconds: f64| seconds * 1000.0;
    println!(
        "xcore WebSocket fan-out ({} cores): {SUBSCRIBERS} subscribers, {EVENTS} events, {} deliveries",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        all.len()
    );
    println!(
        "connect + auth + subscribe of {SUBSCRIBERS} clients: {:.2} s",
        connect_time.as_secs_f64()
    );
    println!(
        "delivery latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(percentile(&all, 1.0))
    );
    support::report_target(
        "websocket",
        "1,000 subscribers: delivery p99",
        support::Goal::AtMost(20.0),
        ms(percentile(&all, 0.99)),
        "ms",
    );
    println!(
        "until the last subscriber had it: p50 {:.2} ms, max {:.2} ms",
        ms(percentile(&last_arrivals, 0.5)),
        ms(percentile(&last_arrivals, 1.0))
    );
    println!(
        "until the last subscriber had it, per event in publishing order (ms): {}",
        in_order.join(" ")
    );
    println!(
        "CPU time per event, server and clients together: {:.2} ms (steadier than latency on a busy machine)",
        ms(cpu_per_event)
    );
    println!(
        "process RSS (server and clients): {rss_before:.1} MiB before, {rss_connected:.1} MiB with {} sockets open",
        ready.load(Ordering::Relaxed)
    );
    for client in clients {
        client.abort();
    }
}
