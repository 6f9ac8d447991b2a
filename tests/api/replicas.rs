//! Two replicas on one PostgreSQL database: a price written by one reaches the other's cache
//! through LISTEN/NOTIFY, a lost listener re-warms, and a merchant is repriced by one replica
//! at a time without losing the other's signals.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::{Backend, TestDb, fresh_database};
use crate::helpers::{TestApp, expect_status, spawn_app_with, test_settings};
use crate::pipeline::{activate, put, verification};

/// Two replicas (A, B) on one fresh database, and a key with every merchant role.
async fn two_replicas() -> (TestApp, TestApp, String, String) {
    let db = fresh_database(Backend::Postgres).await;
    let a = spawn_app_with(test_settings(&db), db.clone()).await;
    let b = spawn_app_with(test_settings(&db), db).await;
    let (merchant, key) = a.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    (a, b, merchant, key)
}

/// The price and version a replica's checkout lookup answers, or `None` for a 404.
async fn lookup(app: &TestApp, key: &str, sku: &str) -> Option<(i64, i64)> {
    let response = app.call(Method::GET, &format!("/v1/prices/{sku}"), Some(key), None).await;
    if response.status() == StatusCode::NOT_FOUND {
        return None;
    }
    let body = expect_status(response, StatusCode::OK).await;
    Some((body["price_minor"].as_i64().unwrap(), body["version"].as_i64().unwrap()))
}

