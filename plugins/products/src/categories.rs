//! Categories (seed 003) at `/categories`: list (`?activeOnly=true`), get,
//! create, partial update, delete.
//!
//! Names are unique (409 otherwise): two categories called the same are a
//! mistake nobody can tell apart in a picker. A category that products
//! still use cannot be deleted (409 naming how many); products refer to
//! categories by `category_id`, checked on every product write.
//!
//! Input accepts `is_active` and the seed's `isActive`; answers use
//! `is_active`, like the rest of the API.

use serde_json::{json, Map, Value};
use xcore_plugin_api::listing;
use xcore_plugin_api::{Access, HandlerResult, HostError, Request, Response, Router, Row};

use crate::{
    catalogue::{json_object, problems_response},
    clock,
    fields::FieldProblem,
    openapi, Products, DELETE, READ, WRITE,
};

/// Longest category name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

const COLUMNS: &str = "id, name, description, is_active, created_at, updated_at";

/// Categories share migration 1 with products (the product table's foreign
/// key needs them first); nothing more to declare.
pub fn declare(manifest: xcore_plugin_api::Manifest) -> xcore_plugin_api::Manifest {
    manifest
}

/// The category routes.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
        .get(
            "/categories",
            Access::Requires(READ),
            Products::list_categories,
        )
        .post(
            "/categories",
            Access::Requires(WRITE),
            Products::create_category,
        )
        .get(
            "/categories/{id}",
            Access::Requires(READ),
            Products::get_category,
        )
        .put(
            "/categories/{id}",
            Access::Requires(WRITE),
            Products::update_category,
        )
        .delete(
            "/categories/{id}",
            Access::Requires(DELETE),
            Products::delete_category,
        )
}

/// A stored category as the API answers it (`is_active` a boolean on both
/// dialects: SQLite stores 0/1).
pub fn category_json(row: &Row) -> Value {
    let active = match row.get("is_active") {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number.as_i64() != Some(0),
        _ => false,
    };
    json!({
        "id": row.get("id"),
        "name": row.get("name"),
        "description": row.get("description"),
        "is_active": active,
        "created_at": row.get("created_at"),
        "updated_at": row.get("updated_at"),
    })
}

/// A validated category write; `None` leaves a field unchanged (updates).
#[derive(Debug, Default, PartialEq)]
struct CategoryInput {
    name: Option<String>,
    description: Option<Option<String>>,
    is_active: Option<bool>,
}

impl CategoryInput {
    fn parse(object: &Map<String, Value>, create: bool) -> Result<Self, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let mut input = CategoryInput::default();
        for (key, value) in object {
            match key.as_str() {
                "name" => match value.as_str().map(str::trim) {
                    Some("") => {
                        problems.push(FieldProblem::new("name", "must not be empty"));
                    }
                    Some(name) if name.chars().count() > MAX_NAME_CHARS => {
                        problems.push(FieldProblem::new(
                            "name",
                            format!("must be at most {MAX_NAME_CHARS} characters"),
                        ));
                    }
                    Some(name) => input.name = Some(name.to_string()),
                    None => problems.push(FieldProblem::new("name", "must be a string")),
                },
                "description" => match value {
                    Value::Null => input.description = Some(None),
                    Value::String(text) if text.chars().count() > MAX_DESCRIPTION_CHARS => {
                        problems.push(FieldProblem::new(
                            "description",
                            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
                        ));
                    }
                    Value::String(text) => {
                        let text = text.trim();
                        input.description = Some((!text.is_empty()).then(|| text.to_string()));
                    }
                    _ => problems.push(FieldProblem::new("description", "must be a string")),
                },
                "is_active" | "isActive" => match value {
                    Value::Bool(flag) => input.is_active = Some(*flag),
                    _ => problems.push(FieldProblem::new(key, "must be true or false")),
                },
                other => problems.push(FieldProblem::new(
                    other,
                    "unknown field; known fields: name, description, is_active",
                )),
            }
        }
        if create && input.name.is_none() && !problems.iter().any(|p| p.field == "name") {
            problems.push(FieldProblem::new("name", "required"));
        }
        if !create && input == CategoryInput::default() && problems.is_empty() {
            problems.push(FieldProblem::new(
                "body",
                "give at least one of: name, description, is_active",
            ));
        }
        if problems.is_empty() {
            Ok(input)
        } else {
            Err(problems)
        }
    }
}

fn category_id(request: &Request) -> Result<i64, Response> {
    request
        .param("id")
        .and_then(|raw| raw.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| Response::not_found("no such category"))
}

