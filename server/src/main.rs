//! `herald-server`: the broker's routes plus the server-rendered demo app.

// The demo's deeply nested view types need more than the default 128 levels.
#![recursion_limit = "256"]

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use herald_app::{shell, Page};
use herald_server::config::Config;
use herald_server::net::GuardedListener;
use herald_server::state::{self, AppState};
use leptos::config::get_configuration;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    // cargo-leptos sets these when it runs the server; a plain
    // `target/release/herald-server` gets the same layout by default.
    // Done before any thread exists, as `set_var` requires.
    for (key, value) in [
        ("LEPTOS_OUTPUT_NAME", "herald"),
        ("LEPTOS_SITE_ROOT", "target/site"),
        ("LEPTOS_SITE_PKG_DIR", "pkg"),
    ] {
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value);
        }
    }
    let config = Config::parse();
    if let Some(herald_server::config::Command::Token(args)) = &config.command {
        return print_token(&config, args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match config.command {
        Some(herald_server::config::Command::Worker) => runtime.block_on(work(config)),
        _ => runtime.block_on(serve(config)),
    }
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

/// `herald-server worker`: job workers on the shared Redis, no web server.
async fn work(config: Config) -> anyhow::Result<()> {
    init_tracing();
    anyhow::ensure!(
        config.redis().is_some(),
        "a worker process needs the shared Redis: --backplane redis://host:port"
    );
    anyhow::ensure!(
        config.jobs.job_workers > 0,
        "--job-workers must be at least 1"
    );
    let broker = state::connect_broker(&config).await?;
    let queue = state::job_queue(&config, &broker).await?;
    tracing::info!(
        workers = config.jobs.job_workers,
        node = broker.node_id(),
        "job workers running"
    );
    shutdown_signal().await;
    drop(queue);
    Ok(())
}

/// `herald-server token`: a token signed with the configured secret.
fn print_token(config: &Config, args: &herald_server::config::TokenArgs) -> anyhow::Result<()> {
    let secret = config
        .auth
        .jwt_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .context("set HERALD_JWT_SECRET (or --jwt-secret) to the server's secret")?;
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let token = herald_server::auth::Verifier::hs256(secret.as_bytes())
        .mint(
            &args.sub,
            args.ttl_secs,
            some(&args.subscribe),
            some(&args.publish),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{token}");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    init_tracing();
    let mut state = AppState::from_config(&config).await?;
    state.metrics = Some(
        herald_server::routes::install_prometheus().map_err(|e| anyhow::anyhow!("metrics: {e}"))?,
    );
    let broker = state.broker.clone();
    herald_server::apps::system::spawn_publisher(&broker, config.status_every());

    let addr = config.serve.addr;
    let mut leptos_options = get_configuration(None)
        .context("reading the Leptos configuration")?
        .leptos_options;
    leptos_options.site_addr = addr;
    // Server rendering spawns Leptos tasks on tokio.
    any_spawner::Executor::init_tokio()
        .map_err(|e| anyhow::anyhow!("starting the Leptos executor: {e}"))?;
    let mut app = Router::new();
    for (path, page) in Page::ROUTES {
        let options = leptos_options.clone();
        app = app.route(
            path,
            get(leptos_axum::render_app_to_stream(move || {
                shell(options.clone(), page)
            })),
        );
    }
    let app = app
        .fallback(leptos_axum::file_and_error_handler(|options| {
            shell(options, Page::NotFound)
        }))
        .with_state(leptos_options)
        .merge(herald_server::router::router(state))
        .layer(axum::middleware::from_fn(
            herald_server::web::access_log::access_log,
        ));

    let listener = GuardedListener::bind(addr, config.idle_timeout())
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, epoch = ?broker.epoch(), "herald listening; demo at http://{addr}/sse-demo");

    // Streams that never drain (a stalled peer) get the grace period of
    // `serve_options`, then the process exits anyway.
    herald_server::net::serve(listener, app, config.serve_options(), async move {
        shutdown_signal().await;
        tracing::info!("shutting down: closing streams with a retry hint");
        broker.close_all();
    })
    .await
    .context("serving")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
