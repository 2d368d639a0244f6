//! The tables a plugin owns and the ones it may read, as names: the rule
//! both databases enforce (SQLite's authorizer asks it, PostgreSQL's grants
//! are derived from it).

/// A plugin owns `<id>` and `<id>_*`; it reads those of its dependencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    owner: String,
    dependencies: Vec<String>,
}

impl Namespace {
    /// The namespace of plugin `owner`, which depends on `dependencies`.
    pub fn new(owner: &str, dependencies: Vec<String>) -> Self {
        Self {
            owner: owner.to_string(),
            dependencies,
        }
    }

    /// The plugin's id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The ids of the plugins whose tables it may read.
    pub fn dependencies(&self) -> &[String] {
        &self.dependencies
    }

    /// Whether `table` is the plugin's own (SQLite names are
    /// case-insensitive, so the comparison is too).
    pub fn owns(&self, table: &str) -> bool {
        belongs_to(table, &self.owner)
    }

    /// Whether the plugin may read `table`: its own or a dependency's.
    pub fn may_read(&self, table: &str) -> bool {
        self.owns(table) || self.dependencies.iter().any(|id| belongs_to(table, id))
    }

    /// The error a refusal reports, naming the table.
    pub fn outside(&self, table: &str) -> String {
        format!(
            "table {} is outside plugin {}'s tables",
            table.to_ascii_lowercase(),
            self.owner
        )
    }
}

/// `<id>` or `<id>_*`, ignoring ASCII case.
fn belongs_to(table: &str, id: &str) -> bool {
    let table = table.as_bytes();
    let id = id.as_bytes();
    table.len() >= id.len()
        && table[..id.len()].eq_ignore_ascii_case(id)
        && (table.len() == id.len() || table[id.len()] == b'_')
}

#[cfg(test)]
mod tests {
    use super::Namespace;

    #[test]
    fn tables_are_named_after_the_plugin() {
        let scope = Namespace::new("shop", vec!["products".into()]);
        assert!(scope.owns("shop"));
        assert!(scope.owns("shop_orders"));
        assert!(scope.owns("SHOP_Orders"));
        assert!(!scope.owns("shopping"));
        assert!(!scope.owns("sho"));
        assert!(!scope.owns("users"));
        assert!(scope.may_read("products_items"));
        assert!(!scope.owns("products_items"));
        assert!(!scope.may_read("productsx"));
        assert!(!scope.may_read("refresh_tokens"));
    }
}
