//! Requests from the public form (seed 002's `POST /demandes/`): a store
//! asking to be listed, or someone asking for a product. Anonymous; 201
//! with the seed's message; a 400 naming each field at fault (in the
//! platform's error body). Triaged by `pricing:admin` holders:
//! `GET /demandes` (filter `status`), `PUT /demandes/{id}` (`status`).

use serde::{Deserialize, Serialize};
use serde_json::Map;
use xcore_plugin_sdk::prelude::*;

use crate::{stores::check_url, Pricing, ProductId, ADMIN};

/// What the seed answers on success.
pub const ACCEPTED: &str = "Demande enregistrée avec succès.";

/// The triage states.
const STATUSES: [&str; 4] = ["new", "in_review", "accepted", "rejected"];

/// `POST /demandes/`'s body (the seed's fields).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documentation: `submit` reads the fields by hand.
pub struct NewRequest {
    /// `store` or `product`.
    request_type: String,
    /// The store's name (store requests).
    store_name: Option<String>,
    /// The store's site.
    website: Option<String>,
    /// The product's name (product requests).
    product_name: Option<String>,
    /// The product's page.
    product_url: Option<String>,
    /// Who to contact.
    contact_person: String,
    /// Their e-mail.
    email: String,
    /// Their phone.
    phone: String,
    /// Free text.
    message: Option<String>,
}

/// A stored request.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct StoredRequest {
    id: i64,
    request_type: String,
    store_name: Option<String>,
    website: Option<String>,
    product_name: Option<String>,
    product_url: Option<String>,
    contact_person: String,
    email: String,
    phone: String,
    message: Option<String>,
    /// `new`, `in_review`, `accepted` or `rejected`.
    status: String,
    created_at: String,
    updated_at: String,
}

/// What `POST /demandes/` answers.
#[derive(Serialize, ToSchema)]
pub struct Acknowledged {
    /// The seed's message.
    message: &'static str,
}

/// `GET /demandes`'s query.
#[derive(Deserialize, ToSchema)]
pub struct RequestFilter {
    /// Only requests in this state.
    status: Option<String>,
}

/// `PUT /demandes/{id}`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Triage {
    /// `new`, `in_review`, `accepted` or `rejected`.
    status: String,
}

const COLUMNS: &str = "id, request_type, store_name, website, product_name, product_url, \
     contact_person, email, phone, message, status, created_at, updated_at";

/// The routes.
pub fn routes(router: Router<Pricing>) -> Router<Pricing> {
    router
        .post("/demandes", Access::Public, Pricing::submit)
        .summary("Submit a store or product request (seed 002)")
        .doc(|op| op.error_response(400, "Fields missing or invalid, each named"))
        .post("/demandes/", Access::Public, Pricing::submit)
        .summary("Submit a store or product request (seed 002)")
        .doc(|op| op.error_response(400, "Fields missing or invalid, each named"))
        .get("/demandes", Access::Requires(ADMIN), Pricing::list_requests)
        .summary("List the requests to triage, newest first")
        .put("/demandes/{id}", Access::Requires(ADMIN), Pricing::triage)
        .summary("Set a request's triage status")
        .doc(|op| op.error_response(404, "No such request"))
}

