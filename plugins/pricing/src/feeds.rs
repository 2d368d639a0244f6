//! Store feeds: a file of offers (CSV or JSON, the fields of
//! [`crate::offers`]) uploaded to `POST /stores/{store_id}/feed`
//! (multipart `file`), or fetched from the store's `feed_url` through the
//! host's outbound HTTP (`Host::http`: only URLs the operator allowed in
//! `[plugins.pricing] http_allow`), on demand
//! (`POST /stores/{store_id}/refresh`) or by the `refresh_feeds` job the
//! operator schedules. A feed is stored all or nothing like a batch;
//! fetching publishes `pricing.feed.completed` or `pricing.feed.failed`.
//!
//! JSON feeds are a list of offers or `{"offers": [...]}`; CSV feeds have
//! a header row naming the fields, `category_path` written `Parent > Child`.

use serde_json::Map;
use xcore_plugin_sdk::{multipart::Multipart, openapi::Operation, prelude::*, HttpRequest};

use crate::{
    offers::{self, OfferDraft, UpsertSummary},
    Pricing, StoreId, ADMIN, WRITE,
};

/// Largest feed accepted, in bytes.
pub const MAX_FEED_BYTES: usize = 30 * 1024 * 1024;

/// Most offers in one feed.
pub const MAX_FEED_OFFERS: usize = 200_000;

/// How long a feed fetch may take.
const FETCH_TIMEOUT_MS: u64 = 30_000;

fn upload_form(operation: &mut Operation) {
    operation.request_body_raw(
        "multipart/form-data",
        json!({
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                "description": "CSV (header row) or JSON offers"}},
        }),
    );
}

/// The routes and the refresh job.
pub fn routes(router: Router<Pricing>) -> Router<Pricing> {
    router
        .post(
            "/stores/{store_id}/feed",
            Access::Requires(WRITE),
            Pricing::upload_feed,
        )
        .summary("Upload a store's feed file (CSV or JSON offers), all or nothing")
        .doc(|op| {
            upload_form(op);
            op.error_response(404, "No such store");
        })
        .blocking()
        .max_body(MAX_FEED_BYTES as u64 + 64 * 1024)
        .post(
            "/stores/{store_id}/refresh",
            Access::Requires(ADMIN),
            Pricing::refresh_store,
        )
        .summary("Fetch a store's feed from its feed_url now")
        .doc(|op| {
            op.error_response(404, "No such store");
            op.error_response(422, "No feed_url, or one the host does not allow");
            op.error_response(502, "The feed could not be fetched or read");
        })
        .blocking()
        .job(
            "refresh_feeds",
            "Fetches every store's feed_url and stores its offers",
            |pricing: &Pricing| pricing.refresh_all(),
        )
}

/// Reads a feed's offers: JSON when it starts with `[` or `{`, CSV
/// otherwise. Every problem is reported, by offer index.
pub fn parse(bytes: &[u8]) -> Result<Vec<OfferDraft>, Vec<offers::Problem>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| vec![("file".to_string(), "must be UTF-8 text".to_string())])?;
    let text = text.trim_start_matches('\u{feff}');
    let objects: Vec<Value> = match text.trim_start().chars().next() {
        Some('[' | '{') => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| vec![("file".to_string(), format!("not valid JSON: {e}"))])?;
            match value {
                Value::Array(items) => items,
                Value::Object(mut object) => match object.remove("offers") {
                    Some(Value::Array(items)) => items,
                    _ => {
                        return Err(vec![(
                            "file".to_string(),
                            "a JSON feed is a list of offers or {\"offers\": [...]}".to_string(),
                        )])
                    }
                },
                _ => return Err(vec![("file".into(), "not a list of offers".into())]),
            }
        }
        Some(_) => csv_objects(text)?,
        None => return Err(vec![("file".into(), "the feed is empty".into())]),
    };
    if objects.len() > MAX_FEED_OFFERS {
        return Err(vec![(
            "file".into(),
            format!("at most {MAX_FEED_OFFERS} offers per feed"),
        )]);
    }
    let mut problems = Vec::new();
    let mut drafts = Vec::with_capacity(objects.len());
    for (index, object) in objects.iter().enumerate() {
        let at = format!("offers[{index}]");
        match object.as_object() {
            Some(object) => {
                if let Some(draft) = offers::validate(object, &at, false, &mut problems) {
                    drafts.push((index, draft));
                }
            }
            None => problems.push((at, "must be an object".into())),
        }
    }
    problems.extend(offers::duplicate_problems(&drafts, "offers"));
    if !problems.is_empty() {
        return Err(problems);
    }
    if drafts.is_empty() {
        return Err(vec![("file".into(), "the feed holds no offer".into())]);
    }
    Ok(drafts.into_iter().map(|(_, d)| d).collect())
}

/// CSV rows as JSON objects keyed by the header's (trimmed, lower-case)
/// names; empty cells are absent.
fn csv_objects(text: &str) -> Result<Vec<Value>, Vec<offers::Problem>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| vec![("file".to_string(), format!("unreadable CSV header: {e}"))])?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let mut objects = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            vec![(
                format!("offers[{index}]"),
                format!("unreadable CSV row: {e}"),
            )]
        })?;
        let mut object = Map::new();
        for (name, cell) in headers.iter().zip(record.iter()) {
            if !cell.trim().is_empty() {
                object.insert(name.clone(), Value::from(cell));
            }
        }
        objects.push(Value::Object(object));
    }
    Ok(objects)
}

