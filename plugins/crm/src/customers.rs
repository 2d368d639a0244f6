//! Customers (`/customers`): companies and the people who work for them or
//! buy on their own.
//!
//! - `GET /customers`: full-text `search`, filters `type`, `tag`,
//!   `owner_id`, `mine=true` (the caller's), `company_id`,
//!   `created_from`/`created_to` (dates or instants), `sort_by` `name`,
//!   `email`, `created_at`, `updated_at`, and the SDK's paging;
//! - `POST /customers`, `PUT /customers/{id}` (partial: absent fields keep
//!   their value, `null` clears), `DELETE /customers/{id}` (409 while
//!   opportunities refer to it; its people are detached, its activities
//!   deleted);
//! - `GET /customers/{id}`: the customer with its contacts (the people of
//!   a company), open opportunities and 20 most recent activities;
//! - `GET /customers/export`: every matching customer as CSV, read from
//!   the database in pages by id so a large export never holds a query's
//!   whole result at once.
//!
//! An email is stored lower-case and belongs to one customer: another
//! customer's email is a 409 naming it and its holder.

use serde::{Deserialize, Deserializer, Serialize};
use xcore_plugin_sdk::{keyset, prelude::*, Dialect, Row, Statement};

use crate::{
    activities::Activity, invalid, missing, nullable_id, opportunities::Opportunity, search, Crm,
    Id,
};
use crate::{dates, patched, Clause, DELETE, READ, WRITE};

/// A customer as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    /// Id.
    pub id: i64,
    /// `company` or `person`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Company name or person's full name.
    pub name: String,
    /// Main email, lower-case; unique across customers.
    pub email: Option<String>,
    /// Main phone number.
    pub phone: Option<String>,
    /// Further emails.
    #[serde(deserialize_with = "json_list")]
    pub other_emails: Vec<String>,
    /// Further phone numbers.
    #[serde(deserialize_with = "json_list")]
    pub other_phones: Vec<String>,
    /// The company a person belongs to.
    pub company_id: Option<i64>,
    /// Postal address, free text.
    pub address: Option<String>,
    /// Lower-case labels.
    #[serde(deserialize_with = "json_list")]
    pub tags: Vec<String>,
    /// The host user who owns the relationship.
    pub owner_id: Option<i64>,
    /// Free notes.
    pub notes: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// Reads a JSON array stored as text (SQLite and PostgreSQL alike).
fn json_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => serde_json::from_str(&text).map_err(serde::de::Error::custom),
        Value::Array(items) => Ok(items
            .into_iter()
            .filter_map(|item| item.as_str().map(str::to_string))
            .collect()),
        _ => Ok(Vec::new()),
    }
}

/// What a client sends to create a customer (and, partially, to change
/// one).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CustomerInput {
    /// `company` or `person`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Required.
    pub name: Option<String>,
    /// Unique across customers (case ignored).
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Further emails.
    pub other_emails: Option<Vec<String>>,
    /// Further phone numbers.
    pub other_phones: Option<Vec<String>>,
    /// A company customer's id (people only).
    pub company_id: Option<i64>,
    /// Postal address.
    pub address: Option<String>,
    /// Labels: letters, digits, `-`, `_` and spaces; stored lower-case.
    pub tags: Option<Vec<String>>,
    /// A host user id; the caller when absent on create.
    pub owner_id: Option<i64>,
    /// Free notes.
    pub notes: Option<String>,
}

/// A customer with what a salesperson opens it for.
#[derive(Serialize, ToSchema)]
pub struct CustomerDetail {
    /// The customer.
    #[serde(flatten)]
    pub customer: Customer,
    /// The people of a company (empty for a person).
    pub contacts: Vec<Customer>,
    /// Its open opportunities.
    pub open_opportunities: Vec<Opportunity>,
    /// Its 20 most recent activities.
    pub recent_activities: Vec<Activity>,
}

