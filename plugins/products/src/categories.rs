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

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Map;
use xcore_plugin_sdk::prelude::*;

use crate::{
    catalogue::problems_response, fields::FieldProblem, Id, JsonObject, Products, DELETE, READ,
    WRITE,
};

/// Longest category name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

const COLUMNS: &str = "id, name, description, is_active, created_at, updated_at";

/// The category routes (their table is in migration 1, with products:
/// the product table's foreign key needs it first).
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
        .get(
            "/categories",
            Access::Requires(READ),
            Products::list_categories,
        )
        .summary("List categories (by name)")
        .post(
            "/categories",
            Access::Requires(WRITE),
            Products::create_category,
        )
        .summary("Create a category")
        .doc(|op| op.error_response(409, "A category has this name"))
        .get(
            "/categories/{id}",
            Access::Requires(READ),
            Products::get_category,
        )
        .summary("Get a category")
        .put(
            "/categories/{id}",
            Access::Requires(WRITE),
            Products::update_category,
        )
        .summary("Update a category (only the fields given)")
        .doc(|op| op.error_response(409, "Another category has this name"))
        .delete(
            "/categories/{id}",
            Access::Requires(DELETE),
            Products::delete_category,
        )
        .summary("Delete a category no product uses")
        .doc(|op| op.error_response(409, "Products use it"))
}

/// A stored category as the API answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Category {
    /// Its id.
    pub id: i64,
    /// Unique.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Offered in pickers.
    #[serde(deserialize_with = "flag")]
    pub is_active: bool,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// A stored flag: a boolean on PostgreSQL, 0/1 on SQLite.
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Bool(flag) => flag,
        Value::Number(number) => number.as_i64() != Some(0),
        _ => false,
    })
}

/// A new category, as `POST /categories` takes it ([`CategoryInput::parse`]
/// reads it).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation of the body `CategoryInput::parse` reads.
pub struct NewCategory {
    /// Unique.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// `true` when not given.
    is_active: Option<bool>,
    /// Alias of `is_active`.
    #[serde(rename = "isActive")]
    is_active_alias: Option<bool>,
}

/// A partial update, as `PUT /categories/{id}` takes it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation of the body `CategoryInput::parse` reads.
pub struct CategoryChanges {
    /// Unique.
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    /// `null` clears it.
    #[schema(max_length = 1000)]
    description: Option<String>,
    is_active: Option<bool>,
    /// Alias of `is_active`.
    #[serde(rename = "isActive")]
    is_active_alias: Option<bool>,
}

/// `GET /categories`' filter (either spelling).
#[derive(Deserialize, ToSchema)]
pub struct CategoryFilter {
    /// Only active categories.
    #[serde(rename = "activeOnly")]
    #[schema(value_type = Option<bool>)]
    active_only: Option<String>,
    /// Alias of `activeOnly`.
    #[serde(rename = "active_only")]
    #[schema(value_type = Option<bool>)]
    active_only_alias: Option<String>,
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

/// A write refused by a constraint: a name taken by a concurrent writer,
/// or a product added since the delete's check still using the category.
fn refused(error: HostError) -> Response {
    match error {
        HostError::UniqueViolation { .. } => {
            Response::conflict("a category with this name already exists")
        }
        HostError::ForeignKeyViolation { .. } => {
            Response::conflict("products still use this category")
        }
        other => other.into(),
    }
}

fn not_found(id: i64) -> Response {
    Response::not_found(&format!("no category {id}"))
}

impl Products {
    /// A 409 if another category (not `except`) is called `name`.
    fn check_category_name(&self, name: &str, except: i64) -> Result<(), Response> {
        let sql = "SELECT COUNT(*) FROM products_categories WHERE name = $1 AND id <> $2";
        let taken: i64 = self.host.query_scalar(sql, params![name, except])?;
        if taken > 0 {
            return Err(Response::conflict(&format!(
                "a category named {name} already exists"
            )));
        }
        Ok(())
    }

    fn list_categories(
        &self,
        window: Window,
        Query(filter): Query<CategoryFilter>,
    ) -> Result<ListBody<Category>, Response> {
        let window = Window {
            paged: true,
            ..window
        };
        let active_only = match filter.active_only.or(filter.active_only_alias).as_deref() {
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
        let sql =
            format!("SELECT {COLUMNS} FROM products_categories {filter} ORDER BY name ASC, id ASC");
        Ok(self.host.query_page(&sql, params![], window)?)
    }

    fn get_category(&self, Id(id): Id) -> Result<Json<Category>, Response> {
        let sql = format!("SELECT {COLUMNS} FROM products_categories WHERE id = $1");
        let category = self.host.query_one_as(&sql, params![id])?;
        category.map(Json).ok_or_else(|| not_found(id))
    }

    fn create_category(
        &self,
        body: JsonObject<NewCategory>,
    ) -> Result<Created<Category>, Response> {
        let input = CategoryInput::parse(&body.fields, true).map_err(|p| problems_response(&p))?;
        let name = input.name.unwrap_or_default();
        self.check_category_name(&name, 0)?;
        let sql = format!(
            "INSERT INTO products_categories (name, description, is_active, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING {COLUMNS}"
        );
        let values = params![
            name,
            input.description.flatten(),
            input.is_active.unwrap_or(true),
            now()
        ];
        let category = self.host.query_row_as(&sql, values).map_err(refused)?;
        Ok(Created(category))
    }

    fn update_category(
        &self,
        Id(id): Id,
        body: JsonObject<CategoryChanges>,
    ) -> Result<Json<Category>, Response> {
        let input = CategoryInput::parse(&body.fields, false).map_err(|p| problems_response(&p))?;
        if let Some(name) = &input.name {
            self.check_category_name(name, id)?;
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
        set("updated_at", json!(now()));
        params.push(json!(id));
        let sql = format!(
            "UPDATE products_categories SET {} WHERE id = ${} RETURNING {COLUMNS}",
            assignments.join(", "),
            params.len()
        );
        let category = self.host.query_one_as(&sql, params).map_err(refused)?;
        category.map(Json).ok_or_else(|| not_found(id))
    }

    fn delete_category(&self, Id(id): Id) -> Result<NoContent, Response> {
        let sql = "SELECT COUNT(*) FROM products WHERE category_id = $1";
        let used: i64 = self.host.query_scalar(sql, params![id])?;
        if used > 0 {
            return Err(Response::conflict(&format!(
                "category {id} is used by {used} product(s); move or delete them first"
            )));
        }
        // The foreign key still guards a product added since the count.
        let sql = "DELETE FROM products_categories WHERE id = $1";
        let deleted = self.host.execute(sql, params![id]).map_err(refused)?;
        if deleted.rows_affected == 0 {
            return Err(not_found(id));
        }
        Ok(NoContent)
    }
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
        let row = |flag: Value| {
            let row = json!({"id": 1, "name": "n", "description": null, "is_active": flag,
                "created_at": "t", "updated_at": "t"});
            serde_json::from_value::<Category>(row).expect("a category row")
        };
        assert!(!row(json!(0)).is_active);
        assert!(row(json!(1)).is_active);
        assert!(row(json!(true)).is_active);
    }
}
