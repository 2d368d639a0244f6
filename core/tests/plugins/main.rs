//! Plugins over HTTP against a real server with real `.so` files: loading
//! at start, `/system/plugins`, RBAC on plugin routes, panics, disable and
//! enable, state across a restart, reload to new code with the old data, a
//! failed reload that leaves the old generation serving, and bad files
//! shown with their error.
//!
//! One test binary, one file per topic: [`serving`] (loading at start, the
//! routes with the caller's rights, body limits, the plugin sections of the
//! config), [`lifecycle`] (disable, enable, reload, quarantine) and
//! [`install`] (bad files, conflicts, install and uninstall, the watcher),
//! [`streaming`] (structured errors, streamed bodies).
//! This file: the helpers they share.

#[path = "../common/mod.rs"]
mod common;

mod install;
mod lifecycle;
mod serving;
mod streaming;

use common::{deploy, TestServer};
use std::path::Path;

pub(crate) const HELLO: &str = "libxcore_plugin_hello.so";

/// hello's public route.
pub(crate) const PING: &str = "/api/v1/hello/ping";

pub(crate) async fn start_with_plugins(dir: &Path) -> TestServer {
    let dir = dir.to_path_buf();
    TestServer::start_with(move |config| config.plugins.dir = dir.display().to_string()).await
}

/// A plugins directory holding `library` as hello and a server started on
/// it (keep the directory alive with the server).
pub(crate) async fn serve_library(library: &Path) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().expect("dir");
    deploy(library, dir.path(), HELLO);
    let server = start_with_plugins(dir.path()).await;
    (dir, server)
}

/// [`serve_library`] and the admin's token.
pub(crate) async fn serve_hello(library: &Path) -> (tempfile::TempDir, TestServer, String) {
    let (dir, server) = serve_library(library).await;
    let admin = server.admin_token().await;
    (dir, server, admin)
}

pub(crate) fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Polls `condition` until it holds or 30 s pass.
pub(crate) async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
