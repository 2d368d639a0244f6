//! [`Clause`]: a list's `WHERE` clause built one filter at a time, with its
//! numbered parameters, the same way on SQLite and PostgreSQL (both take
//! `$1`, `$2`... through the host).

use serde_json::{json, Value};

/// Conditions ANDed into a `WHERE`, and their parameters in placeholder
/// order. Client values only ever go in as parameters.
#[derive(Debug, Default)]
pub struct Clause {
    /// Conditions, ANDed.
    pub conditions: Vec<String>,
    /// Parameters, in placeholder order.
    pub params: Vec<Value>,
}

impl Clause {
    /// Adds a condition whose one placeholder is written `{}` (numbered
    /// here, so conditions can be added in any order).
    pub fn push(&mut self, condition: &str, value: Value) {
        self.params.push(value);
        let placeholder = format!("${}", self.params.len());
        self.conditions.push(condition.replace("{}", &placeholder));
    }

    /// Adds a condition already numbered for `value` as the next parameter
    /// (a search condition that numbers its own placeholder).
    pub fn push_numbered(&mut self, condition: String, value: Value) {
        self.params.push(value);
        self.conditions.push(condition);
    }

    /// Adds `column = id` for each id filter given.
    pub fn ids<const N: usize>(&mut self, filters: [(&str, Option<i64>); N]) {
        for (column, value) in filters {
            if let Some(value) = value {
                self.push(&format!("{column} = {{}}"), json!(value));
            }
        }
    }

    /// `WHERE ...`, or nothing when nothing filters.
    pub fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// The `WHERE` and the parameters.
    pub fn finish(self) -> (String, Vec<Value>) {
        (self.sql(), self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_parameters_in_order() {
        let mut clause = Clause::default();
        assert_eq!(clause.sql(), "");
        clause.push("a.kind = {}", json!("call"));
        clause.ids([("a.owner_id", Some(7)), ("a.deal_id", None)]);
        clause.push_numbered("a.name LIKE $3".into(), json!("%x%"));
        clause.push("a.due < {}", json!("2026"));
        let (sql, params) = clause.finish();
        assert_eq!(
            sql,
            "WHERE a.kind = $1 AND a.owner_id = $2 AND a.name LIKE $3 AND a.due < $4"
        );
        assert_eq!(
            params,
            vec![json!("call"), json!(7), json!("%x%"), json!("2026")]
        );
    }
}
