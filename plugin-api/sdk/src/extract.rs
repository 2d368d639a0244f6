//! Extractors: what a handler takes besides the plugin state, each read
//! from the request before the handler runs (axum's idea, without async).
//!
//! A handler is a plain function `fn(&Plugin, A, B, ...) -> R` where every
//! argument implements [`FromRequest`] and `R` implements
//! [`IntoResponse`](crate::IntoResponse). A body, path or query that does
//! not fit answers the standard error body naming the field (400 for a body
//! that is not JSON, 422 for a value of the wrong shape) before the handler
//! is called. Extractors that take the body ([`Json`], [`Body`],
//! [`Multipart`](crate::multipart::Multipart), [`Request`]) go last.
//!
//! Each extractor also says what it adds to the route's OpenAPI operation
//! ([`FromRequest::document`]), which is how the document is generated.

use serde::de::DeserializeOwned;
use serde_json::Value;

use utoipa::ToSchema;

use crate::{
    http::{read, Caller, Reads, Request, Response},
    openapi::Operation,
};

/// Something a handler can take as an argument.
pub trait FromRequest: Sized {
    /// The parts of the request `from_request` reads. The SDK copies into
    /// a handler's [`Request`] only what its extractors name (the other
    /// parts are empty), so naming fewer makes every call of its routes
    /// cheaper; a part read but not named would be seen empty. Everything
    /// unless said otherwise.
    const READS: Reads = Reads::EVERYTHING;

    /// Reads it from the request; an `Err` is answered as is.
    fn from_request(request: &mut Request) -> Result<Self, Response>;

    /// What it adds to the route's OpenAPI operation.
    fn document(_operation: &mut Operation) {}
}

/// A JSON body read into `T`: 400 when it is not JSON, 422 naming the field
/// when it has the wrong shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + ToSchema> FromRequest for Json<T> {
    const READS: Reads = Reads::BODY;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        request.json().map(Json)
    }

    fn document(operation: &mut Operation) {
        operation.request_body::<T>();
    }
}

/// Path parameters read into `T`: a struct with one field per `{name}` of
/// the route, or a single value for a route with one parameter. A value
/// that does not parse is a 422 naming the parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Path<T> {
    const READS: Reads = Reads::PARAMS;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        let params = &request.head.params;
        // One parameter reads into a bare value (`Path<i64>`) as well as
        // into a struct with one field.
        if let [(name, raw)] = params.iter().collect::<Vec<_>>().as_slice() {
            if let Ok(value) = read::<T>(typed(raw)).or_else(|_| read(Value::from(raw.as_str()))) {
                return Ok(Path(value));
            }
            // Not a bare value: a struct with the one field, or a 422
            // naming the parameter.
            return read_fields([(*name, *raw)].into_iter())
                .map(Path)
                .map_err(|_| Response::invalid(name, "invalid path parameter"));
        }
        read_fields(params.iter())
            .map(Path)
            .map_err(|(field, _)| Response::invalid(&field, "invalid path parameter"))
    }
}

/// Query parameters read into `T` (serde, like a form): a value of the
/// wrong type is a 422 naming the parameter. Add
/// `#[serde(deny_unknown_fields)]` to refuse parameters the route does not
/// know instead of ignoring them. A repeated name keeps its first value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + ToSchema> FromRequest for Query<T> {
    const READS: Reads = Reads::QUERY;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        let mut seen = std::collections::BTreeSet::new();
        let first = request
            .head
            .query
            .iter()
            .filter(|(name, _)| seen.insert(name.as_str()))
            .map(|(name, raw)| (name, raw));
        read_fields(first)
            .map(Query)
            .map_err(|(field, message)| Response::invalid(&field, &message))
    }

    fn document(operation: &mut Operation) {
        operation.query_parameters::<T>();
    }
}