/// The list's filters.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct CustomerFilters {
    /// Full-text search in name, email, phone and notes (every word must
    /// match, the last as a prefix).
    pub search: Option<String>,
    /// `company` or `person`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Customers carrying this tag.
    pub tag: Option<String>,
    /// Customers owned by this user.
    pub owner_id: Option<i64>,
    /// Only the caller's customers.
    pub mine: Option<bool>,
    /// The people of this company.
    pub company_id: Option<i64>,
    /// Created at or after (date or RFC 3339).
    pub created_from: Option<String>,
    /// Created before the end of (date) or at (instant).
    pub created_to: Option<String>,
}

/// The columns the list sorts by.
pub struct CustomerSort;

impl SortColumns for CustomerSort {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("name", "c.name"),
        ("email", "c.email"),
        ("created_at", "c.created_at"),
        ("updated_at", "c.updated_at"),
    ];
    const DEFAULT: (&'static str, &'static str) = ("created_at", "DESC");
    const TIEBREAK: &'static str = "c.id";
}

/// The columns of [`Customer`], on `crm_customers c`.
pub const COLUMNS: &str = "c.id, c.type, c.name, c.email, c.phone, c.other_emails, \
    c.other_phones, c.company_id, c.address, c.tags, c.owner_id, c.notes, c.created_at, \
    c.updated_at";

/// Most customers exported per query.
const EXPORT_BATCH: i64 = 1_000;

/// The customers' routes.
pub fn routes(router: Router<Crm>) -> Router<Crm> {
    router
        .get("/customers", Access::Requires(READ), Crm::list_customers)
        .summary("List customers: search, filters, sorting, pages")
        .post("/customers", Access::Requires(WRITE), Crm::create_customer)
        .summary("Create a customer (company or person)")
        .doc(|op| op.error_response(409, "Another customer has this email"))
        .get(
            "/customers/export",
            Access::Requires(READ),
            Crm::export_customers,
        )
        .summary("Export the matching customers as CSV")
        .doc(|op| op.raw_response(200, "CSV, one customer per line", "text/csv"))
        .blocking()
        .get(
            "/customers/{id}",
            Access::Requires(READ),
            Crm::show_customer,
        )
        .summary("A customer with its contacts, open opportunities and recent activities")
        .put(
            "/customers/{id}",
            Access::Requires(WRITE),
            Crm::update_customer,
        )
        .summary("Change a customer (absent fields are kept)")
        .doc(|op| op.error_response(409, "Another customer has this email"))
        .delete(
            "/customers/{id}",
            Access::Requires(DELETE),
            Crm::delete_customer,
        )
        .summary("Delete a customer without opportunities")
        .doc(|op| op.error_response(409, "Opportunities refer to it"))
}

/// A validated customer, ready for SQL.
pub struct ValidCustomer {
    /// `company` or `person`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Lower-case email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// JSON text.
    pub other_emails: String,
    /// JSON text.
    pub other_phones: String,
    /// Company.
    pub company_id: Option<i64>,
    /// Address.
    pub address: Option<String>,
    /// JSON text of lower-case tags.
    pub tags: String,
    /// Owner.
    pub owner_id: Option<i64>,
    /// Notes.
    pub notes: Option<String>,
}

/// Trims to `None` when empty.
fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// Whether `email` looks like one: something@something.something.
fn plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// A tag, lower-cased; letters, digits, `-`, `_` and spaces only, so the
/// `LIKE '%"tag"%'` filter over the stored JSON is exact.
pub fn tag(raw: &str) -> Result<String, String> {
    let tag = raw.trim().to_lowercase();
    if tag.is_empty() || tag.chars().count() > 50 {
        return Err("tags must have 1 to 50 characters".into());
    }
    if !tag
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
    {
        return Err("tags may hold letters, digits, '-', '_' and spaces".into());
    }
    Ok(tag)
}

