//! Which tables a plugin's SQL may touch.
//!
//! A plugin owns the tables named `<id>` or `<id>_*`: it may create, alter,
//! drop, write and read them. It may also read (never write) the tables of
//! the plugins it declares as dependencies. Everything else, the host's
//! `users`, `refresh_tokens`, `plugins` tables and the catalogue above all,
//! is out of reach through `HostServices`, and so are statements other than
//! `SELECT`/`INSERT`/`UPDATE`/`DELETE` (plus `CREATE`/`ALTER`/`DROP` of
//! tables, indexes, views and sequences in migrations), several statements
//! in one call, schema-qualified names, and the server functions that read
//! files or run SQL given as text.
//!
//! Full-text search needs a little more, in migrations only:
//! - SQLite FTS5 virtual tables (`CREATE VIRTUAL TABLE <id>_x USING
//!   fts5(...)`; no other module, since e.g. `fts5vocab` can read any FTS
//!   index), whose external `content=` table must be the plugin's own;
//! - SQLite triggers that keep such an index in sync: named `<id>_*`, on
//!   the plugin's own table, with a `BEGIN ... END` body whose statements
//!   are checked like runtime DML (PostgreSQL triggers run functions and
//!   stay refused);
//! - PostgreSQL generated `tsvector` columns and `USING GIN` indexes (in
//!   DDL, `USING` names an index method, a module or a conversion, never a
//!   table).
//!
//! `MATCH`, `bm25()`, `@@`, `to_tsquery()` and `ts_rank()` need nothing
//! special at runtime: they are operators and plain functions.
//!
//! This is not the wall: a lexer can be parsed around (quoted names,
//! parentheses, CTE and window names). The database enforces the same rule
//! ([`super::confinement`]: SQLite's authorizer, a PostgreSQL role per
//! plugin); this check runs first so that most refusals come early, before
//! any SQL reaches the database, and name the table. It reads the statement's tokens (string
//! literals and comments skipped, quoted identifiers kept) and checks every
//! name in a table position: after `FROM`, `JOIN`, `INTO`, `UPDATE`,
//! `TABLE`, `INDEX ... ON`, `VIEW`, `SEQUENCE`, `REFERENCES`, `USING` and
//! `RENAME TO`. Names a `WITH` clause defines are readable.

mod tokens;

use tokens::{
    cte_names, index_name_before, query_context, skip_words, split_statements, tokenize, Token,
};

/// What the statement is for: migrations may change the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A call from a running plugin: one DML statement.
    Runtime,
    /// A plugin's migration script: DDL and DML, several statements.
    Migration,
}

/// The tables one plugin may use.
#[derive(Clone, Debug)]
pub struct SqlScope {
    owner: String,
    dependencies: Vec<String>,
}

/// Table-valued functions a `FROM` may name.
const TABLE_FUNCTIONS: &[&str] = &[
    "json_each",
    "json_tree",
    "json_array_elements",
    "json_array_elements_text",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_each",
    "jsonb_to_recordset",
    "json_to_recordset",
    "generate_series",
    "unnest",
];

/// SQLite virtual table modules a migration may use: FTS5 only (its
/// `content=` option is checked separately).
const VIRTUAL_TABLE_MODULES: &[&str] = &["fts5"];

/// Functions that read files, load code, change settings or run SQL given
/// as text: refused anywhere in a statement.
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "load_extension",
    "set_config",
    "current_setting",
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "table_to_xml",
    "cursor_to_xml",
    "schema_to_xml",
    "database_to_xml",
    "readfile",
    "writefile",
    "edit",
];

/// Prefixes of forbidden function families (server admin, large objects,
/// remote SQL).
const FORBIDDEN_FUNCTION_PREFIXES: &[&str] = &["pg_", "lo_", "dblink"];

