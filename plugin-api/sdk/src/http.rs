//! Requests and responses as a plugin sees them, and the standard error
//! and list bodies.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
};

use abi_stable::std_types::RStr;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};
use xcore_plugin_api::ffi::{FfiPair, FfiRequest};

/// Who is calling, as the host authenticated them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub user_id: i64,
    /// Email.
    pub email: String,
    /// Permission names.
    pub permissions: Vec<String>,
}

/// Everything about a request but its body, owned by the plugin (built from
/// the borrowed [`crate::ffi::FfiRequest`] the host hands over).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestHead {
    /// HTTP method, upper case.
    pub method: String,
    /// Path relative to the plugin's prefix, e.g. `/greetings/7`.
    pub path: String,
    /// The route pattern that matched, e.g. `/greetings/{id}`.
    pub route: String,
    /// Path parameters by name.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Query parameters in order (a name may repeat).
    #[serde(default)]
    pub query: Vec<(String, String)>,
    /// Request headers, names lower-case.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The authenticated caller, if any.
    #[serde(default)]
    pub caller: Option<Caller>,
    /// The host's request id, for logs.
    #[serde(default)]
    pub request_id: String,
}

/// An owned copy: `RStr::to_string` goes through `Display`, several times
/// slower than a plain copy on the request path.
fn owned_str(text: RStr<'_>) -> String {
    text.as_str().to_owned()
}

/// Owned copies of borrowed pairs, collected into whatever the head uses.
fn owned<'p, C: FromIterator<(String, String)>>(pairs: &'p [FfiPair<'p>]) -> C {
    pairs
        .iter()
        .map(|pair| (owned_str(pair.name), owned_str(pair.value)))
        .collect()
}

/// Parts of a request, as a set: what an extractor reads
/// ([`FromRequest::READS`](crate::extract::FromRequest::READS)). The host
/// lends the request to the plugin; the SDK copies into the handler's
/// [`Request`] only the parts its extractors name, so a route that takes
/// `Path<i64>` does not pay for copying every header and every permission
/// name of the caller. Parts left out are empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads(u8);

impl Reads {
    /// Nothing (a handler with no extractor).
    pub const NOTHING: Self = Self(0);
    /// `method`, `path`, `route` and `request_id`.
    pub const ROUTE: Self = Self(1);
    /// Path parameters.
    pub const PARAMS: Self = Self(1 << 1);
    /// Query parameters.
    pub const QUERY: Self = Self(1 << 2);
    /// Headers.
    pub const HEADERS: Self = Self(1 << 3);
    /// The caller.
    pub const CALLER: Self = Self(1 << 4);
    /// The body.
    pub const BODY: Self = Self(1 << 5);
    /// Every part: what an extractor that does not say reads.
    pub const EVERYTHING: Self = Self((1 << 6) - 1);

    /// Both sets.
    pub const fn and(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every part of `part` is in the set.
    pub const fn has(self, part: Self) -> bool {
        self.0 & part.0 == part.0
    }
}

impl RequestHead {
    /// The owned head of a request the host handed over.
    pub fn from_ffi(request: &FfiRequest<'_>) -> Self {
        Self::from_ffi_reading(request, Reads::EVERYTHING)
    }

    /// The parts of the head in `reads`, the others left empty.
    pub fn from_ffi_reading(request: &FfiRequest<'_>, reads: Reads) -> Self {
        let route = reads.has(Reads::ROUTE);
        let text = |wanted: bool, text: RStr<'_>| {
            if wanted {
                owned_str(text)
            } else {
                String::new()
            }
        };
        Self {
            method: text(route, request.method),
            path: text(route, request.path),
            route: text(route, request.route),
            params: if reads.has(Reads::PARAMS) {
                owned(request.params.as_slice())
            } else {
                BTreeMap::new()
            },
            query: if reads.has(Reads::QUERY) {
                owned(request.query.as_slice())
            } else {
                Vec::new()
            },
            headers: if reads.has(Reads::HEADERS) {
                owned(request.headers.as_slice())
            } else {
                BTreeMap::new()
            },
            caller: if reads.has(Reads::CALLER) {
                request.caller.as_ref().into_option().map(|caller| Caller {
                    user_id: caller.user_id,
                    email: owned_str(caller.email),
                    permissions: caller.permissions.iter().map(|p| owned_str(*p)).collect(),
                })
            } else {
                None
            },
            request_id: text(route, request.request_id),
        }
    }
}

/// A request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Method, path, parameters, caller.
    pub head: RequestHead,
    /// Raw body.
    pub body: Vec<u8>,
}

