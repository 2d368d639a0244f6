//! Suppliers: validated, created, listed, changed and deleted, with their
//! errors and 401/403.

use crate::{create_supplier, field_names, get, path, start_server};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppliers_are_validated_created_listed_changed_and_deleted() {
    let (server, _dir) = start_server().await;
    let admin = server.admin_token().await;
    let (_, user) = server.roleless_token(&admin, "reader@example.com").await;

    server
        .anonymous()
        .get(&path("/suppliers"))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    server
        .as_(&user)
        .get(&path("/suppliers"))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .as_(&user)
        .post(&path("/suppliers"))
        .json(json!({"name": "Nope"}))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;

    // Every problem is reported, each under its field.
    let refused = server
        .as_(&admin)
        .post(&path("/suppliers"))
        .json(json!({
            "email": "not-an-email",
            "status": "sleeping",
            "colour": "red",
            "import_config": {
                "delimiter": "::",
                "encoding": "ebcdic",
                "mapping": {"ref": "sku", "nom": "label", "fournisseur": "supplier_id"}
            }
        }))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    let fields = field_names(&refused);
    for expected in [
        "name",
        "email",
        "status",
        "colour",
        "import_config.delimiter",
        "import_config.encoding",
        "import_config.mapping.nom",
        "import_config.mapping.fournisseur",
        "import_config.mapping",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} in {fields:?}"
        );
    }
    server
        .as_(&admin)
        .post(&path("/suppliers"))
        .json(json!(["not", "an", "object"]))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;

    let created = server.create_as(&admin, &path("/suppliers"), json!({
                "name": "Fournisseur XYZ",
                "email": "contact@fournisseur.com",
                "import_type": "csv",
                "import_config": {"delimiter": ";", "encoding": "utf-8", "mapping": {"ref": "sku", "nom": "name", "prix": "price"}}
            }))
    .await;
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["status"], "active");
    assert_eq!(created["import_config"]["delimiter"], ";");
    assert_eq!(created["import_config"]["mapping"]["prix"], "price");
    assert!(created["created_at"].is_string());
    // Names are unique ignoring case.
    server
        .as_(&admin)
        .post(&path("/suppliers"))
        .json(json!({"name": "fournisseur xyz"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    let other = create_supplier(
        &server,
        &admin,
        json!({"name": "Autre", "status": "inactive"}),
    )
    .await;
    let third = create_supplier(&server, &admin, json!({"name": "Troisième"})).await;

    let active = get(&server, &admin, "/suppliers?status=active").await;
    assert_eq!(active["total"], 2, "{active}");
    let names: Vec<&str> = crate::common::items(&active)
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["Fournisseur XYZ", "Troisième"]);
    let paged = get(&server, &admin, "/suppliers?page=2&page_size=2").await;
    assert_eq!(paged["total_pages"], 2, "{paged}");
    assert_eq!(crate::common::items(&paged).len(), 1);
    server
        .as_(&admin)
        .get(&path("/suppliers?status=gone"))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;

    // A partial update changes what is sent, nothing else.
    let changed = server
        .put_as(
            &admin,
            &path(&format!("/suppliers/{id}")),
            json!({"phone": "+33 1 23 45 67 89", "status": "inactive"}),
        )
        .await;
    assert_eq!(changed["phone"], "+33 1 23 45 67 89");
    assert_eq!(changed["status"], "inactive");
    assert_eq!(changed["email"], "contact@fournisseur.com");
    assert_eq!(changed["import_config"]["mapping"]["ref"], "sku");
    server
        .as_(&admin)
        .put(&path(&format!("/suppliers/{id}")))
        .json(json!({"name": "AUTRE"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    server
        .as_(&admin)
        .put(&path(&format!("/suppliers/{id}")))
        .json(json!({"import_config": {"mapping": {"ref": "sku"}}}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    let shown = get(&server, &admin, &format!("/suppliers/{id}")).await;
    assert_eq!(
        shown["status"], "inactive",
        "a refused update changed nothing"
    );
    assert_eq!(shown["name"], "Fournisseur XYZ");

    server
        .as_(&admin)
        .get(&path("/suppliers/999999"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&admin)
        .get(&path("/suppliers/999999/products"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    let none = get(&server, &admin, &format!("/suppliers/{third}/products")).await;
    assert_eq!(none["total"], 0);

    // Delete needs products:delete; an unused supplier goes.
    server
        .as_(&user)
        .delete(&path(&format!("/suppliers/{other}")))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .as_(&admin)
        .delete(&path(&format!("/suppliers/{other}")))
        .expect(StatusCode::NO_CONTENT)
        .await;
    server
        .as_(&admin)
        .get(&path(&format!("/suppliers/{other}")))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server.stop().await;
}
