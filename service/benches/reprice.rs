//! The repricing engine under a catalogue reprice, on SQLite and on PostgreSQL, in one run:
//! merchant A's whole catalogue (REPRICE_SKUS, default 1,000,000) reprices alone with
//! `pricing.workers` 1 and then 2; then, with 2 workers, once more while merchant B changes a
//! product every 20 ms and checkout looks A's prices up at a paced 1,000 per second. B's
//! change-to-visible latency and the lookups' latency are measured idle first, in the same run,
//! as the baseline.
//! The service runs in-process with real HTTP on loopback (release build, 2 cores shared with
//! the load). Run with `cargo bench -p pricing-service --bench reprice`.
//!
//! A's catalogue is loaded with multi-row SQL inserts (products at their base price, no
//! creation records), since loading a million products one request at a time is the catalogue
//! issue's subject, not this one's.

#[path = "support/report.rs"]
mod report;

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use pricing::config::{Secret, Settings};
use pricing::domain::{MerchantId, ProductDraft, Sku};
use pricing::startup::Application;
use pricing::store::{self, Store};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "bench-admin-key-0123456789";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let skus: usize = std::env::var("REPRICE_SKUS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let only = std::env::var("REPRICE_BACKENDS").unwrap_or_default();
    let wasm = common::rules::built_rule("cost-plus");
    let batch = std::env::var("REPRICE_BATCH").unwrap_or_else(|_| "the store's default".into());
    println!("catalogue reprice of {skus} SKUs (cost-plus), pages: {batch}");
    println!("{:<9} {:>7} {:>9} {:>9}", "backend", "workers", "seconds", "SKUs/s");
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let name = if backend == common::Backend::Sqlite { "sqlite" } else { "postgres" };
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let db = common::fresh_database(backend).await;
        let (a, b) = load(&db.url, skus).await;
        let mut keys = None;
        let mut one_worker = None;
        for (run, workers) in [1usize, 2].into_iter().enumerate() {
            let mut settings = Settings::defaults();
            settings.listen = "127.0.0.1:0".into();
            settings.database_url = db.url.clone();
            settings.admin_key = Some(Secret::new(ADMIN_KEY));
            settings.http.workers = 1;
            settings.pricing.workers = workers;
            // REPRICE_BATCH: the sweep's page size (`pricing.batch_size`), default the service's.
            if let Some(size) = std::env::var("REPRICE_BATCH").ok().and_then(|v| v.parse().ok()) {
                settings.pricing.batch_size = size;
            }
            let app = Application::build(settings).await.unwrap();
            let address = format!("http://127.0.0.1:{}", app.port());
            let engine = app.engine();
            let handle = app.handle();
            let server = tokio::spawn(app.run_until_stopped());
            let client = reqwest::Client::new();
            let http = Http { client: &client, address: &address };
            let (key_a, key_b, version_a) = match keys.take() {
                Some(keys) => keys,
                None => setup(&http, a, b, &wasm).await,
            };
            engine.settled().await;

            // A full reprice alone: its rule activated (first run), then new parameters.
            let busy_before: f64 = engine.readings().worker_busy_seconds.iter().sum();
            let started = Instant::now();
            if run == 0 {
                http.send(reqwest::Method::POST, &format!("/v1/rules/{version_a}/activate"), &key_a, None).await;
            } else {
                let margin = json!({"margin_bps": 2000 + run * 100});
                http.send(reqwest::Method::PUT, &format!("/v1/rules/{version_a}/params"), &key_a, Some(margin)).await;
            }
            engine.settled().await;
            let seconds = started.elapsed().as_secs_f64();
            let evaluating = engine.readings().worker_busy_seconds.iter().sum::<f64>() - busy_before;
            println!(
                "{name:<9} {workers:>7} {seconds:>9.1} {:>9.0}   (workers busy evaluating {evaluating:.1} s of {:.1} s)",
                skus as f64 / seconds,
                seconds * workers as f64,
            );
            let group = "reprice";
            let what = format!("{name}: full reprice of {skus} SKUs, {workers} worker(s)");
            report::figure(group, &what, seconds, "s", None, Some(report::Target::AtMost(30.0)));
            if workers == 1 {
                one_worker = Some(seconds);
            } else if let Some(one) = one_worker {
                // Speed-up: the one-worker time over this one's (a rate ratio).
                let what = format!("{name}: reprice speed-up, 2 workers over 1");
                let target = (name == "postgres").then_some(report::Target::RatioAtLeast(1.5));
                report::figure(group, &what, one / seconds, "x", Some(("1 worker", 1.0)), target);
            }

            if workers == 2 {
                // B's changes and checkout's lookups, idle and then during another full reprice.
                let b_idle = b_latencies(&http, &key_b, 40, 0, None).await;
                let lookups_idle = lookups(&http, &key_a, skus, Duration::from_secs(3), None).await;
                let margin = json!({"margin_bps": 3000});
                http.send(reqwest::Method::PUT, &format!("/v1/rules/{version_a}/params"), &key_a, Some(margin)).await;
                let done = tokio::sync::watch::channel(false);
                let (during_b, during_lookups, ()) = tokio::join!(
                    b_latencies(&http, &key_b, usize::MAX, 1000, Some(done.1.clone())),
                    lookups(&http, &key_a, skus, Duration::from_secs(3600), Some(done.1.clone())),
                    async {
                        engine.settled().await;
                        let _ = done.0.send(true);
                    }
                );
                println!(
                    "{name:<9} B change to visible, ms: idle p50 {:.1} p99 {:.1}; during the reprice p50 {:.1} p99 {:.1} ({} changes)",
                    percentile(&b_idle, 0.5),
                    percentile(&b_idle, 0.99),
                    percentile(&during_b, 0.5),
                    percentile(&during_b, 0.99),
                    during_b.len()
                );
                println!(
                    "{name:<9} lookups at {LOOKUP_RATE}/s, ms: idle p50 {:.2} p99 {:.2}; during the reprice p50 {:.2} p99 {:.2} ({:.2}x idle p99)",
                    percentile(&lookups_idle, 0.5),
                    percentile(&lookups_idle, 0.99),
                    percentile(&during_lookups, 0.5),
                    percentile(&during_lookups, 0.99),
                    percentile(&during_lookups, 0.99) / percentile(&lookups_idle, 0.99),
                );
                let group = "reprice";
                let idle = Some(("B idle, same run", percentile(&b_idle, 0.99)));
                let what = format!("{name}: B change to visible p99 while A reprices");
                let during = percentile(&during_b, 0.99);
                report::figure(group, &what, during, "ms", idle, Some(report::Target::AtMost(50.0)));
                let idle = Some(("lookup p99 idle, same run", percentile(&lookups_idle, 0.99)));
                let what = format!("{name}: checkout lookup p99 during the reprice");
                let during = percentile(&during_lookups, 0.99);
                report::figure(group, &what, during, "ms", idle, Some(report::Target::RatioAtMost(2.0)));
            }
            keys = Some((key_a, key_b, version_a));
            handle.stop(true).await;
            server.await.unwrap().unwrap();
        }
    }
}

