//! PostgreSQL: a login role per plugin, which owns the plugin's tables and
//! may read its dependencies' and nothing else.
//!
//! Why a login role and not `SET ROLE`: a session that switched roles can
//! switch back (`RESET ROLE`, `set_config('role', ...)`) to anything its
//! login user may be, so a plugin sharing the host's session could climb
//! back to the host's rights. A session that logs in as the plugin's role,
//! which is a member of nothing, has no way up.
//!
//! - Names: `xp_<8 hex of the database name>_<plugin id>`, so two
//!   deployments (or test databases) on one cluster never share a role.
//! - Password: derived from the host's secret (every instance of one
//!   deployment derives the same), stored by PostgreSQL as a SCRAM verifier
//!   computed here, so the password itself is never sent as SQL text (and
//!   so never lands in a statement log).
//! - Rights: `CONNECT`; `USAGE` on the schema; ownership of the relations
//!   named after the plugin (tables created before confinement existed are
//!   handed over); `SELECT` on the dependencies' relations, now and as they
//!   are created; its own rows of the migration ledger (row-level
//!   security). `CREATE` on the schema only while its migrations run, each
//!   of which must leave nothing but relations and types named after the
//!   plugin (no functions or operators, which could run with someone
//!   else's rights); the check runs in the migration's transaction, so a
//!   refused migration leaves nothing.
//!
//! The host's database user must be able to create roles (superuser or
//! `CREATEROLE`).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

use super::namespace::Namespace;
use crate::db::{
    migrate::{self, Migration},
    Database, Dialect,
};

/// The role a plugin's connections log in as.
#[derive(Clone)]
pub struct PluginRole {
    name: String,
    password: String,
    schema: String,
    namespace: Namespace,
}

impl fmt::Debug for PluginRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginRole")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The prefix of every plugin role of database `database`.
pub fn role_prefix(database: &str) -> String {
    format!("xp_{}_", &hex(&Sha256::digest(database.as_bytes()))[..8])
}

/// The role of plugin `plugin` in database `database` (at most 63 bytes,
/// PostgreSQL's limit: long ids are shortened with a hash).
pub fn role_name(database: &str, plugin: &str) -> String {
    let id = if plugin.len() <= 48 {
        plugin.to_string()
    } else {
        format!(
            "{}_{}",
            &plugin[..39],
            &hex(&Sha256::digest(plugin.as_bytes()))[..8]
        )
    };
    format!("{}{id}", role_prefix(database))
}

/// `'text'` as a SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"name"` as a SQL identifier.
fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `LIKE` pattern for `<id>_*`.
fn namespace_pattern(id: &str) -> String {
    format!("{}\\_%", id.replace('_', "\\_"))
}

/// PostgreSQL's SCRAM-SHA-256 verifier for `password` (RFC 5802, 7677).
fn scram_verifier(password: &str) -> String {
    use base64::Engine as _;
    const ITERATIONS: u32 = 4096;
    let hmac = |key: &[u8], data: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes()
    };
    let salt: [u8; 16] = rand::random();
    // Hi(): PBKDF2-HMAC-SHA-256 with one output block.
    let mut block = hmac(
        password.as_bytes(),
        &[&salt[..], &1u32.to_be_bytes()].concat(),
    );
    let mut salted = block;
    for _ in 1..ITERATIONS {
        block = hmac(password.as_bytes(), &block);
        for (out, byte) in salted.iter_mut().zip(block.iter()) {
            *out ^= byte;
        }
    }
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

async fn run(connection: &mut AnyConnection, sql: &str) -> Result<(), String> {
    connection
        .execute(sql)
        .await
        .map(|_| ())
        .map_err(|error| match error {
            sqlx::Error::Database(db) => db.message().to_string(),
            other => other.to_string(),
        })
}

async fn names(connection: &mut AnyConnection, sql: &str) -> Result<Vec<(String, String)>, String> {
    sqlx::query_as(sql)
        .fetch_all(&mut *connection)
        .await
        .map_err(|error| error.to_string())
}

/// Whether role `name` exists in the cluster.
async fn role_exists(connection: &mut AnyConnection, name: &str) -> Result<bool, String> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(name)
        .fetch_optional(&mut *connection)
        .await
        .map_err(|error| error.to_string())?;
    Ok(found.is_some())
}

/// Relations of `id`'s namespace in the current schema, as `(name, kind)`.
fn relations_of(id: &str, kinds: &str) -> String {
    format!(
        "SELECT c.relname::text, c.relkind::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ({kinds}) \
         AND (c.relname = {} OR c.relname LIKE {} ESCAPE '\\')",
        literal(id),
        literal(&namespace_pattern(id))
    )
}

