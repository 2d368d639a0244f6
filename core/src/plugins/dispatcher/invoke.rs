//! Step 3: the call itself. A [`RouteCall`] lends the request to the
//! plugin as borrowed FFI fields ([`FfiRequest`]), runs the handler with
//! the call context set, and counts panics towards quarantine; an
//! [`OwnedCall`] carries a matched route to the blocking pool.

use std::borrow::Cow;

use abi_stable::std_types::{RSlice, RStr};
use axum::http::{header, HeaderMap};
use xcore_plugin_sdk::{
    ffi::{FfiCaller, FfiPair, FfiRequest},
    Caller,
};

use super::{with_call, CallContext};
use crate::plugins::{
    generation::{Generation, PluginResponse},
    manager::PluginManager,
};

/// What a plugin route is called with, borrowed from the request being
/// served (or, for a call between plugins, from the calling handler).
pub(super) struct RouteCall<'a> {
    /// Index of the matched route in the manifest.
    pub(super) route: usize,
    /// Its pattern, e.g. `/greetings/{id}`.
    pub(super) pattern: &'a str,
    pub(super) method: &'a str,
    /// Path relative to the prefix.
    pub(super) path: &'a str,
    pub(super) params: &'a [(&'a str, &'a str)],
    pub(super) query: Option<&'a str>,
    pub(super) headers: Option<&'a HeaderMap>,
    /// Headers the host adds (a call between plugins names its caller).
    pub(super) extra_headers: &'a [(&'a str, &'a str)],
    pub(super) body: &'a [u8],
}

impl RouteCall<'_> {
    /// Runs `f` with the request as it crosses the boundary: borrowed
    /// strings and slices, nothing encoded.
    pub(super) fn with_ffi<T>(
        &self,
        caller: Option<&Caller>,
        request_id: &str,
        f: impl FnOnce(FfiRequest<'_>) -> T,
    ) -> T {
        let params: Vec<FfiPair<'_>> = self
            .params
            .iter()
            .map(|(n, v)| FfiPair::new(n, v))
            .collect();
        let decoded = query_pairs(self.query);
        let query: Vec<FfiPair<'_>> = decoded.iter().map(|(n, v)| FfiPair::new(n, v)).collect();
        let mut headers =
            Vec::with_capacity(self.headers.map_or(0, HeaderMap::len) + self.extra_headers.len());
        for (name, value) in self.headers.into_iter().flatten() {
            // Credentials stay with the host: the plugin learns who calls
            // from `caller`, never the token or the session.
            if name == header::AUTHORIZATION
                || name == header::COOKIE
                || name.as_str() == crate::auth::api_keys::HEADER
            {
                continue;
            }
            if let Ok(value) = value.to_str() {
                headers.push(FfiPair::new(name.as_str(), value));
            }
        }
        headers.extend(self.extra_headers.iter().map(|(n, v)| FfiPair::new(n, v)));
        let permissions: Vec<RStr<'_>> = caller
            .iter()
            .flat_map(|caller| caller.permissions.iter().map(|p| RStr::from_str(p)))
            .collect();
        f(FfiRequest {
            method: RStr::from_str(self.method),
            path: RStr::from_str(self.path),
            route: RStr::from_str(self.pattern),
            route_index: self.route,
            params: RSlice::from_slice(&params),
            query: RSlice::from_slice(&query),
            headers: RSlice::from_slice(&headers),
            caller: caller
                .map(|caller| FfiCaller {
                    user_id: caller.user_id,
                    email: RStr::from_str(&caller.email),
                    permissions: RSlice::from_slice(&permissions),
                })
                .into(),
            request_id: RStr::from_str(request_id),
            body: RSlice::from_slice(self.body),
        })
    }

    /// Calls the route of `generation` on this thread with `context` as
    /// the current call, and counts panics towards quarantine.
    pub(super) fn invoke(
        &self,
        manager: &PluginManager,
        generation: &Generation,
        context: CallContext,
    ) -> PluginResponse {
        // The context moves into the thread-local; the request borrows
        // from these shared handles instead.
        let (caller, request_id) = (context.caller.clone(), context.request_id.clone());
        let answer = self.with_ffi(caller.as_deref(), &request_id, |request| {
            with_call(context, || generation.handle(request))
        });
        let streak = generation.record_outcome(answer.panicked);
        if answer.panicked {
            tracing::error!(
                plugin = generation.id.as_str(),
                route = generation.label(self.route),
                streak,
                "plugin handler panicked"
            );
            // Exactly one request reaches the threshold, so one quarantine
            // runs, off the request path, which answers the 500 at once.
            if streak == manager.quarantine_after_panics() {
                manager.quarantine_later(&generation.id, streak);
            }
        }
        answer
    }
}

