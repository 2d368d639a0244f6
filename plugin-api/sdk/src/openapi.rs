//! The plugin's OpenAPI document, generated from its route table: every
//! extractor and return type of a handler adds what it knows (request
//! body, query parameters, responses) to an [`Operation`], with the schemas
//! derived by `#[derive(ToSchema)]` (utoipa). The manifest carries the
//! resulting `paths` and component schemas; the host merges them into
//! `/openapi.json` under the plugin's prefix.
//!
//! Component names are scoped by the plugin id (`products.Product`), so two
//! plugins may both have a `Product` type.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use utoipa::{
    openapi::{schema::Schema as UtoipaSchema, RefOr},
    ToSchema,
};

/// What one route's handler documents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Operation {
    /// An extractor of the route checks the query's parameter names itself
    /// (see [`Operation::checks_query_names`]).
    own_query_check: bool,
    summary: Option<String>,
    request_body: Option<Value>,
    parameters: Vec<Value>,
    responses: BTreeMap<String, Value>,
    schemas: BTreeMap<String, Value>,
}

/// A utoipa schema as JSON.
fn to_json(schema: &RefOr<UtoipaSchema>) -> Value {
    serde_json::to_value(schema).unwrap_or_else(|_| json!({}))
}

impl Operation {
    /// Sets the one-line summary shown by ReDoc.
    pub fn summary(&mut self, summary: &str) {
        self.summary = Some(summary.to_string());
    }

    /// `T`'s schema, inline, with the named schemas it refers to kept as
    /// components.
    fn schema_of<T: ToSchema>(&mut self) -> Value {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        for (name, schema) in nested {
            self.schemas.insert(name, to_json(&schema));
        }
        to_json(&T::schema())
    }

    /// A required JSON request body of type `T`.
    pub fn request_body<T: ToSchema>(&mut self) {
        let schema = self.schema_of::<T>();
        self.request_body = Some(json!({
            "required": true,
            "content": {"application/json": {"schema": schema}},
        }));
    }

    /// A request body of another media type (an upload, a CSV).
    pub fn request_body_raw(&mut self, media_type: &str, schema: Value) {
        self.request_body = Some(json!({
            "required": true,
            "content": {media_type: {"schema": schema}},
        }));
    }

    /// One query parameter per property of `T` (an object schema).
    pub fn query_parameters<T: ToSchema>(&mut self) {
        let schema = self.schema_of::<T>();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, property) in properties {
            let mut parameter = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": property,
            });
            if let Some(description) = property.get("description") {
                parameter["description"] = description.clone();
            }
            self.add_parameter(parameter);
        }
    }

    /// Says that an extractor of this route refuses unknown query
    /// parameters itself (with its own messages): the router's check for
    /// list routes then stands aside.
    pub fn checks_query_names(&mut self) {
        self.own_query_check = true;
    }

    /// Whether an extractor said [`Operation::checks_query_names`].
    pub fn has_own_query_check(&self) -> bool {
        self.own_query_check
    }

    /// The names of the query parameters documented so far.
    pub fn query_parameter_names(&self) -> Vec<String> {
        self.parameters
            .iter()
            .filter(|parameter| parameter["in"] == "query")
            .filter_map(|parameter| parameter["name"].as_str().map(str::to_string))
            .collect()
    }

    /// A parameter object; a later one with the same name and place wins.
    pub fn add_parameter(&mut self, parameter: Value) {
        let key = |p: &Value| (p.get("name").cloned(), p.get("in").cloned());
        self.parameters
            .retain(|known| key(known) != key(&parameter));
        self.parameters.push(parameter);
    }

    /// A JSON response of type `T`.
    pub fn response<T: ToSchema>(&mut self, status: u16, description: &str) {
        let schema = self.schema_of::<T>();
        self.responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }),
        );
    }

    /// A response without a body.
    pub fn empty_response(&mut self, status: u16, description: &str) {
        self.responses
            .insert(status.to_string(), json!({"description": description}));
    }

    /// A response of another media type (a CSV export, a file).
    pub fn raw_response(&mut self, status: u16, description: &str, media_type: &str) {
        self.responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
            }),
        );
    }

    /// An error status the handler answers itself (a 409 for a taken
    /// value, say), with the standard error body: the types cannot tell
    /// which errors a handler chooses, so the route says so with
    /// `.doc(|op| op.error_response(409, "Name taken"))`.
    pub fn error_response(&mut self, status: u16, description: &str) {
        let text = json!({"type": "string"});
        self.responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": text, "message": text, "details": {"type": "array"},
                            "timestamp": text, "request_id": text,
                        },
                    }},
                }}},
            }),
        );
    }

    /// The standard list body of `T` (200).
    pub fn list_response<T: ToSchema>(&mut self) {
        let items = self.schema_of::<T>();
        let integer = json!({"type": "integer", "format": "int64"});
        self.responses.insert(
            "200".into(),
            json!({
                "description": "A window of the list",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["total", "skip", "limit", "items", "has_more"],
                    "properties": {
                        "total": integer, "skip": integer, "limit": integer,
                        "items": {"type": "array", "items": items},
                        "has_more": {"type": "boolean"},
                        "page": integer, "page_size": integer, "total_pages": integer,
                    },
                }}},
            }),
        );
    }

    /// The operation object, and the schemas it refers to.
    fn finish(self) -> (Value, BTreeMap<String, Value>) {
        let mut operation = Map::new();
        if let Some(summary) = self.summary {
            operation.insert("summary".into(), Value::String(summary));
        }
        if !self.parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(self.parameters));
        }
        if let Some(body) = self.request_body {
            operation.insert("requestBody".into(), body);
        }
        let mut responses: Map<String, Value> = self.responses.into_iter().collect();
        if responses.is_empty() {
            responses.insert("200".into(), json!({"description": "OK"}));
        }
        operation.insert("responses".into(), Value::Object(responses));
        (Value::Object(operation), self.schemas)
    }
}