/// Reads named text values into `T`: each value typed as it most likely
/// is (so numeric and boolean fields work), and when that does not fit,
/// the culprit retried as text (so `q=42` still reads into a `String`).
/// The error names the field.
fn read_fields<'v, T: DeserializeOwned>(
    fields: impl Iterator<Item = (&'v String, &'v String)>,
) -> Result<T, (String, String)> {
    let fields: Vec<(&String, &String)> = fields.collect();
    let mut object: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(name, raw)| ((*name).clone(), typed(raw)))
        .collect();
    loop {
        match read::<T>(Value::Object(object.clone())) {
            Ok(value) => return Ok(value),
            Err((field, message)) => {
                // Retry the field as text once; a second failure is final.
                match object.get_mut(&field) {
                    Some(value) if !value.is_string() => {
                        let raw = fields
                            .iter()
                            .find(|(name, _)| **name == field)
                            .map(|(_, raw)| raw.as_str())
                            .unwrap_or_default();
                        *value = Value::from(raw);
                    }
                    _ => return Err((field, message)),
                }
            }
        }
    }
}

/// A path or query text as the JSON value it most likely is, so numeric
/// and boolean fields deserialize; text fields are retried as text.
fn typed(raw: &str) -> Value {
    if let Ok(integer) = raw.parse::<i64>() {
        return Value::from(integer);
    }
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => match raw.parse::<f64>() {
            Ok(number) if number.is_finite() && !raw.contains(['e', 'E', 'n', 'N', 'i', 'I']) => {
                Value::from(number)
            }
            _ => Value::from(raw),
        },
    }
}

/// The authenticated caller; 401 on a public route called anonymously.
/// Take `Option<Caller>` where anonymity is fine.
impl FromRequest for Caller {
    const READS: Reads = Reads::CALLER;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        request
            .head
            .caller
            .clone()
            .ok_or_else(|| Response::error(401, "AUTHENTICATION_ERROR", "authentication required"))
    }
}

impl FromRequest for Option<Caller> {
    const READS: Reads = Reads::CALLER;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        Ok(request.head.caller.clone())
    }
}

/// The raw body, taken from the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body(pub Vec<u8>);

impl FromRequest for Body {
    const READS: Reads = Reads::BODY;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        Ok(Body(std::mem::take(&mut request.body)))
    }
}

/// The request headers (names lower-case; the host leaves credentials out).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub std::collections::BTreeMap<String, String>);

impl FromRequest for Headers {
    const READS: Reads = Reads::HEADERS;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        Ok(Headers(request.head.headers.clone()))
    }
}

/// The whole request, taken: for the rare handler that needs everything.
impl FromRequest for Request {
    fn from_request(request: &mut Request) -> Result<Self, Response> {
        Ok(std::mem::take(request))
    }
}

/// The `{id}` of a route: a positive integer. Anything else is a 404 (not
/// a 422): no resource can have that id, so the answer is the one a
/// missing row gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Id(pub i64);

impl Id {
    /// Reads the `{id}` parameter, or the 404 `message` when it is not a
    /// positive integer: for an extractor of its own that names what is
    /// missing (`"no product has this id"`).
    pub fn read(request: &Request, message: &str) -> Result<i64, Response> {
        request
            .param("id")
            .and_then(|raw| raw.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .ok_or_else(|| Response::not_found(message))
    }

    /// Documents the `{id}` path parameter as a positive 64-bit integer.
    pub fn document_parameter(operation: &mut Operation) {
        operation.add_parameter(serde_json::json!({
            "name": "id", "in": "path", "required": true,
            "schema": {"type": "integer", "format": "int64", "minimum": 1},
        }));
    }
}

impl FromRequest for Id {
    const READS: Reads = Reads::PARAMS;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        Id::read(request, "nothing has this id").map(Id)
    }

