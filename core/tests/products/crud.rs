//! Products and categories: create, read, update, delete with every error
//! status (401, 403, 404, 409, 422), the 409 for a category in use, the
//! active filter, unique names, and the `products.*` events.

use crate::common::{expect_error, next_bus_event};
use crate::{detail_fields, start, API};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_crud_with_every_error_status_and_events() {
    let catalogue = start().await;
    let mut events = catalogue.server.state.events.subscribe();
    let category = catalogue
        .post(
            "/categories",
            json!({"name": "Claviers", "description": "Périphériques"}),
        )
        .await;
    let category_id = category["id"].as_i64().expect("category id");
    let supplier_id = catalogue.supplier("Fournisseur XYZ").await;

    let created = catalogue
        .create(json!({
            "sku": "PROD-NEW-001", "name": "Nouveau Produit", "description": "Description complète",
            "price": 49.99, "stock": 100, "supplier_id": supplier_id, "category_id": category_id,
            "images": ["https://example.com/image.jpg"], "attributes": {"color": "blue", "size": "M"}
        }))
        .await;
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["sku"], "PROD-NEW-001");
    assert_eq!(created["price"], json!(49.99));
    assert_eq!(created["stock"], 100);
    assert_eq!(created["status"], "active");
    assert_eq!(created["supplier_id"], supplier_id);
    assert_eq!(created["category_id"], category_id);
    assert_eq!(created["images"], json!(["https://example.com/image.jpg"]));
    assert_eq!(created["attributes"], json!({"color": "blue", "size": "M"}));
    assert!(created["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let event = next_bus_event(&mut events, "products.created").await;
    assert_eq!(event["id"], id);
    assert_eq!(catalogue.get(&format!("/{id}")).await, created);

    // Duplicate SKU, bad values, unknown references.
    let conflict = catalogue
        .conflict(
            Method::POST,
            "/",
            json!({"sku": "PROD-NEW-001", "name": "Again", "price": 1}),
        )
        .await;
    assert!(conflict["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("PROD-NEW-001")));
    let negative = catalogue
        .invalid(
            Method::POST,
            "/",
            json!({"sku": "NEG", "name": "Negative", "price": -10}),
        )
        .await;
    assert_eq!(detail_fields(&negative), vec!["price"]);
    let many = catalogue
        .invalid(
            Method::POST,
            "/",
            json!({
                "sku": "X", "name": "x", "price": 19.999, "stock": -1, "status": "sold",
                "images": ["not a url"], "category_id": 999_999, "prce": 1
            }),
        )
        .await;
    for field in ["prce", "price", "stock", "status", "images[0]"] {
        assert!(
            detail_fields(&many).contains(&field.to_string()),
            "{field}: {many}"
        );
    }
    let missing = catalogue
        .invalid(Method::POST, "/", json!({"sku": "Y", "name": "y", "price": 1, "category_id": 999_999, "supplier_id": 999_999}))
        .await;
    assert_eq!(detail_fields(&missing), vec!["category_id", "supplier_id"]);
    catalogue
        .invalid(Method::POST, "/", json!(["not", "an", "object"]))
        .await;
    let malformed = catalogue
        .server
        .post(&format!("{API}/"))
        .bearer_auth(&catalogue.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    expect_error(malformed, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

    // Not found.
    for path in ["/999999", "/abc", "/0"] {
        catalogue.not_found(Method::GET, path).await;
    }
    catalogue
        .refused(
            Method::PUT,
            "/999999",
            Some(json!({"stock": 1})),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;

    // Partial update: only the given fields change.
    let other = catalogue
        .create(json!({"sku": "OTHER-1", "name": "Autre", "price": "5"}))
        .await;
    let updated = catalogue
        .put(
            &format!("/{id}"),
            json!({"price": "39.99", "stock": 200, "category_id": null}),
        )
        .await;
    assert_eq!(updated["price"], json!(39.99));
    assert_eq!(updated["stock"], 200);
    assert_eq!(updated["category_id"], Value::Null);
    assert_eq!(updated["name"], "Nouveau Produit");
    assert_eq!(updated["supplier_id"], supplier_id);
    assert_eq!(updated["created_at"], created["created_at"]);
    assert!(updated["updated_at"].as_str() > created["updated_at"].as_str());
    assert_eq!(
        next_bus_event(&mut events, "products.updated").await["stock"],
        200
    );
    catalogue
        .put_conflict(&format!("/{id}"), json!({"sku": "OTHER-1"}))
        .await;
    catalogue
        .invalid(
            Method::PUT,
            &format!("/{id}"),
            json!({"price": -1, "name": null}),
        )
        .await;
    // Keeping its own SKU is not a conflict.
    catalogue
        .put(
            &format!("/{id}"),
            json!({"sku": "PROD-NEW-001", "category_id": category_id}),
        )
        .await;

    // Activate / deactivate.
    let inactive = catalogue.action(&format!("/{id}/deactivate"), None).await;
    assert_eq!(inactive["status"], "inactive");
    let active = catalogue.action(&format!("/{id}/activate"), None).await;
    assert_eq!(active["status"], "active");
    catalogue.not_found(Method::POST, "/999999/activate").await;

    // A category in use cannot go.
    let in_use = catalogue
        .conflict(Method::DELETE, &format!("/categories/{category_id}"), None)
        .await;
    assert!(in_use["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("1 product")));

    // RBAC: 401 without a token, 403 without the permission.
    expect_error(
        catalogue
            .server
            .get(&format!("{API}/"))
            .send()
            .await
            .expect("send"),
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_ERROR",
    )
    .await;
    let (_, nobody) = catalogue
        .server
        .roleless_token(&catalogue.admin, "nobody@example.com")
        .await;
    catalogue
        .server
        .as_(&nobody)
        .get(&format!("{API}/"))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    let (_, reader) = catalogue
        .user_with("reader@example.com", &["products:read"])
        .await;
    catalogue
        .server
        .get_as(&reader, &format!("{API}/{id}"))
        .await;
    for (method, path, body) in [
        (
            Method::POST,
            "/".to_string(),
            Some(json!({"sku": "R", "name": "r", "price": 1})),
        ),
        (Method::PUT, format!("/{id}"), Some(json!({"stock": 1}))),
        (Method::DELETE, format!("/{id}"), None),
        (Method::POST, format!("/{id}/deactivate"), None),
        (
            Method::POST,
            "/bulk".to_string(),
            Some(json!({"products": []})),
        ),
        (
            Method::POST,
            "/categories".to_string(),
            Some(json!({"name": "R"})),
        ),
    ] {
        catalogue
            .server
            .as_(&reader)
            .request(method, &format!("{API}{path}"))
            .json_opt(body)
            .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
            .await;
    }
    // Writing is not deleting.
    let (_, writer) = catalogue
        .user_with("writer@example.com", &["products:read", "products:write"])
        .await;
    catalogue
        .server
        .as_(&writer)
        .delete(&format!("{API}/{id}"))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;

    // Delete.
    catalogue.delete(&format!("/{id}")).await;
    let deleted = next_bus_event(&mut events, "products.deleted").await;
    assert_eq!(deleted, json!({"id": id, "sku": "PROD-NEW-001"}));
    catalogue.not_found(Method::GET, &format!("/{id}")).await;
    catalogue.not_found(Method::DELETE, &format!("/{id}")).await;
    // Now unused, the category goes.
    catalogue
        .delete(&format!("/categories/{category_id}"))
        .await;
    assert_eq!(other["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_crud_with_active_filter_and_unique_names() {
    let catalogue = start().await;
    let tools = catalogue
        .post("/categories", json!({"name": "Outils"}))
        .await;
    assert_eq!(tools["is_active"], true);
    assert_eq!(tools["description"], Value::Null);
    let old = catalogue
        .post(
            "/categories",
            json!({"name": "Archives", "description": "Anciens", "isActive": false}),
        )
        .await;
    assert_eq!(old["is_active"], false);
    catalogue
        .conflict(Method::POST, "/categories", json!({"name": "Outils"}))
        .await;
    catalogue
        .invalid(
            Method::POST,
            "/categories",
            json!({"description": "no name", "is_active": "yes"}),
        )
        .await;

    let all = catalogue.get("/categories").await;
    assert_eq!(all["total"], 2);
    assert_eq!(all["items"][0]["name"], "Archives", "sorted by name");
    assert_eq!(all["page"], 1);
    assert_eq!(all["total_pages"], 1);
    let active = catalogue.get("/categories?activeOnly=true").await;
    assert_eq!(active["total"], 1);
    assert_eq!(active["items"][0]["name"], "Outils");
    catalogue
        .invalid(Method::GET, "/categories?activeOnly=maybe", None)
        .await;

    let old_id = old["id"].as_i64().expect("id");
    let renamed = catalogue
        .put(
            &format!("/categories/{old_id}"),
            json!({"is_active": true, "description": null}),
        )
        .await;
    assert_eq!(renamed["is_active"], true);
    assert_eq!(renamed["name"], "Archives");
    assert_eq!(renamed["description"], Value::Null);
    catalogue
        .put_conflict(&format!("/categories/{old_id}"), json!({"name": "Outils"}))
        .await;
    assert_eq!(
        catalogue.get("/categories?activeOnly=true").await["total"],
        2
    );
    assert_eq!(
        catalogue.get(&format!("/categories/{old_id}")).await,
        renamed
    );
    catalogue.delete(&format!("/categories/{old_id}")).await;
    for method in [Method::GET, Method::DELETE] {
        catalogue
            .not_found(method, &format!("/categories/{old_id}"))
            .await;
    }
}