/// Words that end a FROM list at their parenthesis level.
const FROM_LIST_END: &[&str] = &[
    "where",
    "group",
    "order",
    "limit",
    "offset",
    "having",
    "window",
    "union",
    "except",
    "intersect",
    "returning",
    "for",
    "select",
    "set",
    "values",
    "do",
];

/// Words between a table keyword and the name.
const SKIPPED_BEFORE_NAME: &[&str] = &["only", "if", "not", "exists", "concurrently", "lateral"];

/// How a name in a table position is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// `FROM`, `JOIN`, `USING`: a table, or a table-valued function.
    Read,
    /// `REFERENCES t (column)`: the table a foreign key points at, which
    /// must be the plugin's own.
    Reference,
    /// A table the statement changes.
    Write,
}

impl SqlScope {
    /// The scope of plugin `owner`, which depends on `dependencies`.
    pub fn new(owner: &str, dependencies: Vec<String>) -> Self {
        Self {
            owner: owner.to_string(),
            dependencies,
        }
    }

    /// Checks `sql`; the error names the first thing refused.
    pub fn check(&self, sql: &str, purpose: Purpose) -> Result<(), String> {
        let tokens = tokenize(sql)?;
        let statements = split_statements(&tokens);
        match (purpose, statements.len()) {
            (_, 0) => return Err("empty SQL statement".into()),
            (Purpose::Runtime, 2..) => {
                return Err("one statement per call; use a transaction for several".into())
            }
            _ => {}
        }
        for statement in statements {
            self.check_statement(statement, purpose)?;
        }
        Ok(())
    }

    fn check_statement(&self, tokens: &[Token], purpose: Purpose) -> Result<(), String> {
        let first = match &tokens[0] {
            Token::Word(word) => word.as_str(),
            _ => return Err("a statement must start with a keyword".into()),
        };
        let allowed = match purpose {
            Purpose::Runtime => {
                matches!(
                    first,
                    "select" | "insert" | "update" | "delete" | "with" | "values" | "replace"
                )
            }
            Purpose::Migration => matches!(
                first,
                "select"
                    | "insert"
                    | "update"
                    | "delete"
                    | "with"
                    | "replace"
                    | "create"
                    | "alter"
                    | "drop"
            ),
        };
        if !allowed {
            return Err(format!(
                "{} statements are not allowed here",
                first.to_uppercase()
            ));
        }
        if matches!(first, "create" | "alter" | "drop") {
            let kind = tokens
                .iter()
                .skip(1)
                .filter_map(|t| match t {
                    Token::Word(w) => Some(w.as_str()),
                    _ => None,
                })
                .find(|w| !matches!(*w, "unique" | "temp" | "temporary" | "or" | "replace"))
                .unwrap_or("");
            match (first, kind) {
                (_, "table" | "index" | "view" | "sequence") => {}
                ("create", "trigger") => return self.check_trigger(tokens),
                ("drop", "trigger") => return self.check_drop_trigger(tokens),
                ("create", "virtual") => return self.check_virtual_table(tokens),
                _ => {
                    return Err(format!(
                        "{} {} is not allowed: plugins create tables, indexes, views and \
                         sequences (and FTS5 tables and their triggers on SQLite)",
                        first.to_uppercase(),
                        kind.to_uppercase()
                    ))
                }
            }
        }
        let ddl = matches!(first, "create" | "alter" | "drop");
        self.scan(tokens, ddl)
    }

