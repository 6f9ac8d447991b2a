//! Settings: built-in defaults, then an optional TOML file, then `PRICING_*` variables.
//!
//! Nested keys use `__` in variables: `[http] request_timeout_ms` is
//! `PRICING_HTTP__REQUEST_TIMEOUT_MS`. The README lists every setting.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// A secret from configuration. It never appears in `Debug` output, so in no log either.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `PRICING_LISTEN`: address the HTTP server binds (port 0 picks a free port).
    pub listen: String,
    /// `PRICING_DATABASE_URL`: `sqlite://path` (created if missing) or `postgres://...`.
    pub database_url: String,
    /// `PRICING_ADMIN_KEY`: accepted as the bootstrap `admin` key (at least 16 characters).
    pub admin_key: Option<Secret>,
    pub log: LogSettings,
    pub http: HttpSettings,
    pub store: StoreSettings,
    pub cache: CacheSettings,
    pub auth: AuthSettings,
    pub sandbox: SandboxSettings,
    pub pricing: PricingSettings,
    pub audit: AuditSettings,
    pub nats: NatsSettings,
    pub webhooks: WebhookSettings,
    pub imports: ImportSettings,
    pub trials: TrialSettings,
}

/// Shadows and backtests (see `trials`).
#[derive(Debug, Clone, Deserialize)]
pub struct TrialSettings {
    /// The most of one core's time shadows and backtests together may take (1 to 100): after
    /// each batch they rest for what the batch took × (100 / share − 1).
    pub share_percent: u32,
    /// Batches of live decisions waiting for the shadow; beyond them a batch is skipped (and
    /// counted) rather than waited for.
    pub queue_batches: usize,
}

/// Catalogue import jobs (see `catalogue`).
#[derive(Debug, Clone, Deserialize)]
pub struct ImportSettings {
    /// The largest import body.
    pub max_bytes: u64,
    /// An import's body is kept in pieces of about this size; a piece's products are written
    /// in one transaction.
    pub piece_bytes: usize,
    /// Lines an atomic import may hold (it is written in one transaction).
    pub atomic_max_lines: u64,
    /// How long a worker's (or an upload's) claim on a job lasts without renewal; a job whose
    /// worker died is resumed by another after it.
    pub lease_secs: u64,
    /// How often an idle worker looks for queued jobs.
    pub poll_ms: u64,
    /// Jobs run at once by this replica (each merchant's one at a time).
    pub workers: usize,
}

/// Price events to merchants' webhooks (see `events::webhooks`).
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// Longest wait for a receiver's answer.
    pub timeout_ms: u64,
    /// Failures in a row that disable a webhook.
    pub max_failures: i64,
    /// The first retry's wait, doubled after each failure.
    pub retry_base_ms: u64,
    /// The longest wait between retries.
    pub retry_max_secs: u64,
    /// Events per delivery.
    pub batch: usize,
    /// Webhooks may be `http` and reach loopback, private and internal addresses (for a
    /// receiver on the operator's own network, and tests). Off: `https` to public addresses.
    pub allow_private_addresses: bool,
}

