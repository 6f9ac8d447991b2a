//! Signal ingest on SQLite and on PostgreSQL, in one run: competitor observations and demand
//! events (INGEST_ROWS of each, default 200,000, all new) sent over real HTTP as JSON batches of
//! 5,000 and as NDJSON bodies of 50,000 lines, two senders at a time, and published to JetStream
//! (a `nats-server -js` of the bench's own) as messages of 1,000 entries, timed until the
//! service's consumer has acknowledged the last, against the baseline of a
//! plain multi-row insert of the same rows into a table of the same columns and key, through the
//! same connection pool, in the same run. Then the evaluation time of a SKU with 3 million view
//! events in its window against one with none: a sale event for it, until the engine has
//! repriced it (demand-based rule active), 30 times each.
//! The service runs in-process (release build, 2 cores shared with the senders and, for
//! PostgreSQL, the database). Run with `cargo bench -p pricing-service --bench ingest`
//! (INGEST_BACKENDS=sqlite or postgres for one).
//!
//! The merchant's 10,000 products are loaded with multi-row SQL inserts; no rule is active
//! while ingest is measured, so the figures are the ingest path's own.

#[path = "support/report.rs"]
mod report;
#[path = "support/service.rs"]
mod service;

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use pricing::config::Settings;
use pricing::domain::{MerchantId, Sku};
use pricing::startup::Application;
use pricing::store::{self, DemandEvent, DemandKind, Store};
use serde_json::{Value, json};
use service::ADMIN_KEY;

const SKUS: usize = 10_000;
const JSON_BATCH: usize = 5_000;
const NDJSON_BODY: usize = 50_000;
const SENDERS: usize = 2;
const JETSTREAM_MESSAGE: usize = 1_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

#[derive(Clone, Copy)]
enum Feed {
    Observations,
    Demand,
}

impl Feed {
    fn name(self) -> &'static str {
        match self {
            Feed::Observations => "observations",
            Feed::Demand => "demand events",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Feed::Observations => "/v1/signals/competitor-prices",
            Feed::Demand => "/v1/signals/demand",
        }
    }

    /// Row `i` of a run tagged `run` (so that every run's ids are new).
    fn row(self, run: &str, i: usize) -> Value {
        let at = Utc::now() - chrono::Duration::minutes((i % 600) as i64);
        match self {
            Feed::Observations => json!({
                "id": format!("{run}-{i}"), "sku": format!("sku-{:05}", i % SKUS),
                "competitor": format!("{run}-shop-{}", i / SKUS), "price_minor": 1000 + (i % 900) as i64,
                "currency": "EUR", "in_stock": !i.is_multiple_of(3), "observed_at": at,
            }),
            Feed::Demand => json!({
                "id": format!("{run}-{i}"), "sku": format!("sku-{:05}", i % SKUS), "kind": "view",
                "quantity": 1, "occurred_at": at,
            }),
        }
    }
}

async fn run() {
    let rows: usize = std::env::var("INGEST_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let only = std::env::var("INGEST_BACKENDS").unwrap_or_default();
    println!("ingest of {rows} rows per feed and format, {SKUS} SKUs, {SENDERS} senders");
    println!("{:<9} {:<13} {:<28} {:>9} {:>10} {:>9}", "backend", "feed", "path", "seconds", "rows/s", "vs plain");
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let name = if backend == common::Backend::Sqlite { "sqlite" } else { "postgres" };
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let db = common::fresh_database(backend).await;
        let merchant = load(&db.url).await;
        let nats = common::nats::PrivateNats::start();
        let mut settings = service::settings(&db.url, &db.dir);
        settings.nats.url = Some(nats.url());
        settings.http.workers = 2;
        settings.http.request_timeout_ms = 120_000;
        let app = Application::build(settings).await.unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        let store = app.store();
        let engine = app.engine();
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        let body = json!({"roles": ["merchant", "feed"]});
        let issued: Value = client
            .post(format!("{address}/v1/merchants/{merchant}/keys"))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = issued["key"].as_str().unwrap().to_owned();
        let http = Http { client: &client, address: &address, key: &key };

        for feed in [Feed::Observations, Feed::Demand] {
            let plain = plain_insert(&store, merchant, feed, rows).await;
            let report = |path: &str, seconds: f64| {
                println!(
                    "{name:<9} {:<13} {path:<28} {seconds:>9.2} {:>10.0} {:>9.2}",
                    feed.name(),
                    rows as f64 / seconds,
                    plain / seconds
                );
                let what = format!("{name}: {} by {path}", feed.name());
                let baseline = Some(("plain multi-row insert, same run", rows as f64 / plain));
                let target = (!path.starts_with("plain")).then_some(report::Target::AtLeast(100_000.0));
                report::figure("ingest", &what, rows as f64 / seconds, "rows/s", baseline, target);
            };
            report("plain multi-row insert", plain);
            report("HTTP JSON, batches of 5000", http.send_all(feed, "json", rows, JSON_BATCH).await);
            report("HTTP NDJSON, bodies of 50000", http.send_all(feed, "ndjson", rows, NDJSON_BODY).await);
            report("JetStream, messages of 1000", publish_all(&nats, merchant, feed, rows, JETSTREAM_MESSAGE).await);
        }
        hot_and_cold(&http, &store, &engine, merchant).await;
        handle.stop(true).await;
        let _ = server.await;
        store.close().await;
    }
}

