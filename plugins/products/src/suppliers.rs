//! Suppliers (seed 000, "Fournisseurs") at `/suppliers`: who products come
//! from, how to reach them, and how their CSV files are read
//! (`import_config`, see [`crate::csv_source::ImportConfig`]).
//!
//! - `GET /suppliers` (`products:read`): list, `status` filter, paged.
//! - `POST /suppliers` (`products:write`): create; 201.
//! - `GET /suppliers/{id}` (`products:read`).
//! - `PUT /suppliers/{id}` (`products:write`): partial update (the keys
//!   sent change, the others stay).
//! - `DELETE /suppliers/{id}` (`products:delete`): 204; 409 while products
//!   or imports refer to the supplier (like categories: nothing is
//!   orphaned or deleted behind the caller's back; set `status` to
//!   `inactive` to retire a supplier that has history).
//! - `GET /suppliers/{id}/products` (`products:read`): its products, in the
//!   standard list body.
//!
//! Names are unique ignoring case (409), so an import can never be filed
//! under the wrong one of two look-alike suppliers.

use serde_json::{json, Map, Value};
use xcore_plugin_api::listing::{self, Window};
use xcore_plugin_api::{Access, HostError, Level, Manifest, Request, Response, Router, Row};

use crate::{clock, csv_source::ImportConfig, fields, Products, DELETE, READ, WRITE};

/// Statuses a supplier may have.
pub const STATUSES: &[&str] = &["active", "inactive"];

/// How suppliers send products: CSV files are the one kind this plugin
/// reads (the seed's `import_type`).
const IMPORT_TYPES: &[&str] = &["csv"];

const MAX_NAME_CHARS: usize = 200;
const MAX_CONTACT_CHARS: usize = 200;

/// Adds this part's migrations.
pub fn declare(manifest: Manifest) -> Manifest {
    manifest.migration(
        10,
        "suppliers",
        "CREATE TABLE products_suppliers (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            email TEXT,
            phone TEXT,
            contact_name TEXT,
            status TEXT NOT NULL DEFAULT 'active',
            import_type TEXT NOT NULL DEFAULT 'csv',
            import_config TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX products_suppliers_name ON products_suppliers (lower(name));
        CREATE INDEX products_suppliers_status ON products_suppliers (status)",
        "CREATE TABLE products_suppliers (
            id BIGSERIAL PRIMARY KEY,
            name TEXT NOT NULL,
            email TEXT,
            phone TEXT,
            contact_name TEXT,
            status TEXT NOT NULL DEFAULT 'active',
            import_type TEXT NOT NULL DEFAULT 'csv',
            import_config TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX products_suppliers_name ON products_suppliers (lower(name));
        CREATE INDEX products_suppliers_status ON products_suppliers (status)",
    )
}

/// This part's routes.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
        .get("/suppliers", Access::Requires(READ), list)
        .post("/suppliers", Access::Requires(WRITE), create)
        .get("/suppliers/{id}", Access::Requires(READ), show)
        .put("/suppliers/{id}", Access::Requires(WRITE), update)
        .delete("/suppliers/{id}", Access::Requires(DELETE), remove)
        .get("/suppliers/{id}/products", Access::Requires(READ), products)
}

/// A failed host call as the 500 the client sees: the database's own
/// message (table and column names, values) goes to the server log, not to
/// the client.
pub fn storage_error(products: &Products) -> impl Fn(HostError) -> Response + '_ {
    move |error| {
        products.host.log(
            Level::Error,
            "products storage call failed",
            json!({"error": error.0}),
        );
        Response::plugin_error("storage failed; the server log has the details")
    }
}

/// Whether a database error is a foreign-key violation.
pub fn is_foreign_key_violation(error: &HostError) -> bool {
    error.0.to_ascii_lowercase().contains("foreign key")
}

