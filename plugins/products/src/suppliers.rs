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

use serde::{Deserialize, Serialize};
use serde_json::Map;
use xcore_plugin_sdk::prelude::*;

use crate::{
    csv_source::ImportConfig,
    fields::{self, stored_json, Product},
    Id, JsonObject, Products, DELETE, READ, WRITE,
};

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
        &migration("INTEGER PRIMARY KEY AUTOINCREMENT"),
        &migration("BIGSERIAL PRIMARY KEY"),
    )
}

fn migration(key: &str) -> String {
    format!(
        "CREATE TABLE products_suppliers (
            id {key},
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
        CREATE INDEX products_suppliers_status ON products_suppliers (status)"
    )
}

/// This part's routes.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
        .get("/suppliers", Access::Requires(READ), list)
        .summary("List suppliers")
        .post("/suppliers", Access::Requires(WRITE), create)
        .summary("Create a supplier")
        .doc(|op| op.error_response(409, "A supplier has this name (ignoring case)"))
        .get("/suppliers/{id}", Access::Requires(READ), show)
        .summary("A supplier")
        .put("/suppliers/{id}", Access::Requires(WRITE), update)
        .summary("Change a supplier (the fields sent)")
        .doc(|op| op.error_response(409, "Another supplier has this name (ignoring case)"))
        .delete("/suppliers/{id}", Access::Requires(DELETE), remove)
        .summary("Delete a supplier without products or imports")
        .doc(|op| op.error_response(409, "Products or imports refer to it"))
        .get("/suppliers/{id}/products", Access::Requires(READ), products)
        .summary("A supplier's products")
}

/// A stored supplier as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Supplier {
    /// Its id.
    pub id: i64,
    /// Unique, ignoring case.
    pub name: String,
    /// Contact email.
    pub email: Option<String>,
    /// Contact phone.
    pub phone: Option<String>,
    /// Contact person.
    pub contact_name: Option<String>,
    /// `active` or `inactive`.
    #[schema(value_type = SupplierStatus)]
    pub status: String,
    /// `csv`.
    pub import_type: String,
    /// How its files are read.
    #[serde(deserialize_with = "stored_json")]
    pub import_config: ImportConfig,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// A supplier's status.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Documentation: stored and checked as text.
pub enum SupplierStatus {
    /// Files may be imported.
    Active,
    /// Kept for its history.
    Inactive,
}

/// A supplier as `POST /suppliers` and `PUT /suppliers/{id}` take it
/// (`name` required on create; an update changes the keys sent); `null`
/// or a blank string clears a contact field; [`validate`] reads it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation of the body `validate` reads.
pub struct SupplierBody {
    /// Unique, ignoring case.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    contact_name: Option<String>,
    #[schema(value_type = Option<SupplierStatus>)]
    status: Option<String>,
    /// `csv`.
    import_type: Option<String>,
    /// `null`: the default settings.
    import_config: Option<ImportConfig>,
}

/// `GET /suppliers`' filter.
#[derive(Deserialize, ToSchema)]
pub struct SupplierFilter {
    /// Only suppliers in this status.
    #[schema(value_type = Option<SupplierStatus>)]
    status: Option<String>,
}

/// `GET /suppliers`' sort columns.
pub struct BySupplier;

impl SortColumns for BySupplier {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("name", "lower(name)"),
        ("created_at", "created_at"),
        ("id", "id"),
    ];
    const DEFAULT: (&'static str, &'static str) = ("name", "ASC");
    const TIEBREAK: &'static str = "id";
}

/// The supplier `id`, or a 404.
pub fn find(products: &Products, id: i64) -> Result<Supplier, Response> {
    let sql = "SELECT * FROM products_suppliers WHERE id = $1";
    let supplier = products.host.query_one_as(sql, params![id])?;
    supplier.ok_or_else(|| Response::not_found(&format!("supplier {id} not found")))
}

