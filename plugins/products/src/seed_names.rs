//! Seed 003's spellings of the catalogue's names, accepted alongside the
//! API's own snake_case ones.
//!
//! - `GET /` query: `name` (= `search`), `minPrice` (= `price_min`),
//!   `maxPrice` (= `price_max`), `categoryId` (= `category_id`),
//!   `isActive` (= `is_active`) and `pageSize` (= `page_size`). The
//!   [`SeedQuery`] extractor renames them before anything else reads the
//!   query, refuses parameters the list does not know (a typo never
//!   silently widens a list) and maps the names in later errors back to the
//!   spelling the client used.
//! - Product bodies (`POST /`, `PUT /{id}`, `POST /bulk` rows):
//!   `categoryId` (= `category_id`), `isActive` (`true` = status `active`,
//!   `false` = `inactive`) and, for updates, `clearCategory: true` (=
//!   `category_id: null`); see [`product_fields`].
//!
//! Both spellings of one name may be sent only if they agree: different
//! values are a 422 naming the seed spelling and the value it conflicts
//! with, since picking either one would silently drop what the client
//! said. Query values are compared as text (`minPrice=5&price_min=5.00`
//! disagree), body values as JSON. `name` is the whole full-text search
//! (name, SKU and description), not a name-only filter: the seed's name
//! box is the catalogue's search box.

use std::borrow::Cow;

use serde_json::Map;
use xcore_plugin_sdk::{extract::FromRequest, listing, openapi::Operation, prelude::*};

use crate::{catalogue::problems_response, fields::FieldProblem};

/// `(seed spelling, API name)` of `GET /`'s parameters.
pub const QUERY_ALIASES: [(&str, &str); 6] = [
    ("name", "search"),
    ("minPrice", "price_min"),
    ("maxPrice", "price_max"),
    ("categoryId", "category_id"),
    ("isActive", "is_active"),
    ("pageSize", "page_size"),
];

/// Every API name `GET /` reads: its filters and sort ([`ListParams`]
/// fields) and the window (`page`/`page_size`, `skip`/`limit`).
///
/// [`ListParams`]: crate::catalogue::ListParams
pub const LIST_PARAMETERS: [&str; 14] = [
    "search",
    "supplier_id",
    "category_id",
    "status",
    "is_active",
    "price_min",
    "price_max",
    "sort_by",
    "order",
    "sort_order",
    "page",
    "page_size",
    "skip",
    "limit",
];

/// `GET /`'s query with the seed spellings renamed; holds the renames, so
/// an error about `price_min` names `minPrice` when the client sent that.
#[derive(Clone, Debug, Default)]
pub struct SeedQuery {
    renamed: Vec<(&'static str, &'static str)>,
}

impl SeedQuery {
    /// The name the client used for the API name `field`.
    pub fn spelling<'a>(&self, field: &'a str) -> &'a str {
        self.renamed
            .iter()
            .find(|(_, api)| *api == field)
            .map_or(field, |(seed, _)| seed)
    }

    /// `problems` named as the client named them.
    pub fn respell(&self, problems: Vec<FieldProblem>) -> Vec<FieldProblem> {
        problems
            .into_iter()
            .map(|problem| FieldProblem {
                field: self.spelling(&problem.field).to_string(),
                message: problem.message,
            })
            .collect()
    }

    /// A 422 from an extractor that ran on the renamed query, with its
    /// fields named as the client named them.
    fn respell_response(&self, mut response: Response) -> Response {
        if self.renamed.is_empty() {
            return response;
        }
        if let Some(error) = response.error.as_mut() {
            for detail in &mut error.details {
                detail.field = self.spelling(&detail.field).to_string();
            }
        }
        response
    }
}

impl FromRequest for SeedQuery {
    const READS: Reads = Reads::QUERY;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        let mut problems = Vec::new();
        let query = &request.head.query;
        for (name, _) in query {
            let known = LIST_PARAMETERS.contains(&name.as_str())
                || QUERY_ALIASES.iter().any(|(seed, _)| seed == name);
            if !known && !problems.iter().any(|p: &FieldProblem| p.field == *name) {
                problems.push(FieldProblem::new(
                    name,
                    format!(
                        "unknown parameter; known: {} (or seed 003's {})",
                        LIST_PARAMETERS.join(", "),
                        QUERY_ALIASES.map(|(seed, _)| seed).join(", ")
                    ),
                ));
            }
        }
        let mut renamed = Vec::new();
        for (seed, api) in QUERY_ALIASES {
            let Some(value) = request.query(seed) else {
                continue;
            };
            match request.query(api) {
                Some(other) if other.trim() != value.trim() => problems.push(FieldProblem::new(
                    seed,
                    format!(
                        "conflicts with {api}={other}: {seed} and {api} are the same parameter; \
                         give one, or the same value in both"
                    ),
                )),
                _ => renamed.push((seed, api)),
            }
        }
        if !problems.is_empty() {
            return Err(problems_response(&problems));
        }
        // The API name goes where the seed name was; when both were sent
        // (with the same value) the seed one is dropped.
        let had_api: Vec<&str> = renamed
            .iter()
            .filter(|(_, api)| request.query(api).is_some())
            .map(|(_, api)| *api)
            .collect();
        request.head.query = std::mem::take(&mut request.head.query)
            .into_iter()
            .filter_map(
                |(name, value)| match renamed.iter().find(|(seed, _)| *seed == name) {
                    Some((_, api)) if had_api.contains(api) => None,
                    Some((_, api)) => Some((api.to_string(), value)),
                    None => Some((name, value)),
                },
            )
            .collect();
        let names = SeedQuery { renamed };
        // The window's own checks, so a bad `pageSize` is named as sent.
        listing::window(request).map_err(|response| names.respell_response(response))?;
        Ok(names)
    }

    fn document(operation: &mut Operation) {
        // Unknown names get this extractor's own 422 (with the seed names).
        operation.checks_query_names();
        for (seed, api, schema) in [
            (
                "name",
                "search",
                json!({"type": "string", "maxLength": 200}),
            ),
            (
                "minPrice",
                "price_min",
                json!({"type": "number", "minimum": 0}),
            ),
            (
                "maxPrice",
                "price_max",
                json!({"type": "number", "minimum": 0}),
            ),
            (
                "categoryId",
                "category_id",
                json!({"type": "integer", "minimum": 1}),
            ),
            ("isActive", "is_active", json!({"type": "boolean"})),
            (
                "pageSize",
                "page_size",
                json!({"type": "integer", "minimum": 1, "maximum": 100}),
            ),
        ] {
            operation.add_parameter(json!({
                "name": seed, "in": "query", "required": false, "schema": schema,
                "description": format!("Seed 003's name for {api}; both may be given only with the same value"),
            }));
        }
    }
}

