//! Building and running the service: open the store, make sure an operator can get in, bind
//! the listener, serve until SIGTERM or SIGINT (actix-web's graceful shutdown finishes the
//! requests in flight), then close the store.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

use crate::api;
use crate::audit::checkpoint::CheckpointSigner;
use crate::audit::keys::{KeyError, KeyRing};
use crate::auth::{self, Authenticator, Role, Roles};
use crate::cache::PriceCache;
use crate::catalogue;
use crate::config::Settings;
use crate::engine::{Engine, EngineSettings};
use crate::events;
use crate::feeds::jetstream::SignalFeed;
use crate::metrics::Metrics;
use crate::replication;
use crate::rules::{ActivationCheck, RequestLimits, Rules};
use crate::sandbox::Sandbox;
use crate::store::{Store, StoreError};
use crate::trials::Trials;
use crate::write::Prices;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: String, source: std::io::Error },
}

/// How long repricing batches in flight may take to finish at shutdown.
const ENGINE_GRACE: Duration = Duration::from_secs(10);

pub struct Application {
    server: Server,
    port: u16,
    store: Store,
    engine: Engine,
    /// The JetStream signal consumer and the price event publishers.
    background: Vec<tokio::task::JoinHandle<()>>,
    generated_admin_key: Option<String>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let (store, replication) = replication::open(&settings.database_url, &settings.store).await?;
        let generated_admin_key = bootstrap_admin_key(&store, &settings).await?;
        let listen_error = |source| StartupError::Listen { address: settings.listen.clone(), source };
        let listener = TcpListener::bind(&settings.listen).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        let prices = Arc::new(PriceCache::new());
        // Other replicas' changes: subscribed before warming so none falls in between.
        let listening = replication.subscribe().await?;
        let warmed = prices.warm(&store).await?;
        tracing::info!(prices = warmed, "price cache warmed");
        listening.run(store.clone(), prices.clone());
        if settings.cache.reconcile_secs > 0 {
            reconcile_periodically(store.clone(), &prices, Duration::from_secs(settings.cache.reconcile_secs));
        }
        prune_demand_periodically(store.clone());
        let sandbox = Arc::new(Sandbox::new(&settings.sandbox)?);
        // Request-path rule work leaves the engine's workers their instances.
        let limits = RequestLimits::new(
            settings.sandbox.requests_per_merchant,
            settings.sandbox.instance_pool as usize,
            settings.pricing.worker_count(),
        );
        let activation = ActivationCheck {
            sample: settings.pricing.activation_sample,
            max_failed_bps: settings.pricing.activation_max_failed_bps,
        };
        let rules = Arc::new(Rules::new(store.clone(), sandbox, settings.pricing.stale_after_secs, limits, activation));
        let keys = KeyRing::open(&settings.audit.keys_dir, settings.audit.signing_key.as_ref(), &store).await?;
        let signer = Arc::new(CheckpointSigner::new(keys));
        let metrics = Arc::new(Metrics::new());
        let writer = Prices::new(store.clone(), prices.clone(), replication, rules.clone(), metrics.clone());
        let trials = Trials::start(store.clone(), rules.clone(), metrics.clone(), settings.trials.clone()).await?;
        let engine = Engine::start(writer.clone(), EngineSettings::from(&settings.pricing), trials.clone()).await?;
        if settings.pricing.schedule_secs > 0 {
            engine.start_schedule(Duration::from_secs(settings.pricing.schedule_secs));
        }
        let observed = engine.clone();
        metrics.observe_repricing(move || observed.readings());
        let mut background = Vec::new();
        background.extend(SignalFeed::start(
            settings.nats.clone(),
            settings.pricing.clone(),
            writer.clone(),
            metrics.clone(),
        ));
        background.extend(events::jetstream::start(settings.nats.clone(), store.clone(), metrics.clone()));
        background.push(events::webhooks::start(settings.webhooks.clone(), store.clone(), metrics.clone()));
        let import_owner = format!("imports-{}", uuid::Uuid::new_v4());
        background.extend(catalogue::run_workers(writer.clone(), settings.imports.clone(), import_owner));
        background.push(settle_overrides_periodically(writer.clone()));
        let parts = Parts { store: store.clone(), rules, prices, writer, signer, metrics, trials };
        let server = serve(listener, parts, &settings).map_err(listen_error)?;
        tracing::info!(port, backend = store.backend().as_str(), "pricing service listening");
        Ok(Self { server, port, store, engine, background, generated_admin_key })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// The repricing engine (tests wait on it to settle).
    pub fn engine(&self) -> Engine {
        self.engine.clone()
    }

