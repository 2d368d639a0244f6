//! Lists as the ARCHITECTURE contract has them, for plugins whose clients
//! page either way.
//!
//! Clients page with `skip`/`limit` (the host's convention) or with the
//! seed's `page`/`page_size`; either way the body is the standard list body,
//! and a client that paged by page also gets `page`, `page_size` and
//! `total_pages` back (ARCHITECTURE, "Lists"). Sorting takes `sort_by` from
//! a per-route list and `sort_order` (or the seed's `order`) `asc`/`desc`.

use crate::http::{ListBody, Request, Response, MAX_PAGE_SIZE};

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
