//! Incoming webhooks (seed 004, "Webhooks"), public routes authenticated
//! by a signature instead of a user:
//!
//! - `POST /webhooks/leads`: an external form creates a lead (the lead's
//!   fields; `source` defaults to `webhook`); 201 with the lead, 409 for a
//!   duplicate, 422 for a bad field.
//! - `POST /webhooks/campaigns`: a delivery's status update
//!   `{"campaign_id", "lead_id", "status"}` with `status` one of
//!   `delivered`, `opened`, `responded`, `bounced`, `failed`.
//!
//! Both need one of two machine credentials:
//! - the host's `X-API-Key` (or a Bearer token) whose holder has
//!   `leads:write`; the host authenticates it before the plugin runs, so
//!   the handler only checks the permission (403 naming it without);
//! - `X-Signature: sha256=<hex>`, the HMAC-SHA256 of the raw body keyed by
//!   `webhook_secret` (`/settings/integrations`).
//!
//! Neither, a bad signature, or a signature with no secret configured, is
//! a 401. A caller lacking the permission can still send a good signature:
//! the signature alone is enough, as for a partner with no account.
//!
//! An `Idempotency-Key` header makes a request idempotent: the first
//! answer (any status below 500) is stored and a replay with the same key
//! gets it again (`Idempotent-Replay: true`) without doing anything.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{
    leads::{LeadInput, LeadValues},
    settings::Integrations,
    signature, Leads, Problems, WRITE,
};

/// Delivery statuses a partner may report.
pub const DELIVERY_STATUSES: [&str; 5] = ["delivered", "opened", "responded", "bounced", "failed"];

/// `POST /webhooks/campaigns`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryUpdate {
    /// The campaign.
    campaign_id: i64,
    /// The lead the message went to.
    lead_id: i64,
    /// The new delivery status.
    status: String,
}

/// A delivery.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// Id.
    pub id: i64,
    /// Campaign.
    pub campaign_id: i64,
    /// Lead.
    pub lead_id: i64,
    /// `delivered`, `failed`, or what a partner reported.
    pub status: String,
    /// Tries made.
    pub attempts: i64,
    /// The last HTTP status the webhook answered.
    pub response_status: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// First try.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

#[derive(Deserialize)]
struct StoredAnswer {
    status: i64,
    body: String,
}

impl Leads {
    /// Accepts a caller holding `leads:write` (the host authenticated their
    /// API key or token) or a good signature of the body; else 401, or 403
    /// for a caller without the permission and no signature.
    fn authenticate(
        &self,
        caller: Option<&Caller>,
        headers: &Headers,
        body: &[u8],
    ) -> Result<(), Response> {
        let permitted = |caller: &Caller| caller.permissions.iter().any(|held| held == WRITE);
        match caller {
            Some(caller) if permitted(caller) => return Ok(()),
            Some(_) if !headers.0.contains_key("x-signature") => {
                return Err(Response::error(
                    403,
                    "AUTHORIZATION_ERROR",
                    &format!("missing permission {WRITE} (or send X-Signature instead)"),
                ))
            }
            _ => {}
        }
        let unauthorized = |message: &str| Response::error(401, "AUTHENTICATION_ERROR", message);
        let Some(secret) = self.settings::<Integrations>().webhook_secret else {
            return Err(unauthorized(
                "webhooks are not configured: set webhook_secret in /settings/integrations",
            ));
        };
        let header = headers
            .0
            .get("x-signature")
            .ok_or_else(|| {
                unauthorized(
                    "send X-API-Key (a key with leads:write) or X-Signature: sha256=<HMAC-SHA256 of the body>",
                )
            })?;
        if signature::verify(&secret, body, header) {
            Ok(())
        } else {
            Err(unauthorized("bad X-Signature"))
        }
    }

    /// Runs `handle` once per `Idempotency-Key` (when given) on `route`.
    fn idempotent(
        &self,
        route: &str,
        headers: &Headers,
        handle: impl FnOnce() -> Response,
    ) -> Result<Response, Response> {
        let Some(key) = headers.0.get("idempotency-key").cloned() else {
            return Ok(handle());
        };
        if key.is_empty() || key.len() > 200 {
            return Err(Response::invalid("Idempotency-Key", "1 to 200 characters"));
        }
        let stored: Option<StoredAnswer> = self.host.query_one_as(
            "SELECT status, body FROM leads_idempotency WHERE route = $1 AND key = $2",
            params![route, key],
        )?;
        if let Some(stored) = stored {
            let status = stored.status as u16;
            // A stored error becomes structured again (rendered with this
            // request's id); any other answer is replayed byte for byte.
            let mut response = match serde_json::from_str::<Value>(&stored.body) {
                Ok(body) if status >= 400 => Response::from_json(status, &body),
                Ok(_) => {
                    let mut replayed = Response::empty(status);
                    replayed
                        .headers
                        .push(("content-type".into(), "application/json".into()));
                    replayed.body = stored.body.into_bytes();
                    replayed
                }
                Err(_) => {
                    let mut replayed = Response::empty(status);
                    replayed.body = stored.body.into_bytes();
                    replayed
                }
            };
            response
                .headers
                .push(("idempotent-replay".into(), "true".into()));
            return Ok(response);
        }
        let response = handle();
        if response.status < 500 {
            // A concurrent first request with the same key may have stored
            // its answer meanwhile: the first one stored wins.
            self.host.execute(
                "INSERT INTO leads_idempotency (route, key, status, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (route, key) DO NOTHING",
                params![
                    route,
                    key,
                    response.status,
                    String::from_utf8_lossy(&response.body_bytes()),
                    now()
                ],
            )?;
        }
        Ok(response)
    }