struct Http<'a> {
    client: &'a reqwest::Client,
    address: &'a str,
    key: &'a str,
}

impl Http<'_> {
    /// Sends `rows` rows of `feed` in bodies of `per_body`, `SENDERS` at a time; seconds taken.
    async fn send_all(&self, feed: Feed, format: &str, rows: usize, per_body: usize) -> f64 {
        let run = format!("{format}-{}", Utc::now().timestamp_micros());
        let bodies: Vec<Vec<u8>> = (0..rows.div_ceil(per_body))
            .map(|b| {
                let entries: Vec<Value> =
                    (b * per_body..((b + 1) * per_body).min(rows)).map(|i| feed.row(&run, i)).collect();
                match (format, feed) {
                    ("ndjson", _) => entries.iter().map(|e| format!("{e}\n")).collect::<String>().into_bytes(),
                    (_, Feed::Observations) => serde_json::to_vec(&json!({"observations": entries})).unwrap(),
                    (_, Feed::Demand) => serde_json::to_vec(&json!({"events": entries})).unwrap(),
                }
            })
            .collect();
        let content_type = if format == "ndjson" { "application/x-ndjson" } else { "application/json" };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let started = Instant::now();
        let sender = || async {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let response = self
                    .client
                    .post(format!("{}{}", self.address, feed.path()))
                    .bearer_auth(self.key)
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let receipt: Value = response.json().await.unwrap();
                assert!(status.is_success(), "{status}: {receipt}");
                assert_eq!(receipt["rejected"], 0, "{receipt}");
            }
        };
        futures_util::future::join_all((0..SENDERS).map(|_| sender())).await;
        started.elapsed().as_secs_f64()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response =
            self.client.post(format!("{}{path}", self.address)).bearer_auth(self.key).json(&body).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

