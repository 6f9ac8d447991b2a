//! Concurrency invariants: products are changed, deleted and re-created while the merchant's
//! catalogue reprices again and again (parameter changes start sweeps), from several clients at
//! once. Afterwards:
//! - every price in force lies within its product's floor and ceiling, and within the money range;
//! - a deleted product has no price, in the cache or in the store, and the price at any instant
//!   after its deletion (before a re-creation) is not found;
//! - the history agrees with the prices: each record's old price is the price in force before it,
//!   the last change of each SKU is its price in force, and nothing is decided about a deleted
//!   product before it is created again;
//! - the last rule decision of every product was made on its last cost;
//! - the chain verifies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pricing::domain::MerchantId;
use pricing::domain::{Outcome, Trigger};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::Backend;
use crate::helpers::{TestApp, spawn_app_with, test_settings};
use crate::pipeline::{activate, verification};

const CATALOGUE: usize = 400;
const CHURNED: usize = 40;
const CLIENTS: usize = 4;
/// Each client changes products until the sweeps are done, at most this many times.
const MAX_OPS_PER_CLIENT: usize = 400;
const SWEEPS: i64 = 5;

/// What a client was last told about a SKU it owns: the cost and bounds of its product, or
/// deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Product { cost: i64, floor: i64, ceiling: i64 },
    Deleted,
}

fn body(cost: i64, floor: i64, ceiling: i64) -> Value {
    json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": (floor + ceiling) / 2,
           "guardrails": {"floor_minor": floor, "ceiling_minor": ceiling}})
}

