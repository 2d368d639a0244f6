//! The `xcore` command line: `serve` (the default), `migrate`,
//! `admin create-user`, `plugin check` (what the host runs in a child
//! process to load a new library first) and `plugin new` (a plugin crate
//! for another team to start from).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    app::{self, AppState},
    audit::{self, Actor, Entry},
    auth::{cache::AuthCache, password::PasswordHasher},
    config::Config,
    db::{migrate, Database},
    observability::logging,
    rbac,
};

/// xcore: a plugin-hosting application core.
#[derive(Debug, Parser)]
#[command(name = "xcore", version, about)]
pub struct Cli {
    /// Configuration file layered over config/default.toml.
    #[arg(long, env = "XCORE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Plugin libraries.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Load a plugin library as the server would, print its id and version,
    /// and exit: 0 when it loads, 1 when it is refused; a library that
    /// crashes the loader crashes only this process.
    Check {
        /// The `.so` file.
        file: PathBuf,
        /// Where to put the copy that is loaded (default: a directory in
        /// the system's temporary directory, removed afterwards unless
        /// the load crashes this process).
        #[arg(long)]
        scratch: Option<PathBuf>,
    },
    /// Create a plugin crate, outside this workspace, that builds against
    /// the SDK on its own: a working CRUD plugin to start from.
    New {
        /// The plugin id (lower case letters, digits and `_`).
        id: String,
        /// Where to create it (default: `./xcore-plugin-<id>`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The SDK by path (`plugin-api/sdk` of an xcore checkout); the
        /// default is the checkout this `xcore` was built from.
        #[arg(long, conflicts_with = "sdk_git")]
        sdk_path: Option<PathBuf>,
        /// The SDK from a git repository holding the xcore workspace.
        #[arg(long)]
        sdk_git: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a user account (with the admin role unless --role says otherwise).
    CreateUser {
        /// Email, used to log in.
        #[arg(long)]
        email: String,
        /// Password (at least 8 characters with a letter and a digit).
        #[arg(long, env = "XCORE_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// Role to give the account.
        #[arg(long, default_value = crate::auth::roles::ADMIN_ROLE)]
        role: String,
        /// Display name.
        #[arg(long)]
        full_name: Option<String>,
    },
}

/// Parses the command line and runs it; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Needs no configuration: the server runs it on files it has not
    // trusted yet, and its exit status is the answer.
    if let Some(Command::Plugin {
        command: PluginCommand::Check { file, scratch },
    }) = &cli.command
    {
        return match crate::plugins::probe::check_file(file, scratch.as_deref()) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Plugin {
        command:
            PluginCommand::New {
                id,
                dir,
                sdk_path,
                sdk_git,
            },
    }) = &cli.command
    {
        return new_plugin(id, dir.as_deref(), sdk_path.as_deref(), sdk_git.as_deref());
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("xcore: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config.log);
    crate::allocator::return_large_allocations_to_the_system();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("xcore: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("xcore: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `xcore plugin new`.
fn new_plugin(
    id: &str,
    dir: Option<&std::path::Path>,
    sdk_path: Option<&std::path::Path>,
    sdk_git: Option<&str>,
) -> ExitCode {
    use crate::plugins::scaffold::{self, SdkSource};
    let sdk = match (sdk_path, sdk_git) {
        (Some(path), _) => Some(SdkSource::Path(
            path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
        )),
        (None, Some(url)) => Some(SdkSource::Git(url.to_string())),
        (None, None) => SdkSource::built_from(),
    };
    let Some(sdk) = sdk else {
        eprintln!("xcore: the SDK's source is not where this xcore was built; pass --sdk-path or --sdk-git");
        return ExitCode::from(2);
    };
    let dir = dir.map_or_else(
        || PathBuf::from(format!("xcore-plugin-{}", id.replace('_', "-"))),
        std::path::Path::to_path_buf,
    );
    match scaffold::create(id, &dir, &sdk) {
        Ok(files) => {
            for file in files {
                println!("created {}", file.display());
            }
            println!(
                "build it with: cd {} && cargo build --release",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("xcore: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Plugin { .. } => {
            anyhow::bail!("plugin commands run before the configuration is read")
        }
        Command::Serve => {
            config.check_secrets()?;
            let bind = config.server.bind;
            let state = AppState::build(config).await?;
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            // Off the path to the first request: it walks every heap.
            tokio::task::spawn_blocking(crate::allocator::release_free_memory);
            tracing::info!(address = %listener.local_addr()?, version = env!("CARGO_PKG_VERSION"), "xcore listening");
            app::serve(listener, state, app::shutdown_signal()).await
        }
        Command::Migrate => {
            let db = Database::connect(&config.database).await?;
            let applied = migrate::apply(&db, "core", migrate::CORE_MIGRATIONS).await?;
            rbac::store::ensure_builtins(&db, &change_log(&db)).await?;
            db.close().await;
            println!("{applied} migration(s) applied");
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::CreateUser {
                    email,
                    password,
                    role,
                    full_name,
                },
        } => {
            let db = Database::connect(&config.database).await?;
            migrate::apply(&db, "core", migrate::CORE_MIGRATIONS).await?;
            rbac::store::ensure_builtins(&db, &change_log(&db)).await?;
            let passwords =
                PasswordHasher::new(&config.auth.argon2, config.auth.min_password_length).await?;
            let account = rbac::bootstrap::create_user(
                &db,
                &passwords,
                &email,
                &password,
                &role,
                full_name.as_deref(),
            )
            .await?;
            // The shell user is not an account: the row names the host.
            audit::record(
                &db,
                &Entry::new(Actor::System, audit::USER_CREATED)
                    .target("user", account.id)
                    .details(serde_json::json!({
                        "via": "command line",
                        "email": account.email,
                        "roles": [role],
                    })),
            )
            .await;
            db.close().await;
            println!(
                "created user {} ({}) with role {role}",
                account.id, account.email
            );
            Ok(())
        }
    }
}

/// A cache that is never read: commands outside the server record their
/// changes in the log (running servers apply them at their next poll), and
/// have nothing of their own to keep fresh.
fn change_log(db: &Database) -> AuthCache {
    AuthCache::new(db.clone(), std::time::Duration::from_secs(1))
}