struct Http<'a> {
    client: &'a reqwest::Client,
    address: &'a str,
}

impl Http<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.address)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }
}

/// A's catalogue in bulk, and merchant B; returns (A, B).
async fn load(url: &str, skus: usize) -> (MerchantId, MerchantId) {
    let store: Store = store::connect(url, &Settings::defaults().store).await.unwrap();
    let a = store.create_merchant("A").await.unwrap().id;
    let b = store.create_merchant("B").await.unwrap().id;
    let draft =
        ProductDraft::parse(Sku::parse("x").unwrap(), "EUR", 1, 1, Default::default(), Default::default()).unwrap();
    let guardrails = serde_json::to_string(draft.guardrails.as_input()).unwrap();
    let now = chrono::Utc::now().timestamp_micros();
    let started = Instant::now();
    // 100 rows a statement: sqlx binds a SQLite parameter by looking its name up among the
    // statement's, so a statement's binding costs grow with the square of its parameters
    // (1,000 rows of 10 took 188 s for a million products, 100 rows take a tenth of that).
    for chunk in (0..skus).collect::<Vec<_>>().chunks(100) {
        let rows = |width: usize| {
            (0..chunk.len())
                .map(|r| {
                    format!("({})", (1..=width).map(|c| format!("${}", r * width + c)).collect::<Vec<_>>().join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut tx = store.begin().await.unwrap();
        let sql = format!(
            "INSERT INTO products (merchant_id, sku, currency, cost_minor, base_price_minor, guardrails, attributes, \
             version, created_at, updated_at) VALUES {}",
            rows(10)
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in chunk {
            insert = insert
                .bind(a.to_string())
                .bind(format!("sku-{i:07}"))
                .bind("EUR")
                .bind(1000 + (*i % 500) as i64)
                .bind(1999i64)
                .bind(guardrails.clone())
                .bind("{}")
                .bind(1i64)
                .bind(now)
                .bind(now);
        }
        insert.execute(&mut *tx).await.unwrap();
        let sql = format!(
            "INSERT INTO current_prices (merchant_id, sku, price_minor, currency, version, effective_at, source) VALUES {}",
            rows(7)
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in chunk {
            insert = insert
                .bind(a.to_string())
                .bind(format!("sku-{i:07}"))
                .bind(1999i64)
                .bind("EUR")
                .bind(1i64)
                .bind(now)
                .bind("base");
        }
        insert.execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    eprintln!("loaded {skus} products in {:.1} s", started.elapsed().as_secs_f64());
    store.close().await;
    (a, b)
}

/// Keys, B's product, and the rule for both (B's active at margin 0); returns (A's key, B's key,
/// A's rule version).
async fn setup(http: &Http<'_>, a: MerchantId, b: MerchantId, wasm: &[u8]) -> (String, String, i64) {
    let mut keys = Vec::new();
    for merchant in [a, b] {
        let body = json!({"roles": ["merchant", "checkout"]});
        let issued =
            http.send(reqwest::Method::POST, &format!("/v1/merchants/{merchant}/keys"), ADMIN_KEY, Some(body)).await;
        keys.push(issued["key"].as_str().unwrap().to_owned());
    }
    let (key_a, key_b) = (keys[0].clone(), keys[1].clone());
    let body = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999});
    http.send(reqwest::Method::PUT, "/v1/products/b-1", &key_b, Some(body)).await;
    let mut versions = Vec::new();
    for (key, margin) in [(&key_a, 1000), (&key_b, 0)] {
        let uploaded = http
            .client
            .post(format!("{}/v1/rules", http.address))
            .bearer_auth(key)
            .header("content-type", "application/wasm")
            .body(wasm.to_vec())
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let version = uploaded["version"].as_i64().unwrap();
        let params = json!({"margin_bps": margin});
        http.send(reqwest::Method::PUT, &format!("/v1/rules/{version}/params"), key, Some(params)).await;
        versions.push(version);
    }
    // B's rule now; A's is activated by the first measured run.
    http.send(reqwest::Method::POST, &format!("/v1/rules/{}/activate", versions[1]), &key_b, None).await;
    (key_a, key_b, versions[0])
}

/// B's change-to-visible latencies in ms: a cost change (B's rule prices at cost), then lookups
/// until checkout sees it; every 20 ms, `count` times or until `done`.
async fn b_latencies(
    http: &Http<'_>,
    key: &str,
    count: usize,
    base: usize,
    done: Option<tokio::sync::watch::Receiver<bool>>,
) -> Vec<f64> {
    let mut latencies = Vec::new();
    for i in 0..count {
        if done.as_ref().is_some_and(|d| *d.borrow()) {
            break;
        }
        let cost = 2000 + (base + i) as i64;
        let started = Instant::now();
        let body = json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": 1999});
        http.send(reqwest::Method::PUT, "/v1/products/b-1", key, Some(body)).await;
        loop {
            let price = http.send(reqwest::Method::GET, "/v1/prices/b-1", key, None).await;
            if price["price_minor"] == json!(cost) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(600), "B's change never became visible");
        }
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

/// Lookups per second offered while latency is measured (paced, not as fast as possible, so that
/// the load generator does not take the cores the reprice needs).
const LOOKUP_RATE: u64 = 1_000;

/// Checkout lookups of A's prices, paced at [`LOOKUP_RATE`], for `length` or until `done`:
/// latencies in ms, from each request's scheduled time.
async fn lookups(
    http: &Http<'_>,
    key: &str,
    skus: usize,
    length: Duration,
    done: Option<tokio::sync::watch::Receiver<bool>>,
) -> Vec<f64> {
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut i = 0usize;
    let period = Duration::from_micros(1_000_000 / LOOKUP_RATE);
    let mut due = tokio::time::Instant::now();
    while started.elapsed() < length && !done.as_ref().is_some_and(|d| *d.borrow()) {
        i = (i * 7919 + 13) % skus;
        tokio::time::sleep_until(due).await;
        http.send(reqwest::Method::GET, &format!("/v1/prices/sku-{i:07}"), key, None).await;
        latencies.push(due.elapsed().as_secs_f64() * 1e3);
        due += period;
    }
    latencies
}

fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