/// Whether a database error is a unique-constraint violation (SQLite and
/// PostgreSQL word it differently).
pub fn is_unique_violation(error: &HostError) -> bool {
    let message = error.0.to_ascii_lowercase();
    message.contains("unique constraint") || message.contains("duplicate key")
}

/// A stored supplier as the API shows it.
pub fn to_json(row: &Row) -> Value {
    let mut object = row.clone();
    let config = object
        .get("import_config")
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    object.insert("import_config".into(), config);
    Value::Object(object)
}

/// The supplier `id`, or a 404.
pub fn find(products: &Products, id: i64) -> Result<Row, Response> {
    products
        .host
        .query_one(
            "SELECT * FROM products_suppliers WHERE id = $1",
            vec![id.into()],
        )
        .map_err(storage_error(products))?
        .ok_or_else(|| Response::not_found(&format!("supplier {id} not found")))
}

fn list(products: &Products, request: &Request) -> Result<Response, Response> {
    let window = listing::window(request)?;
    let order = listing::order_by(
        request,
        &[
            ("name", "lower(name)"),
            ("created_at", "created_at"),
            ("id", "id"),
        ],
        ("name", "ASC"),
        "id",
    )?;
    let (filter, params): (&str, Vec<Value>) = match request.query("status") {
        None => ("", Vec::new()),
        Some(status) if STATUSES.contains(&status) => ("WHERE status = $1", vec![status.into()]),
        Some(_) => return Err(Response::invalid("status", "must be active or inactive")),
    };
    let total = count(
        products,
        &format!("SELECT COUNT(*) AS n FROM products_suppliers {filter}"),
        params.clone(),
    )?;
    let rows = page(
        products,
        &format!("SELECT * FROM products_suppliers {filter} ORDER BY {order}"),
        params,
        window,
    )?;
    Ok(Response::json(
        200,
        &listing::body(rows.iter().map(to_json).collect(), total, window),
    ))
}

/// `COUNT(*) AS n` of a query.
pub fn count(products: &Products, sql: &str, params: Vec<Value>) -> Result<i64, Response> {
    Ok(products
        .host
        .query_one(sql, params)
        .map_err(storage_error(products))?
        .and_then(|row| row.get("n").and_then(Value::as_i64))
        .unwrap_or(0))
}

/// The rows of `sql` (which must not end in `LIMIT`) in `window`.
pub fn page(
    products: &Products,
    sql: &str,
    mut params: Vec<Value>,
    window: Window,
) -> Result<Vec<Row>, Response> {
    let next = params.len() + 1;
    params.push(window.limit.into());
    params.push(window.skip.into());
    products
        .host
        .query(&format!("{sql} LIMIT ${next} OFFSET ${}", next + 1), params)
        .map_err(storage_error(products))
}

