//! Outbound HTTP for plugins (`Host::http`): store feeds, imports from a
//! URL, webhooks. A plugin reaches only the URL prefixes its operator
//! listed (`[plugins.<id>] http_allow`), redirects included; the host
//! bounds the time of every request and the size of every response, so a
//! slow or huge answer costs the plugin an error, not the host its memory.
//!
//! An allow-list entry is a URL prefix: scheme, host and port must be equal
//! and the request's path must start with the entry's path. Entries are
//! parsed once; an entry that is not an absolute http(s) URL refuses the
//! plugin's configuration at start (see [`AllowList::parse`]).

use std::time::Duration;

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use url::Url;
use xcore_plugin_sdk::{HostError, HttpRequest, HttpResponse};

/// Redirects followed, each checked against the list.
const MAX_REDIRECTS: usize = 5;

/// The URL prefixes one plugin may reach.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    prefixes: Vec<Url>,
}

impl AllowList {
    /// Parses `[plugins.<id>] http_allow`.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let prefixes = entries
            .iter()
            .map(|entry| {
                let url = Url::parse(entry)
                    .map_err(|error| format!("http_allow entry {entry:?}: {error}"))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(format!(
                        "http_allow entry {entry:?} must be an http or https URL"
                    ));
                }
                Ok(url)
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { prefixes })
    }

    /// Whether `url` starts with one of the prefixes. The URL is parsed and
    /// normalised first, so `..` segments, a different port written out,
    /// or user information cannot smuggle a request past an entry.
    pub fn allows(&self, url: &Url) -> bool {
        url.username().is_empty()
            && url.password().is_none()
            && self.prefixes.iter().any(|prefix| {
                prefix.scheme() == url.scheme()
                    && prefix.host_str() == url.host_str()
                    && prefix.port_or_known_default() == url.port_or_known_default()
                    && path_within(prefix.path(), url.path())
            })
    }
}

/// `/feeds/` admits `/feeds/a.xml`; `/feeds` admits `/feeds` and
/// `/feeds/a.xml` but not `/feedsx`.
fn path_within(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix)
    } else {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// The host's outbound client and its bounds.
#[derive(Clone, Debug)]
pub struct OutboundHttp {
    client: reqwest::Client,
    timeout: Duration,
    max_response_bytes: u64,
}

impl OutboundHttp {
    /// A client that follows no redirect on its own: each is checked
    /// against the calling plugin's list (see [`OutboundHttp::fetch`]).
    pub fn new(timeout: Duration, max_response_bytes: u64) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("xcore/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the outbound HTTP client: {error}"))?;
        Ok(Self {
            client,
            timeout,
            max_response_bytes,
        })
    }

    /// Runs `request` for `plugin`, refusing what `allow` does not list.
    pub async fn fetch(
        &self,
        plugin: &str,
        allow: &AllowList,
        request: HttpRequest,
    ) -> Result<HttpResponse, HostError> {
        let refused = |reason: String| HostError::Refused { reason };
        let mut url = Url::parse(&request.url)
            .map_err(|error| refused(format!("{} is not a URL: {error}", request.url)))?;
        let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| refused(format!("{} is not an HTTP method", request.method)))?;
        let body = BASE64
            .decode(&request.body_base64)
            .map_err(|_| refused("the request body is not base64".into()))?;
        let timeout = request
            .timeout_ms
            .map_or(self.timeout, Duration::from_millis)
            .min(self.timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        for _ in 0..=MAX_REDIRECTS {
            if !allow.allows(&url) {
                return Err(refused(format!(
                    "{url} is not in [plugins.{plugin}] http_allow"
                )));
            }
            let mut outgoing = self
                .client
                .request(method.clone(), url.clone())
                .body(body.clone());
            for (name, value) in &request.headers {
                outgoing = outgoing.header(name.as_str(), value.as_str());
            }
            let sent = tokio::time::timeout_at(deadline, outgoing.send()).await;
            let response = match sent {
                Err(_) => return Err(timed_out(&url, timeout)),
                Ok(Err(error)) => {
                    tracing::warn!(plugin, url = %url, %error, "outbound HTTP request failed");
                    return Err(HostError::Other {
                        message: format!("the request to {url} failed"),
                    });
                }
                Ok(Ok(response)) => response,
            };
            if response.status().is_redirection() {
                if let Some(next) = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|location| url.join(location).ok())
                {
                    url = next;
                    continue;
                }
            }
            return self.read(url, response, deadline, timeout).await;
        }
        Err(refused(format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// Reads the answer, refusing a body past the cap as it streams in.
    async fn read(
        &self,
        url: Url,
        mut response: reqwest::Response,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<HttpResponse, HostError> {
        let too_large = || HostError::Refused {
            reason: format!(
                "the response from {url} is larger than {} bytes",
                self.max_response_bytes
            ),
        };
        if response
            .content_length()
            .is_some_and(|length| length > self.max_response_bytes)
        {
            return Err(too_large());
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect();
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Err(_) => return Err(timed_out(&url, timeout)),
                Ok(Err(_)) => {
                    return Err(HostError::Other {
                        message: format!("the response from {url} broke off"),
                    })
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    if body.len() as u64 + chunk.len() as u64 > self.max_response_bytes {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body_base64: BASE64.encode(&body),
        })
    }
}

fn timed_out(url: &Url, timeout: Duration) -> HostError {
    HostError::Timeout {
        message: format!("{url} did not answer within {} ms", timeout.as_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
            .expect("valid list")
    }

    fn allowed(list: &AllowList, url: &str) -> bool {
        list.allows(&Url::parse(url).expect("url"))
    }

    #[test]
    fn prefixes_match_scheme_host_port_and_whole_path_segments() {
        let feeds = list(&["https://shop.example/feeds/", "http://127.0.0.1:8080/hook"]);
        assert!(allowed(&feeds, "https://shop.example/feeds/a.xml"));
        assert!(allowed(&feeds, "https://shop.example:443/feeds/a.xml"));
        assert!(!allowed(&feeds, "http://shop.example/feeds/a.xml"));
        assert!(!allowed(&feeds, "https://shop.example.evil/feeds/a.xml"));
        assert!(!allowed(&feeds, "https://shop.example/other"));
        assert!(!allowed(&feeds, "https://shop.example/feeds/../admin"));
        assert!(!allowed(&feeds, "https://user:pw@shop.example/feeds/a"));
        assert!(allowed(&feeds, "http://127.0.0.1:8080/hook"));
        assert!(allowed(&feeds, "http://127.0.0.1:8080/hook/1"));
        assert!(!allowed(&feeds, "http://127.0.0.1:8080/hookx"));
        assert!(!allowed(&feeds, "http://127.0.0.1:8081/hook"));
        assert!(!allowed(
            &AllowList::default(),
            "https://shop.example/feeds/a"
        ));
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(AllowList::parse(&["ftp://x/".into()]).is_err());
        assert!(AllowList::parse(&["/relative".into()]).is_err());
    }
}
