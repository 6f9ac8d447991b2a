//! A PostgreSQL outage during traffic, on a server of the test's own: every backend
//! connection terminated, then the server stopped and started again, while checkout looks
//! prices up and a feed keeps changing costs. Lookups keep answering from the cache
//! throughout; writes that cannot reach the database are `503 unavailable` (never a 500);
//! nothing acknowledged is lost, and repricing resumes by itself: afterwards every product's
//! last rule decision saw its last cost, and the chain verifies.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::private_pg::PrivatePostgres;
use crate::common::{Backend, TestDb};
use crate::helpers::{TestApp, spawn_app_with, test_settings};
use crate::pipeline::{activate, verification};

const SKUS: usize = 10;
/// Most write rounds and lookup rounds: each loop is bounded in count as well as by the phases.
const MAX_ROUNDS: usize = 20_000;

fn sku(i: usize) -> String {
    format!("sku-{i}")
}

#[derive(Default)]
struct Writes {
    /// Per SKU: the last cost acknowledged, and the costs sent after it without an answer.
    acknowledged: HashMap<String, i64>,
    unanswered: HashMap<String, Vec<i64>>,
    unavailable: usize,
    /// Answers that are neither success nor `503 unavailable`.
    wrong: Vec<String>,
}

async fn write_loop(app: Arc<TestApp>, key: String, stop: Arc<AtomicBool>) -> Writes {
    let mut writes = Writes::default();
    for round in 0..MAX_ROUNDS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sku = sku(round % SKUS);
        let cost = 1000 + round as i64;
        let body = json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": 1999});
        let path = format!("/v1/products/{sku}");
        let response = app
            .client
            .request(Method::PUT, app.url(&path))
            .bearer_auth(&key)
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                writes.acknowledged.insert(sku.clone(), cost);
                writes.unanswered.remove(&sku);
            }
            Ok(response) => {
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if status == StatusCode::SERVICE_UNAVAILABLE && body["error"]["code"] == "unavailable" {
                    writes.unavailable += 1;
                } else {
                    writes.wrong.push(format!("{status} {body}"));
                }
                // A refused write may still have committed (the answer was lost after it).
                writes.unanswered.entry(sku).or_default().push(cost);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                writes.wrong.push(format!("no answer: {e}"));
                writes.unanswered.entry(sku).or_default().push(cost);
            }
        }
    }
    writes
}

/// Lookups until stopped: the statuses that were not 200.
async fn lookup_loop(app: Arc<TestApp>, key: String, stop: Arc<AtomicBool>) -> (usize, Vec<String>) {
    let (mut answered, mut failures) = (0, Vec::new());
    for round in 0..MAX_ROUNDS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let response = app.call(Method::GET, &format!("/v1/prices/{}", sku(round % SKUS)), Some(&key), None).await;
        match response.status() {
            StatusCode::OK => answered += 1,
            status => failures.push(format!("{status} {}", response.text().await.unwrap_or_default())),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (answered, failures)
}

#[tokio::test]
async fn lookups_survive_a_postgres_outage_and_writes_resume_by_themselves() {
    let server = PrivatePostgres::start();
    let mut admin = sqlx::PgConnection::connect(&server.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE pricing").execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    let dir = server.dir.join("service");
    std::fs::create_dir_all(&dir).unwrap();
    let db = TestDb { backend: Backend::Postgres, url: server.url("pricing"), dir };
    let mut settings = test_settings(&db);
    // Writes fail fast while the database is away; verified keys expire during the outage, so
    // lookups depend on the outage grace, not on a long cache.
    settings.store.acquire_timeout_ms = 1_000;
    settings.auth.key_cache_ttl_secs = 1;
    settings.pricing.poll_ms = 100;
    let app = spawn_app_with(settings, db).await;
    let (merchant, key) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    for i in 0..SKUS {
        let body = json!({"currency": "EUR", "cost_minor": 900, "base_price_minor": 1999});
        assert!(app.put_product(&key, &sku(i), body).await.status().is_success());
    }
    activate(&app, &key, "cost-plus", json!({"margin_bps": 1000})).await;

    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_loop(app.clone(), key.clone(), stop.clone()));
    let reader = tokio::spawn(lookup_loop(app.clone(), key.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Every backend connection of the service is cut.
    let mut admin = sqlx::PgConnection::connect(&server.url("postgres")).await.unwrap();
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'pricing' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!cut.is_empty(), "the service had connections to cut");
    admin.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;

    // The server goes away for a while (longer than the key cache), then comes back.
    server.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.start_server();

    // Writes resume by themselves (bounded wait), then the traffic stops.
    let resumed = Instant::now();
    let probe = json!({"currency": "EUR", "cost_minor": 777, "base_price_minor": 1999});
    loop {
        let response = app.put_product(&key, "probe", probe.clone()).await;
        if response.status().is_success() {
            break;
        }
        assert!(resumed.elapsed() < Duration::from_secs(60), "writes did not resume: {}", response.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    let (answered, failed_lookups) = reader.await.unwrap();

    assert!(failed_lookups.is_empty(), "lookups failed during the outage: {failed_lookups:?}");
    assert!(answered > 100, "lookups kept running ({answered})");
    assert!(writes.wrong.is_empty(), "writes answered other than 2xx or 503 unavailable: {:?}", writes.wrong);
    assert!(writes.unavailable > 0, "the outage was seen by writers");

    // Nothing acknowledged is lost, and the engine caught up on everything stored.
    tokio::time::timeout(Duration::from_secs(60), app.engine.settled()).await.expect("repricing settles");
    let merchant: pricing::domain::MerchantId = merchant.parse().unwrap();
    let chain = app.store.chain(merchant, 0, 1_000_000).await.unwrap();
    for (sku, acknowledged) in &writes.acknowledged {
        let product = app.call(Method::GET, &format!("/v1/products/{sku}"), Some(&key), None).await;
        let cost = product.json::<Value>().await.unwrap()["cost_minor"].as_i64().unwrap();
        let later = writes.unanswered.get(sku).cloned().unwrap_or_default();
        assert!(cost == *acknowledged || later.contains(&cost), "{sku}: cost {cost}, acknowledged {acknowledged}");
        let last_rule = chain
            .iter()
            .rev()
            .find(|d| d.sku == *sku && d.rule_version.is_some())
            .map(|d| serde_json::from_str::<Value>(&d.record).unwrap())
            .unwrap();
        assert_eq!(last_rule["inputs"]["cost_minor"], cost, "{sku}'s last rule decision saw its last cost");
    }
    assert_eq!(verification(&app, &key).await["intact"], true);
}
