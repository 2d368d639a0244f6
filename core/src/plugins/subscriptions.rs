//! Events delivered to the plugins that subscribe to them (the manifest's
//! `subscriptions`, declared with `Router::on`), and the start signal of a
//! plugin with a start hook.
//!
//! One task per serving generation that needs either: it subscribes to
//! the bus when the generation goes live, sends the start signal first,
//! then hands matching events to the instance one at a time, in the order
//! they were published, on the blocking pool (a handler may query the
//! database or sleep), never on a request's path. The bus subscription is
//! the bounded queue: a plugin that falls `plugins.event_queue` events
//! behind loses the oldest, and they are counted.
//!
//! Failures are the SDK's to report: it catches a listener's panic or error
//! and tells the host through `HostOp::HandlerFailed` on the same thread,
//! which lands in [`report_failure`]. A panic counts toward the plugin's
//! quarantine like a route's.

use std::{
    cell::RefCell,
    sync::{Arc, Weak},
    time::Duration,
};

use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::{
    broadcast::{self, error::RecvError},
    mpsc,
};
use xcore_plugin_sdk::router::{topic_matches, Event as PluginEvent, START_SIGNAL};

use super::generation::{Generation, Serving};
use crate::events::{Event, EventBus};

/// `xcore_plugin_events_total{plugin, outcome}`: delivered, failed,
/// panicked, dropped (the plugin fell behind).
#[derive(Clone, Debug)]
pub struct DeliveryMetrics {
    events: IntCounterVec,
}

impl DeliveryMetrics {
    /// Registers the counter.
    pub fn new(registry: &Registry) -> anyhow::Result<Self> {
        let events = IntCounterVec::new(
            Opts::new(
                "xcore_plugin_events_total",
                "Events handed to subscribing plugins, by outcome",
            ),
            &["plugin", "outcome"],
        )?;
        registry.register(Box::new(events.clone()))?;
        Ok(Self { events })
    }

    fn count(&self, plugin: &str, outcome: &str, by: u64) {
        self.events.with_label_values(&[plugin, outcome]).inc_by(by);
    }
}

/// What the SDK reported during one delivery on this thread.
#[derive(Default)]
struct Outcome {
    failed: bool,
    panicked: bool,
}

thread_local! {
    static DELIVERY: RefCell<Option<Outcome>> = const { RefCell::new(None) };
}

/// Records a failure the SDK reported (`HostOp::HandlerFailed`) for the
/// delivery running on this thread, and logs it.
pub fn report_failure(plugin: &str, kind: &str, topic: &str, message: &str, panicked: bool) {
    tracing::error!(
        plugin,
        kind,
        topic,
        panicked,
        error = message,
        "plugin event handler failed"
    );
    DELIVERY.with(|delivery| {
        if let Some(outcome) = delivery.borrow_mut().as_mut() {
            outcome.failed = true;
            outcome.panicked |= panicked;
        }
    });
}

/// Starts delivering to `generation` if its manifest subscribes to topics
/// or has a start hook; `queue` bounds the events waiting for it.
pub fn start(
    manager: &Arc<dyn Serving>,
    bus: &EventBus,
    metrics: &DeliveryMetrics,
    generation: &Arc<Generation>,
    queue: usize,
) {
    let manifest = &generation.manifest;
    if manifest.subscriptions.is_empty() && !manifest.on_start {
        return;
    }
    // Subscribed now, before the start signal: nothing published after the
    // generation went live is missed.
    let receiver = bus.subscribe();
    let (sender, waiting) = mpsc::channel(queue.max(1));
    let listener = Listener {
        manager: Arc::downgrade(manager),
        generation: Arc::downgrade(generation),
        plugin: generation.id.clone(),
        metrics: metrics.clone(),
    };
    tokio::spawn(forward(
        receiver,
        sender,
        manifest.subscriptions.clone(),
        generation.id.clone(),
        metrics.clone(),
    ));
    tokio::spawn(listener.run(waiting, manifest.on_start));
}