/// A plausible e-mail address: one `@`, a dotted domain, no spaces.
fn plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// The fields of the form, read by hand so every problem is named at once.
fn read(body: &Map<String, Value>) -> Result<[Option<String>; 9], Vec<(String, String)>> {
    const REQUIRED: &str = "Ce champ est obligatoire.";
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut text = |field: &str, max: usize| -> Option<String> {
        match body.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(value)) => {
                let value = value.trim();
                if value.chars().count() > max {
                    problems.push((field.into(), format!("{max} caractères au plus.")));
                }
                (!value.is_empty()).then(|| value.to_string())
            }
            Some(_) => {
                problems.push((field.into(), "Doit être du texte.".into()));
                None
            }
        }
    };
    let fields = [
        text("request_type", 20),
        text("store_name", 200),
        text("website", 2000),
        text("product_name", 200),
        text("product_url", 2000),
        text("contact_person", 200),
        text("email", 254),
        text("phone", 40),
        text("message", 5000),
    ];
    for (index, name) in [
        (0, "request_type"),
        (5, "contact_person"),
        (6, "email"),
        (7, "phone"),
    ] {
        if fields[index].is_none() && !problems.iter().any(|(f, _)| f == name) {
            problems.push((name.into(), REQUIRED.into()));
        }
    }
    if let Some(kind) = &fields[0] {
        if kind != "store" && kind != "product" {
            problems.push((
                "request_type".into(),
                "Choisissez « store » ou « product ».".into(),
            ));
        }
    }
    if fields[6].as_deref().is_some_and(|e| !plausible_email(e)) {
        problems.push((
            "email".into(),
            "Saisissez une adresse e-mail valide.".into(),
        ));
    }
    for (index, name) in [(2, "website"), (4, "product_url")] {
        if fields[index]
            .as_deref()
            .is_some_and(|u| check_url(u).is_err())
        {
            problems.push((name.into(), "Saisissez une URL valide.".into()));
        }
    }
    if problems.is_empty() {
        Ok(fields)
    } else {
        Err(problems)
    }
}

impl Pricing {
    fn submit(&self, Json(body): Json<Value>) -> Result<Created<Acknowledged>, Response> {
        let Value::Object(body) = body else {
            return Err(Response::error(
                400,
                "VALIDATION_ERROR",
                "the body must be a JSON object",
            ));
        };
        let fields = read(&body).map_err(|problems| {
            let details: Vec<(&str, &str)> = problems
                .iter()
                .map(|(f, m)| (f.as_str(), m.as_str()))
                .collect();
            Response::error_with_details(400, "VALIDATION_ERROR", "Demande invalide.", &details)
        })?;
        let now = now();
        let [kind, store, website, product, product_url, contact, email, phone, message] = fields;
        self.host.execute(
            "INSERT INTO pricing_requests (request_type, store_name, website, product_name, \
             product_url, contact_person, email, phone, message, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'new', $10, $10)",
            params![
                kind,
                store,
                website,
                product,
                product_url,
                contact,
                email,
                phone,
                message,
                now
            ],
        )?;
        Ok(Created(Acknowledged { message: ACCEPTED }))
    }

    fn list_requests(
        &self,
        Query(filter): Query<RequestFilter>,
        window: Window,
    ) -> Result<ListBody<StoredRequest>, Response> {
        match filter.status {
            Some(status) => {
                if !STATUSES.contains(&status.as_str()) {
                    return Err(Response::invalid(
                        "status",
                        "new, in_review, accepted or rejected",
                    ));
                }
                let sql = format!(
                    "SELECT {COLUMNS} FROM pricing_requests WHERE status = $1 \
                     ORDER BY created_at DESC, id DESC"
                );
                Ok(self.host.query_page(&sql, params![status], window)?)
            }
            None => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM pricing_requests ORDER BY created_at DESC, id DESC"
                );
                Ok(self.host.query_page(&sql, params![], window)?)
            }
        }
    }

    fn triage(
        &self,
        ProductId(id): ProductId,
        Json(body): Json<Triage>,
    ) -> Result<Json<StoredRequest>, Response> {
        if !STATUSES.contains(&body.status.as_str()) {
            return Err(Response::invalid(
                "status",
                "new, in_review, accepted or rejected",
            ));
        }
        let sql = format!(
            "UPDATE pricing_requests SET status = $1, updated_at = $2 WHERE id = $3 RETURNING {COLUMNS}"
        );
        self.host
            .query_one_as(&sql, params![body.status, now(), id])?
            .map(Json)
            .ok_or_else(|| Response::not_found(&format!("no request {id}")))
    }
}
