//! `multipart/form-data` request bodies (RFC 7578), as the [`Multipart`]
//! extractor: file uploads and the text fields sent with them.
//!
//! Parsing is multer's (the parser behind axum's multipart): the host has
//! already read the whole body, bounded by the route's body limit, so the
//! stream multer reads is one ready chunk and its future is polled to the
//! end on the calling thread, with no runtime.
//!
//! Errors are [`Response`]s: 400 `VALIDATION_ERROR` for a body that is not
//! well-formed multipart, 422 naming the field for a missing or wrong part.
//!
//! ```
//! use xcore_plugin_sdk::{extract::FromRequest, multipart::Multipart, Request};
//!
//! let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"supplier_id\"\r\n\r\n42\r\n\
//! --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\
//! Content-Type: text/csv\r\n\r\nref;nom\r\n--XyZ--\r\n";
//! let mut request = Request::default();
//! request.head.headers.insert("content-type".into(), "multipart/form-data; boundary=XyZ".into());
//! request.body = body.to_vec();
//!
//! let form = Multipart::from_request(&mut request).unwrap();
//! assert_eq!(form.text("supplier_id"), Some("42"));
//! let file = form.file("file").unwrap();
//! assert_eq!(file.filename.as_deref(), Some("a.csv"));
//! assert_eq!(file.bytes, b"ref;nom");
//! ```

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use serde_json::json;

use crate::{
    extract::FromRequest,
    http::{Reads, Request, Response},
    openapi::Operation,
};

/// Parts accepted in one body: a form is a handful of fields, so more than
/// this is a broken or hostile client, not a bigger upload.
pub const MAX_PARTS: usize = 64;

/// One part of the form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The form field name (`Content-Disposition: form-data; name=...`).
    pub name: String,
    /// The file name, for file parts (`filename=...`), as the client sent it.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if given.
    pub content_type: Option<String>,
    /// The content, exactly as sent.
    pub bytes: Vec<u8>,
}

impl Part {
    /// Whether the client sent this part as a file.
    pub fn is_file(&self) -> bool {
        self.filename.is_some()
    }
}

/// A parsed form: its parts in the order they came.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Multipart {
    /// Every part, in order.
    pub parts: Vec<Part>,
}

/// The name plugins built before the extractor existed used.
pub type Form = Multipart;

fn malformed(message: &str) -> Response {
    Response::error(
        400,
        "VALIDATION_ERROR",
        &format!("malformed multipart/form-data body: {message}"),
    )
}

impl FromRequest for Multipart {
    const READS: Reads = Reads::HEADERS.and(Reads::BODY);

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        let content_type = request
            .head
            .headers
            .get("content-type")
            .map(String::as_str)
            .unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("multipart/form-data") {
            let got = if media_type.is_empty() {
                "no Content-Type"
            } else {
                media_type
            };
            return Err(Response::error(
                400,
                "VALIDATION_ERROR",
                &format!("expected a multipart/form-data body, got {got}"),
            ));
        }
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| malformed("the Content-Type has no usable boundary parameter"))?;
        Self::parse(std::mem::take(&mut request.body), &boundary)
    }

    fn document(operation: &mut Operation) {
        operation.request_body_raw("multipart/form-data", json!({"type": "object"}));
    }
}

impl Multipart {
    /// Parses `body` with `boundary` (without the leading `--`).
    pub fn parse(body: Vec<u8>, boundary: &str) -> Result<Self, Response> {
        let chunk: Result<Vec<u8>, std::convert::Infallible> = Ok(body);
        let stream = futures_util::stream::once(async move { chunk });
        let mut reader = multer::Multipart::new(stream, boundary);
        let parse = async move {
            let mut parts = Vec::new();
            while let Some(field) = reader.next_field().await? {
                if parts.len() == MAX_PARTS {
                    return Ok(Err(malformed(&format!("more than {MAX_PARTS} parts"))));
                }
                let Some(name) = field.name().map(str::to_string) else {
                    return Ok(Err(malformed("a part has no name")));
                };
                let filename = field.file_name().map(str::to_string);
                let content_type = field.content_type().map(ToString::to_string);
                let bytes = field.bytes().await?.to_vec();
                parts.push(Part {
                    name,
                    filename,
                    content_type,
                    bytes,
                });
            }
            Ok::<_, multer::Error>(Ok(Multipart { parts }))
        };
        match run_ready(parse) {
            Some(Ok(outcome)) => outcome,
            Some(Err(error)) => Err(malformed(&error.to_string())),
            None => Err(malformed("the body ended early")),
        }
    }