/// Polls until `probe` holds (within 5 s); returns how long it took.
async fn eventually<F, Fut>(what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !probe().await {
        assert!(start.elapsed() < Duration::from_secs(5), "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

fn tee(cost: i64, base: i64) -> Value {
    json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": base})
}

#[tokio::test]
async fn a_price_written_on_one_replica_reaches_the_others_lookups() {
    let (a, b, _, key) = two_replicas().await;
    put(&a, &key, "tee", tee(1200, 1999)).await;
    eventually("B sees the new product", || async { lookup(&b, &key, "tee").await == Some((1999, 1)) }).await;

    // Notify-to-visible: from A acknowledging a base price change to B's lookup showing it.
    let mut latencies = Vec::new();
    for i in 1..=20 {
        put(&a, &key, "tee", tee(1200, 1999 + i)).await;
        let want = Some((1999 + i, 1 + i));
        latencies.push(eventually("B sees the change", || async { lookup(&b, &key, "tee").await == want }).await);
    }
    latencies.sort();
    eprintln!("replica fan-out, A's acknowledgement to B's lookup: p50 {:?}, max {:?}", latencies[10], latencies[19]);

    // A rule activated on A reprices there; B's checkout sees the rule's price.
    activate(&a, &key, "cost-plus", json!({"margin_bps": 2500, "ending": 99})).await;
    eventually("B sees the rule's price", || async { lookup(&b, &key, "tee").await.map(|p| p.0) == Some(1499) }).await;

    // A cost change on B is repriced (by whichever replica holds the merchant) and A sees it.
    put(&b, &key, "tee", tee(2000, 2019)).await;
    eventually("A sees B's repricing", || async { lookup(&a, &key, "tee").await.map(|p| p.0) == Some(2499) }).await;
    b.engine.settled().await;
    a.engine.settled().await;
    assert_eq!(lookup(&a, &key, "tee").await, lookup(&b, &key, "tee").await);

    // A product deleted on A is gone from B's lookups.
    expect_status(a.call(Method::DELETE, "/v1/products/tee", Some(&key), None).await, StatusCode::NO_CONTENT).await;
    eventually("B forgets the deleted product", || async { lookup(&b, &key, "tee").await.is_none() }).await;

    // The prior-price setting changes no version; B re-reads the merchant anyway.
    put(&a, &key, "cap", tee(100, 5000)).await; // the rule takes it down to 0.99 at once
    a.engine.settled().await;
    expect_status(
        a.call(Method::PUT, "/v1/settings", Some(&key), Some(json!({"show_prior_price": true}))).await,
        StatusCode::OK,
    )
    .await;
    eventually("B shows the prior price", || async {
        let response = b.call(Method::GET, "/v1/prices/cap", Some(&key), None).await;
        response.json::<Value>().await.unwrap()["prior_price_minor"] == 5000
    })
    .await;
}

#[tokio::test]
async fn signals_to_both_replicas_end_in_one_price_and_one_intact_chain() {
    let (a, b, merchant, key) = two_replicas().await;
    put(&a, &key, "hot", tee(1000, 1999)).await;
    put(&a, &key, "cold", tee(500, 999)).await;
    activate(&a, &key, "cost-plus", json!({"margin_bps": 0})).await;
    eventually("B has the rule's price", || async { lookup(&b, &key, "hot").await == Some((1000, 2)) }).await;
    let before = a.engine.evaluations() + b.engine.evaluations();

    // Cost changes alternating between the replicas, 8 at a time; the last one is 1234.
    let costs: Vec<i64> = (1..=40).map(|i| 1000 + i).chain([1234]).collect();
    for wave in costs.chunks(8) {
        let puts = wave.iter().enumerate().map(|(i, cost)| {
            let replica = if i % 2 == 0 { &a } else { &b };
            replica.put_product(&key, "hot", tee(*cost, 1999))
        });
        for response in futures_util::future::join_all(puts).await {
            assert!(response.status().is_success());
        }
    }
    // Both replicas told at once to reprice the merchant: each queue coalesces its own burst.
    let burst = vec![pricing::domain::Sku::parse("cold").unwrap(); 500];
    for replica in [&a, &b] {
        replica.engine.request(merchant.parse().unwrap(), &burst, pricing::domain::Trigger::Demand).await.unwrap();
    }
    a.engine.settled().await;
    b.engine.settled().await;
    a.engine.settled().await;

    let evaluations = a.engine.evaluations() + b.engine.evaluations() - before;
    assert!(evaluations < 41 + 4, "{evaluations} evaluations for 41 changes and two bursts");
    eventually("both replicas agree on the last cost", || async {
        lookup(&a, &key, "hot").await.map(|p| p.0) == Some(1234)
            && lookup(&a, &key, "hot").await == lookup(&b, &key, "hot").await
    })
    .await;
    let hot = pricing::domain::Sku::parse("hot").unwrap();
    let stored = a.store.current_price(merchant.parse().unwrap(), &hot).await.unwrap().unwrap();
    assert_eq!(lookup(&b, &key, "hot").await, Some((stored.price.minor(), stored.version)));
    assert_eq!(verification(&a, &key).await["intact"], true);
    assert_eq!(verification(&b, &key).await["intact"], true);
}

#[tokio::test]
async fn work_claimed_by_another_replica_waits_for_its_claim_and_is_not_lost() {
    let (a, b, merchant, key) = two_replicas().await;
    put(&a, &key, "tee", tee(1000, 1999)).await;
    activate(&a, &key, "cost-plus", json!({"margin_bps": 0})).await;
    assert_eq!(lookup(&a, &key, "tee").await.map(|p| p.0), Some(1000));

    // Another replica has claimed the product's work, and then died: its claim runs out in 1 s.
    let mut other = sqlx::PgConnection::connect(&a.db.url).await.unwrap();
    let now = chrono::Utc::now().timestamp_micros();
    sqlx::query(
        "INSERT INTO reprice_intents (merchant_id, sku, trigger_kind, generation, requested_at, claim_token, claimed_until)
         VALUES ($1, 'tee', 'product_changed', 1, $2, 'a-replica-that-died', $3)",
    )
    .bind(&merchant)
    .bind(now)
    .bind(now + 1_000_000)
    .execute(&mut other)
    .await
    .unwrap();
    let evaluations = || a.engine.evaluations() + b.engine.evaluations();
    let before = evaluations();
    put(&a, &key, "tee", tee(1100, 1999)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(evaluations(), before, "no evaluation while another replica holds the work");
    assert_eq!(lookup(&a, &key, "tee").await.map(|p| p.0), Some(1000));

    // Once the claim has expired, one of the live replicas takes the work over, once.
    a.engine.settled().await;
    assert_eq!(evaluations(), before + 1);
    eventually("the claimed change was evaluated", || async {
        lookup(&a, &key, "tee").await.map(|p| p.0) == Some(1100)
    })
    .await;
}

#[tokio::test]
async fn a_replica_whose_listener_is_killed_rewarms_and_catches_up() {
    let (a, b, _, key) = two_replicas().await;
    put(&a, &key, "quiet", tee(100, 1999)).await;
    eventually("B sees the product", || async { lookup(&b, &key, "quiet").await.is_some() }).await;

    // A price changed behind the service's back sends no note: B keeps the old price...
    let db: &TestDb = &a.db;
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE current_prices SET price_minor = 1777, version = version + 1 WHERE sku = 'quiet'")
        .execute(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(lookup(&b, &key, "quiet").await, Some((1999, 1)));

    // ...until its listener connection is lost: then it re-reads every price in force.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()) AS k",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 2, "one listener per replica");
    eventually("B re-warms", || async { lookup(&b, &key, "quiet").await == Some((1777, 2)) }).await;

    // And it listens again: a later change on A reaches B.
    put(&a, &key, "later", tee(100, 555)).await;
    eventually("B hears A again", || async { lookup(&b, &key, "later").await == Some((555, 1)) }).await;
}