/// `path` relative to `prefix`, which it lies under.
pub(super) fn relative_path<'p>(path: &'p str, prefix: &str) -> &'p str {
    match &path[prefix.len()..] {
        "" => "/",
        rest => rest,
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    query
        .map(|query| form_urlencoded::parse(query.as_bytes()).collect())
        .unwrap_or_default()
}

/// A matched route with owned inputs, for the blocking pool: the route is
/// matched once, on the request's worker, and travels with the request.
pub(super) struct OwnedCall {
    pub(super) route: usize,
    pub(super) relative: String,
    pub(super) params: Vec<(String, String)>,
    pub(super) method: String,
    pub(super) query: Option<String>,
    pub(super) headers: HeaderMap,
    pub(super) body: axum::body::Bytes,
}

impl OwnedCall {
    /// Lends this call as the borrowed [`RouteCall`] every entrance invokes.
    pub(super) fn lend<R>(&self, generation: &Generation, f: impl FnOnce(RouteCall<'_>) -> R) -> R {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        f(RouteCall {
            route: self.route,
            pattern: &generation.spec(self.route).path,
            method: &self.method,
            path: &self.relative,
            params: &params,
            query: self.query.as_deref(),
            headers: Some(&self.headers),
            extra_headers: &[],
            body: &self.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_request_the_host_builds_is_the_head_plugins_read() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        headers.insert(header::COOKIE, HeaderValue::from_static("session=secret"));
        headers.insert(
            crate::auth::api_keys::HEADER,
            HeaderValue::from_static("xk_secret"),
        );
        let caller = Caller {
            user_id: 7,
            email: "a@example.com".into(),
            permissions: vec!["hello:read".into()],
        };
        let params = [("id", "42")];
        let call = RouteCall {
            route: 3,
            pattern: "/greetings/{id}",
            method: "GET",
            path: "/greetings/42",
            params: &params,
            query: Some("q=a+b&tag=x&tag=y%21"),
            headers: Some(&headers),
            extra_headers: &[("x-xcore-calling-plugin", "crm")],
            body: b"{}",
        };
        let (read, index, body) = call.with_ffi(Some(&caller), "req_1", |request| {
            (
                xcore_plugin_sdk::RequestHead::from_ffi(&request),
                request.route_index,
                request.body.as_slice().to_vec(),
            )
        });
        assert_eq!((index, body.as_slice()), (3, &b"{}"[..]));
        assert!(!format!("{read:?}").contains("secret"), "{read:?}");
        assert_eq!(read.method, "GET");
        assert_eq!(read.path, "/greetings/42");
        assert_eq!(read.route, "/greetings/{id}");
        assert_eq!(read.params.get("id").map(String::as_str), Some("42"));
        assert_eq!(
            read.query,
            vec![
                ("q".to_string(), "a b".to_string()),
                ("tag".to_string(), "x".to_string()),
                ("tag".to_string(), "y!".to_string()),
            ]
        );
        assert_eq!(
            read.headers.get("accept").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(
            read.headers
                .get("x-xcore-calling-plugin")
                .map(String::as_str),
            Some("crm")
        );
        assert_eq!(read.headers.len(), 2);
        assert_eq!(read.caller, Some(caller));
        assert_eq!(read.request_id, "req_1");
    }
}