    /// The admin key made on a first start with none configured; to be shown once.
    pub fn generated_admin_key(&self) -> Option<&str> {
        self.generated_admin_key.as_deref()
    }

    /// Stops the server from another task (tests use it to simulate a restart).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        // Unacknowledged signal messages are redelivered, unpublished price events stay in the
        // outbox: stopping these tasks anywhere loses nothing.
        for task in &self.background {
            task.abort();
        }
        // The batches in flight finish; what is left waits in the store for the next start.
        self.engine.shutdown(ENGINE_GRACE).await;
        self.store.close().await;
        tracing::info!("pricing service stopped");
        served
    }
}

/// Applies overrides' starts and ends when they fall due: at start (what fell due while no
/// replica ran), then every second, so a boundary takes effect within about a second of its
/// instant.
fn settle_overrides_periodically(writer: Prices) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if writer.store().is_closed() {
                return;
            }
            if let Err(e) = writer.settle_overrides().await {
                tracing::warn!(error = %e, "applying overrides failed; trying again in a second");
            }
        }
    })
}

/// Compares the price cache with the store every `period` until the cache is dropped.
fn reconcile_periodically(store: Store, cache: &Arc<PriceCache>, period: Duration) {
    let cache = Arc::downgrade(cache);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(cache) = cache.upgrade() else { return };
            match cache.reconcile(&store).await {
                Ok((_, 0)) => {}
                Ok((landed, removed)) => tracing::warn!(landed, removed, "the price cache held deleted prices"),
                Err(e) => tracing::warn!(error = %e, "reconciling the price cache failed"),
            }
        }
    });
}

/// Forgets demand counters and event ids that no window needs any more, at start and hourly,
/// until the store is closed.
fn prune_demand_periodically(store: Store) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(3600));
        loop {
            ticks.tick().await;
            if store.is_closed() {
                return;
            }
            match store.prune_demand(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "old demand counters and event ids pruned"),
                Err(e) => tracing::warn!(error = %e, "pruning old demand failed"),
            }
        }
    });
}

/// With no admin key configured and none stored, makes one: only its hash is kept.
async fn bootstrap_admin_key(store: &Store, settings: &Settings) -> Result<Option<String>, StoreError> {
    if settings.admin_key.is_some() || store.count_active_admin_keys().await? > 0 {
        return Ok(None);
    }
    let issued = auth::issue(None, Roles::of(&[Role::Admin]), Some("bootstrap".into()));
    store.insert_key(&issued.stored).await?;
    Ok(Some(issued.token))
}

/// What the handlers share.
struct Parts {
    store: Store,
    rules: Arc<Rules>,
    prices: Arc<PriceCache>,
    writer: Prices,
    signer: Arc<CheckpointSigner>,
    metrics: Arc<Metrics>,
    trials: Trials,
}

fn serve(listener: TcpListener, parts: Parts, settings: &Settings) -> std::io::Result<Server> {
    let Parts { store, rules, prices, writer, signer, metrics, trials } = parts;
    let authenticator = web::Data::new(Authenticator::new(
        store.clone(),
        settings.admin_key.as_ref().map(|k| k.expose()),
        Duration::from_secs(settings.auth.key_cache_ttl_secs),
        Duration::from_secs(settings.auth.outage_grace_secs),
    ));
    let store = web::Data::new(store);
    let rules = web::Data::from(rules);
    let prices = web::Data::from(prices);
    let writer = web::Data::new(writer);
    let signer = web::Data::from(signer);
    let pricing = web::Data::new(settings.pricing.clone());
    let metrics = web::Data::from(metrics);
    let http = web::Data::new(settings.http.clone());
    let webhooks = web::Data::new(settings.webhooks.clone());
    let imports = web::Data::new(settings.imports.clone());
    let trials = web::Data::new(trials);
    let json_limit = settings.http.json_limit_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(api::observe))
            .app_data(store.clone())
            .app_data(authenticator.clone())
            .app_data(rules.clone())
            .app_data(prices.clone())
            .app_data(writer.clone())
            .app_data(signer.clone())
            .app_data(pricing.clone())
            .app_data(metrics.clone())
            .app_data(http.clone())
            .app_data(webhooks.clone())
            .app_data(imports.clone())
            .app_data(trials.clone())
            .configure(api::configure(json_limit))
    })
    .listen(listener)?
    .client_request_timeout(Duration::from_millis(settings.http.client_request_timeout_ms))
    .keep_alive(Duration::from_secs(settings.http.keep_alive_secs))
    .shutdown_timeout(settings.http.shutdown_timeout_secs);
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    Ok(server.run())
}