/// The parameters of a customer write, `$1` to `$12` (the fields, then
/// `now`), and `$13` the customer's `id` for an update: one order for the
/// insert and the update, so they cannot drift apart.
fn written(valid: &ValidCustomer, now: &str, id: Option<i64>) -> Vec<Value> {
    let mut params = params![
        valid.kind,
        valid.name,
        valid.email,
        valid.phone,
        valid.other_emails,
        valid.other_phones,
        nullable_id(valid.company_id),
        valid.address,
        valid.tags,
        nullable_id(valid.owner_id),
        valid.notes,
        now
    ];
    params.extend(id.map(Value::from));
    params
}

/// Checks every field at once; the 422 lists each problem. Database
/// checks (the company, the email's holder) come after, in the handler.
pub fn validate(input: &CustomerInput) -> Result<ValidCustomer, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut problem = |field: &str, message: &str| problems.push((field.into(), message.into()));
    let kind = input.kind.as_deref().unwrap_or("company").to_string();
    if kind != "company" && kind != "person" {
        problem("type", "must be company or person");
    }
    let name = text(&input.name).unwrap_or_default();
    if name.is_empty() {
        problem("name", "is required");
    } else if name.chars().count() > 200 {
        problem("name", "must have at most 200 characters");
    }
    let email = text(&input.email).map(|email| email.to_lowercase());
    if email
        .as_deref()
        .is_some_and(|email| !plausible_email(email))
    {
        problem("email", "is not an email address");
    }
    let other_emails: Vec<String> = input
        .other_emails
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|email| email.trim().to_lowercase())
        .collect();
    if other_emails.iter().any(|email| !plausible_email(email)) {
        problem(
            "other_emails",
            "holds something that is not an email address",
        );
    }
    let other_phones: Vec<String> = input
        .other_phones
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|phone| phone.trim().to_string())
        .filter(|phone| !phone.is_empty())
        .collect();
    if input.company_id.is_some() && kind != "person" {
        problem("company_id", "only a person belongs to a company");
    }
    let mut tags = Vec::new();
    for raw in input.tags.clone().unwrap_or_default() {
        match tag(&raw) {
            Ok(tag) if !tags.contains(&tag) => tags.push(tag),
            Ok(_) => {}
            Err(message) => problem("tags", &message),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ValidCustomer {
        kind,
        name,
        email,
        phone: text(&input.phone),
        other_emails: json!(other_emails).to_string(),
        other_phones: json!(other_phones).to_string(),
        company_id: input.company_id,
        address: text(&input.address),
        tags: json!(tags).to_string(),
        owner_id: input.owner_id,
        notes: text(&input.notes),
    })
}

impl Crm {
    /// The customer `id`, or a 404.
    pub fn customer(&self, id: i64) -> Result<Customer, Response> {
        let sql = format!("SELECT {COLUMNS} FROM crm_customers c WHERE c.id = $1");
        self.host
            .query_one_as(&sql, params![id])?
            .ok_or_else(|| missing("customer"))
    }

    /// The 409 when another customer than `except` holds `email`.
    pub fn email_free(&self, email: Option<&str>, except: i64) -> Result<(), Response> {
        let Some(email) = email else { return Ok(()) };
        let holder: Option<Row> = self.host.query_one(
            "SELECT id, name FROM crm_customers WHERE email = $1 AND id <> $2",
            params![email, except],
        )?;
        match holder {
            None => Ok(()),
            Some(row) => Err(email_taken(email, &row)),
        }
    }

    /// A company exists behind `company_id` (and is not the customer itself).
    fn company_exists(&self, company_id: Option<i64>, except: i64) -> Result<(), Response> {
        let Some(company_id) = company_id else {
            return Ok(());
        };
        let kind: Option<String> = self
            .host
            .query_one(
                "SELECT type FROM crm_customers WHERE id = $1",
                params![company_id],
            )?
            .and_then(|row| row.get("type").and_then(Value::as_str).map(str::to_string));
        match kind.as_deref() {
            Some("company") if company_id != except => Ok(()),
            Some(_) => Err(Response::invalid("company_id", "is not a company")),
            None => Err(Response::invalid("company_id", "no such customer")),
        }
    }