    /// What both webhooks do first: the credential or signature checked,
    /// then, once per idempotency key, the body read as `T` (the standard
    /// 400 or 422 when it is not one) and handed to `handle`.
    fn webhook<T: serde::de::DeserializeOwned>(
        &self,
        route: &str,
        caller: Option<Caller>,
        headers: &Headers,
        body: &[u8],
        handle: impl FnOnce(T) -> Response,
    ) -> Result<Response, Response> {
        self.authenticate(caller.as_ref(), headers, body)?;
        self.idempotent(route, headers, || {
            let request = Request {
                body: body.to_vec(),
                ..Request::default()
            };
            match request.json() {
                Ok(input) => handle(input),
                Err(response) => response,
            }
        })
    }

    fn webhook_lead(
        &self,
        caller: Option<Caller>,
        headers: Headers,
        Body(body): Body,
    ) -> Result<Response, Response> {
        self.webhook("leads", caller, &headers, &body, |input: LeadInput| {
            let mut values = LeadValues::blank();
            let mut problems = Problems::default();
            values.apply(&input, "", &mut problems);
            if let Some(status) = &input.status {
                values.status = status.clone();
            }
            if input.source.is_none() {
                values.apply(
                    &LeadInput {
                        source: Some("webhook".into()),
                        ..LeadInput::default()
                    },
                    "",
                    &mut Problems::default(),
                );
            }
            if let Err(error) =
                self.check_references(values.niche_id, values.campaign_id, &mut problems)
            {
                return error.into();
            }
            if let Err(response) = problems.finish() {
                return response;
            }
            match self.create_lead(&values, "webhook") {
                Ok(lead) => Response::json(201, &lead),
                Err(response) => response,
            }
        })
    }

    fn webhook_campaign(
        &self,
        caller: Option<Caller>,
        headers: Headers,
        Body(body): Body,
    ) -> Result<Response, Response> {
        self.webhook("campaigns", caller, &headers, &body, |update: DeliveryUpdate| {
            if !DELIVERY_STATUSES.contains(&update.status.as_str()) {
                return Response::invalid(
                    "status",
                    &format!("must be one of {}", DELIVERY_STATUSES.join(", ")),
                );
            }
            let delivery: Result<Option<Delivery>, HostError> = self.host.query_one_as(
                "UPDATE leads_deliveries SET status = $1, updated_at = $2 \
                 WHERE campaign_id = $3 AND lead_id = $4 RETURNING id, campaign_id, lead_id, status, \
                 attempts, response_status, last_error, created_at, updated_at",
                params![update.status, now(), update.campaign_id, update.lead_id],
            );
            match delivery {
                Ok(Some(delivery)) => {
                    crate::activity::record(
                        &self.host,
                        "info",
                        "delivery",
                        &format!("delivery {} reported {}", delivery.id, delivery.status),
                        Some(delivery.id),
                        json!({"campaign_id": delivery.campaign_id, "lead_id": delivery.lead_id}),
                    );
                    Response::json(200, &delivery)
                }
                Ok(None) => Response::not_found(&format!(
                    "campaign {} sent nothing to lead {}",
                    update.campaign_id, update.lead_id
                )),
                Err(error) => error.into(),
            }
        })
    }
}

/// The webhook routes (public to the host: the handler checks the key's
/// permission or the signature).
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .post("/webhooks/leads", Access::Public, Leads::webhook_lead)
        .summary("Create a lead from an external form (X-API-Key with leads:write, or X-Signature)")
        .doc(|op| {
            op.request_body::<LeadInput>();
            op.response::<crate::leads::Lead>(201, "The lead");
            op.error_response(401, "No credential, or a bad signature");
            op.error_response(403, "A key or token without leads:write, and no signature");
            op.error_response(409, "A duplicate lead");
        })
        .post(
            "/webhooks/campaigns",
            Access::Public,
            Leads::webhook_campaign,
        )
        .summary("Record a delivery's status update (X-API-Key with leads:write, or X-Signature)")
        .doc(|op| {
            op.request_body::<DeliveryUpdate>();
            op.response::<Delivery>(200, "The delivery");
            op.error_response(401, "No credential, or a bad signature");
            op.error_response(403, "A key or token without leads:write, and no signature");
        })
}