/// Builds the `paths` and component schemas of a plugin from its routes'
/// operations: `(method, path, operation)`, path relative to the prefix.
pub fn document(
    plugin_id: &str,
    routes: impl IntoIterator<Item = (String, String, Operation)>,
) -> (Value, Value) {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for (method, path, operation) in routes {
        let (operation, used) = operation.finish();
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(item) = item.as_object_mut() {
            item.insert(method.to_ascii_lowercase(), operation);
        }
        schemas.extend(used);
    }
    let mut paths = Value::Object(paths);
    let mut schemas: Map<String, Value> = schemas
        .into_iter()
        .map(|(name, schema)| (format!("{plugin_id}.{name}"), schema))
        .collect();
    scope_references(&mut paths, plugin_id);
    for schema in schemas.values_mut() {
        scope_references(schema, plugin_id);
    }
    (paths, Value::Object(schemas))
}

/// Rewrites `#/components/schemas/X` to `#/components/schemas/<id>.X`.
fn scope_references(value: &mut Value, plugin_id: &str) {
    const PREFIX: &str = "#/components/schemas/";
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref") {
                if let Some(name) = reference.strip_prefix(PREFIX) {
                    *reference = format!("{PREFIX}{plugin_id}.{name}");
                }
            }
            for child in map.values_mut() {
                scope_references(child, plugin_id);
            }
        }
        Value::Array(items) => {
            for child in items {
                scope_references(child, plugin_id);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, ToSchema)]
    struct Line {
        quantity: i64,
    }

    #[derive(Serialize, Deserialize, ToSchema)]
    struct Order {
        /// Who ordered.
        customer: String,
        lines: Vec<Line>,
    }

    #[derive(Deserialize, ToSchema)]
    #[allow(dead_code)]
    struct Filters {
        status: Option<String>,
        min: f64,
    }

    #[test]
    fn operations_carry_bodies_parameters_responses_and_scoped_schemas() {
        let mut operation = Operation::default();
        operation.summary("Create an order");
        operation.request_body::<Order>();
        operation.query_parameters::<Filters>();
        operation.response::<Order>(201, "Created");
        let (paths, schemas) = document(
            "shop",
            [("POST".to_string(), "/orders".to_string(), operation)],
        );
        let post = &paths["/orders"]["post"];
        assert_eq!(post["summary"], "Create an order");
        let body = &post["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["properties"]["customer"]["type"], "string");
        assert_eq!(
            body["properties"]["lines"]["items"]["$ref"],
            "#/components/schemas/shop.Line"
        );
        assert!(schemas["shop.Line"]["properties"]["quantity"].is_object());
        let parameters = post["parameters"].as_array().expect("parameters");
        let min = parameters.iter().find(|p| p["name"] == "min").expect("min");
        assert_eq!(
            (min["in"].as_str(), min["required"].as_bool()),
            (Some("query"), Some(true))
        );
        assert!(post["responses"]["201"]["content"].is_object());
    }
}
