//! SQLite's authorizer on the connections that run a plugin's SQL.
//!
//! SQLite calls the authorizer while it compiles each statement, once per
//! table, column, function, pragma or schema change the statement really
//! touches, after name resolution: quotes, parentheses, comments, CTE or
//! window names, views and trigger bodies are all seen through. That makes
//! it the wall; the lexical guard in `sql_guard` only gives early, friendly
//! messages.
//!
//! Each connection carries a [`ConnectionPolicy`] (the plugin's
//! [`Namespace`] and a [`Mode`]) registered as SQLite client data, so it is
//! freed with the connection. The host switches a connection to
//! [`Mode::Host`] only around its own bookkeeping statements on it (the
//! migration ledger), which it prepares uncached so no plugin statement can
//! reuse a statement compiled under that mode.

// Registering a C callback and reading the strings SQLite hands it is
// unsafe by nature; this module and the plugin loader are the only ones.
#![allow(unsafe_code)]

use std::{
    ffi::{c_char, c_int, c_void, CStr},
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, Mutex,
    },
};

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

use super::namespace::Namespace;

/// The client-data key the policy is registered under.
const POLICY_KEY: &CStr = c"xcore_plugin_policy";

/// What a connection's statements are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// A running plugin: reads and writes, no schema changes.
    Runtime = 0,
    /// The plugin's migrations: schema changes on its own tables too.
    Migration = 1,
    /// The host's own statements on the connection: unrestricted.
    Host = 2,
}

/// What one connection may do, and the last thing it was refused.
pub struct ConnectionPolicy {
    namespace: Arc<Namespace>,
    mode: AtomicU8,
    /// The first refusal of the statement being compiled, for the error.
    refusal: Mutex<Option<String>>,
}

/// A decision about one action.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, and why (for the plugin's error).
    Deny(String),
}

/// One authorizer call, with SQLite's arguments decoded.
#[derive(Clone, Copy, Debug)]
pub struct Action<'a> {
    /// The action code (`SQLITE_READ`, `SQLITE_CREATE_TABLE`, ...).
    pub code: c_int,
    /// First detail: usually a table, index, trigger or pragma name.
    pub first: Option<&'a str>,
    /// Second detail: a column, the indexed table, a module name.
    pub second: Option<&'a str>,
    /// The database (`main`, `temp`, an attached name), when relevant.
    pub database: Option<&'a str>,
}

/// SQLite's own catalogue tables: a schema change writes them as a side
/// effect of `CREATE`/`DROP`/`ALTER`, which are checked by name on their
/// own; SQLite itself refuses direct writes while `writable_schema` is off
/// (and pragmas are refused here).
fn is_schema_table(name: &str) -> bool {
    [
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    ]
    .iter()
    .any(|schema| name.eq_ignore_ascii_case(schema))
}

/// Table-valued JSON functions: they read their arguments, nothing else
/// (unlike `dbstat`, `sqlite_dbpage` or the `pragma_*` tables, which stay
/// refused).
fn is_json_function(name: &str) -> bool {
    ["json_each", "json_tree", "jsonb_each", "jsonb_tree"]
        .iter()
        .any(|function| name.eq_ignore_ascii_case(function))
}

