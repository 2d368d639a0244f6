//! The standard list body `{total, skip, limit, items, has_more, page,
//! page_size, total_pages}` and the `skip`/`limit`/`sort_by`/`sort_order`
//! rules shared by every list route. Each list's query type denies unknown
//! parameters, so a filter is never silently ignored.

use serde::Serialize;

use crate::error::{ApiError, FieldError};

/// Page size when the client gives none.
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest page size a client may ask for.
pub const MAX_LIMIT: i64 = 100;

/// A validated window into a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows skipped.
    pub skip: i64,
    /// Rows returned at most.
    pub limit: i64,
}

impl PageRequest {
    /// Validates raw `skip`/`limit`, reporting each bad one.
    pub fn from_query(skip: Option<i64>, limit: Option<i64>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let skip = skip.unwrap_or(0);
        if skip < 0 {
            errors.push(FieldError::new("skip", "must be >= 0"));
        }
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        if errors.is_empty() {
            Ok(Self { skip, limit })
        } else {
            Err(errors)
        }
    }
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

impl SortOrder {
    /// SQL keyword.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }
}

/// Resolves `sort_by`/`sort_order` against an allow-list mapping public field
/// names to SQL columns, so a client can never inject SQL through sorting.
pub fn resolve_sort(
    sort_by: Option<&str>,
    sort_order: Option<&str>,
    allowed: &[(&str, &'static str)],
    default: (&'static str, SortOrder),
) -> Result<(&'static str, SortOrder), Vec<FieldError>> {
    let mut errors = Vec::new();
    let column = match sort_by {
        None => default.0,
        Some(name) => match allowed.iter().find(|(public, _)| *public == name) {
            Some((_, column)) => column,
            None => {
                let names: Vec<&str> = allowed.iter().map(|(public, _)| *public).collect();
                errors.push(FieldError::new(
                    "sort_by",
                    format!("unknown sort field {name:?}; one of {}", names.join(", ")),
                ));
                default.0
            }
        },
    };
    let order = match sort_order.map(str::to_ascii_lowercase).as_deref() {
        None => default.1,
        Some("asc") => SortOrder::Asc,
        Some("desc") => SortOrder::Desc,
        Some(other) => {
            errors.push(FieldError::new(
                "sort_order",
                format!("must be asc or desc, got {other:?}"),
            ));
            default.1
        }
    };
    if errors.is_empty() {
        Ok((column, order))
    } else {
        Err(errors)
    }
}

/// The window and the sort of a list request, every bad parameter reported
/// in one 422.
pub fn window_and_sort(
    skip: Option<i64>,
    limit: Option<i64>,
    sort_by: Option<&str>,
    sort_order: Option<&str>,
    allowed: &[(&str, &'static str)],
    default: (&'static str, SortOrder),
) -> Result<(PageRequest, &'static str, SortOrder), ApiError> {
    match (
        PageRequest::from_query(skip, limit),
        resolve_sort(sort_by, sort_order, allowed, default),
    ) {
        (Ok(window), Ok((column, order))) => Ok((window, column, order)),
        (window, sort) => Err(ApiError::validation(
            window
                .err()
                .into_iter()
                .chain(sort.err())
                .flatten()
                .collect(),
        )),
    }
}

/// Declares a list route's query type: the route's own filters followed by
/// the standard `skip`, `limit`, `sort_by` and `sort_order`. The type
/// denies unknown parameters (a misspelt filter is a 422, never ignored),
/// documents itself for OpenAPI (`params(TheQuery)` in `#[utoipa::path]`)
/// and resolves its window and sort with [`window_and_sort`].
///
/// ```ignore
/// list_query! {
///     /// `GET /system/plugins` query.
///     pub struct ListQuery {
///         sort_by: "id (default), name, state or version",
///         /// Only the plugins serving requests.
///         #[serde(default)]
///         active_only: bool,
///     }
/// }
/// ```
macro_rules! list_query {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            sort_by: $sort_doc:literal
            $(, $(#[$field_meta:meta])* $field:ident : $type:ty)* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        $vis struct $name {
            $($(#[$field_meta])* $field: $type,)*
            /// Items to skip (default 0).
            #[param(minimum = 0)]
            skip: Option<i64>,
            /// Page size (default 20, max 100).
            #[param(minimum = 1, maximum = 100)]
            limit: Option<i64>,
            #[doc = $sort_doc]
            sort_by: Option<String>,
            /// asc (default) or desc.
            sort_order: Option<String>,
        }

        impl $name {
            /// The requested window and sort, every bad parameter in one 422.
            fn window_and_sort(
                &self,
                allowed: &[(&str, &'static str)],
                default: (&'static str, $crate::http::pagination::SortOrder),
            ) -> Result<
                (
                    $crate::http::pagination::PageRequest,
                    &'static str,
                    $crate::http::pagination::SortOrder,
                ),
                $crate::error::ApiError,
            > {
                $crate::http::pagination::window_and_sort(
                    self.skip,
                    self.limit,
                    self.sort_by.as_deref(),
                    self.sort_order.as_deref(),
                    allowed,
                    default,
                )
            }
        }
    };
}
pub(crate) use list_query;

/// Sorts rows held in memory (plugins, tasks: few rows) by a resolved sort
/// field. `by_field` compares two rows on `field` (anything it does not
/// know compares equal); the id breaks ties, ascending unless the client
/// sorted by id descending, so pages are stable.
pub fn sort_in_memory<T, K: Ord + ?Sized>(
    rows: &mut [T],
    field: &str,
    order: SortOrder,
    by_field: impl Fn(&T, &T) -> std::cmp::Ordering,
    id: impl Fn(&T) -> &K,
) {
    rows.sort_by(|a, b| {
        let by_field = match order {
            SortOrder::Asc => by_field(a, b),
            SortOrder::Desc => by_field(a, b).reverse(),
        };
        by_field.then_with(|| match (field, order) {
            ("id", SortOrder::Desc) => id(b).cmp(id(a)),
            _ => id(a).cmp(id(b)),
        })
    });
}

/// The standard list body.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// Rows matching the filters, ignoring the window.
    pub total: i64,
    /// Echo of the window start.
    pub skip: i64,
    /// Echo of the window size.
    pub limit: i64,
    /// The rows in the window.
    pub items: Vec<T>,
    /// Whether rows exist past this window.
    pub has_more: bool,
    /// The window as a page number (1-based), for page-number clients.
    pub page: i64,
    /// Echo of the window size, for page-number clients.
    pub page_size: i64,
    /// Pages of `page_size` that hold `total` (at least 1).
    pub total_pages: i64,
}

impl<T> Page<T> {
    /// Builds the body for a window.
    pub fn new(items: Vec<T>, total: i64, window: PageRequest) -> Self {
        let limit = window.limit.max(1);
        Self {
            // Saturating: a client may ask for any skip up to i64::MAX.
            has_more: window.skip.saturating_add(items.len() as i64) < total,
            total,
            skip: window.skip,
            limit: window.limit,
            items,
            page: (window.skip / limit).saturating_add(1),
            page_size: window.limit,
            total_pages: (total / limit + i64::from(total % limit != 0)).max(1),
        }
    }

    /// The window of a list held in memory (plugins, tasks: few rows).
    pub fn from_all(all: Vec<T>, window: PageRequest) -> Self {
        let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
        let skip = usize::try_from(window.skip).unwrap_or(usize::MAX);
        let limit = usize::try_from(window.limit).unwrap_or(usize::MAX);
        let items = all.into_iter().skip(skip).take(limit).collect();
        Self::new(items, total, window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced() {
        assert_eq!(
            PageRequest::from_query(None, None),
            Ok(PageRequest { skip: 0, limit: 20 })
        );
        assert!(PageRequest::from_query(Some(-1), Some(101)).is_err_and(|e| e.len() == 2));
        assert!(PageRequest::from_query(None, Some(0)).is_err());
        assert!(PageRequest::from_query(None, Some(100)).is_ok());
    }

    #[test]
    fn sort_is_allow_listed() {
        let allowed = [("email", "email"), ("created_at", "created_at")];
        let default = ("id", SortOrder::Asc);
        assert_eq!(
            resolve_sort(Some("email"), Some("DESC"), &allowed, default),
            Ok(("email", SortOrder::Desc))
        );
        assert!(resolve_sort(Some("password_hash"), None, &allowed, default).is_err());
        assert!(resolve_sort(None, Some("sideways"), &allowed, default).is_err());
    }

    #[test]
    fn page_numbers_follow_the_window() {
        let page = Page::from_all(
            (1..=45).collect(),
            PageRequest {
                skip: 40,
                limit: 20,
            },
        );
        assert_eq!((page.page, page.page_size, page.total_pages), (3, 20, 3));
        assert_eq!(page.items, vec![41, 42, 43, 44, 45]);
        assert!(!page.has_more);
        let empty = Page::<i32>::from_all(Vec::new(), PageRequest { skip: 0, limit: 20 });
        assert_eq!((empty.page, empty.total_pages, empty.total), (1, 1, 0));
    }

    #[test]
    fn the_largest_skip_does_not_overflow() {
        let page = Page::new(
            vec![1],
            5,
            PageRequest {
                skip: i64::MAX,
                limit: 1,
            },
        );
        assert_eq!(page.page, i64::MAX);
        assert!(!page.has_more);
    }

    #[test]
    fn has_more_reflects_the_window() {
        let window = PageRequest { skip: 0, limit: 2 };
        assert!(Page::new(vec![1, 2], 3, window).has_more);
        assert!(!Page::new(vec![1, 2], 2, window).has_more);
    }
}
