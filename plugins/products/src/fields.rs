//! Product fields: validation shared by the API (`POST /`, `PUT /{id}`,
//! `POST /bulk`) and CSV imports, and the statements that store a product.
//!
//! CONTRACT between the catalogue and the imports (skeleton): imports map
//! a CSV row to a JSON object with the product field names (values may be
//! strings, e.g. `"price": "12.50"`), call [`validate_new`], and store the
//! draft with [`insert`].

use serde_json::{Map, Value};
use xcore_plugin_api::Statement;

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// Field name (`price`, `sku`, ...).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// A validated new product, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductDraft {
    /// Unique stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
}

/// Validates a new product from a JSON object.
pub fn validate_new(_object: &Map<String, Value>) -> Result<ProductDraft, Vec<FieldProblem>> {
    Err(vec![FieldProblem {
        field: "body".into(),
        message: "not implemented yet".into(),
    }])
}

/// The statement that stores `draft` (a duplicate SKU violates the unique
/// constraint; callers that must not fail check first).
pub fn insert(draft: &ProductDraft, now: &str) -> Statement {
    Statement::new(
        "INSERT INTO products (sku, name, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
        vec![draft.sku.clone().into(), draft.name.clone().into(), now.into()],
    )
}
