//! The in-process event bus: host and plugin events fan out to subscribers
//! through a `tokio::sync::broadcast` channel: WebSocket clients ([`ws`]),
//! the scheduler (plugin lifecycle events) and the plugins that subscribe
//! (`crate::plugins::subscriptions`, which hands each its events in order,
//! off the request path).
//!
//! Publishing never waits: a subscriber that falls more than the channel's
//! capacity behind loses the oldest events and learns it did (`Lagged`),
//! which is what keeps one slow consumer from holding the bus up.

pub mod topics;
pub mod ws;

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for a lagging subscriber before it starts losing them.
const DEFAULT_CAPACITY: usize = 4096;

/// One event.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Event {
    /// Unique id.
    pub id: String,
    /// Dotted topic, e.g. `plugin.loaded`, `products.created`.
    pub topic: String,
    /// Payload.
    pub data: serde_json::Value,
    /// When it was published.
    pub timestamp: String,
    /// The one user it is for (a price alert, an activity assigned to
    /// someone): WebSocket clients get it only on that user's connections.
    /// `None`: everyone allowed to read the topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_user: Option<i64>,
    /// The WebSocket message, encoded once however many clients get it.
    #[serde(skip)]
    wire: OnceLock<Utf8Bytes>,
    /// The permissions that reveal the topic, worked out once for all
    /// sockets rather than once per socket.
    #[serde(skip)]
    readers: OnceLock<Vec<String>>,
}

impl Event {
    /// The permissions any one of which lets a client see this event
    /// ([`ws::permission_for_topic`]).
    pub fn reader_permissions(&self) -> &[String] {
        self.readers
            .get_or_init(|| ws::permission_for_topic(&self.topic))
    }

    /// `{"type":"event","id","topic","data","timestamp"}`, as sent on `/ws`.
    pub fn wire(&self) -> Utf8Bytes {
        self.wire
            .get_or_init(|| {
                #[derive(Serialize)]
                struct Wire<'a> {
                    r#type: &'static str,
                    id: &'a str,
                    topic: &'a str,
                    data: &'a serde_json::Value,
                    timestamp: &'a str,
                }
                let wire = Wire {
                    r#type: "event",
                    id: &self.id,
                    topic: &self.topic,
                    data: &self.data,
                    timestamp: &self.timestamp,
                };
                serde_json::to_string(&wire)
                    .unwrap_or_else(|_| String::from("{}"))
                    .into()
            })
            .clone()
    }
}

/// The bus. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
    published: IntCounterVec,
}

impl EventBus {
    /// Creates the bus and registers `xcore_events_published_total{topic}`.
    pub fn new(registry: &Registry) -> anyhow::Result<Self> {
        let published = IntCounterVec::new(
            Opts::new(
                "xcore_events_published_total",
                "Events published on the bus, by topic",
            ),
            &["topic"],
        )?;
        registry.register(Box::new(published.clone()))?;
        let (sender, _) = broadcast::channel(DEFAULT_CAPACITY);
        Ok(Self { sender, published })
    }

    /// Publishes an event for everyone allowed to read its topic; returns
    /// it. Having no subscriber is fine.
    pub fn publish(&self, topic: &str, data: serde_json::Value) -> Arc<Event> {
        self.publish_for(None, topic, data)
    }

    /// Publishes an event for one user (`to_user`), or for everyone allowed
    /// when `None`; returns it.
    pub fn publish_for(
        &self,
        to_user: Option<i64>,
        topic: &str,
        data: serde_json::Value,
    ) -> Arc<Event> {
        let event = Arc::new(Event {
            id: uuid::Uuid::new_v4().simple().to_string(),
            topic: topic.to_string(),
            data,
            timestamp: crate::db::timestamp::now(),
            to_user,
            wire: OnceLock::new(),
            readers: OnceLock::new(),
        });
        self.published.with_label_values(&[topic]).inc();
        // An error only means nobody is listening right now.
        let _ = self.sender.send(event.clone());
        event
    }

    /// A new subscription, starting with the next event published.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_receive_what_is_published_after_they_subscribe() {
        let registry = Registry::new();
        let bus = EventBus::new(&registry).expect("bus");
        bus.publish("user.login", serde_json::json!({"user_id": 0}));
        let mut first = bus.subscribe();
        let mut second = bus.subscribe();
        let sent = bus.publish("user.login", serde_json::json!({"user_id": 1}));
        assert_eq!(first.recv().await.expect("event"), sent);
        assert_eq!(second.recv().await.expect("event").data["user_id"], 1);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        assert!(
            text.contains(r#"xcore_events_published_total{topic="user.login"} 2"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_instead_of_blocking_the_publisher() {
        let bus = EventBus::new(&Registry::new()).expect("bus");
        let mut slow = bus.subscribe();
        for n in 0..(DEFAULT_CAPACITY + 10) {
            bus.publish("tick", serde_json::json!(n));
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
        assert_eq!(slow.recv().await.expect("oldest kept").data, 10);
    }
}