    fn list_customers(
        &self,
        caller: Caller,
        Query(filters): Query<CustomerFilters>,
        window: Window,
        sort: Sort<CustomerSort>,
    ) -> Result<ListBody<Customer>, Response> {
        let (conditions, params) = self.customer_conditions(&filters, &caller)?;
        let searching = filters
            .search
            .as_deref()
            .is_some_and(|text| !xcore_plugin_sdk::search::terms(text).is_empty());
        let order_by = match self.host.dialect()? {
            Dialect::Postgres if searching => search::sorted_after_matching(&sort.order_by),
            _ => sort.order_by,
        };
        let sql = format!("SELECT {COLUMNS} FROM crm_customers c {conditions} ORDER BY {order_by}");
        Ok(self.host.query_page(&sql, params, window)?)
    }

    /// Whether customer `id` exists: activities and deals must name one.
    pub fn customer_exists(&self, id: i64) -> Result<bool, HostError> {
        let count: i64 = self.host.query_scalar(
            "SELECT COUNT(*) FROM crm_customers WHERE id = $1",
            params![id],
        )?;
        Ok(count > 0)
    }

    /// The `WHERE` clause (possibly empty) and its parameters for `filters`.
    pub fn customer_conditions(
        &self,
        filters: &CustomerFilters,
        caller: &Caller,
    ) -> Result<(String, Vec<Value>), Response> {
        let mut clause = Clause::default();
        if let Some(kind) = filters.kind.as_deref() {
            if kind != "company" && kind != "person" {
                return Err(Response::invalid("type", "must be company or person"));
            }
            // On SQLite, which has no statistics (a plugin cannot ANALYZE),
            // the unary `+` keeps the two-valued type off its index, so the
            // owner, search or sort index leads instead of a third of the table.
            let column = match self.host.dialect()? {
                Dialect::Sqlite => "+c.type",
                Dialect::Postgres => "c.type",
            };
            clause.push(&format!("{column} = {{}}"), json!(kind));
        }
        if let Some(raw) = filters.tag.as_deref() {
            let tag = tag(raw).map_err(|message| Response::invalid("tag", &message))?;
            // Tags hold no LIKE wildcard but `_`, escaped here.
            let pattern = format!("%\"{}\"%", tag.replace('_', "\\_"));
            clause.push("c.tags LIKE {} ESCAPE '\\'", json!(pattern));
        }
        if filters.mine == Some(true) {
            clause.push("c.owner_id = {}", json!(caller.user_id));
        }
        if let Some(owner) = filters.owner_id {
            clause.push("c.owner_id = {}", json!(owner));
        }
        if let Some(company) = filters.company_id {
            clause.push("c.company_id = {}", json!(company));
        }
        if let Some(raw) = filters.created_from.as_deref() {
            let from = dates::instant(raw).map_err(|m| Response::invalid("created_from", &m))?;
            clause.push("c.created_at >= {}", json!(from));
        }
        if let Some(raw) = filters.created_to.as_deref() {
            let to = dates::range_end(raw).map_err(|m| Response::invalid("created_to", &m))?;
            // A date means the whole day: before the next midnight.
            let operator = if raw.contains('T') { "<=" } else { "<" };
            clause.push(&format!("c.created_at {operator} {{}}"), json!(to));
        }
        if let Some(text) = filters.search.as_deref() {
            if text.chars().count() > search::MAX_SEARCH_CHARS {
                return Err(Response::invalid("search", "is too long"));
            }
            let terms = xcore_plugin_sdk::search::terms(text);
            if !terms.is_empty() {
                let (condition, query) =
                    search::condition(self.host.dialect()?, &terms, clause.params.len() + 1);
                clause.push_numbered(condition, json!(query));
            }
        }
        Ok(clause.finish())
    }