/// The policy, as a pure function of the namespace, the mode and the action.
pub fn decide(namespace: &Namespace, mode: Mode, action: Action<'_>) -> Decision {
    if mode == Mode::Host {
        return Decision::Allow;
    }
    let migration = mode == Mode::Migration;
    let name = action.first.unwrap_or("");
    let deny = |why: String| Decision::Deny(why);
    let own = |table: &str| {
        if namespace.owns(table) {
            Decision::Allow
        } else {
            deny(namespace.outside(table))
        }
    };
    let schema_change = |check: Decision| {
        if migration {
            check
        } else {
            deny("schema changes are allowed in migrations only".into())
        }
    };
    // Only the main database: no temp objects (they could shadow names for
    // the rest of the connection's life) and no attached files.
    if let Some(database) = action.database {
        if !database.eq_ignore_ascii_case("main") {
            return deny(format!("database {database} is out of reach of plugins"));
        }
    }
    match action.code {
        ffi::SQLITE_SELECT | ffi::SQLITE_RECURSIVE => Decision::Allow,
        // A plugin may end or nest its own transactions; it only reaches its
        // own tables either way.
        ffi::SQLITE_TRANSACTION | ffi::SQLITE_SAVEPOINT => Decision::Allow,
        ffi::SQLITE_READ => {
            if namespace.may_read(name) || is_json_function(name) {
                Decision::Allow
            } else if is_schema_table(name) {
                // CREATE, ALTER and DROP read the catalogue as they change
                // it; a running plugin never needs to.
                schema_change(Decision::Allow)
            } else {
                deny(namespace.outside(name))
            }
        }
        ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE => {
            if is_schema_table(name) {
                schema_change(Decision::Allow)
            } else {
                own(name)
            }
        }
        ffi::SQLITE_CREATE_TABLE
        | ffi::SQLITE_CREATE_VIEW
        | ffi::SQLITE_DROP_TABLE
        | ffi::SQLITE_DROP_VIEW => schema_change(own(name)),
        ffi::SQLITE_CREATE_INDEX
        | ffi::SQLITE_DROP_INDEX
        | ffi::SQLITE_CREATE_TRIGGER
        | ffi::SQLITE_DROP_TRIGGER => {
            // SQLite names the indexes behind UNIQUE and PRIMARY KEY
            // constraints itself; the table they index is what matters.
            let automatic = matches!(
                action.code,
                ffi::SQLITE_CREATE_INDEX | ffi::SQLITE_DROP_INDEX
            ) && name.starts_with("sqlite_autoindex_");
            let named = if automatic {
                Decision::Allow
            } else {
                own(name)
            };
            schema_change(match named {
                Decision::Allow => own(action.second.unwrap_or("")),
                refused => refused,
            })
        }
        ffi::SQLITE_CREATE_VTABLE | ffi::SQLITE_DROP_VTABLE => {
            // FTS5 only: other modules (fts5vocab, ...) read what they are
            // pointed at.
            let module = action.second.unwrap_or("");
            if module.eq_ignore_ascii_case("fts5") {
                schema_change(own(name))
            } else {
                deny(format!("virtual table module {module} is not allowed"))
            }
        }
        // ALTER TABLE: the database, then the table.
        ffi::SQLITE_ALTER_TABLE => schema_change(own(action.second.unwrap_or(""))),
        ffi::SQLITE_ANALYZE | ffi::SQLITE_REINDEX => own(name),
        ffi::SQLITE_FUNCTION => {
            let function = action.second.unwrap_or("");
            if function.eq_ignore_ascii_case("load_extension") {
                deny("load_extension is not allowed".into())
            } else {
                Decision::Allow
            }
        }
        // FTS5 reads `data_version` to know when to reload its structure;
        // it changes nothing and tells nothing about other tables.
        ffi::SQLITE_PRAGMA if name.eq_ignore_ascii_case("data_version") => Decision::Allow,
        ffi::SQLITE_PRAGMA => deny(format!("PRAGMA {name} is not allowed")),
        ffi::SQLITE_ATTACH | ffi::SQLITE_DETACH => deny("ATTACH and DETACH are not allowed".into()),
        ffi::SQLITE_CREATE_TEMP_INDEX
        | ffi::SQLITE_CREATE_TEMP_TABLE
        | ffi::SQLITE_CREATE_TEMP_TRIGGER
        | ffi::SQLITE_CREATE_TEMP_VIEW
        | ffi::SQLITE_DROP_TEMP_INDEX
        | ffi::SQLITE_DROP_TEMP_TABLE
        | ffi::SQLITE_DROP_TEMP_TRIGGER
        | ffi::SQLITE_DROP_TEMP_VIEW => deny("temporary objects are not allowed".into()),
        other => deny(format!("SQLite action {other} is not allowed")),
    }
}

/// Reads a string SQLite passes the authorizer.
///
/// # Safety
/// `text` is null or a NUL-terminated string valid for the call.
unsafe fn text<'a>(text: *const c_char) -> Option<&'a str> {
    if text.is_null() {
        None
    } else {
        // SAFETY: as the caller promises.
        unsafe { CStr::from_ptr(text) }.to_str().ok()
    }
}

/// The callback SQLite calls; never unwinds into C.
unsafe extern "C" fn authorize(
    policy: *mut c_void,
    code: c_int,
    first: *const c_char,
    second: *const c_char,
    database: *const c_char,
    _trigger_or_view: *const c_char,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `policy` is the Box registered with this connection in
        // `install`, freed only when SQLite closes the connection; the
        // strings are SQLite's, valid for this call.
        let policy = unsafe { &*(policy as *const ConnectionPolicy) };
        let action = unsafe {
            Action {
                code,
                first: text(first),
                second: text(second),
                database: text(database),
            }
        };
        // Anything unexpected gets the least rights.
        let mode = match policy.mode.load(Ordering::Acquire) {
            1 => Mode::Migration,
            2 => Mode::Host,
            _ => Mode::Runtime,
        };
        match decide(&policy.namespace, mode, action) {
            Decision::Allow => ffi::SQLITE_OK,
            Decision::Deny(why) => {
                if let Ok(mut refusal) = policy.refusal.lock() {
                    refusal.get_or_insert(why);
                }
                ffi::SQLITE_DENY
            }
        }
    }));
    outcome.unwrap_or(ffi::SQLITE_DENY)
}

/// Frees a connection's policy when SQLite closes the connection.
unsafe extern "C" fn free_policy(policy: *mut c_void) {
    if !policy.is_null() {
        // SAFETY: created by Box::into_raw in `install`, freed once, here.
        drop(unsafe { Box::from_raw(policy.cast::<ConnectionPolicy>()) });
    }
}