/// Why a feed could not be stored.
enum FeedError {
    /// The answer to give the caller.
    Response(Response),
    /// What to record on the store and publish.
    Message(String),
}

impl Pricing {
    fn upload_feed(
        &self,
        StoreId(store): StoreId,
        form: Multipart,
    ) -> Result<Json<UpsertSummary>, Response> {
        self.store(&store)?;
        let file = form.required_file("file")?;
        if file.bytes.len() > MAX_FEED_BYTES {
            return Err(Response::error(
                413,
                "VALIDATION_ERROR",
                "the feed is too large",
            ));
        }
        let drafts = parse(&file.bytes).map_err(|p| offers::problems_response(&p))?;
        Ok(Json(self.upsert_offers(&store, &drafts)?))
    }

    fn refresh_store(&self, StoreId(store): StoreId) -> Result<Json<UpsertSummary>, Response> {
        let found = self.store(&store)?;
        let Some(url) = found.feed_url else {
            return Err(Response::invalid("feed_url", "the store has no feed_url"));
        };
        match self.fetch_feed(&store, &url) {
            Ok(summary) => Ok(Json(summary)),
            Err(FeedError::Response(response)) => Err(response),
            Err(FeedError::Message(message)) => Err(Response::error(502, "PLUGIN_ERROR", &message)),
        }
    }

    /// Fetches and stores one store's feed, records the outcome on the
    /// store and publishes it.
    fn fetch_feed(&self, store: &str, url: &str) -> Result<UpsertSummary, FeedError> {
        let outcome = self.fetch_and_store(store, url);
        let now = now();
        let error = match &outcome {
            Ok(_) => None,
            Err(FeedError::Message(message)) => Some(message.clone()),
            Err(FeedError::Response(response)) => Some(
                serde_json::from_slice::<Value>(&response.body_bytes())
                    .ok()
                    .and_then(|b| b["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "the feed was refused".into()),
            ),
        };
        let _ = self.host.execute(
            "UPDATE pricing_stores SET last_feed_at = $1, last_feed_error = $2 WHERE id = $3",
            params![now, error, store],
        );
        match (&outcome, &error) {
            (Ok(summary), _) => self.announce(
                "feed.completed",
                &json!({"store_id": store, "url": url, "summary": summary}),
            ),
            (Err(_), Some(message)) => self.announce(
                "feed.failed",
                &json!({"store_id": store, "url": url, "error": message}),
            ),
            (Err(_), None) => {}
        }
        outcome
    }

    fn fetch_and_store(&self, store: &str, url: &str) -> Result<UpsertSummary, FeedError> {
        let mut request = HttpRequest::get(url);
        request.timeout_ms = Some(FETCH_TIMEOUT_MS);
        let answer = self.host.http(&request).map_err(|error| match error {
            HostError::Refused { .. } => FeedError::Response(Response::invalid(
                "feed_url",
                "the host does not allow this URL (plugins.pricing.http_allow)",
            )),
            other => FeedError::Message(format!("the feed could not be fetched: {other}")),
        })?;
        if !(200..300).contains(&answer.status) {
            return Err(FeedError::Message(format!(
                "the feed answered HTTP {}",
                answer.status
            )));
        }
        let bytes = answer
            .body()
            .map_err(|e| FeedError::Message(e.to_string()))?;
        let drafts = parse(&bytes).map_err(|problems| {
            let first = problems
                .first()
                .map(|(field, message)| format!("{field}: {message}"))
                .unwrap_or_default();
            FeedError::Message(format!(
                "the feed has {} problems (first: {first})",
                problems.len()
            ))
        })?;
        self.upsert_offers(store, &drafts)
            .map_err(|e| FeedError::Message(format!("the feed could not be stored: {e}")))
    }

    /// The `refresh_feeds` job: every store with a feed URL, one after the
    /// other; a failing store does not stop the others.
    fn refresh_all(&self) -> Result<(), HostError> {
        #[derive(serde::Deserialize)]
        struct Feed {
            id: String,
            feed_url: String,
        }
        let feeds: Vec<Feed> = self.host.query_as(
            "SELECT id, feed_url FROM pricing_stores WHERE feed_url IS NOT NULL ORDER BY id",
            params![],
        )?;
        for feed in feeds {
            let _ = self.fetch_feed(&feed.id, &feed.feed_url);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn csv_and_json_feeds_read_the_same_offers() {
        let csv = "reference,title,brand,category_path,price,old_price,in_stock\n\
                   SM-1,Galaxy,Samsung,Téléphonie > Smartphone & Mobile,\"2799,00\",2999,oui\n";
        let json = r#"{"offers": [{"reference": "SM-1", "title": "Galaxy", "brand": "Samsung",
            "category_path": ["Téléphonie", "Smartphone & Mobile"], "price": 2799,
            "old_price": "2999", "in_stock": true}]}"#;
        let from_csv = parse(csv.as_bytes()).expect("csv");
        assert_eq!(from_csv, parse(json.as_bytes()).expect("json"));
        assert_eq!(from_csv[0].price_cents, 279_900);
        assert_eq!(from_csv[0].category_path[1], "Smartphone & Mobile");
        let problems = parse(b"reference,title,price\nA,,x\nA,T,1\n").expect_err("bad");
        assert!(problems.iter().any(|(f, _)| f == "offers[0].title"));
        assert!(problems.iter().any(|(f, _)| f == "offers[0].price"));
    }
}
