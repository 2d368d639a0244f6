//! The permissions a plugin declares for the built-in `user` role
//! (products: `products:read`): granted on first install, so a plain
//! account reads the catalogue at once; an admin's revocation sticks
//! across reloads, disable/enable, restarts and a reinstall without purge;
//! an uninstall with purge forgets everything, so a reinstall grants the
//! default again.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{access_token, deploy, plugin_library, TestDatabase, TestServer};
use crate::API;

const PASSWORD: &str = "UserPassw0rd!";
const LIBRARY: &str = "libxcore_plugin_products.so";

/// A server whose plugins directory holds the products plugin (installed at
/// start-up, the way operators deploy), which may also install from
/// `sources`.
async fn start_on(
    db: TestDatabase,
    plugins: &std::path::Path,
    sources: &std::path::Path,
) -> TestServer {
    let dir = plugins.to_path_buf();
    let allowed = sources.to_path_buf();
    TestServer::start_on(db, move |config| {
        config.plugins.dir = dir.display().to_string();
        config.plugins.install_from = vec![allowed.display().to_string()];
    })
    .await
}

async fn user_token(server: &TestServer, email: &str) -> String {
    access_token(&server.login(email, PASSWORD).await)
}

/// The caller's permissions, as `/auth/me` lists them.
async fn my_permissions(server: &TestServer, token: &str) -> Vec<String> {
    let me = server
        .as_(token)
        .get("/auth/me")
        .expect(StatusCode::OK)
        .await;
    me["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .map(|p| p.as_str().expect("name").to_string())
        .collect()
}

/// Whether `token` may list products: 200, or the standard 403 body.
async fn reads(server: &TestServer, token: &str) -> bool {
    let response = server.as_(token).get(&format!("{API}/")).send().await;
    match response.status() {
        StatusCode::OK => true,
        StatusCode::FORBIDDEN => {
            crate::common::expect_error(response, StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
                .await;
            false
        }
        other => panic!("unexpected status {other}"),
    }
}

async fn user_role_id(server: &TestServer, admin: &str) -> i64 {
    let roles = server
        .as_(admin)
        .get("/admin/roles")
        .expect(StatusCode::OK)
        .await;
    let items = roles["items"]
        .as_array()
        .or(roles.as_array())
        .expect("roles");
    items
        .iter()
        .find(|role| role["name"] == "user")
        .and_then(|role| role["id"].as_i64())
        .expect("the built-in user role")
}

async fn revoke_from_users(server: &TestServer, admin: &str) {
    let role = user_role_id(server, admin).await;
    let response = server
        .as_(admin)
        .delete(&format!("/admin/roles/{role}/permissions/products:read"))
        .send()
        .await;
    assert!(
        response.status().is_success(),
        "revoke: {}",
        response.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_reads_products_from_the_first_install_on_and_nothing_more() {
    let plugins = tempfile::tempdir().expect("dir");
    let sources = tempfile::tempdir().expect("dir");
    let library = plugin_library("xcore-plugin-products", "xcore_plugin_products", "");
    deploy(&library, plugins.path(), LIBRARY);
    let server = start_on(TestDatabase::new().await, plugins.path(), sources.path()).await;
    let (_, user) = server.user_token("plain@example.com").await;

    assert!(reads(&server, &user).await, "a plain user lists products");
    let permissions = my_permissions(&server, &user).await;
    assert!(
        permissions.contains(&"products:read".to_string()),
        "{permissions:?}"
    );
    // Only what the plugin declared for users: no writes, no deletes.
    for other in ["products:write", "products:delete", "products:import"] {
        assert!(!permissions.contains(&other.to_string()), "{permissions:?}");
    }
    server
        .as_(&user)
        .post(&format!("{API}/"))
        .json(json!({"sku": "U-1", "name": "by a user", "price": 1}))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_revocation_outlives_reload_disable_enable_restart_and_reinstall() {
    let plugins = tempfile::tempdir().expect("dir");
    let sources = tempfile::tempdir().expect("dir");
    let library = plugin_library("xcore-plugin-products", "xcore_plugin_products", "");
    deploy(&library, plugins.path(), LIBRARY);
    deploy(&library, sources.path(), LIBRARY);
    let server = start_on(TestDatabase::new().await, plugins.path(), sources.path()).await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("plain@example.com").await;
    assert!(reads(&server, &user).await);

    // Revoked: refused from the next request on.
    revoke_from_users(&server, &admin).await;
    assert!(!reads(&server, &user).await, "revoked, yet still reads");
    assert!(!my_permissions(&server, &user)
        .await
        .contains(&"products:read".to_string()));

    // The plugin activates again: reload, disable and enable.
    server
        .as_(&admin)
        .post("/system/plugins/products/reload")
        .expect(StatusCode::OK)
        .await;
    assert!(!reads(&server, &user).await, "re-granted by a reload");
    server
        .as_(&admin)
        .post("/system/plugins/products/disable")
        .expect(StatusCode::OK)
        .await;
    server
        .as_(&admin)
        .post("/system/plugins/products/enable")
        .expect(StatusCode::OK)
        .await;
    assert!(!reads(&server, &user).await, "re-granted by enable");

    // A restart on the same database.
    let db = server.stop().await;
    let server = start_on(db, plugins.path(), sources.path()).await;
    let admin = server.admin_token().await;
    let user = user_token(&server, "plain@example.com").await;
    assert!(!reads(&server, &user).await, "re-granted by a restart");
    assert!(!my_permissions(&server, &user)
        .await
        .contains(&"products:read".to_string()));

    // Uninstalled without purge and installed again: the permissions and
    // the admin's choice were kept.
    server
        .as_(&admin)
        .delete("/system/plugins/products")
        .expect(StatusCode::NO_CONTENT)
        .await;
    let source = sources.path().join(LIBRARY).display().to_string();
    server
        .as_(&admin)
        .post("/system/plugins")
        .json(json!({"name": "products", "source": source}))
        .expect(StatusCode::CREATED)
        .await;
    assert!(!reads(&server, &user).await, "re-granted by a reinstall");

    // An admin's grant sticks just as well.
    let role = user_role_id(&server, &admin).await;
    let response = server
        .as_(&admin)
        .post(&format!("/admin/roles/{role}/permissions/products:read"))
        .send()
        .await;
    assert!(response.status().is_success(), "grant back");
    assert!(reads(&server, &user).await);
    let db = server.stop().await;
    let server = start_on(db, plugins.path(), sources.path()).await;
    let user = user_token(&server, "plain@example.com").await;
    assert!(reads(&server, &user).await, "the admin's grant survives");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstall_after_a_purge_is_a_first_install_again() {
    let plugins = tempfile::tempdir().expect("dir");
    let sources = tempfile::tempdir().expect("dir");
    let library = plugin_library("xcore-plugin-products", "xcore_plugin_products", "");
    deploy(&library, plugins.path(), LIBRARY);
    deploy(&library, sources.path(), LIBRARY);
    let server = start_on(TestDatabase::new().await, plugins.path(), sources.path()).await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("plain@example.com").await;
    revoke_from_users(&server, &admin).await;
    assert!(!reads(&server, &user).await);

    server
        .as_(&admin)
        .delete("/system/plugins/products?purge=true")
        .expect(StatusCode::NO_CONTENT)
        .await;
    let recorded: Vec<Value> = my_permissions(&server, &admin)
        .await
        .into_iter()
        .filter(|p| p.starts_with("products:"))
        .map(Value::String)
        .collect();
    assert_eq!(recorded, Vec::<Value>::new(), "purged with the plugin");
    let source = sources.path().join(LIBRARY).display().to_string();
    server
        .as_(&admin)
        .post("/system/plugins")
        .json(json!({"name": "products", "source": source}))
        .expect(StatusCode::CREATED)
        .await;
    assert!(
        reads(&server, &user).await,
        "the default applies again after a purge"
    );
    server.stop().await;
}
