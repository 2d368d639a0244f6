//! Lists as the ARCHITECTURE contract has them, for plugins whose clients
//! page either way.
//!
//! Clients page with `skip`/`limit` (the host's convention) or with the
//! seed's `page`/`page_size`; either way the body is the standard list body,
//! and a client that paged by page also gets `page`, `page_size` and
//! `total_pages` back (ARCHITECTURE, "Lists"). Sorting takes `sort_by` from
//! a per-route list and `sort_order` (or the seed's `order`) `asc`/`desc`.

use std::marker::PhantomData;

use serde_json::json;

use crate::{
    extract::FromRequest,
    http::{ListBody, Reads, Request, Response, MAX_PAGE_SIZE},
    openapi::Operation,
};

/// The rows a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Rows to skip.
    pub skip: i64,
    /// Rows to return.
    pub limit: i64,
    /// Paged with `page`/`page_size`: the body gets the page fields.
    pub paged: bool,
}

/// The window as an extractor: `skip`/`limit` or `page`/`page_size`, with
/// the defaults and maxima above; a bad value is a 422 naming it.
impl FromRequest for Window {
    const READS: Reads = Reads::QUERY;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        window(request)
    }

    fn document(operation: &mut Operation) {
        let integer = |minimum: i64, maximum: i64, default: i64| json!({"type": "integer", "minimum": minimum, "maximum": maximum, "default": default});
        for (name, schema) in [
            (
                "skip",
                json!({"type": "integer", "minimum": 0, "default": 0}),
            ),
            ("limit", integer(1, MAX_PAGE_SIZE, 20)),
            ("page", integer(1, 1_000_000, 1)),
            ("page_size", integer(1, MAX_PAGE_SIZE, 20)),
        ] {
            operation.add_parameter(
                json!({"name": name, "in": "query", "required": false, "schema": schema}),
            );
        }
    }
}

/// The columns a list may be sorted by, for the [`Sort`] extractor.
///
/// ```
/// use xcore_plugin_sdk::listing::SortColumns;
///
/// struct ByName;
/// impl SortColumns for ByName {
///     const COLUMNS: &'static [(&'static str, &'static str)] =
///         &[("name", "g.name"), ("created_at", "g.created_at")];
///     const DEFAULT: (&'static str, &'static str) = ("created_at", "DESC");
///     const TIEBREAK: &'static str = "g.id";
/// }
/// ```
pub trait SortColumns {
    /// API name → column expression (never client text).
    const COLUMNS: &'static [(&'static str, &'static str)];
    /// The API name and direction (`ASC`/`DESC`) used when none is asked.
    const DEFAULT: (&'static str, &'static str);
    /// A unique column that keeps pages stable.
    const TIEBREAK: &'static str;
}

/// `sort_by`/`sort_order` (or `order`) checked against `S`'s columns, as
/// an `ORDER BY` clause body; anything else is a 422 naming the parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sort<S> {
    /// E.g. `g.name ASC, g.id ASC`.
    pub order_by: String,
    columns: PhantomData<S>,
}

impl<S: SortColumns> FromRequest for Sort<S> {
    const READS: Reads = Reads::QUERY;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        order_by(request, S::COLUMNS, S::DEFAULT, S::TIEBREAK).map(|order_by| Sort {
            order_by,
            columns: PhantomData,
        })
    }

    fn document(operation: &mut Operation) {
        let names: Vec<&str> = S::COLUMNS.iter().map(|(name, _)| *name).collect();
        operation.add_parameter(json!({"name": "sort_by", "in": "query", "required": false,
            "schema": {"type": "string", "enum": names, "default": S::DEFAULT.0}}));
        operation.add_parameter(
            json!({"name": "sort_order", "in": "query", "required": false,
            "schema": {"type": "string", "enum": ["asc", "desc"]}}),
        );
        operation.add_parameter(json!({"name": "order", "in": "query", "required": false,
            "description": "Seed spelling of `sort_order`",
            "schema": {"type": "string", "enum": ["asc", "desc"]}}));
    }
}