/// Creates or updates the plugin's role and its rights; the caller's
/// connection must be the host's.
pub async fn prepare(
    host: &Database,
    namespace: &Namespace,
    secret: &str,
) -> Result<PluginRole, String> {
    if host.dialect() != Dialect::Postgres {
        return Err("plugin roles exist on PostgreSQL only".into());
    }
    let fail = |context: &str, error: String| {
        format!("cannot confine the plugin's SQL ({context}): {error}")
    };
    let mut connection = host
        .pool()
        .acquire()
        .await
        .map_err(|error| fail("connect", error.to_string()))?;
    let connection: &mut AnyConnection = &mut connection;
    let (database, schema): (String, String) =
        sqlx::query_as("SELECT current_database()::text, current_schema()::text")
            .fetch_one(&mut *connection)
            .await
            .map_err(|error| fail("read the database name", error.to_string()))?;
    let id = namespace.owner();
    let name = role_name(&database, id);
    let password = hex(&Sha256::digest(
        format!("xcore plugin role\0{secret}\0{name}").as_bytes(),
    ));
    let role = identifier(&name);
    // One preparation at a time per database, across instances: roles,
    // policies and grants are catalogue rows two sessions would race on.
    let mut tx = connection
        .begin()
        .await
        .map_err(|error| fail("begin", error.to_string()))?;
    let outcome = async {
        let connection: &mut AnyConnection = &mut tx;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(migrate::ADVISORY_LOCK_KEY)
            .execute(&mut *connection)
            .await
            .map_err(|error| error.to_string())?;
        run(
            connection,
            &format!(
                "DO $$ BEGIN CREATE ROLE {role}; \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            ),
        )
        .await?;
        run(
            connection,
            &format!(
                "ALTER ROLE {role} WITH LOGIN NOINHERIT PASSWORD {}",
                literal(&scram_verifier(&password))
            ),
        )
        .await?;
        // The host manages the role's objects (purge, grants on them).
        run(connection, &format!("GRANT {role} TO CURRENT_USER")).await?;
        run(
            connection,
            &format!("GRANT CONNECT ON DATABASE {} TO {role}", identifier(&database)),
        )
        .await?;
        run(
            connection,
            &format!("GRANT USAGE ON SCHEMA {} TO {role}", identifier(&schema)),
        )
        .await?;
        // Tables made before confinement existed belong to the host user:
        // hand them over (owned sequences and indexes follow their table).
        for (relation, kind) in names(connection, &relations_of(id, "'r','p','v','m','f'")).await? {
            let keyword = match kind.as_str() {
                "v" => "VIEW",
                "m" => "MATERIALIZED VIEW",
                "f" => "FOREIGN TABLE",
                _ => "TABLE",
            };
            run(
                connection,
                &format!("ALTER {keyword} {} OWNER TO {role}", identifier(&relation)),
            )
            .await?;
        }
        let free_sequences = format!(
            "{} AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid \
             AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
             AND d.deptype IN ('a', 'i'))",
            relations_of(id, "'S'")
        );
        for (sequence, _) in names(connection, &free_sequences).await? {
            run(
                connection,
                &format!("ALTER SEQUENCE {} OWNER TO {role}", identifier(&sequence)),
            )
            .await?;
        }
        for dependency in namespace.dependencies() {
            for (relation, _) in names(connection, &relations_of(dependency, "'r','p','v','m','f'")).await? {
                run(
                    connection,
                    &format!("GRANT SELECT ON {} TO {role}", identifier(&relation)),
                )
                .await?;
            }
            let dependency_role = role_name(&database, dependency);
            if role_exists(connection, &dependency_role).await? {
                run(
                    connection,
                    &format!(
                        "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {role}",
                        identifier(&dependency_role),
                        identifier(&schema)
                    ),
                )
                .await?;
            }
        }
        // Its own rows of the migration ledger, so a migration and its
        // record commit together on the plugin's connection.
        let owner = literal(&format!("plugin:{id}"));
        run(connection, "ALTER TABLE xcore_migrations ENABLE ROW LEVEL SECURITY").await?;
        run(connection, &format!("DROP POLICY IF EXISTS {role} ON xcore_migrations")).await?;
        run(
            connection,
            &format!(
                "CREATE POLICY {role} ON xcore_migrations TO {role} \
                 USING (owner = {owner}) WITH CHECK (owner = {owner})"
            ),
        )
        .await?;
        run(connection, &format!("GRANT SELECT, INSERT ON xcore_migrations TO {role}")).await?;
        Ok::<(), String>(())
    }
    .await;
    // On an error, dropping `tx` rolls everything back.
    outcome.map_err(|error| fail(&format!("role {name}"), error))?;
    tx.commit()
        .await
        .map_err(|error| fail("commit", error.to_string()))?;
    Ok(PluginRole {
        name,
        password,
        schema,
        namespace: namespace.clone(),
    })
}

