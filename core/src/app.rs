//! The application: shared state built from the config, the router that
//! merges every module's routes, and [`serve`]: the server loop (see
//! [`crate::http::server`] for how it drains at shutdown) and what stops after it.

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{
    extract::{DefaultBodyLimit, FromRef, Request},
    middleware, Router,
};
use tokio::net::TcpListener;
use tower_http::{
    catch_panic::CatchPanicLayer,
    trace::{DefaultOnFailure, TraceLayer},
};

use crate::{
    auth::{
        self, cache::AuthCache, password::PasswordHasher, tokens::TokenService, AuthState, Gate,
    },
    config::Config,
    db::{migrate, Database, Dialect},
    events::{
        ws::{WsHub, WsState},
        EventBus,
    },
    http::{
        rate_limit::{self, RateLimits},
        request_context,
        server::{self as http_server, Drain, DrainTimes},
    },
    observability::{
        self,
        health::HealthState,
        metrics::{Metrics, MetricsState},
    },
    plugins::{
        self,
        dispatcher::DispatchState,
        manager::{ManagerOptions, PluginManager},
        watcher::DirectoryWatcher,
    },
    rbac::{self, RbacState},
    tasks::Scheduler,
};

/// How often idle rate-limit keys are forgotten.
const RATE_LIMIT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Everything a handler can reach. One `Arc`, so the clone every middleware
/// and handler makes per request is a single atomic increment (cloning a
/// dozen shared fields each time showed up in the dispatcher's profile).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The shared services behind [`AppState`].
#[derive(Debug)]
pub struct Services {
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// The database pool.
    pub db: Database,
    /// Access-token signing and checking.
    pub tokens: Arc<TokenService>,
    /// Users, grants and revocations in memory: what every authenticated
    /// request is decided on.
    pub auth: Arc<AuthCache>,
    /// argon2id hashing and the password policy.
    pub passwords: Arc<PasswordHasher>,
    /// The metric registry.
    pub metrics: Arc<Metrics>,
    /// The event bus.
    pub events: EventBus,
    /// `/ws` connections.
    pub ws: Arc<WsHub>,
    /// The task scheduler.
    pub tasks: Arc<Scheduler>,
    /// Installed plugins and the route table the dispatcher reads.
    pub plugins: Arc<PluginManager>,
    /// Keeps the plugins directory watched (when `plugins.watch`).
    _plugin_watcher: Option<DirectoryWatcher>,
    /// Request rate limits; `None` when turned off.
    pub rate_limits: Option<Arc<RateLimits>>,
    /// Start instant, for `uptime`.
    pub started_at: Instant,
    /// Directory whose file system the disk health check watches.
    pub data_dir: PathBuf,
    /// The database probe health requests share.
    pub health_probe: Arc<observability::health::SharedProbe>,
    /// The shutdown stage: readiness fails while draining, responses carry
    /// `Connection: close`, and after the deadline requests get 503.
    drain: Arc<Drain>,
    /// The parts each module's handlers take ([`FromRef`] below), built
    /// once so a request clones one `Arc`, not a field per service.
    parts: Parts,
}

/// The part of the state each module takes.
#[derive(Debug)]
struct Parts {
    gate: Arc<Gate>,
    auth: Arc<AuthState>,
    rbac: Arc<RbacState>,
    ws: Arc<WsState>,
    dispatch: Arc<DispatchState>,
    health: Arc<HealthState>,
    metrics: Arc<MetricsState>,
}

/// Hands a module its part of the state.
macro_rules! part_of_state {
    ($($part:ty => |$state:ident| $get:expr;)*) => {
        $(impl FromRef<AppState> for $part {
            fn from_ref($state: &AppState) -> Self {
                $get
            }
        })*
    };
}

part_of_state! {
    Arc<Gate> => |state| state.parts.gate.clone();
    Arc<AuthState> => |state| state.parts.auth.clone();
    Arc<RbacState> => |state| state.parts.rbac.clone();
    Arc<WsState> => |state| state.parts.ws.clone();
    Arc<DispatchState> => |state| state.parts.dispatch.clone();
    Arc<HealthState> => |state| state.parts.health.clone();
    Arc<MetricsState> => |state| state.parts.metrics.clone();
    Arc<PluginManager> => |state| state.plugins.clone();
    Arc<crate::tasks::Scheduler> => |state| state.tasks.clone();
    Arc<Config> => |state| state.config.clone();
    Database => |state| state.db.clone();
    Arc<Metrics> => |state| state.metrics.clone();
    Arc<TokenService> => |state| state.tokens.clone();
    Option<Arc<RateLimits>> => |state| state.rate_limits.clone();
}