    fn document(operation: &mut Operation) {
        Id::document_parameter(operation);
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::http::RequestHead;

    fn request(params: &[(&str, &str)], query: &[(&str, &str)]) -> Request {
        let mut request = Request::default();
        request.head.params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        request.head.query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        request
    }

    #[derive(Debug, Deserialize, PartialEq, ToSchema)]
    struct Filters {
        q: Option<String>,
        min: Option<f64>,
        active: Option<bool>,
    }

    #[test]
    fn path_reads_a_value_or_a_struct_and_names_a_bad_parameter() {
        let Path(id) = Path::<i64>::from_request(&mut request(&[("id", "7")], &[])).expect("id");
        assert_eq!(id, 7);
        let Path(sku) =
            Path::<String>::from_request(&mut request(&[("sku", "0042")], &[])).expect("sku");
        assert_eq!(sku, "0042");
        let bad = Path::<i64>::from_request(&mut request(&[("id", "7x")], &[])).expect_err("bad");
        assert_eq!(bad.status, 422);
        assert!(String::from_utf8_lossy(&bad.body_bytes()).contains("\"field\":\"id\""));
        #[derive(Deserialize)]
        struct Pair {
            product: i64,
            line: i64,
        }
        let Path(pair) =
            Path::<Pair>::from_request(&mut request(&[("product", "1"), ("line", "2")], &[]))
                .expect("pair");
        assert_eq!((pair.product, pair.line), (1, 2));
    }

    #[test]
    fn query_types_values_keeps_text_as_text_and_names_what_does_not_fit() {
        let Query(filters) = Query::<Filters>::from_request(&mut request(
            &[],
            &[("q", "42"), ("min", "2.5"), ("active", "true")],
        ))
        .expect("filters");
        assert_eq!(
            filters,
            Filters {
                q: Some("42".into()),
                min: Some(2.5),
                active: Some(true)
            }
        );
        let bad = Query::<Filters>::from_request(&mut request(&[], &[("min", "cheap")]))
            .expect_err("bad");
        assert_eq!(bad.status, 422);
        let body = String::from_utf8_lossy(&bad.body_bytes()).to_string();
        assert!(body.contains("min"), "{body}");
        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Strict {
            q: Option<String>,
        }
        let unknown = Query::<Strict>::from_request(&mut request(&[], &[("sort", "x")]))
            .expect_err("unknown");
        assert!(String::from_utf8_lossy(&unknown.body_bytes()).contains("sort"));
    }

    #[test]
    fn caller_is_required_unless_optional() {
        assert_eq!(
            Caller::from_request(&mut request(&[], &[]))
                .expect_err("anonymous")
                .status,
            401
        );
        assert_eq!(
            Option::<Caller>::from_request(&mut request(&[], &[])).ok(),
            Some(None)
        );
    }

    #[test]
    fn id_is_a_positive_integer_and_anything_else_is_a_404() {
        let Id(id) = Id::from_request(&mut request(&[("id", "42")], &[])).expect("id");
        assert_eq!(id, 42);
        for raw in ["0", "-3", "x", "1.5", "99999999999999999999"] {
            let missing = Id::from_request(&mut request(&[("id", raw)], &[])).expect_err(raw);
            assert_eq!(missing.status, 404, "{raw}");
            let body = String::from_utf8_lossy(&missing.body_bytes()).to_string();
            assert!(body.contains("nothing has this id"), "{raw}: {body}");
        }
        let named = Id::read(&request(&[("id", "0")], &[]), "no product has this id");
        let named = named.expect_err("zero");
        let body = named.body_bytes();
        assert!(String::from_utf8_lossy(&body).contains("no product has this id"));
        assert!(
            Id::from_request(&mut request(&[], &[])).is_err(),
            "no id at all"
        );
    }

    /// Every built-in extractor names the parts it reads, and reads the
    /// same thing from a request holding only those parts as from the whole
    /// request: a part it reads but does not name would come out empty and
    /// change the result (or the error) here.
    #[test]
    fn each_extractor_reads_the_same_from_the_parts_it_names() {
        use abi_stable::std_types::{RSlice, RStr};
        use xcore_plugin_api::ffi::{FfiCaller, FfiPair, FfiRequest};

        use crate::{
            listing::{Sort, SortColumns, Window},
            multipart::Multipart,
        };

        #[derive(Debug, Deserialize, PartialEq)]
        struct Ids {
            id: i64,
            stage_id: i64,
        }
        #[derive(Debug, PartialEq)]
        struct ByName;
        impl SortColumns for ByName {
            const COLUMNS: &'static [(&'static str, &'static str)] = &[("name", "name")];
            const DEFAULT: (&'static str, &'static str) = ("name", "ASC");
            const TIEBREAK: &'static str = "id";
        }

        fn same<E: FromRequest + PartialEq + std::fmt::Debug>(request: &FfiRequest<'_>) {
            let name = std::any::type_name::<E>();
            assert_ne!(E::READS, Reads::EVERYTHING, "{name} names no parts");
            let whole = E::from_request(&mut Request::from_ffi_reading(request, Reads::EVERYTHING));
            let named = E::from_request(&mut Request::from_ffi_reading(request, E::READS));
            assert_eq!(named, whole, "{name}");
        }

        let params = [FfiPair::new("id", "7"), FfiPair::new("stage_id", "3")];
        let query = [
            FfiPair::new("q", "lamp"),
            FfiPair::new("min", "2.5"),
            FfiPair::new("active", "true"),
            FfiPair::new("limit", "5"),
            FfiPair::new("sort_by", "name"),
            FfiPair::new("sort_order", "desc"),
        ];
        let json = [
            FfiPair::new("content-type", "application/json"),
            FfiPair::new("accept", "*/*"),
        ];
        let permissions = [RStr::from_str("items:read"), RStr::from_str("items:write")];
        let whole =
            |headers: &[FfiPair<'static>], body: &'static [u8], test: &dyn Fn(&FfiRequest<'_>)| {
                test(&FfiRequest {
                    method: RStr::from_str("POST"),
                    path: RStr::from_str("/items/7/stages/3"),
                    route: RStr::from_str("/items/{id}/stages/{stage_id}"),
                    route_index: 0,
                    params: RSlice::from_slice(&params),
                    query: RSlice::from_slice(&query),
                    headers: RSlice::from_slice(headers),
                    caller: Some(FfiCaller {
                        user_id: 9,
                        email: RStr::from_str("ann@example.com"),
                        permissions: RSlice::from_slice(&permissions),
                    })
                    .into(),
                    request_id: RStr::from_str("req_1"),
                    body: RSlice::from_slice(body),
                })
            };
        whole(
            &json,
            br#"{"q":"lamp","min":1.5,"active":true}"#,
            &|request| {
                same::<Json<Filters>>(request);
                same::<Path<Ids>>(request);
                same::<Query<Filters>>(request);
                same::<Caller>(request);
                same::<Option<Caller>>(request);
                same::<Body>(request);
                same::<Headers>(request);
                same::<Id>(request);
                same::<Window>(request);
                same::<Sort<ByName>>(request);
                // Not a form: the refusal names the content type it saw.
                same::<Multipart>(request);
            },
        );
        let form = [FfiPair::new(
            "content-type",
            "multipart/form-data; boundary=b",
        )];
        whole(
            &form,
            b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n",
            &|request| {
                let parsed = Multipart::from_request(&mut Request::from_ffi_reading(
                    request,
                    Multipart::READS,
                ))
                .expect("a form");
                assert_eq!(parsed.required_text("a").ok(), Some("1"));
                same::<Multipart>(request);
            },
        );
        // And the request a handler with no extractor gets: nothing copied.
        whole(&json, b"{}", &|request| {
            assert_eq!(
                Request::from_ffi_reading(request, Reads::NOTHING),
                Request::default()
            );
            let every = Request::from_ffi_reading(request, Reads::EVERYTHING);
            assert_eq!(every.head, RequestHead::from_ffi(request));
            assert_eq!(every.head.request_id, "req_1");
            assert_eq!(every.body, b"{}");
        });
    }
}