impl Request {
    /// The parts in `reads` of a request the host handed over, copied.
    pub fn from_ffi_reading(request: &FfiRequest<'_>, reads: Reads) -> Self {
        Self {
            head: RequestHead::from_ffi_reading(request, reads),
            body: if reads.has(Reads::BODY) {
                request.body.as_slice().to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// A path parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.head.params.get(name).map(String::as_str)
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.head
            .query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A path parameter parsed as `T`, or a 422 naming it.
    pub fn param_as<T: std::str::FromStr>(&self, name: &str) -> Result<T, Response> {
        self.param(name)
            .and_then(|raw| raw.parse().ok())
            .ok_or_else(|| Response::invalid(name, "invalid path parameter"))
    }

    /// The body as JSON `T`: 400 if it is not JSON, 422 if it has the wrong
    /// shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Response> {
        let value: Value = serde_json::from_slice(&self.body).map_err(|error| {
            Response::error(
                400,
                "VALIDATION_ERROR",
                &format!("malformed JSON body: {error}"),
            )
        })?;
        read(value).map_err(|(field, message)| Response::invalid(&field, &message))
    }
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for an `error` or a `stream`).
    pub body: Vec<u8>,
    /// A standard error: it crosses to the host as is, and the host renders
    /// the body once with its `timestamp` and `request_id`. Read it as JSON
    /// with [`Response::body_bytes`].
    /// (Boxed: handlers return `Result<_, Response>` everywhere, and the
    /// error path should not make every such result large.)
    pub error: Option<Box<StandardError>>,
    /// A body produced piece by piece (see [`Response::stream`]).
    pub stream: Option<BodyStream>,
}

/// The parts of the standard error body a plugin chooses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StandardError {
    /// Machine-readable code (`NOT_FOUND`, `VALIDATION_ERROR`, ...).
    pub code: String,
    /// Message for people.
    pub message: String,
    /// One entry per offending field.
    pub details: Vec<ErrorDetail>,
}

/// One offending field of a [`StandardError`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    /// The field, as the client named it.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// What a streamed body is made of: chunks, or the reason it stopped.
pub type Chunks = Box<dyn Iterator<Item = Result<Vec<u8>, String>> + Send>;

/// A body produced piece by piece: the host pulls one chunk at a time while
/// the client reads, so a large export never sits whole in memory. Clones
/// share the one iterator (the first to take it owns it).
#[derive(Clone)]
pub struct BodyStream(Arc<Mutex<Option<Chunks>>>);

impl BodyStream {
    /// Wraps the chunks.
    pub fn new(chunks: impl Iterator<Item = Result<Vec<u8>, String>> + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Some(Box::new(chunks)))))
    }

    /// Takes the chunks (once).
    pub fn take(&self) -> Option<Chunks> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Runs the stream to its end, for a caller that wants the whole body
    /// (tests, a plugin reading its own export).
    pub fn collect(&self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        for chunk in self.take().into_iter().flatten() {
            body.extend(chunk?);
        }
        Ok(body)
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyStream")
    }
}

impl PartialEq for BodyStream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for BodyStream {}