    /// Checks every name in a table position in `tokens` (a statement, or
    /// part of one); `ddl` turns on the schema-statement positions.
    fn scan(&self, tokens: &[Token], ddl: bool) -> Result<(), String> {
        let defined = cte_names(tokens);
        let context = query_context(tokens);
        // Per parenthesis level: inside a FROM list, where a comma starts
        // another table.
        let mut from_list = vec![false];
        for (i, token) in tokens.iter().enumerate() {
            let word = match token {
                Token::Punct('(') => {
                    from_list.push(false);
                    continue;
                }
                Token::Punct(')') => {
                    if from_list.len() > 1 {
                        from_list.pop();
                    }
                    continue;
                }
                Token::Punct(',') if from_list.last() == Some(&true) => {
                    self.check_position(tokens, i + 1, Access::Read, &defined)?;
                    continue;
                }
                Token::Word(word) => word.as_str(),
                _ => continue,
            };
            let previous = i.checked_sub(1).map(|p| &tokens[p]);
            let next = tokens.get(i + 1);
            if next == Some(&Token::Punct('(')) {
                self.check_function(word)?;
            }
            if FROM_LIST_END.contains(&word) {
                if let Some(open) = from_list.last_mut() {
                    *open = false;
                }
            }
            let access = match word {
                // `IS DISTINCT FROM x` compares; `EXTRACT(x FROM y)` and
                // friends sit in expression parentheses.
                "from" if previous.is_some_and(|p| p.is_word("distinct")) || !context[i] => None,
                "from" if previous.is_some_and(|p| p.is_word("delete")) => Some(Access::Write),
                "from" => {
                    if let Some(open) = from_list.last_mut() {
                        *open = true;
                    }
                    Some(Access::Read)
                }
                "join" => Some(Access::Read),
                // In DDL, USING names an index method (`USING GIN`), a
                // virtual table module (checked on its own) or a column
                // conversion: never a table.
                "using" if !ddl && next.is_some_and(|n| n.name().is_some()) => Some(Access::Read),
                "into" => Some(Access::Write),
                "update"
                    if !previous.is_some_and(|p| p.is_word("for"))
                        && !next.is_some_and(|n| n.is_word("set")) =>
                {
                    Some(Access::Write)
                }
                "table" | "view" | "sequence" | "index" if ddl => Some(Access::Write),
                "on" if ddl && index_name_before(tokens, i) => Some(Access::Write),
                "references" if ddl => Some(Access::Reference),
                "to" if ddl && previous.is_some_and(|p| p.is_word("rename")) => Some(Access::Write),
                _ => None,
            };
            if let Some(access) = access {
                self.check_position(tokens, i + 1, access, &defined)?;
            }
        }
        Ok(())
    }

    /// `CREATE [TEMP] TRIGGER [IF NOT EXISTS] <id>_x ... ON <own table>
    /// [FOR EACH ROW] [WHEN ...] BEGIN <statements>; END`: the SQLite form,
    /// whose body is plain DML, each statement checked like a runtime one.
    fn check_trigger(&self, tokens: &[Token]) -> Result<(), String> {
        let keyword = tokens
            .iter()
            .position(|token| token.is_word("trigger"))
            .ok_or("a trigger needs a name")?;
        let name_at = skip_words(tokens, keyword + 1);
        let name = tokens
            .get(name_at)
            .and_then(Token::name)
            .ok_or("a trigger needs a name")?;
        if tokens.get(name_at + 1) == Some(&Token::Punct('.')) {
            return Err(format!(
                "schema-qualified name {name}.… is not allowed; use the plugin's own tables"
            ));
        }
        self.check_owned_name("trigger", name)?;
        let Some(begin) = tokens.iter().position(|token| token.is_word("begin")) else {
            return Err(
                "a trigger must have a BEGIN ... END body of SQL statements; triggers that \
                 execute functions are not allowed"
                    .into(),
            );
        };
        if !tokens.last().is_some_and(|token| token.is_word("end")) || begin + 1 >= tokens.len() {
            return Err("a trigger body must end with END".into());
        }
        let on = tokens[name_at + 1..begin]
            .iter()
            .position(|token| token.is_word("on"))
            .map(|offset| name_at + 1 + offset)
            .ok_or("a trigger needs ON <table>")?;
        self.check_position(tokens, on + 1, Access::Write, &[])?;
        // FOR EACH ROW / WHEN (...): a WHEN clause may hold subqueries.
        self.scan(&tokens[(on + 2).min(begin)..begin], false)?;
        let body = &tokens[begin + 1..tokens.len() - 1];
        let statements: Vec<&[Token]> = body
            .split(|token| *token == Token::Punct(';'))
            .filter(|statement| !statement.is_empty())
            .collect();
        if statements.is_empty() {
            return Err("a trigger body needs at least one statement".into());
        }
        for statement in statements {
            self.check_statement(statement, Purpose::Runtime)?;
        }
        Ok(())
    }

