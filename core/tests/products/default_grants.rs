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

/// The plugins directory a server loads at start-up and the directory it
/// may install from.
struct Dirs {
    plugins: tempfile::TempDir,
    sources: tempfile::TempDir,
}

impl Dirs {
    /// The products plugin deployed into the plugins directory, and into the
    /// sources directory too when `installable`.
    fn new(installable: bool) -> Self {
        let dirs = Self {
            plugins: tempfile::tempdir().expect("dir"),
            sources: tempfile::tempdir().expect("dir"),
        };
        let library = plugin_library("xcore-plugin-products", "xcore_plugin_products", "");
        deploy(&library, dirs.plugins.path(), LIBRARY);
        if installable {
            deploy(&library, dirs.sources.path(), LIBRARY);
        }
        dirs
    }

    /// A server on `db` whose plugins directory holds the products plugin
    /// (installed at start-up, the way operators deploy), which may also
    /// install from the sources directory.
    async fn start_on(&self, db: TestDatabase) -> TestServer {
        let dir = self.plugins.path().display().to_string();
        let allowed = self.sources.path().display().to_string();
        TestServer::start_on(db, move |config| {
            config.plugins.dir = dir;
            config.plugins.install_from = vec![allowed];
        })
        .await
    }

    /// Installs the products plugin from the sources directory.
    async fn install(&self, server: &TestServer, admin: &str) {
        let source = self.sources.path().join(LIBRARY).display().to_string();
        server.install_plugin(admin, "products", &source).await;
    }
}

async fn user_token(server: &TestServer, email: &str) -> String {
    access_token(&server.login(email, PASSWORD).await)
}

/// The caller's permissions, as `/auth/me` lists them.
async fn my_permissions(server: &TestServer, token: &str) -> Vec<String> {
    let me = server.get_as(token, "/auth/me").await;
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
    let roles = server.get_as(admin, "/admin/roles").await;
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
    let dirs = Dirs::new(false);
    let server = dirs.start_on(TestDatabase::new().await).await;
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
    let dirs = Dirs::new(true);
    let server = dirs.start_on(TestDatabase::new().await).await;
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
    server.plugin_action(&admin, "products", "reload").await;
    assert!(!reads(&server, &user).await, "re-granted by a reload");
    server.plugin_action(&admin, "products", "disable").await;
    server.plugin_action(&admin, "products", "enable").await;
    assert!(!reads(&server, &user).await, "re-granted by enable");

    // A restart on the same database.
    let db = server.stop().await;
    let server = dirs.start_on(db).await;
    let admin = server.admin_token().await;
    let user = user_token(&server, "plain@example.com").await;
    assert!(!reads(&server, &user).await, "re-granted by a restart");
    assert!(!my_permissions(&server, &user)
        .await
        .contains(&"products:read".to_string()));

    // Uninstalled without purge and installed again: the permissions and
    // the admin's choice were kept.
    server.delete_as(&admin, "/system/plugins/products").await;
    dirs.install(&server, &admin).await;
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
    let server = dirs.start_on(db).await;
    let user = user_token(&server, "plain@example.com").await;
    assert!(reads(&server, &user).await, "the admin's grant survives");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstall_after_a_purge_is_a_first_install_again() {
    let dirs = Dirs::new(true);
    let server = dirs.start_on(TestDatabase::new().await).await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("plain@example.com").await;
    revoke_from_users(&server, &admin).await;
    assert!(!reads(&server, &user).await);

    server
        .delete_as(&admin, "/system/plugins/products?purge=true")
        .await;
    let recorded: Vec<Value> = my_permissions(&server, &admin)
        .await
        .into_iter()
        .filter(|p| p.starts_with("products:"))
        .map(Value::String)
        .collect();
    assert_eq!(recorded, Vec::<Value>::new(), "purged with the plugin");
    dirs.install(&server, &admin).await;
    assert!(
        reads(&server, &user).await,
        "the default applies again after a purge"
    );
    server.stop().await;
}
