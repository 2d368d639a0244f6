//! Request rate limits (governor's GCRA, keyed):
//!
//! - anonymous clients per IP (`anonymous_per_hour`),
//! - authenticated users per user id (`user_per_hour`, or `admin_per_hour`
//!   for holders of the admin role),
//! - requests with an API key per key (`api_key_per_hour`), whoever owns
//!   it: a script has a budget of its own, apart from its owner's;
//! - `POST /auth/login` and `/auth/register` per IP (`auth_per_minute`), on
//!   top of the above: these are the brute-force targets.
//!
//! The tier comes from a signature-checked access token, or from an API key
//! this instance holds in memory whose secret matches (no database work
//! here: a key not yet in memory, on its first request after a start, and
//! a made-up key count as anonymous); a forged or expired token counts as
//! anonymous. Every limited response carries
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
//! (unix seconds when the budget is whole again, or when to retry after a
//! 429, which also carries `Retry-After`).

use std::sync::Arc;

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    clock::{Clock, DefaultClock},
    middleware::{StateInformationMiddleware, StateSnapshot},
    state::keyed::DefaultKeyedStateStore,
    Quota, RateLimiter,
};

use super::client_ip::client_ip;
use crate::{
    auth::{api_keys, extract::Presented, roles::ADMIN_ROLE, Gate},
    config::RateLimitConfig,
    error::ApiError,
};

type KeyedLimiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

static LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The limiters and their settings.
pub struct RateLimits {
    config: RateLimitConfig,
    anonymous: KeyedLimiter<IpAddr>,
    user: KeyedLimiter<i64>,
    admin: KeyedLimiter<i64>,
    api_key: KeyedLimiter<i64>,
    auth: KeyedLimiter<IpAddr>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn keyed<K: std::hash::Hash + Eq + Clone>(quota: Quota) -> KeyedLimiter<K> {
    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>()
}

fn nonzero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
}

/// The numbers a limited response reports.
struct Budget {
    limit: u32,
    remaining: u32,
    reset_in: Duration,
}

enum Outcome {
    Allowed(Budget),
    Denied { limit: u32, retry_after: Duration },
}

impl RateLimits {
    /// Builds the limiters; `None` when limiting is off.
    pub fn new(config: &RateLimitConfig) -> Option<Self> {
        config.enabled.then(|| Self {
            config: config.clone(),
            anonymous: keyed(Quota::per_hour(nonzero(config.anonymous_per_hour))),
            user: keyed(Quota::per_hour(nonzero(config.user_per_hour))),
            admin: keyed(Quota::per_hour(nonzero(config.admin_per_hour))),
            api_key: keyed(Quota::per_hour(nonzero(config.api_key_per_hour))),
            auth: keyed(Quota::per_minute(nonzero(config.auth_per_minute))),
        })
    }

    fn is_exempt(&self, path: &str) -> bool {
        self.config
            .exempt_paths
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
    }

    /// Forgets keys whose budget is whole again, bounding memory.
    pub fn forget_idle_keys(&self) {
        self.anonymous.retain_recent();
        self.user.retain_recent();
        self.admin.retain_recent();
        self.api_key.retain_recent();
        self.auth.retain_recent();
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(limiter: &KeyedLimiter<K>, key: &K) -> Outcome {
    match limiter.check_key(key) {
        Ok(snapshot) => Outcome::Allowed(budget(&snapshot)),
        Err(denied) => Outcome::Denied {
            limit: denied.quota().burst_size().get(),
            retry_after: denied.wait_time_from(limiter.clock().now()),
        },
    }
}

fn budget(snapshot: &StateSnapshot) -> Budget {
    let quota = snapshot.quota();
    let limit = quota.burst_size().get();
    let remaining = snapshot.remaining_burst_capacity();
    Budget {
        limit,
        remaining,
        reset_in: quota.replenish_interval() * (limit - remaining.min(limit)),
    }
}

fn is_credential_route(method: &Method, path: &str) -> bool {
    method == Method::POST && matches!(path, "/auth/login" | "/auth/register")
}

fn unix_in(delay: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now + delay).as_secs() + u64::from(delay.subsec_nanos() > 0)
}

fn set_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset_in: Duration) {
    headers.insert(LIMIT_HEADER.clone(), HeaderValue::from(limit));
    headers.insert(REMAINING_HEADER.clone(), HeaderValue::from(remaining));
    headers.insert(RESET_HEADER.clone(), HeaderValue::from(unix_in(reset_in)));
}

/// Whose budget a request spends.
enum Tier {
    Anonymous,
    User(i64),
    Admin(i64),
    ApiKey(i64),
}

fn tier(gate: &Gate, headers: &HeaderMap) -> Tier {
    match crate::auth::extract::presented(headers) {
        Ok(Some(Presented::Bearer(token))) => gate
            .tokens
            .verify(token)
            .ok()
            .and_then(|claims| {
                let id = claims.user_id()?;
                Some(if claims.roles.iter().any(|r| r == ADMIN_ROLE) {
                    Tier::Admin(id)
                } else {
                    Tier::User(id)
                })
            })
            .unwrap_or(Tier::Anonymous),
        Ok(Some(Presented::ApiKey(key))) => {
            api_keys::peek(gate, key).map_or(Tier::Anonymous, Tier::ApiKey)
        }
        Ok(None) | Err(_) => Tier::Anonymous,
    }
}

/// Applies the limits.
pub async fn middleware(
    State(rate_limits): State<Option<Arc<RateLimits>>>,
    State(gate): State<Arc<Gate>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limits) = rate_limits.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if limits.is_exempt(path) {
        return next.run(request).await;
    }
    let ip = client_ip(
        request.headers(),
        request.extensions(),
        limits.config.trust_forwarded_for,
    );
    let general = match tier(&gate, request.headers()) {
        Tier::Admin(user_id) => check(&limits.admin, &user_id),
        Tier::User(user_id) => check(&limits.user, &user_id),
        Tier::ApiKey(key_id) => check(&limits.api_key, &key_id),
        Tier::Anonymous => check(&limits.anonymous, &ip),
    };
    let credential = is_credential_route(request.method(), path).then(|| check(&limits.auth, &ip));
    // Report the tighter budget: the credential limit on login/register.
    let reported = match (general, credential) {
        (denied @ Outcome::Denied { .. }, _) | (_, Some(denied @ Outcome::Denied { .. })) => denied,
        (_, Some(credential)) => credential,
        (general, None) => general,
    };
    match reported {
        Outcome::Denied { limit, retry_after } => {
            let mut response = ApiError::rate_limited(retry_after.as_secs().max(1)).into_response();
            set_headers(response.headers_mut(), limit, 0, retry_after);
            response
        }
        Outcome::Allowed(budget) => {
            let mut response = next.run(request).await;
            set_headers(
                response.headers_mut(),
                budget.limit,
                budget.remaining,
                budget.reset_in,
            );
            response
        }
    }
}
