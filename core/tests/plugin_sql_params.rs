//! Plugin SQL parameters bound from JSON, the same SQL text run again and
//! again with parameters of changing kinds (null, bool, integer, float,
//! text) on the plugin's own pool.
//!
//! The drivers cache a prepared statement per SQL text on each connection,
//! and PostgreSQL fixes the parameter types when it prepares: a statement
//! prepared for a text null and then bound with an integer would hand the
//! server eight binary bytes it reads as text (the "invalid byte sequence
//! for encoding UTF8: 0x00" found while writing the pricing plugin). Every
//! execution here must return what it would on a fresh connection.

mod common;

use common::TestServer;
use serde_json::{json, Value};
use xcore::{
    db::{migrate::Migration, Dialect},
    plugins::confinement::{Namespace, PluginDatabase},
};
use xcore_plugin_sdk::Statement;

/// Rounds per case: each kind follows the other many times on the pool's
/// connections.
const ROUNDS: usize = 12;
/// Runs of one kind in a row. The pool hands its idle connections out in
/// turn, so strictly alternating kinds could give each connection one kind
/// only; a run length prime to the pool size (4) mixes them on each.
const RUN: usize = 5;

async fn binder(server: &TestServer) -> PluginDatabase {
    let db = &server.state.db;
    let sql = PluginDatabase::open(db, Namespace::new("binder", Vec::new()), common::JWT_SECRET)
        .await
        .expect("binder pool");
    let table = match db.dialect() {
        Dialect::Sqlite => {
            "CREATE TABLE binder_values (id INTEGER PRIMARY KEY, \
             n BIGINT, s TEXT, b BOOLEAN, f DOUBLE PRECISION)"
        }
        Dialect::Postgres => {
            "CREATE TABLE binder_values (id BIGSERIAL PRIMARY KEY, \
             n BIGINT, s TEXT, b BOOLEAN, f DOUBLE PRECISION)"
        }
    };
    sql.migrate(
        db,
        &[Migration {
            version: 1,
            name: "values",
            sqlite: table,
            postgres: table,
        }],
    )
    .await
    .expect("migrate");
    sql
}

fn statement(sql: &str, params: Vec<Value>) -> Statement {
    Statement {
        sql: sql.to_string(),
        params,
    }
}

/// What the database gives back for `value`: SQLite has no boolean, it
/// stores true as 1.
fn stored(value: &Value, dialect: Dialect) -> Value {
    match (value, dialect) {
        (Value::Bool(flag), Dialect::Sqlite) => json!(i64::from(*flag)),
        _ => value.clone(),
    }
}

/// One SQL text, its column, and the two values that alternate on it.
struct Case {
    column: &'static str,
    sql: &'static str,
    first: Value,
    then: Value,
}