/// Sends one request, retrying a `503` (contention is the service's to report, the client's to
/// retry); the final status.
async fn send(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> StatusCode {
    for _ in 0..20 {
        let status = app.call(method.clone(), path, Some(key), body.clone()).await.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{method} {path} was unavailable 20 times in a row");
}

async fn churn(app: &TestApp, key: &str, skus: Vec<String>, seed: u64, done: &AtomicBool) -> HashMap<String, Known> {
    let mut dice = seed | 1;
    let mut roll = |below: u64| {
        dice ^= dice << 13;
        dice ^= dice >> 7;
        dice ^= dice << 17;
        dice % below
    };
    let mut known: HashMap<String, Known> =
        skus.iter().map(|sku| (sku.clone(), Known::Product { cost: 1000, floor: 500, ceiling: 5000 })).collect();
    for _ in 0..MAX_OPS_PER_CLIENT {
        if done.load(Ordering::Relaxed) {
            break;
        }
        let sku = &skus[roll(skus.len() as u64) as usize];
        let path = format!("/v1/products/{sku}");
        if roll(3) == 0 {
            let status = send(app, Method::DELETE, &path, key, None).await;
            assert!(status == StatusCode::NO_CONTENT || status == StatusCode::NOT_FOUND, "DELETE {sku}: {status}");
            known.insert(sku.clone(), Known::Deleted);
        } else {
            // A new cost and, often, bounds that cut through the price in force.
            let cost = 500 + roll(3000) as i64;
            let floor = 200 + roll(1500) as i64;
            let ceiling = floor + 1 + roll(2500) as i64;
            let status = send(app, Method::PUT, &path, key, Some(body(cost, floor, ceiling))).await;
            assert!(status.is_success(), "PUT {sku}: {status}");
            known.insert(sku.clone(), Known::Product { cost, floor, ceiling });
        }
    }
    known
}

async fn prices_history_and_products_agree_under_churn(backend: Backend) {
    let db = crate::common::fresh_database(backend).await;
    let mut settings = test_settings(&db);
    // Small pages: a sweep is many batches, so changes land between and inside them.
    settings.pricing.batch_size = 25;
    settings.store.max_connections = 8;
    let app = spawn_app_with(settings, db).await;
    let (merchant, key) = app.merchant_with_key(&["merchant", "auditor", "checkout"]).await;
    let skus: Vec<String> = (0..CATALOGUE).map(|i| format!("sku-{i:04}")).collect();
    for chunk in skus.chunks(50) {
        let puts = chunk.iter().map(|sku| {
            let path = format!("/v1/products/{sku}");
            let (app, key) = (&app, &key);
            async move { send(app, Method::PUT, &path, key, Some(body(1000, 500, 5000))).await }
        });
        for status in futures_util::future::join_all(puts).await {
            assert!(status.is_success());
        }
    }
    let version = activate(&app, &key, "cost-plus", json!({"margin_bps": 2000})).await;

    // The churned SKUs are split between the clients, so each knows its SKUs' last state.
    let owned: Vec<Vec<String>> =
        (0..CLIENTS).map(|c| skus[..CHURNED].iter().skip(c).step_by(CLIENTS).cloned().collect()).collect();
    let started = Instant::now();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let done = AtomicBool::new(false);
    let clients = owned.into_iter().enumerate().map(|(c, skus)| churn(&app, &key, skus, seed + c as u64, &done));
    let sweeps = async {
        for margin in 1..=SWEEPS {
            let path = format!("/v1/rules/{version}/params");
            let status = send(&app, Method::PUT, &path, &key, Some(json!({"margin_bps": 2000 + margin * 500}))).await;
            assert_eq!(status, StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        // The churn goes on until the sweeps have visibly reached half the catalogue (a lane
        // busy with targeted work must still move its sweep on), or 30 s.
        let merchant: MerchantId = merchant.parse().unwrap();
        for _ in 0..300 {
            let chain = app.store.chain(merchant, 0, 1_000_000).await.unwrap();
            if chain.iter().filter(|d| d.trigger == Trigger::ParamsChanged).count() >= CATALOGUE / 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        done.store(true, Ordering::Relaxed);
    };
    let (known, ()) = tokio::join!(futures_util::future::join_all(clients), sweeps);
    let known: HashMap<String, Known> = known.into_iter().flatten().collect();
    app.engine.settled().await;
    assert!(started.elapsed() < Duration::from_secs(240), "the churn is bounded in time too");

    let merchant_id: MerchantId = merchant.parse().unwrap();
    let chain = app.store.chain(merchant_id, 0, 1_000_000).await.unwrap();
    let final_margin = 2000 + SWEEPS * 500;
    let seed_note = format!("(seed {seed})");

    // The history, SKU by SKU, agrees with itself.
    let mut in_force: HashMap<&str, Option<i64>> = HashMap::new();
    let mut deleted_at: HashMap<&str, chrono::DateTime<chrono::Utc>> = HashMap::new();
    let mut after_deletion = Vec::new();
    let mut last_rule_record: HashMap<&str, Value> = HashMap::new();
    for decision in &chain {
        let sku = decision.sku.as_str();
        let before = in_force.get(sku).copied().flatten();
        assert_eq!(
            decision.old_price_minor, before,
            "record {} ({sku}, {:?}) starts from the price in force before it {seed_note}",
            decision.seq, decision.trigger
        );
        if let Some(at) = deleted_at.remove(sku) {
            assert_eq!(
                decision.trigger,
                Trigger::ProductCreated,
                "record {}: after {sku} was deleted only its re-creation is recorded {seed_note}",
                decision.seq
            );
            after_deletion.push((sku, at, Some(decision.created_at)));
        }
        if decision.trigger == Trigger::ProductDeleted {
            deleted_at.insert(sku, decision.created_at);
        }
        if decision.outcome == Outcome::Changed {
            in_force.insert(sku, decision.new_price_minor);
        }
        if decision.rule_version.is_some() {
            last_rule_record.insert(sku, serde_json::from_str(&decision.record).unwrap());
        }
    }
    let recreated = after_deletion.len();
    after_deletion.extend(deleted_at.iter().map(|(sku, at)| (*sku, *at, None)));
    // The run raced what it means to race: deletions, re-creations and several sweeps.
    let swept: Vec<i64> = chain.iter().filter(|d| d.trigger == Trigger::ParamsChanged).map(|d| d.seq).collect();
    assert!(recreated > 0 && after_deletion.len() > recreated, "deleted and re-created {seed_note}");
    assert!(swept.len() > CATALOGUE / 2, "{} sweep decisions {seed_note}", swept.len());
    let (first, last) = (swept[0], swept[swept.len() - 1]);
    let churn_during_sweeps = chain
        .iter()
        .filter(|d| d.seq > first && d.seq < last)
        .filter(|d| matches!(d.trigger, Trigger::ProductDeleted | Trigger::ProductCreated | Trigger::BasePriceChanged))
        .count();
    if std::env::var_os("RACE_DEBUG").is_some() {
        let mut runs: Vec<(String, usize)> = Vec::new();
        for d in &chain {
            let name = format!("{:?}", d.trigger);
            match runs.last_mut() {
                Some((last, n)) if *last == name => *n += 1,
                _ => runs.push((name, 1)),
            }
        }
        eprintln!("{runs:?}");
    }
    assert!(churn_during_sweeps > 0, "product changes landed while the catalogue repriced {seed_note}");

    for sku in &skus {
        let state = known.get(sku).copied().unwrap_or(Known::Product { cost: 1000, floor: 500, ceiling: 5000 });
        let served = app.call(Method::GET, &format!("/v1/prices/{sku}"), Some(&key), None).await;
        let stored = app.store.current_price(merchant_id, &pricing::domain::Sku::parse(sku).unwrap()).await.unwrap();
        match state {
            Known::Deleted => {
                assert_eq!(served.status(), StatusCode::NOT_FOUND, "{sku} was deleted {seed_note}");
                assert!(stored.is_none(), "{sku} was deleted, yet the store prices it {seed_note}");
                assert_eq!(in_force.get(sku.as_str()).copied().flatten(), None, "{sku}'s history ends deleted");
            }
            Known::Product { cost, floor, ceiling } => {
                let price = served.json::<Value>().await.unwrap()["price_minor"].as_i64().unwrap();
                assert!((floor..=ceiling).contains(&price), "{sku}: {price} outside {floor}..={ceiling} {seed_note}");
                assert_eq!(stored.map(|p| p.price.minor()), Some(price), "{sku}: cache and store agree");
                assert_eq!(in_force.get(sku.as_str()).copied().flatten(), Some(price), "{sku}: history ends here");
                let record = &last_rule_record[sku.as_str()];
                assert_eq!(record["inputs"]["cost_minor"], cost, "{sku}'s last rule decision saw its last cost");
                assert_eq!(record["params"]["margin_bps"], final_margin, "{sku}: the last parameters");
            }
        }
    }

    // No price at an instant after a deletion, until the product is created again.
    for (sku, deleted, recreated) in after_deletion {
        let at = match recreated {
            Some(next) => deleted + (next - deleted) / 2,
            None => deleted + chrono::Duration::microseconds(1),
        };
        if recreated.is_some_and(|next| next - deleted < chrono::Duration::microseconds(2)) {
            continue;
        }
        let t = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B");
        let response = app.call(Method::GET, &format!("/v1/prices/{sku}/at?t={t}"), Some(&key), None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{sku} at {t}, after its deletion {seed_note}");
    }
    assert_eq!(verification(&app, &key).await["intact"], true);
    app.stop().await;
}

both_backends! {
    churn_during_reprice => prices_history_and_products_agree_under_churn;
}

/// Requests cut off by a very short request timeout, some of them after their commit: the work
/// after a commit (the price cache) still completes, so checkout agrees with the store at once,
/// without waiting for the periodic reconciliation (turned off here).
async fn a_request_timeout_after_the_commit_still_updates_the_cache(backend: Backend) {
    let db = crate::common::fresh_database(backend).await;
    let mut settings = test_settings(&db);
    settings.http.request_timeout_ms = 15;
    settings.cache.reconcile_secs = 0;
    settings.http.workers = 2;
    let app = spawn_app_with(settings, db).await;
    let (merchant, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    let skus: Vec<String> = (0..30).map(|i| format!("sku-{i:02}")).collect();
    let mut timed_out = 0;
    for round in 0..8 {
        let calls = skus.iter().enumerate().map(|(i, sku)| {
            let path = format!("/v1/products/{sku}");
            let (app, key) = (&app, &key);
            async move {
                let response = if (i + round) % 3 == 0 {
                    app.call(Method::DELETE, &path, Some(key), None).await
                } else {
                    app.call(Method::PUT, &path, Some(key), Some(body(1000 + round as i64, 500, 5000))).await
                };
                response.status()
            }
        });
        timed_out += futures_util::future::join_all(calls)
            .await
            .into_iter()
            .filter(|s| *s == StatusCode::SERVICE_UNAVAILABLE || *s == StatusCode::GATEWAY_TIMEOUT)
            .count();
    }
    assert!(timed_out > 0, "the timeout cut some requests off");
    // Post-commit work may still be finishing; it never needs the reconciliation.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let merchant: MerchantId = merchant.parse().unwrap();
    for sku in &skus {
        let stored = app.store.current_price(merchant, &pricing::domain::Sku::parse(sku).unwrap()).await.unwrap();
        let served = app.call(Method::GET, &format!("/v1/prices/{sku}"), Some(&key), None).await;
        match stored {
            Some(price) => {
                assert_eq!(served.status(), StatusCode::OK, "{sku} is stored, so checkout must know it");
                let served = served.json::<Value>().await.unwrap()["price_minor"].as_i64();
                assert_eq!(served, Some(price.price.minor()), "{sku}");
            }
            None => assert_eq!(served.status(), StatusCode::NOT_FOUND, "{sku} was deleted, yet checkout prices it"),
        }
    }
    app.stop().await;
}

both_backends! {
    timeout_after_commit => a_request_timeout_after_the_commit_still_updates_the_cache;
}
