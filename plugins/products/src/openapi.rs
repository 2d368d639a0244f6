//! Building blocks for the plugin's OpenAPI fragment: parameters, bodies,
//! the standard error and list bodies, and the product schemas. The host
//! merges each plugin's `paths` under its prefix, so everything is inline
//! (a fragment has no `components` of its own to refer to).

use serde_json::{json, Map, Value};

use crate::{fields, money, search};

/// The `{id}` path parameter.
pub fn path_id(description: &str) -> Value {
    json!({
        "name": "id",
        "in": "path",
        "required": true,
        "description": description,
        "schema": {"type": "integer", "format": "int64", "minimum": 1}
    })
}

/// An optional query parameter.
pub fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

/// `page`/`page_size` and `skip`/`limit`.
pub fn paging_parameters() -> Vec<Value> {
    vec![
        query(
            "page",
            "Page number, from 1 (with page_size)",
            json!({"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}),
        ),
        query(
            "page_size",
            "Items per page",
            json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
        ),
        query(
            "skip",
            "Items to skip (instead of page)",
            json!({"type": "integer", "format": "int64", "minimum": 0, "default": 0}),
        ),
        query(
            "limit",
            "Items to return (instead of page_size)",
            json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
        ),
    ]
}

/// A JSON request body.
pub fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// A JSON response.
pub fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// The standard error body.
pub fn error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
                        }
                    },
                    "timestamp": {"type": "string", "format": "date-time"},
                    "request_id": {"type": "string"}
                }
            }
        }
    })
}

/// The `responses` object: the successes given, and the standard error body
/// for each error status.
pub fn responses(successes: &[(&str, Value)], errors: &[&str]) -> Value {
    let mut out = Map::new();
    for (status, response) in successes {
        out.insert((*status).into(), response.clone());
    }
    for status in errors {
        let description = match *status {
            "400" => "Malformed JSON",
            "401" => "Not authenticated",
            "403" => "Missing permission",
            "404" => "Not found",
            "409" => "Conflict (a unique value exists, or the resource is in use)",
            "413" => "Too large",
            "422" => "Validation failed (details name each field)",
            _ => "Error",
        };
        out.insert((*status).into(), json_response(description, error_schema()));
    }
    Value::Object(out)
}

/// The standard list body with the page fields.
pub fn list_schema(item: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "total": {"type": "integer"},
            "skip": {"type": "integer"},
            "limit": {"type": "integer"},
            "items": {"type": "array", "items": item},
            "has_more": {"type": "boolean"},
            "page": {"type": "integer"},
            "page_size": {"type": "integer"},
            "total_pages": {"type": "integer"}
        }
    })
}

fn price_schema() -> Value {
    json!({
        "description": format!(
            "Exact, at most {} decimals, {} at most; a number or a decimal string (\"12.50\", \"12,50\")",
            money::MAX_DECIMALS,
            money::format_cents(money::MAX_CENTS)
        ),
        "oneOf": [
            {"type": "number", "minimum": 0, "multipleOf": 0.01},
            {"type": "string"}
        ]
    })
}

/// A product as the API answers it.
pub fn product_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "integer", "format": "int64"},
            "sku": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string", "nullable": true},
            "price": {"type": "number", "description": "Exact to the cent"},
            "stock": {"type": "integer"},
            "supplier_id": {"type": "integer", "nullable": true},
            "category_id": {"type": "integer", "nullable": true},
            "status": {"type": "string", "enum": ["active", "inactive", "draft"]},
            "images": {"type": "array", "items": {"type": "string", "format": "uri"}},
            "attributes": {"type": "object", "additionalProperties": true},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"}
        }
    })
}

/// A product as a client sends it: for creation (`sku`, `name`, `price`
/// required) or for a partial update.
pub fn product_input_schema(create: bool) -> Value {
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "sku": {"type": "string", "minLength": 1, "maxLength": fields::MAX_SKU_CHARS, "description": "Unique; no spaces"},
            "name": {"type": "string", "minLength": 1, "maxLength": fields::MAX_NAME_CHARS},
            "description": {"type": "string", "maxLength": fields::MAX_DESCRIPTION_CHARS, "nullable": true},
            "price": price_schema(),
            "stock": {"type": "integer", "minimum": 0, "default": 0},
            "supplier_id": {"type": "integer", "minimum": 1, "nullable": true, "description": "An existing supplier"},
            "category_id": {"type": "integer", "minimum": 1, "nullable": true, "description": "An existing category"},
            "status": {"type": "string", "enum": ["active", "inactive", "draft"], "default": "active"},
            "images": {"type": "array", "maxItems": fields::MAX_IMAGES, "items": {"type": "string", "format": "uri", "description": "http(s) URL"}},
            "attributes": {"type": "object", "additionalProperties": true}
        }
    });
    if create {
        schema["required"] = json!(["sku", "name", "price"]);
    } else {
        schema["minProperties"] = json!(1);
    }
    schema
}

/// The search parameter's description, shared by every route that searches.
pub fn search_description() -> String {
    format!(
        "Full-text search over name, SKU and description: every word must match, the last one \
         as a prefix; at most {} characters",
        search::MAX_SEARCH_CHARS
    )
}