/// Installs the authorizer for `namespace` on a new connection, in
/// [`Mode::Runtime`].
pub async fn install(
    connection: &mut SqliteConnection,
    namespace: Arc<Namespace>,
) -> Result<(), sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    let policy = Box::into_raw(Box::new(ConnectionPolicy {
        namespace,
        mode: AtomicU8::new(Mode::Runtime as u8),
        refusal: Mutex::new(None),
    }));
    // SAFETY: `db` is this connection's open handle, locked for us; the
    // policy pointer stays valid until SQLite calls `free_policy` on close,
    // which happens after the last authorizer call.
    let registered = unsafe {
        ffi::sqlite3_set_clientdata(db, POLICY_KEY.as_ptr(), policy.cast(), Some(free_policy))
    };
    if registered != ffi::SQLITE_OK {
        // SAFETY: SQLite did not take it.
        drop(unsafe { Box::from_raw(policy) });
        return Err(sqlx::Error::Protocol(
            "cannot attach the plugin policy to a SQLite connection".into(),
        ));
    }
    // SAFETY: as above; the callback matches SQLite's signature.
    let installed = unsafe { ffi::sqlite3_set_authorizer(db, Some(authorize), policy.cast()) };
    if installed != ffi::SQLITE_OK {
        return Err(sqlx::Error::Protocol(
            "cannot install the SQLite authorizer".into(),
        ));
    }
    Ok(())
}

/// Runs `with` on the policy of `connection` (installed by [`install`]).
async fn with_policy<R>(
    connection: &mut SqliteConnection,
    with: impl FnOnce(&ConnectionPolicy) -> R,
) -> Result<R, sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is locked for us; the pointer is the policy registered
    // in `install`, alive while the connection is open.
    let policy = unsafe { ffi::sqlite3_get_clientdata(db, POLICY_KEY.as_ptr()) };
    if policy.is_null() {
        return Err(sqlx::Error::Protocol(
            "a plugin connection without its policy".into(),
        ));
    }
    // SAFETY: see above.
    Ok(with(unsafe { &*(policy as *const ConnectionPolicy) }))
}

/// Switches what the connection's next statements may do.
pub async fn set_mode(connection: &mut SqliteConnection, mode: Mode) -> Result<(), sqlx::Error> {
    with_policy(connection, |policy| {
        policy.mode.store(mode as u8, Ordering::Release);
    })
    .await
}

/// The first refusal since the last call, if any (and forgets it).
pub async fn take_refusal(connection: &mut SqliteConnection) -> Option<String> {
    with_policy(connection, |policy| {
        policy
            .refusal
            .lock()
            .ok()
            .and_then(|mut refusal| refusal.take())
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action<'a>(code: c_int, first: &'a str, second: Option<&'a str>) -> Action<'a> {
        Action {
            code,
            first: Some(first),
            second,
            database: Some("main"),
        }
    }

    #[test]
    fn the_policy_follows_the_namespace_and_the_mode() {
        let scope = Namespace::new("shop", vec!["products".into()]);
        let allowed = |mode, action| decide(&scope, mode, action) == Decision::Allow;
        assert!(allowed(
            Mode::Runtime,
            action(ffi::SQLITE_READ, "shop_orders", Some("id"))
        ));
        assert!(allowed(
            Mode::Runtime,
            action(ffi::SQLITE_READ, "products_items", None)
        ));
        assert!(!allowed(
            Mode::Runtime,
            action(ffi::SQLITE_READ, "users", Some("email"))
        ));
        assert!(!allowed(
            Mode::Runtime,
            action(ffi::SQLITE_READ, "sqlite_master", None)
        ));
        assert!(!allowed(
            Mode::Runtime,
            action(ffi::SQLITE_UPDATE, "products_items", None)
        ));
        assert!(!allowed(
            Mode::Runtime,
            action(ffi::SQLITE_INSERT, "sqlite_master", None)
        ));
        assert!(allowed(
            Mode::Migration,
            action(ffi::SQLITE_INSERT, "sqlite_master", None)
        ));
        assert!(!allowed(
            Mode::Runtime,
            action(ffi::SQLITE_CREATE_TABLE, "shop_x", None)
        ));
        assert!(allowed(
            Mode::Migration,
            action(ffi::SQLITE_CREATE_TABLE, "shop_x", None)
        ));
        assert!(!allowed(
            Mode::Migration,
            action(ffi::SQLITE_CREATE_TABLE, "users2", None)
        ));
        assert!(!allowed(
            Mode::Migration,
            action(ffi::SQLITE_CREATE_TRIGGER, "shop_t", Some("users"))
        ));
        assert!(!allowed(
            Mode::Migration,
            action(ffi::SQLITE_CREATE_VTABLE, "shop_v", Some("fts5vocab"))
        ));
        assert!(!allowed(
            Mode::Migration,
            action(ffi::SQLITE_PRAGMA, "writable_schema", None)
        ));
        assert!(!allowed(
            Mode::Migration,
            action(ffi::SQLITE_ATTACH, "x.db", None)
        ));
        assert!(!allowed(
            Mode::Runtime,
            Action {
                code: ffi::SQLITE_READ,
                first: Some("shop_x"),
                second: None,
                database: Some("temp"),
            }
        ));
        assert!(allowed(
            Mode::Host,
            action(ffi::SQLITE_UPDATE, "users", None)
        ));
    }
}
