//! Price alerts: a signed-in user asks to be told when a reference's best
//! price (over every store) drops below a target. `GET/POST /alerts`,
//! `DELETE /alerts/{id}`: each user sees and deletes only their own.
//!
//! After every offer batch (see [`crate::offers`]) the alerts on the
//! batch's references are checked: when the best price crosses under the
//! target, `pricing.alert` is published once, for that user alone
//! (`Host::publish_to`: only their own WebSocket connections receive it);
//! the alert re-arms when the price goes back to or above the target.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::{prelude::*, Statement};

use crate::{money, offers::json_strings, text, Pricing, ProductId};

/// Most alerts per user.
const MAX_ALERTS_PER_USER: i64 = 100;

/// `POST /alerts`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlert {
    /// The reference to watch (`SM-S921B`).
    reference: String,
    /// Alert when the best price drops below this.
    #[schema(value_type = f64)]
    price: Value,
}

/// An alert as stored and shown.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct Alert {
    id: i64,
    reference: String,
    /// The target price.
    #[serde(
        rename(serialize = "price"),
        serialize_with = "money::serde_price::serialize"
    )]
    #[schema(value_type = f64)]
    target_cents: i64,
    /// Whether the best price is under the target now.
    #[serde(deserialize_with = "crate::offers::flag")]
    below: bool,
    last_alerted_at: Option<String>,
    created_at: String,
}

/// An alert with the best price of its reference.
#[derive(Deserialize)]
struct Watched {
    id: i64,
    user_id: i64,
    reference: String,
    target_cents: i64,
    #[serde(deserialize_with = "crate::offers::flag")]
    below: bool,
    best: i64,
    store: String,
}

const COLUMNS: &str = "id, reference, target_cents, below, last_alerted_at, created_at";

/// The routes: any signed-in user (the `Caller` extractor answers 401 to
/// anonymous calls), on their own alerts.
pub fn routes(router: Router<Pricing>) -> Router<Pricing> {
    router
        .get("/alerts", Access::Public, Pricing::my_alerts)
        .summary("My price alerts")
        .doc(|op| op.error_response(401, "Not signed in"))
        .post("/alerts", Access::Public, Pricing::create_alert)
        .summary("Be told when a reference's best price drops below a price")
        .doc(|op| op.error_response(401, "Not signed in"))
        .delete("/alerts/{id}", Access::Public, Pricing::delete_alert)
        .summary("Delete one of my alerts")
        .doc(|op| op.error_response(404, "No such alert of mine"))
}

impl Pricing {
    fn best_price(&self, reference_key: &str) -> Result<Option<i64>, HostError> {
        #[derive(Deserialize)]
        struct Best {
            best: Option<i64>,
        }
        let best: Option<Best> = self.host.query_one_as(
            "SELECT MIN(price_cents) AS best FROM pricing_offers WHERE reference_key = $1",
            params![reference_key],
        )?;
        Ok(best.and_then(|b| b.best))
    }

    fn my_alerts(&self, caller: Caller, window: Window) -> Result<ListBody<Alert>, HostError> {
        let sql =
            format!("SELECT {COLUMNS} FROM pricing_alerts WHERE user_id = $1 ORDER BY id DESC");
        self.host.query_page(&sql, params![caller.user_id], window)
    }

    fn create_alert(
        &self,
        caller: Caller,
        Json(body): Json<NewAlert>,
    ) -> Result<Created<Alert>, Response> {
        let reference = body.reference.trim().to_string();
        if reference.is_empty() || reference.chars().count() > 100 {
            return Err(Response::invalid(
                "reference",
                "required, at most 100 characters",
            ));
        }
        let target = money::parse(&body.price).map_err(|m| Response::invalid("price", &m))?;
        if target == 0 {
            return Err(Response::invalid("price", "must be above 0"));
        }
        let count: i64 = self.host.query_scalar(
            "SELECT COUNT(*) FROM pricing_alerts WHERE user_id = $1",
            params![caller.user_id],
        )?;
        if count >= MAX_ALERTS_PER_USER {
            return Err(Response::invalid(
                "reference",
                "at most 100 alerts per user",
            ));
        }
        let key = text::reference_key(&reference);
        // Already under the target: no alert until it goes above and
        // crosses again.
        let below = self.best_price(&key)?.is_some_and(|best| best < target);
        let sql = format!(
            "INSERT INTO pricing_alerts (user_id, reference, reference_key, target_cents, below, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        let alert: Alert = self.host.query_row_as(
            &sql,
            params![
                caller.user_id,
                reference,
                key,
                target,
                i64::from(below),
                now()
            ],
        )?;
        Ok(Created(alert))
    }

    fn delete_alert(
        &self,
        caller: Caller,
        ProductId(id): ProductId,
    ) -> Result<NoContent, Response> {
        let done = self.host.execute(
            "DELETE FROM pricing_alerts WHERE id = $1 AND user_id = $2",
            params![id, caller.user_id],
        )?;
        if done.rows_affected == 0 {
            return Err(Response::not_found(&format!("no alert {id} of yours")));
        }
        Ok(NoContent)
    }

    /// Checks the alerts on `reference_keys` after their offers changed:
    /// publishes `pricing.alert` for each crossing under a target, and
    /// re-arms the alerts whose price went back up.
    pub fn check_alerts(&self, reference_keys: &[String]) -> Result<(), HostError> {
        if reference_keys.is_empty() {
            return Ok(());
        }
        let list = serde_json::to_string(reference_keys).unwrap_or_default();
        // The cheapest offer of each watched reference, and its store.
        let sql = format!(
            "SELECT a.id, a.user_id, a.reference, a.target_cents, a.below, o.price_cents AS best, \
             s.nom AS store FROM pricing_alerts a \
             JOIN pricing_offers o ON o.id = (SELECT c.id FROM pricing_offers c \
                  WHERE c.reference_key = a.reference_key ORDER BY c.price_cents, c.id LIMIT 1) \
             JOIN pricing_stores s ON s.id = o.store_id \
             WHERE a.reference_key IN ({})",
            json_strings(self.host.dialect()?, 1)
        );
        let watched: Vec<Watched> = self.host.query_as(&sql, params![list])?;
        let now = now();
        let mut statements = Vec::new();
        let mut crossed = Vec::new();
        for alert in watched {
            let below = alert.best < alert.target_cents;
            if below == alert.below {
                continue;
            }
            // Only the row still in the state read flips, so two batches
            // checking at once alert once.
            statements.push(Statement::new(
                "UPDATE pricing_alerts SET below = $1, last_alerted_at = \
                 CASE WHEN $1 = 1 THEN $2 ELSE last_alerted_at END \
                 WHERE id = $3 AND below = $4 RETURNING id",
                params![i64::from(below), now, alert.id, i64::from(alert.below)],
            ));
            crossed.push((alert, below));
        }
        if statements.is_empty() {
            return Ok(());
        }
        let results = self.host.transaction(statements)?;
        for ((alert, below), rows) in crossed.into_iter().zip(results) {
            if below && !rows.is_empty() {
                self.host.publish_for_or_warn(
                    Some(alert.user_id),
                    "alert",
                    &json!({
                        "alert_id": alert.id,
                        "user_id": alert.user_id,
                        "reference": alert.reference,
                        "price": money::to_json(alert.best),
                        "target": money::to_json(alert.target_cents),
                        "boutique": alert.store,
                    }),
                    "cannot publish a pricing alert",
                );
            }
        }
        Ok(())
    }
}