impl AppState {
    /// Connects and migrates the database, makes sure the built-in roles,
    /// permissions and the bootstrap admin exist, and builds the services.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = Database::connect(&config.database).await?;
        migrate::apply(&db, "core", migrate::CORE_MIGRATIONS)
            .await
            .context("core migrations failed")?;
        let auth = Arc::new(AuthCache::new(
            db.clone(),
            Duration::from_millis(config.auth.cache.poll_interval_ms),
        ));
        rbac::store::ensure_builtins(&db, &auth).await?;
        let passwords = Arc::new(
            PasswordHasher::new(&config.auth.argon2, config.auth.min_password_length).await?,
        );
        // Before the bootstrap admin and the plugins, whose changes it
        // applies as they commit.
        auth.load()
            .await
            .context("cannot load the authentication cache")?;
        auth.spawn_poller();
        // The admin's password check: on a restart a keyed proof, without
        // argon2; on a first start or a changed password an argon2 run (11
        // to 15 ms here), which needs nothing the plugins do and overlaps
        // their loading. Joined, not raced, so a failing bootstrap never
        // cancels a plugin half-loaded.
        let bootstrap = async {
            if config.admin.email.is_empty() {
                return Ok(());
            }
            rbac::bootstrap::ensure_admin(
                &db,
                &auth,
                &passwords,
                config.auth.jwt_secret.as_bytes(),
                &config.admin.email,
                &config.admin.password,
            )
            .await
            .context("cannot create the bootstrap admin (XCORE_ADMIN_EMAIL)")
        };
        let data_dir = match db.dialect() {
            Dialect::Sqlite => sqlite_dir(&config.database.url),
            Dialect::Postgres => PathBuf::from("."),
        };
        let metrics = Arc::new(Metrics::new()?);
        let events = EventBus::new(metrics.registry())?;
        let plugins_started = PluginManager::start(
            ManagerOptions {
                dir: PathBuf::from(&config.plugins.dir),
                settings: config.plugins.settings.clone(),
                quarantine_after_panics: config.plugins.quarantine_after_panics,
                metrics: metrics.clone(),
                job_timeout: Duration::from_secs(config.tasks.job_timeout_secs),
                checker: plugins::probe::Checker::new(
                    &config.plugins.checker,
                    Duration::from_secs(config.plugins.check_timeout_secs),
                ),
                sql_role_secret: config.auth.jwt_secret.clone(),
                http_timeout: Duration::from_millis(config.plugins.http_timeout_ms),
                http_max_response_bytes: config.plugins.http_max_response_bytes,
                event_queue: config.plugins.event_queue,
                auth: auth.clone(),
            },
            db.clone(),
            events.clone(),
        );
        let (bootstrap, plugins) = tokio::join!(bootstrap, plugins_started);
        bootstrap?;
        let plugins = plugins?;
        let tasks = Scheduler::start(
            db.clone(),
            events.clone(),
            plugins.clone(),
            config.tasks.clone(),
            config.audit.clone(),
        )
        .await
        .context("cannot start the task scheduler")?;
        let plugin_watcher = if config.plugins.watch {
            Some(plugins::watcher::watch(
                Path::new(&config.plugins.dir),
                &plugins,
                Duration::from_millis(config.plugins.watch_settle_ms),
            )?)
        } else {
            None
        };
        let config = Arc::new(config);
        let tokens = Arc::new(TokenService::new(
            &config.auth.jwt_secret,
            config.auth.access_token_ttl_secs,
        ));
        let ws = Arc::new(WsHub::new(config.websocket.clone(), metrics.registry())?);
        let health_probe = Arc::new(observability::health::SharedProbe::new(
            Duration::from_millis(config.health.probe_reuse_ms),
        ));
        let drain = Arc::new(Drain::default());
        let started_at = Instant::now();
        let key_usage = Arc::new(auth::api_keys::usage::Usage::default());
        auth::api_keys::usage::Usage::spawn_flusher(
            &key_usage,
            db.clone(),
            Duration::from_secs(config.auth.api_keys.last_used_flush_secs.max(1)),
        );
        let gate = Arc::new(Gate {
            tokens: tokens.clone(),
            auth: auth.clone(),
            key_usage,
        });
        let parts = Parts {
            auth: Arc::new(AuthState {
                config: config.clone(),
                db: db.clone(),
                tokens: tokens.clone(),
                auth: auth.clone(),
                passwords: passwords.clone(),
                events: events.clone(),
            }),
            rbac: Arc::new(RbacState {
                db: db.clone(),
                auth: auth.clone(),
                passwords: passwords.clone(),
            }),
            ws: Arc::new(WsState {
                ws: ws.clone(),
                events: events.clone(),
                gate: gate.clone(),
            }),
            dispatch: Arc::new(DispatchState {
                plugins: plugins.clone(),
                gate: gate.clone(),
                config: config.clone(),
            }),
            health: Arc::new(HealthState {
                config: config.clone(),
                db: db.clone(),
                data_dir: data_dir.clone(),
                health_probe: health_probe.clone(),
                started_at,
                drain: drain.clone(),
            }),
            metrics: Arc::new(MetricsState {
                metrics: metrics.clone(),
                route_labels: {
                    let plugins = Arc::downgrade(&plugins);
                    Box::new(move || {
                        plugins
                            .upgrade()
                            .map(|plugins| plugins.route_labels())
                            .unwrap_or_default()
                    })
                },
            }),
            gate,
        };
        Ok(Self(Arc::new(Services {
            _plugin_watcher: plugin_watcher,
            tokens,
            passwords,
            auth,
            ws,
            tasks,
            events,
            plugins,
            metrics,
            rate_limits: RateLimits::new(&config.rate_limits).map(Arc::new),
            started_at,
            data_dir,
            health_probe,
            drain,
            config,
            db,
            parts,
        })))
    }
}