/// Moves the events a plugin subscribes to from the bus into its queue,
/// dropping (and counting) what does not fit: the bus never waits for a
/// plugin. Ends when the listener does.
async fn forward(
    mut bus: broadcast::Receiver<Arc<Event>>,
    queue: mpsc::Sender<Arc<Event>>,
    patterns: Vec<String>,
    plugin: String,
    metrics: DeliveryMetrics,
) {
    loop {
        let event = match bus.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                metrics.count(&plugin, "dropped", missed);
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if !patterns
            .iter()
            .any(|pattern| topic_matches(pattern, &event.topic))
        {
            continue;
        }
        match queue.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    plugin = plugin.as_str(),
                    "plugin fell behind its events; one was dropped"
                );
                metrics.count(&plugin, "dropped", 1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

struct Listener {
    manager: Weak<dyn Serving>,
    generation: Weak<Generation>,
    plugin: String,
    metrics: DeliveryMetrics,
}

impl Listener {
    async fn run(self, mut waiting: mpsc::Receiver<Arc<Event>>, on_start: bool) {
        // The start hook runs once the generation serves (the manager
        // publishes it right after it goes live), so what it does (run a
        // job, call another plugin) finds the plugin in service; events
        // meanwhile wait in the queue.
        let mut pause = Duration::from_millis(10);
        while !self.serving() {
            if self.generation.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
        if on_start {
            let signal = PluginEvent {
                topic: START_SIGNAL.into(),
                timestamp: crate::db::timestamp::now(),
                ..PluginEvent::default()
            };
            if !self.deliver(signal, "start").await {
                return;
            }
        }
        while let Some(event) = waiting.recv().await {
            // Only the generation that serves gets events: a disabled
            // plugin, or the old generation during a reload, skips them.
            if !self.serving() {
                if self.generation.strong_count() == 0 {
                    return;
                }
                continue;
            }
            let event = PluginEvent {
                id: event.id.clone(),
                topic: event.topic.clone(),
                data: event.data.clone(),
                timestamp: event.timestamp.clone(),
            };
            if !self.deliver(event, "event").await {
                return;
            }
        }
    }

    /// Whether this generation is the one in the route table.
    fn serving(&self) -> bool {
        let (Some(manager), Some(generation)) = (self.manager.upgrade(), self.generation.upgrade())
        else {
            return false;
        };
        let table = manager.table();
        table
            .generations()
            .iter()
            .any(|live| Arc::ptr_eq(live, &generation))
    }

    /// Hands one event to the instance on the blocking pool and accounts
    /// for it; false once the generation is gone.
    async fn deliver(&self, event: PluginEvent, kind: &'static str) -> bool {
        let Some(generation) = self.generation.upgrade() else {
            return false;
        };
        let Ok(text) = serde_json::to_string(&event) else {
            return true;
        };
        let handed = tokio::task::spawn_blocking(move || {
            DELIVERY.with(|delivery| *delivery.borrow_mut() = Some(Outcome::default()));
            generation.on_event(&text);
            let outcome = DELIVERY.with(|delivery| delivery.borrow_mut().take());
            let outcome = outcome.unwrap_or_default();
            let streak = generation.record_outcome(outcome.panicked);
            (outcome, streak)
        })
        .await;
        let Ok((outcome, streak)) = handed else {
            return true;
        };
        let label = match (&outcome, kind) {
            (Outcome { panicked: true, .. }, _) => "panicked",
            (Outcome { failed: true, .. }, _) => "failed",
            (_, "start") => "started",
            _ => "delivered",
        };
        self.metrics.count(&self.plugin, label, 1);
        if outcome.panicked {
            if let Some(manager) = self.manager.upgrade() {
                if streak == manager.quarantine_after_panics() {
                    manager.quarantine_later(&self.plugin, streak);
                }
            }
        }
        true
    }
}