    /// `DROP TRIGGER [IF EXISTS] <id>_x [ON <own table>]`.
    fn check_drop_trigger(&self, tokens: &[Token]) -> Result<(), String> {
        let keyword = tokens
            .iter()
            .position(|token| token.is_word("trigger"))
            .ok_or("DROP TRIGGER needs a name")?;
        let name_at = skip_words(tokens, keyword + 1);
        let name = tokens
            .get(name_at)
            .and_then(Token::name)
            .ok_or("DROP TRIGGER needs a name")?;
        if tokens.get(name_at + 1) == Some(&Token::Punct('.')) {
            return Err(format!(
                "schema-qualified name {name}.… is not allowed; use the plugin's own tables"
            ));
        }
        self.check_owned_name("trigger", name)?;
        if let Some(on) = tokens.iter().position(|token| token.is_word("on")) {
            self.check_position(tokens, on + 1, Access::Write, &[])?;
        }
        Ok(())
    }

    /// `CREATE VIRTUAL TABLE [IF NOT EXISTS] <id>_x USING fts5(...)`, whose
    /// `content=` table, if any, is the plugin's own (an external-content
    /// index reads its rows from that table).
    fn check_virtual_table(&self, tokens: &[Token]) -> Result<(), String> {
        let table = tokens
            .iter()
            .position(|token| token.is_word("table"))
            .filter(|&at| at == 2)
            .ok_or("only CREATE VIRTUAL TABLE is allowed")?;
        self.check_position(tokens, table + 1, Access::Write, &[])?;
        let using = tokens
            .iter()
            .position(|token| token.is_word("using"))
            .ok_or("a virtual table needs USING <module>")?;
        let module = tokens.get(using + 1).and_then(Token::name).unwrap_or("");
        if !VIRTUAL_TABLE_MODULES.contains(&module) {
            return Err(format!(
                "virtual table module {module} is not allowed; plugins may use {}",
                VIRTUAL_TABLE_MODULES.join(", ")
            ));
        }
        let arguments = &tokens[using + 2..];
        for (i, token) in arguments.iter().enumerate() {
            let option = match token {
                Token::Word(word) | Token::Quoted(word) | Token::Text(word) => word,
                _ => continue,
            };
            if !option.eq_ignore_ascii_case("content")
                || arguments.get(i + 1) != Some(&Token::Punct('='))
            {
                continue;
            }
            let source = match arguments.get(i + 2) {
                Some(Token::Word(name) | Token::Quoted(name) | Token::Text(name)) => {
                    name.to_lowercase()
                }
                _ => return Err("content= needs a table name".into()),
            };
            // An empty content= is a contentless index: nothing to read.
            if !source.is_empty() {
                self.check_table(&source, Access::Write, &[])
                    .map_err(|error| {
                        format!("the index's content= table must be the plugin's own: {error}")
                    })?;
            }
        }
        Ok(())
    }

    /// A schema object other than a table (a trigger) named in the
    /// plugin's namespace.
    fn check_owned_name(&self, kind: &str, name: &str) -> Result<(), String> {
        if name == self.owner
            || name
                .strip_prefix(self.owner.as_str())
                .is_some_and(|rest| rest.starts_with('_'))
        {
            Ok(())
        } else {
            Err(format!(
                "{kind} {name} must be named {}_* (plugin {}'s namespace)",
                self.owner, self.owner
            ))
        }
    }