/// A product body with the seed spellings turned into the API's names,
/// and the problems doing so found (conflicting spellings, a flag that is
/// not a boolean, `clearCategory` in a create). `update` is true for
/// `PUT /{id}`, the only body where `clearCategory` means something.
pub fn product_fields(
    object: &Map<String, Value>,
    update: bool,
) -> (Cow<'_, Map<String, Value>>, Vec<FieldProblem>) {
    let seeded = ["categoryId", "isActive", "clearCategory"];
    if !seeded.iter().any(|name| object.contains_key(*name)) {
        return (Cow::Borrowed(object), Vec::new());
    }
    let mut fields = object.clone();
    let mut problems = Vec::new();
    if let Some(value) = fields.remove("categoryId") {
        match fields.get("category_id") {
            Some(other) if *other != value => problems.push(FieldProblem::new(
                "categoryId",
                format!("conflicts with category_id ({other}): give one, or the same value"),
            )),
            _ => {
                fields.insert("category_id".into(), value);
            }
        }
    }
    match fields.remove("isActive") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(active)) => {
            let status = fields
                .get("status")
                .and_then(Value::as_str)
                .and_then(crate::fields::Status::parse);
            let agrees = match status {
                None => true,
                Some(crate::fields::Status::Active) => active,
                Some(_) => !active,
            };
            if !agrees {
                problems.push(FieldProblem::new(
                    "isActive",
                    format!(
                        "conflicts with status ({}): isActive true is status active, false is \
                         inactive or draft",
                        fields["status"]
                    ),
                ));
            } else if status.is_none() && !fields.contains_key("status") {
                let status = if active { "active" } else { "inactive" };
                fields.insert("status".into(), json!(status));
            }
        }
        Some(_) => problems.push(FieldProblem::new("isActive", "must be true or false")),
    }
    match fields.remove("clearCategory") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(_) if !update => problems.push(FieldProblem::new(
            "clearCategory",
            "only for updates (PUT): a new product without a category simply gives none",
        )),
        Some(Value::Bool(true)) => match fields.get("category_id") {
            Some(Value::Null) | None => {
                fields.insert("category_id".into(), Value::Null);
            }
            Some(other) => problems.push(FieldProblem::new(
                "clearCategory",
                format!("conflicts with category_id ({other}): clear it or set it, not both"),
            )),
        },
        Some(_) => problems.push(FieldProblem::new("clearCategory", "must be true or false")),
    }
    (Cow::Owned(fields), problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    fn fields_of(problems: &[FieldProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn seed_body_names_become_the_api_names() {
        let body = object(json!({"sku": "A", "categoryId": 3, "isActive": false}));
        let (fields, problems) = product_fields(&body, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(fields["category_id"], 3);
        assert_eq!(fields["status"], "inactive");
        assert!(!fields.contains_key("categoryId"));
        let clear = object(json!({"clearCategory": true}));
        let (fields, problems) = product_fields(&clear, true);
        assert!(problems.is_empty());
        assert_eq!(fields["category_id"], Value::Null);
        // Agreeing spellings are fine; untouched bodies are not copied.
        let same = object(
            json!({"categoryId": 3, "category_id": 3, "isActive": false, "status": "draft"}),
        );
        let (fields, problems) = product_fields(&same, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(fields["status"], "draft");
        let plain = object(json!({"sku": "A"}));
        assert!(matches!(product_fields(&plain, false).0, Cow::Borrowed(_)));
    }

    #[test]
    fn conflicting_spellings_are_problems() {
        let body = object(json!({
            "categoryId": 3, "category_id": 4, "isActive": true, "status": "inactive",
            "clearCategory": true
        }));
        let (_, problems) = product_fields(&body, true);
        assert_eq!(
            fields_of(&problems),
            vec!["categoryId", "isActive", "clearCategory"]
        );
        let (_, problems) = product_fields(&object(json!({"clearCategory": true})), false);
        assert_eq!(fields_of(&problems), vec!["clearCategory"]);
        let (_, problems) = product_fields(&object(json!({"isActive": "yes"})), false);
        assert_eq!(fields_of(&problems), vec!["isActive"]);
    }
}
