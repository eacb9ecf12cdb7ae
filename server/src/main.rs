//! `herald-server`: the broker's routes plus the server-rendered demo app.

// The demo's deeply nested view types need more than the default 128 levels.
#![recursion_limit = "256"]

use anyhow::Context;
use axum::Router;
use clap::Parser;
use herald_app::{shell, App};
use herald_server::broker::SSEBroker;
use herald_server::config::Config;
use herald_server::net::GuardedListener;
use herald_server::state::AppState;
use leptos::config::get_configuration;
use leptos_axum::{generate_route_list, LeptosRoutes};
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

/// The broker, on the configured backplane.
async fn broker(config: &Config) -> anyhow::Result<SSEBroker> {
    Ok(match config.redis() {
        None => SSEBroker::new(config.broker()),
        Some(options) => {
            let url = options.url.clone();
            let backplane = connect_redis(options)
                .await
                .with_context(|| format!("connecting to the Redis backplane at {url}"))?;
            tracing::info!(%url, "using the Redis backplane");
            SSEBroker::with_backplane(config.broker(), std::sync::Arc::new(backplane))
        }
    })
}

/// The job queue: in this process, or in the backplane's Redis.
async fn job_queue(
    config: &Config,
    broker: &SSEBroker,
) -> anyhow::Result<herald_server::jobs::JobQueue> {
    use herald_server::jobs::{JobQueue, RedisStore};
    let Some(options) = config.redis() else {
        if config.job_workers == 0 {
            tracing::warn!("--job-workers 0 without Redis: nothing will run the demo jobs");
        }
        return Ok(JobQueue::new(broker.clone(), config.jobs()));
    };
    let store = RedisStore::connect(&options.url, &options.prefix, config.job_visibility())
        .await
        .with_context(|| format!("connecting the job queue to Redis at {}", options.url))?;
    let queue = JobQueue::with_store(broker.clone(), config.jobs(), std::sync::Arc::new(store));
    // Jobs come from every node: the workers wait for them from the start.
    queue.start_workers();
    Ok(queue)
}

/// `herald-server worker`: job workers on the shared Redis, no web server.
async fn work(config: Config) -> anyhow::Result<()> {
    init_tracing();
    anyhow::ensure!(
        config.redis().is_some(),
        "a worker process needs the shared Redis: --backplane redis://host:port"
    );
    anyhow::ensure!(config.job_workers > 0, "--job-workers must be at least 1");
    let broker = broker(&config).await?;
    broker.spawn_maintenance();
    let queue = job_queue(&config, &broker).await?;
    tracing::info!(
        workers = config.job_workers,
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
    let broker = broker(&config).await?;
    broker.spawn_maintenance();
    herald_server::apps::system::spawn_publisher(
        &broker,
        std::time::Duration::from_secs_f64(config.status_secs.max(0.1)),
    );
    let mut state = AppState::with_auth(broker.clone(), config.verifier()?);
    state.max_body_bytes = config.max_body_bytes;
    state.body_timeout = (config.body_timeout_secs > 0)
        .then(|| std::time::Duration::from_secs(config.body_timeout_secs));
    state.jobs = job_queue(&config, &broker).await?;
    state.streams_cap = herald_server::limits::ConnectionCap::new(config.streams_max_connections);
    let metrics =
        herald_server::routes::install_prometheus().map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    // Histogram samples wait in the recorder until drained: by a scrape of
    // /metrics, or by this. Without it a server nobody scrapes keeps every
    // publish's latency sample (8 bytes each, forever).
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    state.metrics = Some(metrics);
    state.publish_limit = std::sync::Arc::new(herald_server::ratelimit::RateLimiter::new(
        config.publish_rate,
        config.publish_burst,
    ));
    if config.dev {
        tracing::warn!(
            "dev mode: demo tokens and declared session ids accepted, anyone may publish to open topics; never use it in production"
        );
    }
    state.cors_origin = Some(config.cors_origin.clone()).filter(|o| !o.is_empty());

    let mut leptos_options = get_configuration(None)
        .context("reading the Leptos configuration")?
        .leptos_options;
    leptos_options.site_addr = config.addr;
    let app_routes = generate_route_list(App);
    let app = Router::new()
        .leptos_routes(&leptos_options, app_routes, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options)
        .merge(herald_server::router::router(state))
        .layer(axum::middleware::from_fn(
            herald_server::web::access_log::access_log,
        ));

    let listener = GuardedListener::bind(config.addr, config.idle_timeout())
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %config.addr, epoch = ?broker.epoch(), "herald listening; demo at http://{}/sse-demo", config.addr);

    // Streams that never drain (a stalled peer) get the grace period of
    // `serve_options`, then the process exits anyway.
    let shutdown_broker = broker.clone();
    herald_server::net::serve(listener, app, config.serve_options(), async move {
        shutdown_signal().await;
        tracing::info!("shutting down: closing streams with a retry hint");
        shutdown_broker.close_all();
    })
    .await
    .context("serving")
}

/// Connects to Redis, retrying for a while: nodes and Redis often start
/// together (a compose file, a test), and a node should not lose that race.
async fn connect_redis(
    options: herald_server::broker::RedisOptions,
) -> Result<herald_server::broker::RedisBackplane, herald_server::broker::BackplaneError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match herald_server::broker::RedisBackplane::connect(options.clone()).await {
            Ok(backplane) => return Ok(backplane),
            Err(e) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, "redis not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
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