    /// The first part named `name`.
    pub fn get(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|part| part.name == name)
    }

    /// The first part named `name` as UTF-8 text, if it is a text field.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
            .filter(|part| !part.is_file())
            .and_then(|part| std::str::from_utf8(&part.bytes).ok())
    }

    /// The first file part named `name`.
    pub fn file(&self, name: &str) -> Option<&Part> {
        self.get(name).filter(|part| part.is_file())
    }

    /// A required text field, or a 422 naming it.
    pub fn required_text(&self, name: &str) -> Result<&str, Response> {
        match self.get(name) {
            None => Err(Response::invalid(name, "required")),
            Some(part) if part.is_file() => {
                Err(Response::invalid(name, "must be a text field, not a file"))
            }
            Some(part) => std::str::from_utf8(&part.bytes)
                .map_err(|_| Response::invalid(name, "must be UTF-8 text")),
        }
    }

    /// A required file part, or a 422 naming it.
    pub fn required_file(&self, name: &str) -> Result<&Part, Response> {
        match self.get(name) {
            None => Err(Response::invalid(name, "required (a file part)")),
            Some(part) if !part.is_file() => Err(Response::invalid(
                name,
                "must be a file part (with a filename)",
            )),
            Some(part) => Ok(part),
        }
    }
}

/// Polls a future whose every input is already in memory to its end.
/// `None` if it ever waits, which only a bug could cause: there is nothing
/// to wait for, and spinning would hang the request.
fn run_ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(content_type: &str, body: &[u8]) -> Result<Multipart, Response> {
        let mut request = Request::default();
        request
            .head
            .headers
            .insert("content-type".into(), content_type.into());
        request.body = body.to_vec();
        Multipart::from_request(&mut request)
    }

    const TYPE: &str = "multipart/form-data; boundary=b";

    #[test]
    fn fields_and_files_in_order() {
        let body = b"preamble\r\n--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.csv\"\r\nContent-Type: text/csv\r\n\r\nl1\r\nl2\r\n--b--\r\nepilogue";
        let parsed = form(TYPE, body).expect("parses");
        assert_eq!(parsed.parts.len(), 2);
        assert_eq!(parsed.required_text("a").ok(), Some("1"));
        let file = parsed.required_file("f").expect("file");
        assert_eq!(file.bytes, b"l1\r\nl2");
        assert_eq!(file.content_type.as_deref(), Some("text/csv"));
        assert_eq!(parsed.required_text("f").map_err(|r| r.status), Err(422));
        assert_eq!(parsed.required_file("a").map_err(|r| r.status), Err(422));
        assert_eq!(
            parsed.required_text("missing").map_err(|r| r.status),
            Err(422)
        );
    }

    #[test]
    fn broken_bodies_are_400() {
        for (content_type, body) in [
            ("application/json", &b"{}"[..]),
            ("multipart/form-data", &b"--b--"[..]),
            (
                TYPE,
                &b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end"[..],
            ),
            (
                TYPE,
                &b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"[..],
            ),
        ] {
            assert_eq!(
                form(content_type, body).map(|_| ()).map_err(|r| r.status),
                Err(400),
                "{content_type} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn too_many_parts_are_refused() {
        let mut body = Vec::new();
        for n in 0..=MAX_PARTS {
            body.extend_from_slice(
                format!("--b\r\nContent-Disposition: form-data; name=\"p{n}\"\r\n\r\nx\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(b"--b--\r\n");
        assert_eq!(
            form(TYPE, &body).map(|_| ()).map_err(|r| r.status),
            Err(400)
        );
    }
}
