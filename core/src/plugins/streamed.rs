//! Streamed plugin bodies over HTTP: a response whose body the plugin
//! produces piece by piece (`Response::stream` in the SDK) is pulled one
//! chunk at a time, on the blocking pool, only as fast as the client
//! reads, so a large export never sits whole in host or plugin memory.
//!
//! The body holds the route's generation, like a request does: a reload
//! or a disable during the transfer lets it finish on the old library,
//! which closes after the last chunk. A client that goes away drops the
//! body, and the plugin is told to drop its producer (`close_stream`). A
//! producer that fails or panics ends the transfer early: the client sees
//! the body cut short (no final chunk), the host logs why.

use std::sync::Arc;

use axum::body::{Body, Bytes};

use super::generation::Generation;

/// The body of a streamed answer: `first` (what the handler returned with
/// the stream), then the chunks of `stream` until the plugin says the end.
pub fn body(generation: Arc<Generation>, stream: u64, first: Vec<u8>) -> Body {
    let pull = Pull {
        generation,
        stream,
        finished: false,
    };
    let first = (!first.is_empty()).then(|| Bytes::from(first));
    let chunks = futures_util::stream::unfold((pull, first), |(mut pull, first)| async move {
        if let Some(first) = first {
            return Some((Ok(first), (pull, None)));
        }
        if pull.finished {
            return None;
        }
        let (generation, stream) = (pull.generation.clone(), pull.stream);
        let next = tokio::task::spawn_blocking(move || generation.next_chunk(stream)).await;
        let item = match next {
            Ok(Ok(Some(chunk))) => Ok(Bytes::from(chunk)),
            Ok(Ok(None)) => {
                // Ended: the plugin has let go; Drop must not close it.
                pull.finished = true;
                drop(pull);
                return None;
            }
            Ok(Err(reason)) => {
                pull.finished = true;
                Err(pull.failed(&reason))
            }
            Err(join) => {
                // The plugin's stream may still be open: Drop closes it.
                Err(pull.failed(&join.to_string()))
            }
        };
        Some((item, (pull, None)))
    });
    Body::from_stream(chunks)
}

/// One body's hold on its stream.
struct Pull {
    generation: Arc<Generation>,
    stream: u64,
    /// The plugin has let go of the stream (ended or failed).
    finished: bool,
}

impl Pull {
    fn failed(&self, reason: &str) -> std::io::Error {
        tracing::warn!(
            plugin = self.generation.id.as_str(),
            reason,
            "streamed body failed; the transfer is cut short"
        );
        std::io::Error::other(format!("the plugin's stream failed: {reason}"))
    }
}

impl Drop for Pull {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The client went away mid-body: the producer may hold a database
        // cursor or a file, so release it now, off the async workers.
        let (generation, stream) = (self.generation.clone(), self.stream);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || generation.close_stream(stream));
            }
            Err(_) => generation.close_stream(stream),
        }
    }
}
