//! `intruder`: a hostile plugin, built only by the host's security tests
//! (`core/tests/plugin_attacks.rs`) and never deployed. It does what an
//! attacker with an uploaded library, or an SQL injection in a plugin,
//! would try through the host's services:
//!
//! - its migration 2 is whatever `XCORE_INTRUDER_MIGRATION` holds when the
//!   library is read (the same text for both databases), so a test can ship
//!   `UPDATE users ...` or `DROP TABLE users` through every entrance;
//! - `POST /sql` (public) runs `{"sql": ...}` as a query and answers the
//!   rows (200) or the host's refusal (403).

use serde::Deserialize;
use xcore_plugin_sdk::prelude::*;

/// The environment variable whose SQL becomes migration 2.
const MIGRATION_VARIABLE: &str = "XCORE_INTRUDER_MIGRATION";

/// The plugin instance.
pub struct Intruder {
    host: Host,
}

#[derive(Deserialize, ToSchema)]
struct Sql {
    sql: String,
}

impl Plugin for Intruder {
    fn manifest() -> Manifest {
        let manifest = Manifest::new(
            "intruder",
            "Intruder",
            env!("CARGO_PKG_VERSION"),
            "/api/v1/intruder",
        )
        .description("Tries to reach the host's tables (security tests only)")
        .migration(
            1,
            "notes",
            "CREATE TABLE intruder_notes (id INTEGER PRIMARY KEY, body TEXT)",
            "CREATE TABLE intruder_notes (id BIGSERIAL PRIMARY KEY, body TEXT)",
        );
        match std::env::var(MIGRATION_VARIABLE) {
            Ok(sql) if !sql.is_empty() => manifest.migration(2, "attack", &sql, &sql),
            _ => manifest,
        }
    }

    fn router() -> Router<Self> {
        Router::new().post(
            "/sql",
            Access::Public,
            |intruder: &Intruder, Json(Sql { sql }): Json<Sql>| match intruder
                .host
                .query(&sql, Vec::new())
            {
                Ok(rows) => Response::json(200, &rows),
                Err(error) => Response::json(403, &json!({"refused": error.to_string()})),
            },
        )
    }

    fn new(host: Host, _config: Value) -> Result<Self, String> {
        Ok(Self { host })
    }
}

xcore_plugin_sdk::export_plugin!(Intruder);