/// A validated supplier body: the columns to write.
struct SupplierInput {
    columns: Vec<(&'static str, Value)>,
}

/// Validates a create (`partial = false`: `name` required, defaults for the
/// rest) or an update (`partial = true`: only the keys sent).
fn validate(body: &Map<String, Value>, partial: bool) -> Result<SupplierInput, Response> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut columns: Vec<(&'static str, Value)> = Vec::new();
    for key in body.keys() {
        if !matches!(
            key.as_str(),
            "name"
                | "email"
                | "phone"
                | "contact_name"
                | "status"
                | "import_type"
                | "import_config"
        ) {
            problems.push((key.clone(), "unknown field".into()));
        }
    }
    match body.get("name") {
        None if partial => {}
        None | Some(Value::Null) => problems.push(("name".into(), "required".into())),
        Some(Value::String(name))
            if !name.trim().is_empty() && name.trim().chars().count() <= MAX_NAME_CHARS =>
        {
            columns.push(("name", name.trim().into()));
        }
        Some(_) => problems.push((
            "name".into(),
            format!("must be a string of 1 to {MAX_NAME_CHARS} characters"),
        )),
    }
    for (key, check) in [
        ("email", check_email as fn(&str) -> Result<(), String>),
        ("phone", check_phone),
        ("contact_name", check_contact_name),
    ] {
        match body.get(key) {
            None => {}
            Some(Value::Null) => columns.push((key, Value::Null)),
            Some(Value::String(text)) if text.trim().is_empty() => {
                columns.push((key, Value::Null));
            }
            Some(Value::String(text)) => match check(text.trim()) {
                Ok(()) => columns.push((key, text.trim().into())),
                Err(message) => problems.push((key.into(), message)),
            },
            Some(_) => problems.push((key.into(), "must be a string or null".into())),
        }
    }
    match body.get("status") {
        None if partial => {}
        None => columns.push(("status", "active".into())),
        Some(Value::String(status)) if STATUSES.contains(&status.as_str()) => {
            columns.push(("status", status.clone().into()));
        }
        Some(_) => problems.push(("status".into(), "must be active or inactive".into())),
    }
    match body.get("import_type") {
        None if partial => {}
        None => columns.push(("import_type", "csv".into())),
        Some(Value::String(kind)) if IMPORT_TYPES.contains(&kind.as_str()) => {
            columns.push(("import_type", kind.clone().into()));
        }
        Some(_) => problems.push(("import_type".into(), "must be csv".into())),
    }
    match (body.get("import_config"), partial) {
        (None, true) => {}
        (config, _) => match ImportConfig::from_json(config.unwrap_or(&Value::Null)) {
            Ok(config) => columns.push(("import_config", config.to_json().to_string().into())),
            Err(config_problems) => problems.extend(config_problems),
        },
    }
    if problems.is_empty() {
        Ok(SupplierInput { columns })
    } else {
        let details: Vec<(&str, &str)> = problems
            .iter()
            .map(|(field, message)| (field.as_str(), message.as_str()))
            .collect();
        Err(Response::validation(&details))
    }
}

fn check_email(email: &str) -> Result<(), String> {
    // Deliberately shallow: one `@`, something before it, a dotted domain
    // after it. Deliverability is not knowable from the text.
    let valid = email.chars().count() <= 254
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(())
    } else {
        Err("must be an email address".into())
    }
}

fn check_phone(phone: &str) -> Result<(), String> {
    let valid = phone.chars().count() <= 40
        && phone.chars().filter(char::is_ascii_digit).count() >= 4
        && phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-.()/".contains(c));
    if valid {
        Ok(())
    } else {
        Err("must be a phone number (digits, spaces, + - . ( ) /)".into())
    }
}

fn check_contact_name(name: &str) -> Result<(), String> {
    if name.chars().count() <= MAX_CONTACT_CHARS {
        Ok(())
    } else {
        Err(format!("must be at most {MAX_CONTACT_CHARS} characters"))
    }
}