/// Publishes `rows` rows of `feed` to the merchant's subject in messages of `per_message`
/// entries, and waits until the service's consumer has acknowledged every one; seconds from
/// the first publication to the last acknowledgement.
async fn publish_all(
    nats: &common::nats::PrivateNats,
    merchant: MerchantId,
    feed: Feed,
    rows: usize,
    per_message: usize,
) -> f64 {
    let run = format!("js-{}", Utc::now().timestamp_micros());
    let (kind, list) = match feed {
        Feed::Observations => ("competitor", "observations"),
        Feed::Demand => ("demand", "events"),
    };
    let messages: Vec<Vec<u8>> = (0..rows.div_ceil(per_message))
        .map(|m| {
            let entries: Vec<Value> =
                (m * per_message..((m + 1) * per_message).min(rows)).map(|i| feed.row(&run, i)).collect();
            serde_json::to_vec(&json!({ list: entries })).unwrap()
        })
        .collect();
    let context = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let stream = loop {
        if let Ok(stream) = context.get_stream("PRICING_SIGNALS").await {
            break stream;
        }
        assert!(Instant::now() < deadline, "the service makes its stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let subject = format!("pricing.signals.{merchant}.{kind}");
    let started = Instant::now();
    let mut acks = Vec::new();
    for message in messages {
        acks.push(context.publish(subject.clone(), message.into()).await.unwrap());
    }
    let mut last = 0;
    for ack in acks {
        last = ack.await.unwrap().sequence;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer("pricing-signals").await.unwrap();
        let info = consumer.cached_info();
        if info.ack_floor.stream_sequence >= last && info.num_ack_pending == 0 {
            return started.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "the consumer acknowledges every message within 10 minutes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The baseline: the same rows into a table of the same columns and key, with plain multi-row
/// inserts (5,000 rows a transaction, as the HTTP batches; statements of 1,000 rows on
/// PostgreSQL and of 500 parameters on SQLite, whose binding cost grows with the square of a
/// statement's parameters); seconds taken.
async fn plain_insert(store: &Store, merchant: MerchantId, feed: Feed, rows: usize) -> f64 {
    let (table, columns, key) = match feed {
        Feed::Observations => (
            "bench_plain_observations",
            "merchant_id TEXT NOT NULL, sku TEXT NOT NULL, competitor TEXT NOT NULL, price_minor BIGINT NOT NULL, \
             currency TEXT NOT NULL, in_stock BOOLEAN NOT NULL, observed_at BIGINT NOT NULL, observation_id TEXT NOT NULL",
            "merchant_id, sku, competitor",
        ),
        Feed::Demand => (
            "bench_plain_demand",
            "merchant_id TEXT NOT NULL, event_id TEXT NOT NULL, sku TEXT NOT NULL, kind TEXT NOT NULL, \
             quantity BIGINT NOT NULL, occurred_at BIGINT NOT NULL",
            "merchant_id, event_id",
        ),
    };
    let create = format!("CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY ({key}))");
    sqlx::query(sqlx::AssertSqlSafe(create)).execute(store.pool()).await.unwrap();
    let width = match feed {
        Feed::Observations => 8,
        Feed::Demand => 6,
    };
    let run = format!("plain-{}", Utc::now().timestamp_micros());
    let entries: Vec<Value> = (0..rows).map(|i| feed.row(&run, i)).collect();
    let merchant = merchant.to_string();
    let started = Instant::now();
    for transaction in entries.chunks(5_000) {
        let mut tx = store.begin().await.unwrap();
        let rows_per_statement = if store.backend() == store::Backend::Sqlite { 500 / width } else { 1_000 };
        for statement in transaction.chunks(rows_per_statement) {
            let values: Vec<String> = (0..statement.len())
                .map(|r| {
                    format!("({})", (1..=width).map(|c| format!("${}", r * width + c)).collect::<Vec<_>>().join(", "))
                })
                .collect();
            let sql = format!("INSERT INTO {table} VALUES {}", values.join(", "));
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in statement {
                let at = chrono::DateTime::parse_from_rfc3339(
                    e[if width == 8 { "observed_at" } else { "occurred_at" }].as_str().unwrap(),
                )
                .unwrap()
                .timestamp_micros();
                let text = |field: &str| e[field].as_str().unwrap().to_owned();
                insert = match feed {
                    Feed::Observations => insert
                        .bind(merchant.clone())
                        .bind(text("sku"))
                        .bind(text("competitor"))
                        .bind(e["price_minor"].as_i64().unwrap())
                        .bind(text("currency"))
                        .bind(e["in_stock"].as_bool().unwrap())
                        .bind(at)
                        .bind(text("id")),
                    Feed::Demand => insert
                        .bind(merchant.clone())
                        .bind(text("id"))
                        .bind(text("sku"))
                        .bind(text("kind"))
                        .bind(e["quantity"].as_i64().unwrap())
                        .bind(at),
                };
            }
            insert.execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// INGEST_HISTORY (default 3 million) view events for one SKU (over the last 30 days, written through the store's own
/// ingest in chunks of 50,000), none for another; then, with the demand-based rule active, a
/// sale event for each in turn until the engine has repriced it, 30 times: p50 and p99 in ms.
async fn hot_and_cold(http: &Http<'_>, store: &Store, engine: &pricing::engine::Engine, merchant: MerchantId) {
    let history: usize = std::env::var("INGEST_HISTORY").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000_000);
    let hot = Sku::parse("sku-00000").unwrap();
    let now = Utc::now();
    let started = Instant::now();
    for chunk in 0..history.div_ceil(50_000) {
        let events: Vec<DemandEvent> = (0..50_000)
            .map(|i| {
                let n = chunk * 50_000 + i;
                DemandEvent {
                    id: format!("history-{n}"),
                    sku: hot.clone(),
                    kind: DemandKind::View,
                    quantity: 1,
                    occurred_at: now - chrono::Duration::seconds((n % (29 * 86_400)) as i64),
                }
            })
            .collect();
        let mut tx = store.begin().await.unwrap();
        store::signals::record_demand(&mut tx, merchant, &events).await.unwrap();
        tx.commit().await.unwrap();
    }
    eprintln!("{history} view events for {hot} stored in {:.1} s", started.elapsed().as_secs_f64());
    let wasm = common::rules::built_rule("demand-based");
    let uploaded: Value = http
        .client
        .post(format!("{}/v1/rules", http.address))
        .bearer_auth(http.key)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = uploaded["version"].as_i64().unwrap();
    http.post(&format!("/v1/rules/{version}/activate"), json!({})).await;
    engine.settled().await;
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..30 {
        for (which, sku) in ["sku-00000", "sku-00001"].into_iter().enumerate() {
            let event = json!({"id": format!("sale-{round}-{sku}"), "sku": sku, "kind": "sale", "quantity": 1,
                               "occurred_at": Utc::now()});
            let started = Instant::now();
            http.post("/v1/signals/demand", json!({"events": [event]})).await;
            engine.settled().await;
            times[which].push(started.elapsed().as_secs_f64() * 1e3);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let [hot_times, cold_times] = &times;
    let (hot_p50, cold_p50) = (percentile(hot_times, 0.5), percentile(cold_times, 0.5));
    println!(
        "sale event to repriced: {history} views p50 {hot_p50:.2} ms p99 {:.2} ms; no history p50 {cold_p50:.2} ms \
         p99 {:.2} ms; ratio {:.2}x",
        percentile(hot_times, 0.99),
        percentile(cold_times, 0.99),
        hot_p50 / cold_p50
    );
    let what = format!("sale event to repriced, a SKU with {history} views in its window (p50)");
    let cold = Some(("a SKU with no history, same run", cold_p50));
    report::figure("ingest", &what, hot_p50, "ms", cold, Some(report::Target::RatioAtMost(2.0)));
}

/// The merchant and its 10,000 products (multi-row SQL inserts, at their base price).
async fn load(url: &str) -> MerchantId {
    let store: Store = store::connect(url, &Settings::defaults().store).await.unwrap();
    let merchant = store.create_merchant("Ingest").await.unwrap().id;
    let draft = pricing::domain::ProductDraft::parse(
        Sku::parse("x").unwrap(),
        "EUR",
        1,
        1,
        Default::default(),
        Default::default(),
    )
    .unwrap();
    let guardrails = serde_json::to_string(draft.guardrails.as_input()).unwrap();
    let now = Utc::now().timestamp_micros();
    for chunk in (0..SKUS).collect::<Vec<_>>().chunks(1_000) {
        let mut tx = store.begin().await.unwrap();
        for (table, width) in [("products", 10), ("current_prices", 7)] {
            let values: Vec<String> = (0..chunk.len())
                .map(|r| {
                    format!("({})", (1..=width).map(|c| format!("${}", r * width + c)).collect::<Vec<_>>().join(", "))
                })
                .collect();
            let sql = if table == "products" {
                format!(
                    "INSERT INTO products (merchant_id, sku, currency, cost_minor, base_price_minor, guardrails, \
                     attributes, version, created_at, updated_at) VALUES {}",
                    values.join(", ")
                )
            } else {
                format!(
                    "INSERT INTO current_prices (merchant_id, sku, price_minor, currency, version, effective_at, source) \
                     VALUES {}",
                    values.join(", ")
                )
            };
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for i in chunk {
                let sku = format!("sku-{i:05}");
                insert = if table == "products" {
                    insert
                        .bind(merchant.to_string())
                        .bind(sku)
                        .bind("EUR")
                        .bind(1000i64)
                        .bind(1999i64)
                        .bind(guardrails.clone())
                        .bind("{}")
                        .bind(1i64)
                        .bind(now)
                        .bind(now)
                } else {
                    insert
                        .bind(merchant.to_string())
                        .bind(sku)
                        .bind(1999i64)
                        .bind("EUR")
                        .bind(1i64)
                        .bind(now)
                        .bind("base")
                };
            }
            insert.execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    store.close().await;
    merchant
}

fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