/// A failed host call: a duplicate name is a 409, a foreign-key refusal
/// (products still point at the category) too.
fn host_failure(error: HostError) -> Response {
    let message = error.to_string();
    if crate::catalogue::is_unique_violation(&message, "name") {
        return Response::conflict("a category with this name already exists");
    }
    if message.contains("FOREIGN KEY constraint failed") || message.contains("foreign key") {
        return Response::conflict("products still use this category");
    }
    Response::plugin_error(&message)
}

fn not_found(id: i64) -> Response {
    Response::not_found(&format!("no category {id}"))
}

impl Products {
    fn category_name_taken(&self, name: &str, except: i64) -> Result<bool, Response> {
        Ok(self
            .host
            .query_one(
                "SELECT id FROM products_categories WHERE name = $1 AND id <> $2",
                vec![json!(name), json!(except)],
            )
            .map_err(host_failure)?
            .is_some())
    }

    fn list_categories(&self, request: &Request) -> HandlerResult {
        let window = listing::Window {
            paged: true,
            ..listing::window(request)?
        };
        let raw = request
            .query("activeOnly")
            .or_else(|| request.query("active_only"));
        let active_only = match raw {
            None => false,
            Some(flag) if flag.eq_ignore_ascii_case("true") || flag == "1" => true,
            Some(flag) if flag.eq_ignore_ascii_case("false") || flag == "0" => false,
            Some(_) => return Err(Response::invalid("activeOnly", "must be true or false")),
        };
        let filter = if active_only {
            "WHERE is_active = TRUE"
        } else {
            ""
        };
        let rows = self
            .host
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM products_categories {filter} ORDER BY name ASC, id ASC \
                     LIMIT $1 OFFSET $2"
                ),
                vec![json!(window.limit), json!(window.skip)],
            )
            .map_err(host_failure)?;
        let total = self
            .host
            .query_one(
                &format!("SELECT COUNT(*) AS n FROM products_categories {filter}"),
                Vec::new(),
            )
            .map_err(host_failure)?
            .and_then(|row| row.get("n").and_then(Value::as_i64))
            .unwrap_or(0);
        let items = rows.iter().map(category_json).collect();
        Ok(Response::json(200, &listing::body(items, total, window)))
    }

    fn get_category(&self, request: &Request) -> HandlerResult {
        let id = category_id(request)?;
        let row = self
            .host
            .query_one(
                &format!("SELECT {COLUMNS} FROM products_categories WHERE id = $1"),
                vec![json!(id)],
            )
            .map_err(host_failure)?
            .ok_or_else(|| not_found(id))?;
        Ok(Response::json(200, &category_json(&row)))
    }

    fn create_category(&self, request: &Request) -> HandlerResult {
        let input = CategoryInput::parse(&json_object(request)?, true)
            .map_err(|p| problems_response(&p))?;
        let name = input.name.unwrap_or_default();
        if self.category_name_taken(&name, 0)? {
            return Err(Response::conflict(&format!(
                "a category named {name} already exists"
            )));
        }
        let now = clock::now();
        let row = self
            .host
            .query_one(
                &format!(
                    "INSERT INTO products_categories (name, description, is_active, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING {COLUMNS}"
                ),
                vec![
                    json!(name),
                    json!(input.description.flatten()),
                    json!(input.is_active.unwrap_or(true)),
                    json!(now),
                ],
            )
            .map_err(host_failure)?
            .ok_or_else(|| Response::plugin_error("the insert returned no row"))?;
        Ok(Response::json(201, &category_json(&row)))
    }

    fn update_category(&self, request: &Request) -> HandlerResult {
        let id = category_id(request)?;
        let input = CategoryInput::parse(&json_object(request)?, false)
            .map_err(|p| problems_response(&p))?;
        if let Some(name) = &input.name {
            if self.category_name_taken(name, id)? {
                return Err(Response::conflict(&format!(
                    "a category named {name} already exists"
                )));
            }
        }
        let mut assignments = Vec::new();
        let mut params = Vec::new();
        let mut set = |column: &str, value: Value| {
            params.push(value);
            assignments.push(format!("{column} = ${}", params.len()));
        };
        if let Some(name) = input.name {
            set("name", json!(name));
        }
        if let Some(description) = input.description {
            set("description", json!(description));
        }
        if let Some(active) = input.is_active {
            set("is_active", json!(active));
        }
        set("updated_at", json!(clock::now()));
        params.push(json!(id));
        let row = self
            .host
            .query_one(
                &format!(
                    "UPDATE products_categories SET {} WHERE id = ${} RETURNING {COLUMNS}",
                    assignments.join(", "),
                    params.len()
                ),
                params,
            )
            .map_err(host_failure)?
            .ok_or_else(|| not_found(id))?;
        Ok(Response::json(200, &category_json(&row)))
    }

    fn delete_category(&self, request: &Request) -> HandlerResult {
        let id = category_id(request)?;
        let used = self
            .host
            .query_one(
                "SELECT COUNT(*) AS n FROM products WHERE category_id = $1",
                vec![json!(id)],
            )
            .map_err(host_failure)?
            .and_then(|row| row.get("n").and_then(Value::as_i64))
            .unwrap_or(0);
        if used > 0 {
            return Err(Response::conflict(&format!(
                "category {id} is used by {used} product(s); move or delete them first"
            )));
        }
        // The foreign key still guards a product added since the count.
        let deleted = self
            .host
            .execute(
                "DELETE FROM products_categories WHERE id = $1",
                vec![json!(id)],
            )
            .map_err(host_failure)?;
        if deleted == 0 {
            return Err(not_found(id));
        }
        Ok(Response::empty(204))
    }
}