    fn show_customer(&self, Id(id): Id) -> Result<Json<CustomerDetail>, Response> {
        let customer = self.customer(id)?;
        let contacts = self.host.query_as(
            &format!(
                "SELECT {COLUMNS} FROM crm_customers c WHERE c.company_id = $1 ORDER BY c.name, c.id LIMIT 100"
            ),
            params![id],
        )?;
        let open_opportunities = self.opportunities_where(
            "o.customer_id = $1 AND o.status = 'open' ORDER BY o.created_at DESC, o.id DESC LIMIT 100",
            params![id],
        )?;
        let recent_activities = self.activities_where(
            "a.customer_id = $1 ORDER BY a.created_at DESC, a.id DESC LIMIT 20",
            params![id],
        )?;
        Ok(Json(CustomerDetail {
            customer,
            contacts,
            open_opportunities,
            recent_activities,
        }))
    }

    fn create_customer(
        &self,
        caller: Caller,
        Json(input): Json<CustomerInput>,
    ) -> Result<Created<Customer>, Response> {
        let mut valid = validate(&input).map_err(|problems| invalid(&problems))?;
        valid.owner_id = valid.owner_id.or(Some(caller.user_id));
        self.company_exists(valid.company_id, 0)?;
        self.email_free(valid.email.as_deref(), 0)?;
        let now = now();
        let sql = format!(
            "INSERT INTO crm_customers (type, name, email, phone, other_emails, other_phones, \
             company_id, address, tags, owner_id, notes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS BIGINT), $8, $9, CAST($10 AS BIGINT), $11, $12, $12) RETURNING {}",
            COLUMNS.replace("c.", "")
        );
        let customer: Customer = self
            .host
            .query_row_as(&sql, written(&valid, &now, None))
            .map_err(|error| self.write_error(error, valid.email.as_deref()))?;
        self.announce("customer.created", &customer);
        Ok(Created(customer))
    }

    /// A write's error: a taken email (a race the check did not see) is
    /// the same 409 as the check's.
    fn write_error(&self, error: HostError, email: Option<&str>) -> Response {
        match (&error, email) {
            (HostError::UniqueViolation { .. }, Some(email)) => {
                match self.email_free(Some(email), 0) {
                    Err(response) => response,
                    Ok(()) => error.into_response(),
                }
            }
            _ => error.into_response(),
        }
    }

    fn update_customer(
        &self,
        Id(id): Id,
        Json(patch): Json<Value>,
    ) -> Result<Json<Customer>, Response> {
        let current = self.customer(id)?;
        let input: CustomerInput = patched(&current, patch)?;
        let valid = validate(&input).map_err(|problems| invalid(&problems))?;
        self.company_exists(valid.company_id, id)?;
        self.email_free(valid.email.as_deref(), id)?;
        let sql = format!(
            "UPDATE crm_customers SET type = $1, name = $2, email = $3, phone = $4, \
             other_emails = $5, other_phones = $6, company_id = CAST($7 AS BIGINT), address = $8, tags = $9, \
             owner_id = CAST($10 AS BIGINT), notes = $11, updated_at = $12 WHERE id = $13 RETURNING {}",
            COLUMNS.replace("c.", "")
        );
        let customer: Customer = self
            .host
            .query_row_as(&sql, written(&valid, &now(), Some(id)))
            .map_err(|error| self.write_error(error, valid.email.as_deref()))?;
        Ok(Json(customer))
    }

    fn delete_customer(&self, Id(id): Id) -> Result<NoContent, Response> {
        self.customer(id)?;
        let deals: i64 = self.host.query_scalar(
            "SELECT COUNT(*) FROM crm_opportunities WHERE customer_id = $1",
            params![id],
        )?;
        if deals > 0 {
            return Err(Response::conflict(&format!(
                "{deals} opportunities refer to this customer; delete or reassign them first"
            )));
        }
        self.host.transaction(vec![
            Statement::new(
                "UPDATE crm_customers SET company_id = NULL WHERE company_id = $1",
                params![id],
            ),
            Statement::new(
                "DELETE FROM crm_activities WHERE customer_id = $1",
                params![id],
            ),
            Statement::new("DELETE FROM crm_customers WHERE id = $1", params![id]),
        ])?;
        Ok(NoContent)
    }