    /// Checks the name in the table position starting at `at`.
    fn check_position(
        &self,
        tokens: &[Token],
        mut at: usize,
        access: Access,
        defined: &[String],
    ) -> Result<(), String> {
        while tokens
            .get(at)
            .is_some_and(|t| SKIPPED_BEFORE_NAME.iter().any(|word| t.is_word(word)))
        {
            at += 1;
        }
        // Nothing, or a subquery whose own FROMs the scan checks.
        let Some(name) = tokens.get(at).and_then(Token::name) else {
            return Ok(());
        };
        match tokens.get(at + 1) {
            Some(Token::Punct('.')) => Err(format!(
                "schema-qualified name {name}.… is not allowed; use the plugin's own tables"
            )),
            Some(Token::Punct('(')) if access == Access::Read => {
                if TABLE_FUNCTIONS.contains(&name) {
                    Ok(())
                } else {
                    Err(format!("function {name} is not allowed in FROM"))
                }
            }
            _ => self.check_table(name, access, defined),
        }
    }

    fn check_table(&self, name: &str, access: Access, defined: &[String]) -> Result<(), String> {
        let owns =
            |id: &str| name == id || name.strip_prefix(id).is_some_and(|r| r.starts_with('_'));
        if owns(&self.owner) {
            return Ok(());
        }
        if access == Access::Reference {
            // A key into another's table would let that side's deletes
            // reach (cascade or be blocked) across the boundary.
            return Err(format!(
                "a foreign key to {name} is outside plugin {}'s tables; keep its ids as plain columns",
                self.owner
            ));
        }
        if access != Access::Write {
            if defined.iter().any(|d| d == name) || self.dependencies.iter().any(|d| owns(d)) {
                return Ok(());
            }
            return Err(format!(
                "table {name} is outside plugin {}'s tables ({}_*) and those of its dependencies",
                self.owner, self.owner
            ));
        }
        Err(format!(
            "plugin {} may only change its own tables ({}_*), not {name}",
            self.owner, self.owner
        ))
    }

