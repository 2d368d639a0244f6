//! A plugin's OpenAPI parts, kept as the JSON text they crossed the
//! boundary in.
//!
//! The manifest carries the plugin's OpenAPI `paths` and component
//! schemas. Parsed into `serde_json::Value`s they were most of what the
//! host kept in memory per plugin (3.1 MB of map nodes for the four domain
//! plugins, more than the rest of the host's heap at idle), and building
//! them was the largest part of reading a manifest, on every start, install
//! and reload. Only `/openapi.json` reads them, so the host splits them off
//! the manifest's text unparsed and parses them per request of the document
//! (about a millisecond for all four plugins).

use serde::Deserialize;
use serde_json::value::RawValue;
use xcore_plugin_sdk::Manifest;

/// The manifest's `openapi` and `openapi_schemas`, as JSON text.
#[derive(Debug, Default)]
pub struct OpenApiText {
    paths: Option<Box<str>>,
    schemas: Option<Box<str>>,
}

/// The two values, found in the manifest's text without being built.
#[derive(Deserialize)]
struct Parts<'a> {
    #[serde(borrow, default)]
    openapi: Option<&'a RawValue>,
    #[serde(borrow, default)]
    openapi_schemas: Option<&'a RawValue>,
}

impl OpenApiText {
    /// Reads a manifest's JSON text: the manifest without its OpenAPI
    /// parts (`openapi` and `openapi_schemas` are `None`), and those parts
    /// as text. Fails as parsing the whole manifest would.
    pub fn split(manifest: &str) -> Result<(Manifest, Self), serde_json::Error> {
        let parts: Parts<'_> = serde_json::from_str(manifest)?;
        let found: Vec<&str> = [parts.openapi, parts.openapi_schemas]
            .into_iter()
            .flatten()
            .map(RawValue::get)
            .collect();
        // The rest is read from the text with each part replaced by
        // `null`: the parts are slices of `manifest`, so their places in it
        // are their addresses' distance from its start.
        let mut rest = String::with_capacity(manifest.len());
        let mut copied = 0;
        let mut places: Vec<(usize, usize)> = found
            .iter()
            .map(|part| {
                let start = part.as_ptr() as usize - manifest.as_ptr() as usize;
                (start, start + part.len())
            })
            .collect();
        places.sort_unstable();
        for (start, end) in places {
            rest.push_str(&manifest[copied..start]);
            rest.push_str("null");
            copied = end;
        }
        rest.push_str(&manifest[copied..]);
        let manifest: Manifest = serde_json::from_str(&rest)?;
        let text = |part: Option<&RawValue>| {
            part.map(RawValue::get)
                .filter(|text| *text != "null")
                .map(Box::from)
        };
        Ok((
            manifest,
            Self {
                paths: text(parts.openapi),
                schemas: text(parts.openapi_schemas),
            },
        ))
    }

    /// The `paths` fragment, relative to the plugin's prefix.
    pub fn paths(&self) -> Option<serde_json::Value> {
        Self::parse(self.paths.as_deref())
    }

    /// The component schemas, named `<id>.<Type>`.
    pub fn schemas(&self) -> Option<serde_json::Value> {
        Self::parse(self.schemas.as_deref())
    }

    fn parse(text: Option<&str>) -> Option<serde_json::Value> {
        // The text was valid JSON when it was split off: it parses again.
        text.and_then(|text| serde_json::from_str(text).ok())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_parts_come_off_as_text_and_the_rest_reads_as_before() {
        let mut whole = Manifest::new("shop", "Shop", "1.2.0", "/api/v1/shop").openapi(json!({
            "/items": {"get": {"summary": "Items, \"quoted\" {braces} [and] \\ escapes"}},
        }));
        whole.openapi_schemas = Some(json!({"shop.Item": {"type": "object"}}));
        whole.description = "openapi: {\"not\": \"this\"}".into();
        let text = serde_json::to_string(&whole).expect("json");
        let (manifest, parts) = OpenApiText::split(&text).expect("splits");
        assert_eq!(parts.paths(), whole.openapi);
        assert_eq!(parts.schemas(), whole.openapi_schemas);
        let mut rest = whole.clone();
        rest.openapi = None;
        rest.openapi_schemas = None;
        assert_eq!(manifest, rest);
    }

    #[test]
    fn missing_or_null_parts_are_none_and_bad_text_fails_as_before() {
        let bare = Manifest::new("shop", "Shop", "1.2.0", "/api/v1/shop");
        let text = serde_json::to_string(&bare).expect("json");
        let (manifest, parts) = OpenApiText::split(&text).expect("splits");
        assert_eq!(manifest, bare);
        assert!(parts.paths().is_none() && parts.schemas().is_none());
        // Key order, spacing and absent keys as a hand-written manifest
        // might have them.
        let (_, parts) = OpenApiText::split(
            r#"{ "openapi_schemas" : null , "id":"a","name":"A","version":"1.0.0",
                "api_prefix":"/a", "openapi" : {"/x":{}} }"#,
        )
        .expect("splits");
        assert_eq!(parts.paths(), Some(json!({"/x": {}})));
        assert!(parts.schemas().is_none());
        for broken in [
            "",
            "{",
            r#"{"id":"a","name":"A","version":"1.0.0","api_prefix":"/a","openapi":{"#,
            r#"{"id":"a","name":"A","version":"1.0.0","api_prefix":"/a","openapi":{},"openapi":{}}"#,
            r#"{"name":"A","version":"1.0.0","api_prefix":"/a"}"#,
        ] {
            assert!(OpenApiText::split(broken).is_err(), "{broken}");
        }
    }
}