/// Reads the window; bad values are a 422 naming the parameter.
pub fn window(request: &Request) -> Result<Window, Response> {
    // `skip`/`limit` are checked even when `page` wins: a bad value is never
    // silently ignored.
    let (skip, limit) = crate::http::window(request)?;
    if request.query("page").is_none() && request.query("page_size").is_none() {
        return Ok(Window {
            skip,
            limit,
            paged: false,
        });
    }
    let number = |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| match request
        .query(name)
    {
        None => Ok(default),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                Response::invalid(
                    name,
                    &format!(
                        "must be an integer between {} and {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    };
    let page = number("page", 1, 1..=1_000_000)?;
    let page_size = number("page_size", 20, 1..=MAX_PAGE_SIZE)?;
    Ok(Window {
        skip: (page - 1) * page_size,
        limit: page_size,
        paged: true,
    })
}

/// `ORDER BY` for `sort_by`/`sort_order`: `allowed` maps API names to
/// column expressions (never client text), and `tiebreak` (a unique
/// column) keeps pages stable.
pub fn order_by(
    request: &Request,
    allowed: &[(&str, &str)],
    default: (&str, &str),
    tiebreak: &str,
) -> Result<String, Response> {
    let wanted = request.query("sort_by").unwrap_or(default.0);
    let column = allowed
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, column)| *column)
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
            Response::invalid("sort_by", &format!("must be one of {}", names.join(", ")))
        })?;
    // Both spellings are checked, so `sort_order=desc&order=E` is refused
    // like `order=E` alone; `sort_order` wins when both are valid.
    let mut direction = default.1;
    for name in ["order", "sort_order"] {
        direction = match request.query(name) {
            None => direction,
            Some(order) if order.eq_ignore_ascii_case("asc") => "ASC",
            Some(order) if order.eq_ignore_ascii_case("desc") => "DESC",
            Some(_) => return Err(Response::invalid(name, "must be asc or desc")),
        };
    }
    Ok(format!("{column} {direction}, {tiebreak} {direction}"))
}

/// The standard list body for a window, with the page fields when the
/// client paged by page.
pub fn body<T>(items: Vec<T>, total: i64, window: Window) -> ListBody<T> {
    let mut body = ListBody::new(items, total, window.skip, window.limit);
    if window.paged {
        body.page = Some(window.skip / window.limit + 1);
        body.page_size = Some(window.limit);
        body.total_pages = Some((total + window.limit - 1) / window.limit);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &[(&str, &str)]) -> Request {
        let mut request = Request::default();
        request.head.query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        request
    }

    #[test]
    fn no_parameter_is_silently_ignored() {
        assert!(window(&request(&[("page", "2"), ("skip", "-1")])).is_err());
        assert!(window(&request(&[("page", "2"), ("limit", "x")])).is_err());
        assert!(order_by(
            &request(&[("sort_order", "desc"), ("order", "E")]),
            &[("id", "id")],
            ("id", "ASC"),
            "id"
        )
        .is_err());
    }

    #[test]
    fn pages_and_windows() {
        let paged = window(&request(&[("page", "3"), ("page_size", "10")])).expect("ok");
        assert_eq!((paged.skip, paged.limit, paged.paged), (20, 10, true));
        let body = body(vec![1], 21, paged);
        assert_eq!(body.total_pages, Some(3));
        assert_eq!(body.page, Some(3));
        assert!(!body.has_more);
        assert_eq!(
            super::body(vec![1], 21, window(&request(&[])).expect("ok")).page,
            None
        );
        assert_eq!(
            window(&request(&[("page", "0")])).map_err(|r| r.status),
            Err(422)
        );
        assert_eq!(
            window(&request(&[("limit", "500")])).map_err(|r| r.status),
            Err(422)
        );
        let plain = window(&request(&[("skip", "5")])).expect("ok");
        assert_eq!((plain.skip, plain.limit, plain.paged), (5, 20, false));
    }

    #[test]
    fn sorting_is_limited_to_known_columns() {
        let allowed = [("name", "name"), ("created_at", "created_at")];
        assert_eq!(
            order_by(
                &request(&[("sort_by", "name"), ("order", "DESC")]),
                &allowed,
                ("created_at", "ASC"),
                "id"
            )
            .ok(),
            Some("name DESC, id DESC".to_string())
        );
        // The default names an API column too.
        assert_eq!(
            order_by(
                &request(&[]),
                &[("created_at", "i.created_at")],
                ("created_at", "DESC"),
                "i.id"
            )
            .ok(),
            Some("i.created_at DESC, i.id DESC".to_string())
        );
        assert!(order_by(
            &request(&[("sort_by", "password")]),
            &allowed,
            ("name", "ASC"),
            "id"
        )
        .is_err());
        assert!(order_by(
            &request(&[("sort_order", "up")]),
            &allowed,
            ("name", "ASC"),
            "id"
        )
        .is_err());
    }
}
