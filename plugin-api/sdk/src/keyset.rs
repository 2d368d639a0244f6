//! An export of any size as a streamed body: rows read in keyset batches
//! (`WHERE id > $last ORDER BY id LIMIT n`), one chunk per batch, so
//! memory stays at one batch whatever the number of rows.
//!
//! The first batch is read before answering: a query that fails at once is
//! still an error status, not a `200` cut short. A single batch is sent as
//! a plain body; later failures can only end the stream early (the host
//! logs the reason).

use crate::http::Response;

/// One batch written out: its bytes, and the key to read the next batch
/// after (`None` when this was the last).
pub type Batch = (Vec<u8>, Option<i64>);

/// A `200` of `content_type` made of the batches `batch` reads after each
/// key, starting after key `0`.
///
/// The first batch's error is returned as is, for the handler to answer;
/// a later one ends the stream, as the text `describe` makes of it.
pub fn stream<E: 'static>(
    content_type: &str,
    mut batch: impl FnMut(i64) -> Result<Batch, E> + Send + 'static,
    describe: fn(E) -> String,
) -> Result<Response, E> {
    let (first, next) = batch(0)?;
    let mut response = match next {
        Some(after) => Response::stream(
            200,
            content_type,
            Batches {
                batch,
                after: Some(after),
                describe,
            },
        ),
        None => {
            let mut whole = Response::empty(200);
            whole
                .headers
                .push(("content-type".into(), content_type.into()));
            whole
        }
    };
    response.body = first;
    Ok(response)
}

/// The batches after the first, as stream chunks.
struct Batches<F, E> {
    batch: F,
    /// The key to read after; `None` once the last batch is out or one
    /// failed.
    after: Option<i64>,
    describe: fn(E) -> String,
}

impl<F: FnMut(i64) -> Result<Batch, E>, E> Iterator for Batches<F, E> {
    type Item = Result<Vec<u8>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let after = self.after.take()?;
        Some(match (self.batch)(after) {
            Ok((chunk, next)) => {
                self.after = next;
                Ok(chunk)
            }
            Err(error) => Err((self.describe)(error)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of two of the keys `1..=last`, each written as its keys;
    /// reading after `fail_after` fails.
    fn numbers(last: i64, fail_after: Option<i64>) -> impl FnMut(i64) -> Result<Batch, String> {
        move |after| {
            if Some(after) == fail_after {
                return Err(format!("no batch after {after}"));
            }
            let keys: Vec<i64> = (after + 1..=last).take(2).collect();
            let text: String = keys.iter().map(|key| format!("{key};")).collect();
            let next = keys.last().copied().filter(|_| keys.len() == 2);
            Ok((text.into_bytes(), next))
        }
    }

    fn whole(response: &Response) -> Result<String, String> {
        let mut body = response.body.clone();
        if let Some(stream) = &response.stream {
            body.extend(stream.collect()?);
        }
        Ok(String::from_utf8(body).expect("utf-8"))
    }

    #[test]
    fn batches_are_read_after_each_key_until_a_short_one() {
        let response = stream("text/csv", numbers(5, None), |e| e).expect("answer");
        assert_eq!(response.status, 200);
        assert!(response.stream.is_some());
        assert_eq!(response.body, b"1;2;");
        assert_eq!(whole(&response), Ok("1;2;3;4;5;".to_string()));
        assert!(response
            .headers
            .contains(&("content-type".into(), "text/csv".into())));
    }

    #[test]
    fn one_batch_is_a_plain_body() {
        let response = stream("text/csv", numbers(1, None), |e| e).expect("answer");
        assert!(response.stream.is_none());
        assert_eq!(response.body, b"1;");
        assert!(response
            .headers
            .contains(&("content-type".into(), "text/csv".into())));
    }

    #[test]
    fn a_first_failure_is_returned_and_a_later_one_ends_the_stream() {
        let failed = stream("text/csv", numbers(5, Some(0)), |e| e);
        assert_eq!(failed.err(), Some("no batch after 0".to_string()));
        let cut = stream("text/csv", numbers(9, Some(4)), |e| format!("cut: {e}"));
        let cut = cut.expect("the first batch is fine");
        let mut chunks = cut.stream.as_ref().and_then(|s| s.take()).expect("stream");
        assert_eq!(chunks.next(), Some(Ok(b"3;4;".to_vec())));
        assert_eq!(chunks.next(), Some(Err("cut: no batch after 4".into())));
        assert_eq!(chunks.next(), None, "nothing after a failure");
    }
}