impl Response {
    /// A JSON body.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                headers: vec![("content-type".into(), "application/json".into())],
                body,
                ..Self::empty(status)
            },
            Err(error) => Self::error(
                500,
                "PLUGIN_ERROR",
                &format!("cannot encode the response: {error}"),
            ),
        }
    }

    /// No body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            error: None,
            stream: None,
        }
    }

    /// A body of `content_type` produced piece by piece by `chunks` while
    /// the client reads it: memory stays bounded by one chunk, whatever the
    /// size of the whole. An `Err` chunk ends the transfer early (the client
    /// sees it cut short; the host logs the reason). The iterator runs on
    /// the host's blocking pool, one `next` at a time, and is dropped when
    /// the client goes away.
    pub fn stream(
        status: u16,
        content_type: &str,
        chunks: impl Iterator<Item = Result<Vec<u8>, String>> + Send + 'static,
    ) -> Self {
        Self {
            headers: vec![("content-type".into(), content_type.into())],
            stream: Some(BodyStream::new(chunks)),
            ..Self::empty(status)
        }
    }

    /// A JSON answer read back (a stored reply, another plugin's answer to
    /// `Host::call`): a standard error body becomes a structured error
    /// again, so the host renders it with this request's `timestamp` and
    /// `request_id`; any other value is the JSON body.
    pub fn from_json(status: u16, body: &Value) -> Self {
        let error = &body["error"];
        match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) if status >= 400 => {
                let details: Vec<(&str, &str)> = error["details"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|detail| {
                        Some((detail["field"].as_str()?, detail["message"].as_str()?))
                    })
                    .collect();
                Self::error_with_details(status, code, message, &details)
            }
            _ => Self::json(status, body),
        }
    }

    /// The body as bytes: the standard error body (without the host's
    /// `timestamp` and `request_id`) for an error, else `body`. A stream's
    /// chunks are not read.
    pub fn body_bytes(&self) -> Cow<'_, [u8]> {
        match &self.error {
            Some(error) => Cow::Owned(json!({ "error": error }).to_string().into_bytes()),
            None => Cow::Borrowed(&self.body),
        }
    }

    /// The standard error body, rendered by the host.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::error_with_details(status, code, message, &[])
    }

    /// The standard error body with one detail per field, for any status:
    /// a batch refused as a whole (409 for the rows whose SKU exists, say)
    /// still tells the client which rows and fields were at fault.
    pub fn error_with_details(
        status: u16,
        code: &str,
        message: &str,
        details: &[(&str, &str)],
    ) -> Self {
        Self {
            error: Some(Box::new(StandardError {
                code: code.into(),
                message: message.into(),
                details: details
                    .iter()
                    .map(|(field, message)| ErrorDetail {
                        field: (*field).into(),
                        message: (*message).into(),
                    })
                    .collect(),
            })),
            ..Self::empty(status)
        }
    }

    /// 422 with one entry per field: `(field, message)`.
    pub fn validation(details: &[(&str, &str)]) -> Self {
        let message = match details {
            [(field, message)] => format!("{field}: {message}"),
            _ => "Validation failed".to_string(),
        };
        Self::error_with_details(422, "VALIDATION_ERROR", &message, details)
    }

    /// 422 for one field.
    pub fn invalid(field: &str, message: &str) -> Self {
        Self::validation(&[(field, message)])
    }

    /// 404.
    pub fn not_found(message: &str) -> Self {
        Self::error(404, "NOT_FOUND", message)
    }

    /// 409.
    pub fn conflict(message: &str) -> Self {
        Self::error(409, "CONFLICT", message)
    }

    /// 500 for a failure inside the plugin.
    pub fn plugin_error(message: &str) -> Self {
        Self::error(500, "PLUGIN_ERROR", message)
    }
}

/// Lets handlers use `?` on `Result<_, Response>`.
pub type HandlerResult = Result<Response, Response>;

/// The standard list body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ListBody<T> {
    /// Rows matching the filters.
    pub total: i64,
    /// Rows skipped.
    pub skip: i64,
    /// Window size.
    pub limit: i64,
    /// The rows.
    pub items: Vec<T>,
    /// More rows exist past the window.
    pub has_more: bool,
    /// The page, when the client paged with `page`/`page_size` (see
    /// [`crate::listing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// The page size, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    /// The number of pages, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<i64>,
}

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: i64 = 100;

/// Reads `skip`/`limit` (default 0/20, limit 1..=100) from the query.
pub fn window(request: &Request) -> Result<(i64, i64), Response> {
    let number = |name: &str, default: i64| match request.query(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<i64>()
            .map_err(|_| (name.to_string(), "must be an integer".to_string())),
    };
    let mut problems = Vec::new();
    let skip = number("skip", 0).unwrap_or_else(|p| {
        problems.push(p);
        0
    });
    let limit = number("limit", 20).unwrap_or_else(|p| {
        problems.push(p);
        20
    });
    if skip < 0 {
        problems.push(("skip".into(), "must be >= 0".into()));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        problems.push((
            "limit".into(),
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    if problems.is_empty() {
        Ok((skip, limit))
    } else {
        let details: Vec<(&str, &str)> = problems
            .iter()
            .map(|(f, m)| (f.as_str(), m.as_str()))
            .collect();
        Err(Response::validation(&details))
    }
}

impl<T> ListBody<T> {
    /// Builds the body for a window.
    pub fn new(items: Vec<T>, total: i64, skip: i64, limit: i64) -> Self {
        Self {
            has_more: skip + (items.len() as i64) < total,
            total,
            skip,
            limit,
            items,
            page: None,
            page_size: None,
            total_pages: None,
        }
    }
}

/// `T` from a JSON value, or the path of the field that did not fit and
/// serde's reason.
pub(crate) fn read<T: DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        // A missing or unknown field is reported at the parent ("."), with
        // the field's name in the message between backticks.
        let field = if path == "." || path.is_empty() {
            message
                .split('`')
                .nth(1)
                .map_or_else(|| "body".to_string(), str::to_string)
        } else {
            path
        };
        (field, message)
    })
}