impl Services {
    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.drain.is_draining()
    }

    /// Whether the shutdown drain deadline has passed (requests get 503).
    pub fn is_past_drain_deadline(&self) -> bool {
        self.drain.is_past_deadline()
    }
}

/// The directory holding the SQLite file (the current one for a bare name).
fn sqlite_dir(url: &str) -> PathBuf {
    crate::db::sqlite_path(url)
        .and_then(|path| Path::new(path).parent())
        .filter(|parent| !parent.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The full router: every module's routes and the cross-cutting layers.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.server.max_body_bytes;
    Router::new()
        .merge(auth::router())
        .merge(rbac::router())
        .merge(crate::audit::routes::router())
        .merge(observability::router())
        .merge(plugins::routes::router())
        .merge(crate::events::ws::router())
        .merge(crate::tasks::routes::router())
        .merge(crate::web::router())
        .fallback(plugins::dispatcher::dispatch::<AppState>)
        // Innermost first: rate limits see the request after routing, the
        // metrics include 429s, the panic guard covers everything below it,
        // and the request context wraps it all so even a panic's 500 gets the
        // standard body and a request id.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observability::metrics::middleware,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(request_context::panic_response))
        .layer(
            TraceLayer::new_for_http()
                // ApiError already logged any 5xx cause once; a second
                // "response failed" line per error would only be noise.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG))
                .make_span_with(|request: &Request| {
                    // The path only: a query string may carry a token.
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = request.uri().path(),
                        request_id = request
                            .extensions()
                            .get::<crate::http::request_id::RequestId>()
                            .map(|id| id.0.as_ref())
                            .unwrap_or("-"),
                    )
                }),
        )
        .layer(middleware::from_fn(request_context::middleware))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then drains: stops accepting, answers
/// every request it reads (with `Connection: close`), keeps idle connections
/// `server.shutdown_linger_ms`, gives in-flight requests
/// `server.shutdown_timeout_secs` (503 for later ones), then stops the task
/// scheduler and closes the pool.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let times = DrainTimes {
        linger: Duration::from_millis(state.config.server.shutdown_linger_ms),
        deadline: Duration::from_secs(state.config.server.shutdown_timeout_secs),
    };
    if let Some(limits) = state.rate_limits.clone() {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(RATE_LIMIT_SWEEP_INTERVAL);
            loop {
                ticker.tick().await;
                limits.forget_idle_keys();
            }
        });
    }
    let signal = {
        let state = state.clone();
        async move {
            shutdown.await;
            // Upgraded sockets are not the HTTP server's to drain.
            state.ws.close_all();
            tracing::info!("shutdown requested");
        }
    };
    http_server::run(
        listener,
        app(state.clone()),
        state.drain.clone(),
        times,
        signal,
    )
    .await;
    state.tasks.stop().await;
    // The API key uses noted since the last flush.
    if let Err(error) = state.parts.gate.key_usage.flush(&state.db).await {
        tracing::warn!(%error, "API keys: cannot write last_used_at");
    }
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