/// 409 if another supplier (not `except`) has this name, ignoring case.
fn check_name_free(products: &Products, name: &Value, except: Option<i64>) -> Result<(), Response> {
    let taken = products
        .host
        .query_one(
            "SELECT id FROM products_suppliers WHERE lower(name) = lower($1) AND id <> $2",
            vec![name.clone(), except.unwrap_or(0).into()],
        )
        .map_err(storage_error(products))?;
    match taken {
        Some(_) => Err(Response::conflict(&format!(
            "a supplier named {} already exists",
            name.as_str().unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

fn object_body(request: &Request) -> Result<Map<String, Value>, Response> {
    match request.json::<Value>()? {
        Value::Object(object) => Ok(object),
        _ => Err(Response::invalid("body", "must be a JSON object")),
    }
}

fn create(products: &Products, request: &Request) -> Result<Response, Response> {
    let input = validate(&object_body(request)?, false)?;
    if let Some((_, name)) = input.columns.iter().find(|(column, _)| *column == "name") {
        check_name_free(products, name, None)?;
    }
    let now = clock::now();
    let mut names: Vec<&str> = input.columns.iter().map(|(column, _)| *column).collect();
    let mut params: Vec<Value> = input.columns.into_iter().map(|(_, value)| value).collect();
    names.extend(["created_at", "updated_at"]);
    params.extend([now.clone().into(), now.into()]);
    let placeholders: Vec<String> = (1..=params.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "INSERT INTO products_suppliers ({}) VALUES ({}) RETURNING *",
        names.join(", "),
        placeholders.join(", ")
    );
    match products.host.query_one(&sql, params) {
        Ok(Some(row)) => Ok(Response::json(201, &to_json(&row))),
        Ok(None) => Err(Response::plugin_error("the insert returned no row")),
        // Lost a race with another create of the same name.
        Err(error) if is_unique_violation(&error) => Err(Response::conflict(
            "a supplier with this name already exists",
        )),
        Err(error) => Err(storage_error(products)(error)),
    }
}

fn show(products: &Products, request: &Request) -> Result<Response, Response> {
    let id = request.param_as::<i64>("id")?;
    Ok(Response::json(200, &to_json(&find(products, id)?)))
}

fn update(products: &Products, request: &Request) -> Result<Response, Response> {
    let id = request.param_as::<i64>("id")?;
    let input = validate(&object_body(request)?, true)?;
    find(products, id)?;
    if let Some((_, name)) = input.columns.iter().find(|(column, _)| *column == "name") {
        check_name_free(products, name, Some(id))?;
    }
    let mut sets: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    for (column, value) in input.columns {
        params.push(value);
        sets.push(format!("{column} = ${}", params.len()));
    }
    params.push(clock::now().into());
    sets.push(format!("updated_at = ${}", params.len()));
    params.push(id.into());
    let sql = format!(
        "UPDATE products_suppliers SET {} WHERE id = ${} RETURNING *",
        sets.join(", "),
        params.len()
    );
    match products.host.query_one(&sql, params) {
        Ok(Some(row)) => Ok(Response::json(200, &to_json(&row))),
        Ok(None) => Err(Response::not_found(&format!("supplier {id} not found"))),
        Err(error) if is_unique_violation(&error) => Err(Response::conflict(
            "a supplier with this name already exists",
        )),
        Err(error) => Err(storage_error(products)(error)),
    }
}

fn remove(products: &Products, request: &Request) -> Result<Response, Response> {
    let id = request.param_as::<i64>("id")?;
    find(products, id)?;
    let in_use = count(
        products,
        "SELECT COUNT(*) AS n FROM products WHERE supplier_id = $1",
        vec![id.into()],
    )?;
    let imports = count(
        products,
        "SELECT COUNT(*) AS n FROM products_imports WHERE supplier_id = $1",
        vec![id.into()],
    )?;
    if in_use > 0 || imports > 0 {
        return Err(Response::json(
            409,
            &json!({"error": {
                "code": "CONFLICT",
                "message": format!(
                    "supplier {id} has {in_use} product(s) and {imports} import(s); set its status to inactive instead"
                ),
                "details": [{"products": in_use, "imports": imports}],
            }}),
        ));
    }
    // The foreign key from products_imports makes a concurrent upload
    // fail instead of leaving an import without its supplier.
    match products.host.execute(
        "DELETE FROM products_suppliers WHERE id = $1",
        vec![id.into()],
    ) {
        Ok(0) => Err(Response::not_found(&format!("supplier {id} not found"))),
        Ok(_) => Ok(Response::empty(204)),
        // An import uploaded since the check above.
        Err(error) if is_foreign_key_violation(&error) => Err(Response::conflict(&format!(
            "supplier {id} is in use by an import; set its status to inactive instead"
        ))),
        Err(error) => Err(storage_error(products)(error)),
    }
}

fn products(products: &Products, request: &Request) -> Result<Response, Response> {
    let id = request.param_as::<i64>("id")?;
    find(products, id)?;
    let window = listing::window(request)?;
    let total = count(
        products,
        "SELECT COUNT(*) AS n FROM products WHERE supplier_id = $1",
        vec![id.into()],
    )?;
    let rows = page(
        products,
        &format!(
            "SELECT {} FROM products WHERE supplier_id = $1 ORDER BY id",
            fields::PRODUCT_COLUMNS
        ),
        vec![id.into()],
        window,
    )?;
    let items = rows.iter().map(fields::product_json).collect();
    Ok(Response::json(200, &listing::body(items, total, window)))
}

/// OpenAPI `paths` for this part's routes, relative to the prefix.
pub fn openapi_paths() -> Map<String, Value> {
    let config = json!({
        "type": "object",
        "properties": {
            // null, like a missing key, means the default.
            "delimiter": {"type": ["string", "null"], "enum": [";", ",", "\t", "|", null], "default": ","},
            "encoding": {"type": ["string", "null"], "enum": ["utf-8", "latin-1", null], "default": "utf-8"},
            "mapping": {
                "type": ["object", "null"],
                "description": "File column name to product field (sku, name, description, price, stock, category_id, status, images, attributes); sku and name must be mapped, each field at most once. Empty: columns named like the fields are read.",
                "additionalProperties": {"type": "string", "enum": crate::csv_source::mappable()}
            }
        },
        "additionalProperties": false
    });
    let supplier = json!({
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            // Optional contact fields come back as null when unset.
            "email": {"type": ["string", "null"]},
            "phone": {"type": ["string", "null"]},
            "contact_name": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": STATUSES},
            "import_type": {"type": "string", "enum": IMPORT_TYPES},
            "import_config": config.clone(),
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"}
        }
    });
    let input = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": "\\S"},
            // null, or a blank string, clears an optional contact field.
            "email": {"anyOf": [
                {"type": "string", "format": "email"},
                {"type": "string", "pattern": "^\\s*$"},
                {"type": "null"}
            ]},
            "phone": {"type": ["string", "null"]},
            "contact_name": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": STATUSES},
            "import_type": {"type": "string", "enum": IMPORT_TYPES},
            // null: the default settings.
            "import_config": {"anyOf": [config, {"type": "null"}]}
        },
        "additionalProperties": false
    });
    let mut create_input = input.clone();
    create_input["required"] = json!(["name"]);
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": error_schema()}}});
    let id = crate::openapi::path_id("Id");
    let paging = json!([
        {"name": "skip", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 0}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000}},
        {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}
    ]);
    let list_of = |items: Value| {
        json!({
            "type": "object",
            "properties": {
                "total": {"type": "integer"}, "skip": {"type": "integer"}, "limit": {"type": "integer"},
                "has_more": {"type": "boolean"}, "items": {"type": "array", "items": items},
                "page": {"type": "integer"}, "page_size": {"type": "integer"}, "total_pages": {"type": "integer"}
            }
        })
    };
    let ok = |description: &str, schema: Value| json!({"description": description, "content": {"application/json": {"schema": schema}}});
    let mut list_parameters = paging.as_array().cloned().unwrap_or_default();
    list_parameters.extend([
        json!({"name": "status", "in": "query", "schema": {"type": "string", "enum": STATUSES}}),
        json!({"name": "sort_by", "in": "query", "schema": {"type": "string", "enum": ["name", "created_at", "id"]}}),
        json!({"name": "sort_order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}}),
    ]);
    let mut product_parameters = vec![id.clone()];
    product_parameters.extend(paging.as_array().cloned().unwrap_or_default());
    let mut paths = Map::new();
    paths.insert("/suppliers".into(), json!({
        "get": {
            "summary": "List suppliers", "tags": ["suppliers"],
            "parameters": list_parameters,
            "responses": {"200": ok("Suppliers", list_of(supplier.clone())), "401": error("Not authenticated"), "403": error("Needs products:read"), "422": error("Bad filter or paging")}
        },
        "post": {
            "summary": "Create a supplier", "tags": ["suppliers"],
            "requestBody": {"required": true, "content": {"application/json": {"schema": create_input}}},
            "responses": {"201": ok("Created", supplier.clone()), "401": error("Not authenticated"), "403": error("Needs products:write"), "409": error("Name taken"), "422": error("Invalid fields")}
        }
    }));
    paths.insert("/suppliers/{id}".into(), json!({
        "parameters": [id],
        "get": {
            "summary": "A supplier", "tags": ["suppliers"],
            "responses": {"200": ok("The supplier", supplier.clone()), "401": error("Not authenticated"), "403": error("Needs products:read"), "404": error("No such supplier")}
        },
        "put": {
            "summary": "Change a supplier (the fields sent)", "tags": ["suppliers"],
            "requestBody": {"required": true, "content": {"application/json": {"schema": input}}},
            "responses": {"200": ok("Changed", supplier), "401": error("Not authenticated"), "403": error("Needs products:write"), "404": error("No such supplier"), "409": error("Name taken"), "422": error("Invalid fields")}
        },
        "delete": {
            "summary": "Delete a supplier without products or imports", "tags": ["suppliers"],
            "responses": {"204": {"description": "Deleted"}, "401": error("Not authenticated"), "403": error("Needs products:delete"), "404": error("No such supplier"), "409": error("Products or imports refer to it")}
        }
    }));
    paths.insert("/suppliers/{id}/products".into(), json!({
        "get": {
            "summary": "A supplier's products", "tags": ["suppliers"],
            "parameters": product_parameters,
            "responses": {"200": ok("Products", list_of(json!({"type": "object"}))), "401": error("Not authenticated"), "403": error("Needs products:read"), "404": error("No such supplier")}
        }
    }));
    paths
}

/// The standard error body, for the OpenAPI fragments of this part and
/// the imports (inline: a fragment holds `paths` only, no components).
pub fn error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {}},
                    "timestamp": {"type": "string"},
                    "request_id": {"type": "string"}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(body: Value, partial: bool) -> Vec<String> {
        let Value::Object(body) = body else {
            panic!("an object")
        };
        match validate(&body, partial) {
            Ok(_) => Vec::new(),
            Err(response) => serde_json::from_slice::<Value>(&response.body).expect("json")
                ["error"]["details"]
                .as_array()
                .expect("details")
                .iter()
                .map(|d| d["field"].as_str().unwrap_or_default().to_string())
                .collect(),
        }
    }

    #[test]
    fn contact_fields_are_checked_shallowly_but_checked() {
        assert!(check_email("contact@fournisseur.com").is_ok());
        for bad in [
            "contact", "@x.fr", "a@b", "a@.fr", "a@b.", "a b@c.fr", "a@b@c.fr",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_phone("+33 (0)1 23-45.67/89").is_ok());
        assert!(check_phone("call me").is_err());
        assert!(check_phone("12").is_err());
    }

    #[test]
    fn creates_need_a_name_and_updates_change_only_what_is_sent() {
        assert_eq!(problems(json!({}), false), vec!["name"]);
        assert_eq!(problems(json!({}), true), Vec::<String>::new());
        assert_eq!(problems(json!({"name": "  "}), false), vec!["name"]);
        assert_eq!(
            problems(
                json!({"name": "X", "status": "gone", "import_type": "xml", "id": 3}),
                false
            ),
            vec!["id", "status", "import_type"]
        );
        let Ok(input) = validate(
            json!({"status": "inactive", "email": ""})
                .as_object()
                .expect("object"),
            true,
        ) else {
            panic!("valid")
        };
        let columns: Vec<&str> = input.columns.iter().map(|(c, _)| *c).collect();
        assert_eq!(columns, vec!["email", "status"], "a blank email clears it");
    }
}
