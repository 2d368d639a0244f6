//! The pricing plugin's catalogue prices through the real host and the
//! real `.so` files of products and pricing: a price changed through
//! pricing (with its reason), through products' own `PUT`, through a bulk
//! and through a CSV import all land in the history; discounts (percent,
//! amount, periods, the 422s); the 404s and 401/403; disabling products
//! is refused while pricing depends on it. Runs on SQLite, and on
//! PostgreSQL when `XCORE_TEST_DATABASE_URL` is set.

mod common;

use std::time::Duration;

use common::{call, expect_error, expect_status, PluginApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PRICING: &str = "/api/v1/pricing";
const PRODUCTS: &str = "/api/v1/products";

/// The host with the products and pricing plugins; paths are full.
struct Shop(PluginApp);

impl std::ops::Deref for Shop {
    type Target = PluginApp;

    fn deref(&self) -> &PluginApp {
        &self.0
    }
}

async fn start() -> Shop {
    Shop(PluginApp::start("", &["products", "pricing"], |_| {}).await)
}

impl Shop {
    async fn product(&self, sku: &str, price: Value) -> i64 {
        let product = self
            .ok(
                Method::POST,
                &format!("{PRODUCTS}/"),
                Some(json!({"sku": sku, "name": format!("Product {sku}"), "price": price})),
                StatusCode::CREATED,
            )
            .await;
        product["id"].as_i64().expect("id")
    }

    /// The history once it holds `count` entries (events are delivered
    /// off the request path).
    async fn history(&self, id: i64, count: usize) -> Vec<Value> {
        let path = format!("{PRICING}/products/{id}/price-history?limit=100");
        for _ in 0..100 {
            let body = self.ok(Method::GET, &path, None, StatusCode::OK).await;
            let items = body["items"].as_array().cloned().unwrap_or_default();
            if items.len() >= count {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the history of {id} never reached {count} entries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_price_change_lands_in_the_history_whichever_way_it_was_made() {
    let shop = start().await;
    let id = shop.product("HIST-1", json!(100)).await;
    // The first price, from products.created.
    let first = shop.history(id, 1).await;
    assert_eq!(first[0]["old_price"], Value::Null);
    assert_eq!(first[0]["new_price"], json!(100.0));
    assert_eq!(first[0]["source"], "products.create");

    // Through pricing, with a reason: 204, products holds the new price.
    let body = shop
        .ok(
            Method::PUT,
            &format!("{PRICING}/products/{id}/price"),
            Some(json!({"price": "89.90", "reason": "Black Friday"})),
            StatusCode::NO_CONTENT,
        )
        .await;
    assert_eq!(body, Value::Null);
    let product = shop
        .ok(
            Method::GET,
            &format!("{PRODUCTS}/{id}"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(product["price"], json!(89.9));
    let history = shop.history(id, 2).await;
    assert_eq!(history[0]["old_price"], json!(100.0));
    assert_eq!(history[0]["new_price"], json!(89.9));
    assert_eq!(history[0]["reason"], "Black Friday", "{history:?}");
    assert_eq!(history[0]["source"], "pricing");
    assert!(history[0]["changed_by"].as_i64().is_some());

    // Through products' own PUT.
    shop.ok(
        Method::PUT,
        &format!("{PRODUCTS}/{id}"),
        Some(json!({"price": 79.99})),
        StatusCode::OK,
    )
    .await;
    let history = shop.history(id, 3).await;
    assert_eq!(history[0]["old_price"], json!(89.9));
    assert_eq!(history[0]["new_price"], json!(79.99));
    assert_eq!(history[0]["source"], "products.update");
    assert_eq!(history[0]["reason"], Value::Null);
    // A PUT that does not change the price adds nothing.
    shop.ok(
        Method::PUT,
        &format!("{PRODUCTS}/{id}"),
        Some(json!({"name": "Renamed"})),
        StatusCode::OK,
    )
    .await;

    // Through a bulk update.
    shop.ok(
        Method::POST,
        &format!("{PRODUCTS}/bulk"),
        Some(json!({"update_existing": true, "products": [
            {"sku": "HIST-1", "name": "Renamed", "price": "75.00"},
            {"sku": "HIST-2", "name": "New", "price": 5},
        ]})),
        StatusCode::OK,
    )
    .await;
    let history = shop.history(id, 4).await;
    assert_eq!(history.len(), 4, "the rename added nothing: {history:?}");
    assert_eq!(history[0]["old_price"], json!(79.99));
    assert_eq!(history[0]["new_price"], json!(75.0));
    assert_eq!(history[0]["source"], "products.bulk");
    let sources: Vec<&str> = history
        .iter()
        .filter_map(|h| h["source"].as_str())
        .collect();
    assert_eq!(
        sources,
        [
            "products.bulk",
            "products.update",
            "pricing",
            "products.create"
        ],
        "newest first"
    );

    // A CSV import's products get their first price too.
    let supplier = shop
        .ok(
            Method::POST,
            &format!("{PRODUCTS}/suppliers"),
            Some(json!({"name": "Importer"})),
            StatusCode::CREATED,
        )
        .await;
    let form = reqwest::multipart::Form::new()
        .text("supplier_id", supplier["id"].to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"sku,name,price\nCSV-1,From CSV,12.34\n".to_vec())
                .file_name("prices.csv")
                .mime_str("text/csv")
                .expect("mime"),
        );
    let upload = shop
        .server
        .post(&format!("{PRODUCTS}/imports"))
        .bearer_auth(&shop.admin)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let job = expect_status(upload, StatusCode::CREATED).await;
    let job_id = job["id"].as_i64().expect("job id");
    shop.ok(
        Method::POST,
        &format!("{PRODUCTS}/imports/{job_id}/start"),
        None,
        StatusCode::ACCEPTED,
    )
    .await;
    let mut imported = None;
    for _ in 0..100 {
        let list = shop
            .ok(
                Method::GET,
                &format!("{PRODUCTS}/?search=CSV"),
                None,
                StatusCode::OK,
            )
            .await;
        if let Some(id) = list["items"][0]["id"].as_i64() {
            imported = Some(id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let imported = imported.expect("the import stored its product");
    let history = shop.history(imported, 1).await;
    assert_eq!(history[0]["new_price"], json!(12.34));
    assert_eq!(history[0]["source"], "products.import");
    shop.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn price_routes_check_their_input_and_rights() {
    let shop = start().await;
    let id = shop.product("CHK-1", json!(50)).await;
    let price = format!("{PRICING}/products/{id}/price");
    for (body, field) in [
        (json!({"price": -1}), "price"),
        (json!({"price": "1.234"}), "price"),
        (json!({}), "price"),
        (json!({"price": 1, "reason": "x".repeat(501)}), "reason"),
    ] {
        let error = expect_error(
            shop.send(Method::PUT, &price, Some(body.clone())).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(error["error"]["details"][0]["field"], field, "{body}");
    }
    for path in [
        "/products/999999/price",
        "/products/abc/price",
        "/products/999999/price-history",
    ] {
        expect_error(
            shop.send(Method::GET, &format!("{PRICING}{path}"), None)
                .await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
    }
    expect_error(
        shop.send(
            Method::PUT,
            &format!("{PRICING}/products/999999/price"),
            Some(json!({"price": 1})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    // Anonymous: 401; a plain user lacks pricing:write: 403.
    let anonymous = shop
        .server
        .put(&price)
        .json(&json!({"price": 1}))
        .send()
        .await
        .expect("send");
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    let (_, user) = shop.server.user_token("plain@example.com").await;
    expect_error(
        call(
            &shop.server,
            Method::PUT,
            &price,
            &user,
            Some(json!({"price": 1})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    shop.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discounts_are_exact_and_never_overlap_or_go_negative() {
    let shop = start().await;
    let id = shop.product("DSC-1", json!("19.99")).await;
    let discount = format!("{PRICING}/products/{id}/discount");
    let view = shop
        .ok(
            Method::GET,
            &format!("{PRICING}/products/{id}/price"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(view["price"], json!(19.99));
    assert_eq!(view["discount"], Value::Null);
    assert_eq!(view["effective_price"], json!(19.99));

    // 10 % of 19.99 is 2.00 (1.999 rounded half up).
    let view = shop
        .ok(
            Method::POST,
            &discount,
            Some(json!({"percent": 10})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(view["discount"]["percent"], json!(10.0));
    assert_eq!(view["discount"]["value"], json!(2.0));
    assert_eq!(view["effective_price"], json!(17.99));

    // An open-ended discount overlaps any other period.
    for body in [
        json!({"amount": 1}),
        json!({"amount": 1, "starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-02-01T00:00:00+01:00"}),
    ] {
        expect_error(
            shop.send(Method::POST, &discount, Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    }
    shop.ok(Method::DELETE, &discount, None, StatusCode::OK)
        .await;
    expect_error(
        shop.send(Method::DELETE, &discount, None).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    // Scheduled periods: two that do not overlap are fine, a third that
    // does is refused; a scheduled discount does not apply yet.
    shop.ok(
        Method::POST,
        &discount,
        Some(json!({"amount": "5.00", "starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-02-01T00:00:00Z"})),
        StatusCode::OK,
    )
    .await;
    let view = shop
        .ok(
            Method::POST,
            &discount,
            Some(json!({"amount": "3", "starts_at": "2099-02-01T00:00:00Z", "ends_at": "2099-03-01T00:00:00Z"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(view["discount"], Value::Null);
    assert_eq!(view["effective_price"], json!(19.99));
    let error = expect_error(
        shop.send(
            Method::POST,
            &discount,
            Some(json!({"percent": 5, "starts_at": "2099-01-15T00:00:00Z", "ends_at": "2099-01-20T00:00:00Z"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(error["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("overlaps"));
    shop.ok(Method::DELETE, &discount, None, StatusCode::OK)
        .await;

    // A discount worth more than the price, and malformed bodies.
    for (body, field) in [
        (json!({"amount": 20}), "amount"),
        (json!({"percent": 101}), "percent"),
        (json!({"percent": 0}), "percent"),
        (json!({"percent": 5, "amount": 1}), "percent"),
        (json!({}), "percent"),
        (json!({"amount": 1, "starts_at": "tomorrow"}), "starts_at"),
        (
            json!({"amount": 1, "starts_at": "2099-02-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"}),
            "ends_at",
        ),
    ] {
        let error = expect_error(
            shop.send(Method::POST, &discount, Some(body.clone())).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(error["error"]["details"][0]["field"], field, "{body}");
    }
    // 100 % makes it free, not negative.
    let view = shop
        .ok(
            Method::POST,
            &discount,
            Some(json!({"percent": 100})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(view["effective_price"], json!(0.0));
    expect_error(
        shop.send(
            Method::POST,
            &format!("{PRICING}/products/999999/discount"),
            Some(json!({"percent": 1})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    shop.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_cannot_be_disabled_while_pricing_depends_on_it() {
    let shop = start().await;
    expect_error(
        shop.send(Method::POST, "/system/plugins/products/disable", None)
            .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    let plugins = shop
        .ok(Method::GET, "/system/plugins", None, StatusCode::OK)
        .await;
    let text = plugins.to_string();
    assert!(text.contains("pricing"), "{text}");
    // With cascade both go.
    shop.ok(
        Method::POST,
        "/system/plugins/products/disable?cascade=true",
        None,
        StatusCode::OK,
    )
    .await;
    expect_status(
        shop.send(Method::GET, &format!("{PRICING}/products/1/price"), None)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    shop.0.stop().await;
}