    fn check_function(&self, name: &str) -> Result<(), String> {
        if FORBIDDEN_FUNCTIONS.contains(&name)
            || FORBIDDEN_FUNCTION_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        {
            return Err(format!("function {name} is not allowed in plugin SQL"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> SqlScope {
        SqlScope::new("crm", vec!["products".into()])
    }

    fn runtime(sql: &str) -> Result<(), String> {
        scope().check(sql, Purpose::Runtime)
    }

    #[test]
    fn own_tables_are_usable() {
        for sql in [
            "SELECT id, name FROM crm_contacts WHERE id = $1",
            "SELECT c.id FROM crm_contacts c JOIN crm_notes n ON n.contact_id = c.id",
            "INSERT INTO crm_contacts (name) VALUES ($1) RETURNING id",
            "INSERT INTO crm_contacts (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = excluded.name",
            "UPDATE crm_contacts SET name = $1 WHERE id = $2",
            "DELETE FROM crm_contacts WHERE id = $1;",
            "SELECT count(*) AS n FROM crm_contacts, crm_notes WHERE crm_notes.contact_id = crm_contacts.id",
            "SELECT * FROM crm WHERE a IS DISTINCT FROM b",
            "SELECT EXTRACT(YEAR FROM created_at) FROM crm_contacts",
            "SELECT 'FROM users' AS text, \"name\" FROM \"crm_contacts\" -- FROM users",
            "SELECT id FROM crm_contacts WHERE id IN (SELECT contact_id FROM crm_notes)",
            "WITH recent AS (SELECT * FROM crm_notes) SELECT * FROM recent",
            "WITH r (id) AS (SELECT id FROM crm_notes) SELECT * FROM r JOIN crm_contacts USING (id)",
            "SELECT value FROM json_each($1)",
            "SELECT * FROM crm_contacts WHERE id = $1 FOR UPDATE",
            "SELECT 1",
            "SELECT index, view FROM crm_stats",
            "SELECT a, b FROM crm_x WHERE a IN (1, 2) ORDER BY a, b",
        ] {
            assert_eq!(runtime(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn dependencies_are_readable_not_writable() {
        assert_eq!(
            runtime("SELECT p.name FROM crm_deals d JOIN products_items p ON p.id = d.product_id"),
            Ok(())
        );
        assert_eq!(runtime("SELECT * FROM products"), Ok(()));
        let error = runtime("UPDATE products_items SET price = 0").unwrap_err();
        assert!(error.contains("only change its own tables"), "{error}");
        let error = runtime("INSERT INTO products_items (name) VALUES ('x')").unwrap_err();
        assert!(error.contains("products_items"), "{error}");
        let error = runtime("DELETE FROM products_items").unwrap_err();
        assert!(error.contains("products_items"), "{error}");
    }

    #[test]
    fn host_and_foreign_tables_are_refused_with_their_name() {
        for (sql, table) in [
            ("SELECT password_hash FROM users", "users"),
            (
                "SELECT * FROM crm_contacts JOIN users ON users.id = crm_contacts.owner",
                "users",
            ),
            (
                "SELECT * FROM crm_contacts, refresh_tokens",
                "refresh_tokens",
            ),
            (
                "SELECT * FROM crm_contacts c, refresh_tokens r",
                "refresh_tokens",
            ),
            ("SELECT * FROM (SELECT 1) x, users", "users"),
            (
                "SELECT * FROM crm_a a JOIN crm_b b ON a.id = b.id, users u",
                "users",
            ),
            (
                "SELECT * FROM crm_contacts WHERE id IN (SELECT id FROM users)",
                "users",
            ),
            ("SELECT * FROM \"USERS\"", "users"),
            ("SELECT * FROM leads_items", "leads_items"),
            ("SELECT * FROM crmx_items", "crmx_items"),
            ("DELETE FROM plugins", "plugins"),
            ("UPDATE roles SET name = 'x'", "roles"),
            ("INSERT INTO user_roles VALUES (1, 1)", "user_roles"),
            ("SELECT * FROM sqlite_master", "sqlite_master"),
        ] {
            let error = runtime(sql).unwrap_err();
            assert!(error.contains(table), "{sql}: {error}");
        }
    }

    #[test]
    fn other_statements_and_escapes_are_refused() {
        for sql in [
            "PRAGMA table_info(users)",
            "ATTACH DATABASE 'x.db' AS x",
            "DROP TABLE crm_contacts",
            "SELECT 1; DELETE FROM users",
            "SELECT * FROM main.users",
            "SELECT * FROM pg_catalog.pg_tables",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT load_extension('x')",
            "SELECT * FROM query_to_xml('select * from users', true, true, '')",
            "SELECT 'unterminated",
            "",
        ] {
            assert!(runtime(sql).is_err(), "{sql}");
        }
    }

    #[test]
    fn migrations_manage_only_own_objects() {
        let migrate = |sql: &str| scope().check(sql, Purpose::Migration);
        assert_eq!(
            migrate(
                "CREATE TABLE IF NOT EXISTS crm_contacts (id INTEGER PRIMARY KEY, company_id BIGINT REFERENCES crm_companies (id), product_id BIGINT);
                 CREATE UNIQUE INDEX crm_contacts_name ON crm_contacts (name);
                 ALTER TABLE crm_contacts ADD COLUMN email TEXT;
                 ALTER TABLE crm_contacts RENAME TO crm_people;
                 DROP TABLE IF EXISTS crm_old;"
            ),
            Ok(())
        );
        assert!(
            migrate("CREATE TABLE crm_lines (id BIGINT, product_id BIGINT REFERENCES products_items (id))")
                .is_err_and(|e| e.contains("foreign key to products_items")),
            "a key into a dependency's table"
        );
        for sql in [
            "DROP TABLE users",
            "ALTER TABLE users ADD COLUMN x TEXT",
            "CREATE INDEX users_email ON users (email)",
            "CREATE INDEX crm_x ON users (email)",
            "ALTER TABLE crm_contacts RENAME TO users2",
            "CREATE TRIGGER crm_t AFTER INSERT ON crm_contacts BEGIN DELETE FROM users; END",
            "CREATE TABLE crm_x (id BIGINT REFERENCES users (id))",
            "CREATE FUNCTION crm_f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql",
        ] {
            assert!(migrate(sql).is_err(), "{sql}");
        }
    }

    /// The products plugin's full-text search schema, as its migration 1
    /// writes it in each dialect.
    const FTS5_SCHEMA: &str = "
        CREATE TABLE products (id INTEGER PRIMARY KEY AUTOINCREMENT, sku TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL, description TEXT);
        CREATE VIRTUAL TABLE products_fts USING fts5(sku, name, description,
            content='products', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
        CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
            INSERT INTO products_fts (rowid, sku, name, description)
            VALUES (new.id, new.sku, new.name, new.description);
        END;
        CREATE TRIGGER IF NOT EXISTS products_fts_delete AFTER DELETE ON products
        FOR EACH ROW WHEN old.id > 0 BEGIN
            INSERT INTO products_fts (products_fts, rowid, sku, name, description)
            VALUES ('delete', old.id, old.sku, old.name, old.description);
        END;
        CREATE TRIGGER products_fts_update AFTER UPDATE OF sku, name, description ON products BEGIN
            INSERT INTO products_fts (products_fts, rowid, sku, name, description)
            VALUES ('delete', old.id, old.sku, old.name, CASE WHEN old.description IS NULL THEN NULL ELSE old.description END);
            INSERT INTO products_fts (rowid, sku, name, description)
            VALUES (new.id, new.sku, new.name, new.description);
        END;
        DROP TRIGGER IF EXISTS products_old_trigger;
        INSERT INTO products_fts (products_fts) VALUES ('rebuild');";

    const TSVECTOR_SCHEMA: &str = "
        CREATE TABLE products (id BIGSERIAL PRIMARY KEY, sku TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL, description TEXT,
            search_vector tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('simple', coalesce(sku, '')), 'A') ||
                to_tsvector('simple', name || ' ' || coalesce(description, ''))
            ) STORED);
        CREATE INDEX products_search ON products USING GIN (search_vector);
        CREATE INDEX IF NOT EXISTS products_name ON products USING btree (name);
        ALTER TABLE products ALTER COLUMN sku TYPE TEXT USING sku::text;";

    fn products() -> SqlScope {
        SqlScope::new("products", vec![])
    }

    #[test]
    fn full_text_search_schemas_are_accepted() {
        assert_eq!(products().check(FTS5_SCHEMA, Purpose::Migration), Ok(()));
        assert_eq!(
            products().check(TSVECTOR_SCHEMA, Purpose::Migration),
            Ok(())
        );
    }

    #[test]
    fn full_text_queries_are_accepted_at_runtime() {
        for sql in [
            "SELECT p.id FROM products p JOIN products_fts ON products_fts.rowid = p.id \
             WHERE products_fts MATCH $1 AND p.status = $2 ORDER BY bm25(products_fts), p.id LIMIT $3",
            "SELECT id FROM products WHERE id IN (SELECT rowid FROM products_fts WHERE products_fts MATCH $1)",
            "SELECT id, ts_rank(search_vector, to_tsquery('simple', $1)) AS rank FROM products \
             WHERE search_vector @@ to_tsquery('simple', $1) ORDER BY rank DESC",
            "SELECT highlight(products_fts, 1, '<b>', '</b>') FROM products_fts WHERE products_fts MATCH 'x'",
        ] {
            assert_eq!(products().check(sql, Purpose::Runtime), Ok(()), "{sql}");
        }
        let error = products()
            .check(
                "SELECT rowid FROM crm_fts WHERE crm_fts MATCH $1",
                Purpose::Runtime,
            )
            .unwrap_err();
        assert!(error.contains("crm_fts"), "{error}");
    }

    #[test]
    fn full_text_escapes_are_refused() {
        let migrate = |sql: &str| products().check(sql, Purpose::Migration);
        for (sql, expected) in [
            // An index over someone else's rows.
            (
                "CREATE VIRTUAL TABLE products_fts USING fts5(email, content='users', content_rowid='id')",
                "users",
            ),
            (
                "CREATE VIRTUAL TABLE products_fts USING fts5(email, content=\"USERS\")",
                "users",
            ),
            (
                "CREATE VIRTUAL TABLE products_fts USING fts5(email, content = users)",
                "users",
            ),
            ("CREATE VIRTUAL TABLE users_fts USING fts5(email)", "users_fts"),
            (
                "CREATE VIRTUAL TABLE products_vocab USING fts5vocab(crm_fts, row)",
                "fts5vocab",
            ),
            ("CREATE VIRTUAL TABLE products_rt USING rtree(id, a, b)", "rtree"),
            ("CREATE VIRTUAL TABLE main.products_fts USING fts5(a)", "schema-qualified"),
            // Triggers: on foreign tables, named outside the namespace,
            // writing or reading foreign tables, or running functions.
            (
                "CREATE TRIGGER products_t AFTER INSERT ON users BEGIN SELECT 1; END",
                "users",
            ),
            (
                "CREATE TRIGGER users_t AFTER INSERT ON products BEGIN SELECT 1; END",
                "users_t",
            ),
            (
                "CREATE TRIGGER products_t AFTER INSERT ON products BEGIN \
                 INSERT INTO products_log VALUES (new.id); UPDATE users SET is_active = 0; END",
                "users",
            ),
            (
                "CREATE TRIGGER products_t AFTER INSERT ON products BEGIN \
                 INSERT INTO products_log SELECT password_hash FROM users; END",
                "users",
            ),
            (
                "CREATE TRIGGER products_t AFTER INSERT ON products \
                 WHEN (SELECT count(*) FROM refresh_tokens) > 0 BEGIN SELECT 1; END",
                "refresh_tokens",
            ),
            (
                "CREATE TRIGGER products_t AFTER INSERT ON products BEGIN SELECT load_extension('x'); END",
                "load_extension",
            ),
            (
                "CREATE TRIGGER products_t BEFORE INSERT ON products FOR EACH ROW \
                 EXECUTE FUNCTION tsvector_update_trigger(search_vector, 'pg_catalog.simple', name)",
                "BEGIN",
            ),
            (
                "CREATE TRIGGER products_t AFTER INSERT ON products BEGIN DROP TABLE users; END",
                "DROP",
            ),
            ("CREATE TRIGGER products_t AFTER INSERT ON products BEGIN SELECT 1;", "END"),
            ("DROP TRIGGER users_t", "users_t"),
            ("DROP TRIGGER products_t ON users", "users"),
            ("ALTER TRIGGER products_t RENAME TO products_u", "ALTER TRIGGER"),
            ("CREATE INDEX products_x ON users USING gin (email)", "users"),
            ("CREATE FUNCTION products_f() RETURNS trigger AS $$ BEGIN END $$ LANGUAGE plpgsql", "FUNCTION"),
            // A trigger body cannot hide a second statement after END.
            (
                "CREATE TRIGGER products_t AFTER INSERT ON products BEGIN SELECT 1; END; DELETE FROM users",
                "users",
            ),
        ] {
            let error = migrate(sql).expect_err(sql);
            assert!(error.contains(expected), "{sql}: {error}");
        }
        // Nothing of this is allowed while running.
        assert!(products()
            .check(
                "CREATE TRIGGER products_t AFTER INSERT ON products BEGIN SELECT 1; END",
                Purpose::Runtime
            )
            .is_err());
        assert!(products()
            .check(
                "CREATE VIRTUAL TABLE products_fts USING fts5(a)",
                Purpose::Runtime
            )
            .is_err());
    }
}