fn cases() -> Vec<Case> {
    // A null has no type of its own: a plugin casts where the column is not
    // text (CAST works on both databases).
    let number = "INSERT INTO binder_values (n) VALUES (CAST($1 AS BIGINT)) RETURNING n";
    let text = "INSERT INTO binder_values (s) VALUES ($1) RETURNING s";
    let flag = "INSERT INTO binder_values (b) VALUES (CAST($1 AS BOOLEAN)) RETURNING b";
    let float = "INSERT INTO binder_values (f) VALUES (CAST($1 AS DOUBLE PRECISION)) RETURNING f";
    vec![
        Case {
            column: "n",
            sql: number,
            first: Value::Null,
            then: json!(42),
        },
        Case {
            column: "n",
            sql: number,
            first: json!(-7),
            then: Value::Null,
        },
        Case {
            column: "s",
            sql: text,
            first: Value::Null,
            then: json!("plain text"),
        },
        Case {
            column: "s",
            sql: text,
            first: json!("first text"),
            then: Value::Null,
        },
        Case {
            column: "b",
            sql: flag,
            first: json!(true),
            then: Value::Null,
        },
        Case {
            column: "b",
            sql: flag,
            first: Value::Null,
            then: json!(false),
        },
        Case {
            column: "f",
            sql: float,
            first: Value::Null,
            then: json!(2.5),
        },
        Case {
            column: "f",
            sql: float,
            first: json!(0.25),
            then: Value::Null,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_keeps_working_whatever_kinds_its_parameters_alternate_between() {
    let server = TestServer::start().await;
    let dialect = server.state.db.dialect();
    let sql = binder(&server).await;
    for case in cases() {
        // On PostgreSQL the row also says which server process ran it: some
        // connection must have run both kinds, one after the other, or the
        // statement cache was never put to the test.
        let sql_text = match dialect {
            Dialect::Postgres => format!("{}, pg_backend_pid() AS pid", case.sql),
            Dialect::Sqlite => case.sql.to_string(),
        };
        let mut kinds_by_backend: std::collections::BTreeMap<String, Vec<usize>> =
            std::collections::BTreeMap::new();
        for round in 0..ROUNDS {
            let kinds = [&case.first, &case.then].into_iter().enumerate();
            for (kind, value) in kinds.flat_map(|pair| std::iter::repeat_n(pair, RUN)) {
                let rows = sql
                    .query(&statement(&sql_text, vec![value.clone()]))
                    .await
                    .unwrap_or_else(|error| {
                        panic!(
                            "{} with {value} (round {round}, after {}): {error:?}",
                            case.sql, case.first
                        )
                    });
                assert_eq!(
                    rows[0][case.column],
                    stored(value, dialect),
                    "{} with {value}, round {round}: {rows}",
                    case.sql
                );
                let backend = rows[0]["pid"].to_string();
                let kinds = kinds_by_backend.entry(backend).or_default();
                if kinds.last() != Some(&kind) {
                    kinds.push(kind);
                }
            }
        }
        if dialect == Dialect::Postgres {
            assert!(
                kinds_by_backend.values().any(|kinds| kinds.len() >= 3),
                "no connection alternated between the kinds: {kinds_by_backend:?}"
            );
        }
    }
    // Nothing was lost or half-written: every insert is there.
    let count = sql
        .query(&statement(
            "SELECT COUNT(*) AS n FROM binder_values",
            vec![],
        ))
        .await
        .expect("count");
    assert_eq!(count, json!([{"n": cases().len() * ROUNDS * 2 * RUN}]));
    server.stop().await;
}

/// Several parameters in one statement, each null or not in turn, through
/// `execute` and `transaction` (the other two ways a plugin runs SQL) and a
/// read that filters on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_null_pattern_of_a_statement_runs_again_and_again() {
    let server = TestServer::start().await;
    let dialect = server.state.db.dialect();
    let sql = binder(&server).await;
    let insert = "INSERT INTO binder_values (n, s, b, f) \
                  VALUES (CAST($1 AS BIGINT), $2, CAST($3 AS BOOLEAN), CAST($4 AS DOUBLE PRECISION))";
    let full = [json!(5), json!("five"), json!(true), json!(5.5)];
    let mut expected = Vec::new();
    for round in 0..2 {
        // Every subset of the four parameters set to null, in turn.
        for mask in 0..16u8 {
            let params: Vec<Value> = full
                .iter()
                .enumerate()
                .map(|(index, value)| {
                    if mask & (1 << index) == 0 {
                        value.clone()
                    } else {
                        Value::Null
                    }
                })
                .collect();
            let outcome = if mask % 2 == 0 {
                sql.execute(&statement(insert, params.clone()))
                    .await
                    .map(|done| done.rows_affected)
            } else {
                sql.transaction(&[statement(insert, params.clone())])
                    .await
                    .map(|_| 1)
            };
            assert_eq!(
                outcome.unwrap_or_else(|error| panic!("round {round}, {params:?}: {error:?}")),
                1
            );
            expected.push(json!({
                "n": stored(&params[0], dialect),
                "s": stored(&params[1], dialect),
                "b": stored(&params[2], dialect),
                "f": stored(&params[3], dialect),
            }));
        }
    }
    let rows = sql
        .query(&statement(
            "SELECT n, s, b, f FROM binder_values ORDER BY id",
            vec![],
        ))
        .await
        .expect("read back");
    assert_eq!(rows, Value::Array(expected));

    // The same filter with a null (match nothing) and with a number.
    let filter = "SELECT COUNT(*) AS c FROM binder_values WHERE n = CAST($1 AS BIGINT)";
    for _ in 0..ROUNDS {
        let none = sql
            .query(&statement(filter, vec![Value::Null]))
            .await
            .expect("filter on null");
        assert_eq!(none, json!([{"c": 0}]));
        let fives = sql
            .query(&statement(filter, vec![json!(5)]))
            .await
            .expect("filter on a number");
        assert_eq!(fives, json!([{"c": 16}]));
    }
    server.stop().await;
}

/// The kinds ride in a trailing comment: SQL ending in a semicolon, a line
/// comment or a block comment still runs, with and without a null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_with_trailing_semicolons_and_comments_still_runs() {
    let server = TestServer::start().await;
    let sql = binder(&server).await;
    for text in [
        "SELECT CAST($1 AS BIGINT) AS v;",
        "SELECT CAST($1 AS BIGINT) AS v -- the value",
        "SELECT CAST($1 AS BIGINT) AS v /* the value */",
        "SELECT CAST($1 AS BIGINT) AS v; -- done",
    ] {
        for value in [json!(3), Value::Null, json!(4)] {
            let rows = sql
                .query(&statement(text, vec![value.clone()]))
                .await
                .unwrap_or_else(|error| panic!("{text} with {value}: {error:?}"));
            assert_eq!(rows, json!([{ "v": value }]), "{text}");
        }
    }
    server.stop().await;
}