    fn export_customers(
        &self,
        caller: Caller,
        Query(filters): Query<CustomerFilters>,
    ) -> Result<Response, Response> {
        let (conditions, params) = self.customer_conditions(&filters, &caller)?;
        let key_joint = if conditions.is_empty() {
            "WHERE"
        } else {
            "AND"
        };
        let after = params.len() + 1;
        let sql = format!(
            "SELECT {COLUMNS} FROM crm_customers c {conditions} {key_joint} c.id > ${after} \
             ORDER BY c.id LIMIT {EXPORT_BATCH}"
        );
        // Streamed: one keyset batch per chunk, so memory stays at one
        // batch whatever the number of customers.
        let mut export = CustomerExport {
            host: self.host.clone(),
            sql,
            params,
            header: true,
        };
        let mut response = keyset::stream(
            "text/csv; charset=utf-8",
            move |last| export.batch(last),
            |error| error,
        )
        .map_err(csv_error)?;
        response.headers.push((
            "content-disposition".into(),
            "attachment; filename=\"customers.csv\"".into(),
        ));
        Ok(response)
    }
}

/// The CSV export of customers: the header, then one chunk per batch of
/// [`EXPORT_BATCH`] rows after the last id sent.
struct CustomerExport {
    host: Host,
    sql: String,
    params: Vec<Value>,
    header: bool,
}

impl CustomerExport {
    const HEADER: [&'static str; 12] = [
        "id",
        "type",
        "name",
        "email",
        "phone",
        "company_id",
        "address",
        "tags",
        "owner_id",
        "notes",
        "created_at",
        "updated_at",
    ];

    /// The rows after id `last` as CSV, and the id to read after next.
    fn batch(&mut self, last: i64) -> Result<keyset::Batch, String> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        if std::mem::take(&mut self.header) {
            writer
                .write_record(Self::HEADER)
                .map_err(|e| e.to_string())?;
        }
        let mut params = self.params.clone();
        params.push(json!(last));
        let batch: Vec<Customer> = self
            .host
            .query_as(&self.sql, params)
            .map_err(|error| error.to_string())?;
        for customer in &batch {
            let id = |value: Option<i64>| value.map(|id| id.to_string()).unwrap_or_default();
            writer
                .write_record([
                    customer.id.to_string().as_str(),
                    &customer.kind,
                    &customer.name,
                    customer.email.as_deref().unwrap_or(""),
                    customer.phone.as_deref().unwrap_or(""),
                    &id(customer.company_id),
                    customer.address.as_deref().unwrap_or(""),
                    &customer.tags.join("|"),
                    &id(customer.owner_id),
                    customer.notes.as_deref().unwrap_or(""),
                    &customer.created_at,
                    &customer.updated_at,
                ])
                .map_err(|error| error.to_string())?;
        }
        let next = match batch.last() {
            Some(customer) if batch.len() as i64 == EXPORT_BATCH => Some(customer.id),
            _ => None,
        };
        let chunk = writer
            .into_inner()
            .map_err(|error| error.into_error().to_string())?;
        Ok((chunk, next))
    }
}

fn csv_error(error: impl std::fmt::Display) -> Response {
    Response::plugin_error(&format!("cannot write the CSV: {error}"))
}

/// The 409 for an email `holder` (a row with `id`, `name`) already has.
pub fn email_taken(email: &str, holder: &Row) -> Response {
    let id = holder.get("id").and_then(Value::as_i64).unwrap_or_default();
    let name = holder
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Response::error_with_details(
        409,
        "CONFLICT",
        &format!("the email {email} is already used by customer {id} ({name})"),
        &[("email", "already used")],
    )
}