/// NATS JetStream, when `url` is set (see `feeds::jetstream`, `events::jetstream`).
#[derive(Debug, Clone, Deserialize)]
pub struct NatsSettings {
    /// `PRICING_NATS__URL`, e.g. `nats://127.0.0.1:4222`: consume signals from JetStream.
    pub url: Option<String>,
    /// The stream signals are published to (created with `signal_subjects` when missing).
    pub signal_stream: String,
    /// Signals' subjects: `<prefix>.<merchant id>.competitor` and `<prefix>.<merchant id>.demand`.
    pub signal_prefix: String,
    /// The durable pull consumer's name (replicas share it, and so the work).
    pub consumer: String,
    /// Where a message that can never be stored goes, with its error:
    /// `<prefix>.<merchant id or "unknown">.<kind>`; kept in `dead_letter_stream`.
    pub dead_letter_prefix: String,
    pub dead_letter_stream: String,
    /// Messages taken from the stream at once (their signals are stored together).
    pub fetch_batch: usize,
    /// How long a delivered message may go unacknowledged before JetStream delivers it again
    /// (after a crash, the time until its messages come back). Set when the consumer is made.
    pub ack_wait_secs: u64,
    /// The stream price events are published to (created when missing).
    pub price_stream: String,
    /// Price events go to `<price_prefix>.<merchant id>`.
    pub price_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditSettings {
    /// The folder of checkpoint signing keys, outside the database (see `audit::keys`).
    pub keys_dir: std::path::PathBuf,
    /// `PRICING_AUDIT__SIGNING_KEY`: the signing key (64 hex characters) from a secret store,
    /// instead of the folder's active key.
    pub signing_key: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PricingSettings {
    /// A competitor observation older than this is passed to rules marked stale.
    pub stale_after_secs: u64,
    /// Most observations or demand events in one signal batch.
    pub max_signal_batch: usize,
    /// Reprice every merchant with an active rule this often, in seconds; 0 turns it off.
    pub schedule_secs: u64,
    /// Rule evaluations that run at once (the engine's workers); 0 means one per core.
    pub workers: usize,
    /// Products per batch: one rule call, one transaction, one step of a catalogue sweep; 0
    /// means the store's default (200 on SQLite, 500 on PostgreSQL: see the engine).
    pub batch_size: u32,
    /// How long a replica holds claimed work before another may take it over, in seconds
    /// (the bound on how long a dead replica's work waits).
    pub lease_secs: u64,
    /// How often the engine looks in the store for work it was not told about (other
    /// replicas' requests, expired claims, retries), in milliseconds.
    pub poll_ms: u64,
    /// Most competitors stored per SKU.
    pub max_competitors_per_sku: u64,
    /// Most SKUs that may have signals but no product.
    pub max_skus_without_product: u64,
    /// Products an activation dry-runs the version on first (a random sample of the
    /// catalogue; 0 skips the check).
    pub activation_sample: usize,
    /// The share of the sample, in basis points, that may fail before an activation is
    /// refused (unless forced).
    pub activation_max_failed_bps: u32,
}

impl PricingSettings {
    /// The number of workers, `workers = 0` resolved to the number of cores.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// `pretty` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `pricing=debug,info`; `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// Longest time a handler may run before the caller gets a `timeout` error.
    pub request_timeout_ms: u64,
    /// Longest time a client may take to send its request head.
    pub client_request_timeout_ms: u64,
    /// Largest JSON body accepted, in bytes.
    pub json_limit_bytes: usize,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// How long an idle connection is kept open. Longer than clients' own idle timeouts, so
    /// that a client never sends a request on a connection the server is closing.
    pub keep_alive_secs: u64,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CacheSettings {
    /// How often the price cache is compared with the store and corrected, in seconds
    /// (0: never); a safety net under the cache updates that each write makes.
    pub reconcile_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StoreSettings {
    pub max_connections: u32,
    /// How long to wait for a connection (or, on SQLite, a write lock) before failing.
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// How long a verified key stays cached. A key revoked on this replica stops at once;
    /// on other replicas it stops within this time.
    pub key_cache_ttl_secs: u64,
    /// While the store cannot be reached, a key verified this recently is still accepted.
    pub outage_grace_secs: u64,
}

/// Limits on merchants' rules (see DESIGN.md, "Sandbox limits").
#[derive(Debug, Clone, Deserialize)]
pub struct SandboxSettings {
    /// Largest rule upload, in bytes.
    pub max_module_bytes: usize,
    /// Fuel (roughly, wasm instructions) one evaluation may burn: a deterministic stop.
    pub fuel_per_evaluation: u64,
    /// Wall-clock limit of one evaluation, in milliseconds (epoch interruption).
    pub deadline_ms: u64,
    /// Largest linear memory of a rule instance, in bytes.
    pub memory_bytes: usize,
    /// Largest table of a rule instance, in elements.
    pub table_elements: usize,
    /// Wasm stack a rule may use, in bytes.
    pub stack_bytes: usize,
    /// Bytes of log a rule may write per evaluation.
    pub log_bytes: usize,
    /// Bytes of explanation a decision may carry.
    pub explanation_bytes: usize,
    /// Rule instances that may exist at once (the pooling allocator's slots).
    pub instance_pool: u32,
    /// Dry runs and uploads one merchant may run at once (more are refused with `429`).
    pub requests_per_merchant: usize,
    /// Rule versions one merchant may keep.
    pub max_rule_versions: u64,
    /// Bytes one merchant's rule versions may take in the store (uploads, components and
    /// compiled code together).
    pub max_rule_bytes: u64,
}

impl HttpSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Defaults, overlaid with `file` (when given) and then with `PRICING_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("PRICING").prefix_separator("_").separator("__").try_parsing(true),
            )
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.check()?;
        Ok(settings)
    }

    /// The built-in defaults alone: what `cargo run` uses and what tests start from.
    pub fn defaults() -> Self {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("the built-in defaults deserialize")
    }

    fn check(&self) -> Result<(), ConfigError> {
        if let Some(key) = &self.admin_key
            && key.expose().chars().count() < 16
        {
            return Err(ConfigError("PRICING_ADMIN_KEY must be at least 16 characters".into()));
        }
        if self.http.json_limit_bytes == 0 || self.http.request_timeout_ms == 0 {
            return Err(ConfigError("http limits must be positive".into()));
        }
        Ok(())
    }
}

const DEFAULTS: &str = r#"
listen = "127.0.0.1:8080"
database_url = "sqlite://data/pricing.db"

[log]
format = "pretty"
filter = "info"

[http]
request_timeout_ms = 10000
client_request_timeout_ms = 5000
json_limit_bytes = 262144
shutdown_timeout_secs = 30
keep_alive_secs = 75
workers = 0

[store]
max_connections = 16
acquire_timeout_ms = 5000

[cache]
reconcile_secs = 300

[auth]
key_cache_ttl_secs = 10
outage_grace_secs = 3600

[pricing]
stale_after_secs = 86400
max_signal_batch = 10000
schedule_secs = 0
workers = 0
batch_size = 0
lease_secs = 30
poll_ms = 250
max_competitors_per_sku = 100
max_skus_without_product = 100000
activation_sample = 200
activation_max_failed_bps = 1000

[audit]
keys_dir = "data/keys"

[webhooks]
timeout_ms = 10000
max_failures = 10
retry_base_ms = 1000
retry_max_secs = 600
batch = 100
allow_private_addresses = false

[imports]
max_bytes = 2147483648
piece_bytes = 262144
atomic_max_lines = 100000
lease_secs = 10
poll_ms = 200
workers = 1

[trials]
share_percent = 25
queue_batches = 64

[nats]
signal_stream = "PRICING_SIGNALS"
signal_prefix = "pricing.signals"
consumer = "pricing-signals"
dead_letter_prefix = "pricing.dead-letters"
dead_letter_stream = "PRICING_DEAD_LETTERS"
fetch_batch = 500
ack_wait_secs = 30
price_stream = "PRICING_PRICES"
price_prefix = "pricing.prices"

[sandbox]
max_module_bytes = 1048576
fuel_per_evaluation = 10000000
deadline_ms = 10
memory_bytes = 16777216
table_elements = 10000
stack_bytes = 524288
log_bytes = 1024
explanation_bytes = 512
instance_pool = 128
requests_per_merchant = 2
max_rule_versions = 200
max_rule_bytes = 268435456
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_operating_contract() {
        let s = Settings::defaults();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://data/pricing.db");
        assert!(s.admin_key.is_none());
    }

    #[test]
    fn a_file_overrides_defaults_and_secrets_stay_out_of_debug_output() {
        let dir = std::env::temp_dir().join(format!("pricing-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pricing.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nadmin_key = \"a-very-secret-admin-key\"\n[http]\nworkers = 3\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.http.workers, 3);
        assert_eq!(s.http.request_timeout_ms, 10000);
        assert!(!format!("{s:?}").contains("a-very-secret"));
    }

    #[test]
    fn a_short_admin_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("pricing-config-short-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pricing.toml");
        std::fs::write(&path, "admin_key = \"short\"\n").unwrap();
        assert!(Settings::load(Some(&path)).is_err());
    }
}
