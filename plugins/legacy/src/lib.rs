//! `legacy`: a plugin exactly as plugin-api 0.2's glue built them, written
//! against the FFI contract alone (in 0.2 the SDK and the contract were one
//! crate, and this is what its glue exported). It reports SDK 0.2.0 and
//! speaks 0.2's JSON protocol: `execute` answers a bare row count and a
//! failure is plain text. The host's compatibility test loads the real
//! built `.so` and drives those paths; it is never deployed.

// The root module export and the FFI objects are unsafe by nature; this
// fixture writes what 0.2's `export_plugin!` expanded to.
#![allow(unsafe_code, missing_docs)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    export_root_module,
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr, RString},
};
use xcore_plugin_api::ffi::{
    FfiRequest, FfiResponse, HostBox, InstanceBox, PluginInstance, PluginInstance_TO, PluginModule,
    PluginModuleRef,
};

/// The SDK version 0.2's glue reported.
const SDK_0_2: &str = "0.2.0";

const MANIFEST: &str = r#"{
  "id": "legacy", "name": "Legacy", "version": "0.2.0", "api_prefix": "/api/v1/legacy",
  "routes": [
    {"method": "GET", "path": "/ping"},
    {"method": "GET", "path": "/purge"},
    {"method": "GET", "path": "/refused"}
  ],
  "migrations": [{"version": 1, "name": "items",
    "sqlite": "CREATE TABLE legacy_items (id INTEGER PRIMARY KEY)",
    "postgres": "CREATE TABLE legacy_items (id BIGSERIAL PRIMARY KEY)"}]
}"#;

struct Legacy {
    host: HostBox,
}

fn json(status: u16, body: String) -> FfiResponse {
    FfiResponse {
        status,
        headers: r#"{"content-type":"application/json"}"#.into(),
        body: body.into_bytes().into(),
        panicked: false,
    }
}

/// A JSON string literal for `text`.
fn quoted(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

impl Legacy {
    fn run(&self, operation: &str) -> Result<String, String> {
        match self.host.call(RStr::from_str(operation)) {
            RResult::ROk(reply) => Ok(reply.into_string()),
            RResult::RErr(message) => Err(message.into_string()),
        }
    }

    fn route(&self, route: &str) -> FfiResponse {
        match route {
            "/ping" => json(200, r#"{"pong":true}"#.into()),
            // 0.2 read `execute`'s reply as a number.
            "/purge" => match self
                .run(r#"{"op":"execute","sql":"DELETE FROM legacy_items","params":[]}"#)
                .map(|reply| reply.parse::<u64>())
            {
                Ok(Ok(count)) => json(200, format!(r#"{{"deleted":{count}}}"#)),
                Ok(Err(_)) => json(500, r#"{"error":"the reply is not a count"}"#.into()),
                Err(message) => json(500, format!(r#"{{"error":{}}}"#, quoted(&message))),
            },
            // 0.2 showed a failure's text as it came.
            "/refused" => {
                match self.run(r#"{"op":"query","sql":"SELECT * FROM users","params":[]}"#) {
                    Ok(_) => json(200, r#"{"refused":null}"#.into()),
                    Err(message) => json(200, format!(r#"{{"refused":{}}}"#, quoted(&message))),
                }
            }
            _ => json(
                404,
                r#"{"error":{"code":"NOT_FOUND","message":"no route","details":[]}}"#.into(),
            ),
        }
    }
}

impl PluginInstance for Legacy {
    fn handle(&self, request: FfiRequest<'_>) -> FfiResponse {
        let route = request.route.as_str().to_string();
        catch_unwind(AssertUnwindSafe(|| self.route(&route)))
            .unwrap_or_else(|_| json(500, r#"{"error":"panicked"}"#.into()))
    }

    fn run_job(&self, name: RStr<'_>) -> RResult<(), RString> {
        RResult::RErr(format!("no job named {name}").into())
    }

    fn on_event(&self, _event: RStr<'_>) {}

    fn shutdown(&self) {}
}

extern "C" fn api_version() -> RString {
    SDK_0_2.into()
}

extern "C" fn manifest() -> RResult<RString, RString> {
    RResult::ROk(MANIFEST.into())
}

extern "C" fn instantiate(host: HostBox, _config: RString) -> RResult<InstanceBox, RString> {
    RResult::ROk(PluginInstance_TO::from_value(Legacy { host }, TD_Opaque))
}

/// The root module, exported as 0.2's `export_plugin!` did.
#[export_root_module]
pub fn xcore_plugin_root_module() -> PluginModuleRef {
    PluginModule {
        api_version,
        manifest,
        instantiate,
    }
    .leak_into_prefix()
}