/// Forgets plugin `id`'s role (uninstall with purge), in the caller's
/// transaction: its policy, what it still owns and its grants here, then
/// the role itself.
pub async fn forget(connection: &mut AnyConnection, id: &str) -> Result<(), String> {
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *connection)
        .await
        .map_err(|error| error.to_string())?;
    let name = role_name(&database, id);
    if !role_exists(connection, &name).await? {
        return Ok(());
    }
    let role = identifier(&name);
    run(
        connection,
        &format!("DROP POLICY IF EXISTS {role} ON xcore_migrations"),
    )
    .await?;
    run(connection, &format!("DROP OWNED BY {role}")).await?;
    run(connection, &format!("DROP ROLE {role}")).await
}

impl PluginRole {
    /// `host_url` with the role's credentials instead of the host's.
    pub fn login_url(&self, host_url: &str) -> Result<String, String> {
        let mut url =
            url::Url::parse(host_url).map_err(|error| format!("invalid database URL: {error}"))?;
        url.set_username(&self.name)
            .and_then(|()| url.set_password(Some(&self.password)))
            .map_err(|()| "the database URL cannot carry credentials".to_string())?;
        Ok(url.to_string())
    }

    /// A query listing what a migration left that a plugin may not own:
    /// relations or types outside its namespace, any function or operator.
    fn leftovers_query(&self) -> String {
        let id = self.namespace.owner();
        let role = literal(&self.name);
        let inside = |column: &str| {
            format!(
                "({column} = {} OR {column} LIKE {} ESCAPE '\\')",
                literal(id),
                literal(&namespace_pattern(id))
            )
        };
        format!(
            "SELECT 'relation ' || c.relname::text || ' is outside plugin {id}''s tables' FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = {role}) \
             AND n.nspname NOT IN ('pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND NOT {rel} \
             UNION ALL SELECT 'type ' || t.typname::text || ' is outside plugin {id}''s namespace' FROM pg_type t \
             WHERE t.typowner = (SELECT oid FROM pg_roles WHERE rolname = {role}) \
             AND t.typrelid = 0 AND t.typcategory <> 'A' AND NOT {typ} \
             UNION ALL SELECT 'function ' || p.proname::text || ': plugins may not create functions' FROM pg_proc p \
             WHERE p.proowner = (SELECT oid FROM pg_roles WHERE rolname = {role}) \
             UNION ALL SELECT 'operator ' || o.oprname::text || ': plugins may not create operators' FROM pg_operator o \
             WHERE o.oprowner = (SELECT oid FROM pg_roles WHERE rolname = {role})",
            rel = inside("c.relname"),
            typ = inside("t.typname"),
        )
    }

    /// Applies the plugin's pending migrations on its own connection, with
    /// `CREATE` on the schema granted for the run only, under the host's
    /// migration lock.
    pub async fn migrate(
        &self,
        host: &Database,
        pool: &AnyPool,
        owner: &str,
        migrations: &[Migration<'_>],
    ) -> Result<usize, String> {
        let mut lock = host
            .pool()
            .acquire()
            .await
            .map_err(|error| error.to_string())?;
        let lock: &mut AnyConnection = &mut lock;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(migrate::ADVISORY_LOCK_KEY)
            .execute(&mut *lock)
            .await
            .map_err(|error| error.to_string())?;
        let (schema, role) = (identifier(&self.schema), identifier(&self.name));
        let granted = run(lock, &format!("GRANT CREATE ON SCHEMA {schema} TO {role}")).await;
        let outcome = match granted {
            Ok(()) => match pool.acquire().await {
                Ok(mut connection) => migrate::apply_on(
                    &mut connection,
                    Dialect::Postgres,
                    owner,
                    migrations,
                    Some(&self.leftovers_query()),
                )
                .await
                .map_err(|error| format!("{error:#}")),
                Err(error) => Err(format!("the plugin's role cannot connect: {error}")),
            },
            Err(error) => Err(error),
        };
        // Always given back, and the lock released, whatever happened: the
        // connection returns to the host's pool.
        let revoked = run(
            lock,
            &format!("REVOKE CREATE ON SCHEMA {schema} FROM {role}"),
        )
        .await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(migrate::ADVISORY_LOCK_KEY)
            .execute(&mut *lock)
            .await;
        let applied = outcome?;
        revoked?;
        unlocked.map_err(|error| error.to_string())?;
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_fit_postgres_and_differ_per_database() {
        let short = role_name("xcore", "products");
        assert!(short.starts_with("xp_") && short.ends_with("_products"));
        assert_ne!(short, role_name("other", "products"));
        let long = role_name("xcore", &"a".repeat(64));
        assert!(long.len() <= 63, "{long}");
        assert_ne!(long, role_name("xcore", &format!("{}b", "a".repeat(63))));
    }

    #[test]
    fn the_verifier_has_postgres_format() {
        let verifier = scram_verifier("secret");
        let (method, rest) = verifier.split_once('$').expect("method");
        assert_eq!(method, "SCRAM-SHA-256");
        assert!(rest.starts_with("4096:"));
        assert_eq!(rest.matches('$').count(), 1);
        assert_eq!(rest.matches(':').count(), 2);
    }
}