fn category_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "integer", "format": "int64"},
            "name": {"type": "string"},
            "description": {"type": "string", "nullable": true},
            "is_active": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"}
        }
    })
}

fn category_input_schema(create: bool) -> Value {
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "description": "Unique"},
            "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS, "nullable": true},
            "is_active": {"type": "boolean", "default": true},
            "isActive": {"type": "boolean", "description": "Alias of is_active"}
        }
    });
    if create {
        schema["required"] = json!(["name"]);
    } else {
        schema["minProperties"] = json!(1);
    }
    schema
}

/// OpenAPI `paths` for the category routes, relative to the prefix.
pub fn openapi_paths() -> Map<String, Value> {
    let id = openapi::path_id("The category's id");
    let category = openapi::json_response("The category", category_schema());
    let mut list_parameters = openapi::paging_parameters();
    list_parameters.push(openapi::query(
        "activeOnly",
        "Only active categories",
        json!({"type": "boolean", "default": false}),
    ));
    let mut paths = Map::new();
    paths.insert(
        "/categories".into(),
        json!({
            "get": {
                "summary": "List categories (by name)",
                "operationId": "products_categories_list",
                "tags": ["categories"],
                "parameters": list_parameters,
                "responses": openapi::responses(
                    &[("200", openapi::json_response("A page of categories", openapi::list_schema(category_schema())))],
                    &["401", "403", "422"],
                )
            },
            "post": {
                "summary": "Create a category",
                "operationId": "products_categories_create",
                "tags": ["categories"],
                "requestBody": openapi::json_body(category_input_schema(true)),
                "responses": openapi::responses(
                    &[("201", openapi::json_response("The created category", category_schema()))],
                    &["400", "401", "403", "409", "422"],
                )
            }
        }),
    );
    paths.insert(
        "/categories/{id}".into(),
        json!({
            "get": {
                "summary": "Get a category",
                "operationId": "products_categories_get",
                "tags": ["categories"],
                "parameters": [id.clone()],
                "responses": openapi::responses(&[("200", category.clone())], &["401", "403", "404"])
            },
            "put": {
                "summary": "Update a category (only the fields given)",
                "operationId": "products_categories_update",
                "tags": ["categories"],
                "parameters": [id.clone()],
                "requestBody": openapi::json_body(category_input_schema(false)),
                "responses": openapi::responses(&[("200", category)], &["400", "401", "403", "404", "409", "422"])
            },
            "delete": {
                "summary": "Delete a category no product uses",
                "operationId": "products_categories_delete",
                "tags": ["categories"],
                "parameters": [id],
                "responses": openapi::responses(
                    &[("204", json!({"description": "Deleted"}))],
                    &["401", "403", "404", "409"],
                )
            }
        }),
    );
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn inputs_are_validated() {
        let input = CategoryInput::parse(
            &object(json!({"name": " Claviers ", "isActive": false})),
            true,
        )
        .expect("valid");
        assert_eq!(input.name.as_deref(), Some("Claviers"));
        assert_eq!(input.is_active, Some(false));
        let problems = CategoryInput::parse(&object(json!({"is_active": "yes", "color": 1})), true)
            .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, vec!["color", "is_active", "name"]);
        assert!(CategoryInput::parse(&Map::new(), false).is_err());
        assert!(CategoryInput::parse(&object(json!({"description": null})), false).is_ok());
    }

    #[test]
    fn flags_read_the_same_on_both_dialects() {
        let sqlite = object(json!({"id": 1, "is_active": 0}));
        let postgres = object(json!({"id": 1, "is_active": true}));
        assert_eq!(category_json(&sqlite)["is_active"], false);
        assert_eq!(category_json(&postgres)["is_active"], true);
    }
}