fn list(
    products: &Products,
    window: Window,
    sort: Sort<BySupplier>,
    Query(filter): Query<SupplierFilter>,
) -> Result<ListBody<Supplier>, Response> {
    let (condition, params) = match filter.status.as_deref() {
        None => ("", params![]),
        Some(status) if STATUSES.contains(&status) => ("WHERE status = $1", params![status]),
        Some(_) => return Err(Response::invalid("status", "must be active or inactive")),
    };
    let sql = format!(
        "SELECT * FROM products_suppliers {condition} ORDER BY {}",
        sort.order_by
    );
    Ok(products.host.query_page(&sql, params, window)?)
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
    let sql = "SELECT COUNT(*) FROM products_suppliers WHERE lower(name) = lower($1) AND id <> $2";
    let taken: i64 = products
        .host
        .query_scalar(sql, params![name, except.unwrap_or(0)])?;
    if taken > 0 {
        return Err(Response::conflict(&format!(
            "a supplier named {} already exists",
            name.as_str().unwrap_or_default()
        )));
    }
    Ok(())
}

/// A write that lost a race with another one of the same name.
fn name_taken(error: HostError) -> Response {
    match error {
        HostError::UniqueViolation { .. } => {
            Response::conflict("a supplier with this name already exists")
        }
        other => other.into(),
    }
}

fn create(
    products: &Products,
    body: JsonObject<SupplierBody>,
) -> Result<Created<Supplier>, Response> {
    let input = validate(&body.fields, false)?;
    if let Some((_, name)) = input.columns.iter().find(|(column, _)| *column == "name") {
        check_name_free(products, name, None)?;
    }
    let now = now();
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
    let supplier = products
        .host
        .query_row_as(&sql, params)
        .map_err(name_taken)?;
    Ok(Created(supplier))
}

fn show(products: &Products, Id(id): Id) -> Result<Json<Supplier>, Response> {
    find(products, id).map(Json)
}

fn update(
    products: &Products,
    Id(id): Id,
    body: JsonObject<SupplierBody>,
) -> Result<Json<Supplier>, Response> {
    let input = validate(&body.fields, true)?;
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
    params.push(now().into());
    sets.push(format!("updated_at = ${}", params.len()));
    params.push(id.into());
    let sql = format!(
        "UPDATE products_suppliers SET {} WHERE id = ${} RETURNING *",
        sets.join(", "),
        params.len()
    );
    let supplier = products
        .host
        .query_one_as(&sql, params)
        .map_err(name_taken)?;
    supplier
        .map(Json)
        .ok_or_else(|| Response::not_found(&format!("supplier {id} not found")))
}

fn remove(products: &Products, Id(id): Id) -> Result<NoContent, Response> {
    find(products, id)?;
    let count = |sql: &str| products.host.query_scalar::<i64>(sql, params![id]);
    let in_use = count("SELECT COUNT(*) FROM products WHERE supplier_id = $1")?;
    let imports = count("SELECT COUNT(*) FROM products_imports WHERE supplier_id = $1")?;
    if in_use > 0 || imports > 0 {
        return Err(Response::error_with_details(
            409,
            "CONFLICT",
            &format!(
                "supplier {id} has {in_use} product(s) and {imports} import(s); set its status to inactive instead"
            ),
            &[
                ("products", &format!("{in_use} product(s) use this supplier")),
                ("imports", &format!("{imports} import(s) came from this supplier")),
            ],
        ));
    }
    // The foreign key from products_imports makes a concurrent upload
    // fail instead of leaving an import without its supplier.
    match products
        .host
        .execute("DELETE FROM products_suppliers WHERE id = $1", params![id])
    {
        Ok(done) if done.rows_affected == 0 => {
            Err(Response::not_found(&format!("supplier {id} not found")))
        }
        Ok(_) => Ok(NoContent),
        // An import uploaded since the check above.
        Err(HostError::ForeignKeyViolation { .. }) => Err(Response::conflict(&format!(
            "supplier {id} is in use by an import; set its status to inactive instead"
        ))),
        Err(error) => Err(error.into()),
    }
}

fn products(
    products: &Products,
    Id(id): Id,
    window: Window,
) -> Result<ListBody<Product>, Response> {
    find(products, id)?;
    let sql = format!(
        "SELECT {} FROM products WHERE supplier_id = $1 ORDER BY id",
        fields::PRODUCT_COLUMNS
    );
    Ok(products.host.query_page(&sql, params![id], window)?)
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
            Err(response) => serde_json::from_slice::<Value>(&response.body_bytes()).expect("json")
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
