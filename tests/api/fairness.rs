//! No merchant waits behind another's catalogue: while merchant A's large catalogue reprices,
//! a targeted change of merchant B (and one of A itself) is decided after a bounded amount of
//! A's work, counted in evaluations, not in time.

use pricing::domain::{MerchantId, ProductDraft, Sku};
use pricing::write::{Gate, catalogue};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::common::rules::built_rule;
use crate::common::{Backend, fresh_database};
use crate::helpers::{TestApp, expect_status, spawn_app_with, test_settings};

const BATCH: u32 = 50;
const WORKERS: usize = 1;
const CATALOGUE: usize = 4_000;
/// Pages of A that may be done between B's request and its visible price: those waiting for
/// or on the workers (`workers + 2`), and the page writes that B's own transactions (its
/// change, its claim, its decision) each queue behind, with the evaluations those writes free
/// the sweep to start, with room to spare for a slow machine. Still a small part of the 80
/// pages of A's catalogue: what matters is that B never waits for the whole of it.
const PAGES_AHEAD: u64 = 12;

async fn rule_for(app: &TestApp, key: &str, margin: i64) -> i64 {
    let version = app.rule_version(key, built_rule("cost-plus")).await;
    let path = format!("/v1/rules/{version}/params");
    let params = json!({"margin_bps": margin});
    expect_status(app.call(Method::PUT, &path, Some(key), Some(params)).await, StatusCode::OK).await;
    version
}

async fn price(app: &TestApp, key: &str, sku: &str) -> i64 {
    let body =
        expect_status(app.call(Method::GET, &format!("/v1/prices/{sku}"), Some(key), None).await, StatusCode::OK).await;
    body["price_minor"].as_i64().unwrap()
}

/// Puts a change and counts the evaluations the engine ran until its price was visible.
async fn evaluations_until_visible(app: &TestApp, key: &str, sku: &str, cost: i64, expected: i64) -> u64 {
    let before = app.engine.evaluations();
    let body = json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": 1999});
    expect_status(app.put_product(key, sku, body).await, StatusCode::OK).await;
    for _ in 0..20_000 {
        if price(app, key, sku).await == expected {
            return app.engine.evaluations() - before;
        }
        tokio::task::yield_now().await;
    }
    panic!("{sku} never reached {expected}");
}

async fn targeted_work_waits_for_a_bounded_part_of_a_sweep(backend: Backend) {
    let db = fresh_database(backend).await;
    let mut settings = test_settings(&db);
    settings.pricing.batch_size = BATCH;
    settings.pricing.workers = WORKERS;
    let app = spawn_app_with(settings, db).await;
    let (a, a_key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    let (_, b_key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    let a_id: MerchantId = a.parse().unwrap();
    for i in 0..CATALOGUE {
        let sku = Sku::parse(&format!("a-{i:05}")).unwrap();
        let draft = ProductDraft::parse(sku, "EUR", 1000, 1999, Default::default(), Default::default()).unwrap();
        catalogue::put(&app.store, a_id, &draft, &Gate::open()).await.unwrap();
    }
    let body = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999});
    expect_status(app.put_product(&b_key, "b-1", body).await, StatusCode::CREATED).await;
    let b_version = rule_for(&app, &b_key, 0).await;
    let path = format!("/v1/rules/{b_version}/activate");
    expect_status(app.call(Method::POST, &path, Some(&b_key), None).await, StatusCode::OK).await;
    app.engine.settled().await;

    // A's whole catalogue reprices (cost 10.00 + 50 % = 15.00).
    let a_version = rule_for(&app, &a_key, 5000).await;
    let started = app.engine.evaluations();
    let path = format!("/v1/rules/{a_version}/activate");
    expect_status(app.call(Method::POST, &path, Some(&a_key), None).await, StatusCode::OK).await;
    while app.engine.evaluations() - started < 2 * BATCH as u64 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }

    // B's change, then A's own targeted change, each decided within a few of A's pages.
    let bound = PAGES_AHEAD * BATCH as u64 + 1;
    let for_b = evaluations_until_visible(&app, &b_key, "b-1", 1100, 1100).await;
    let for_a = evaluations_until_visible(&app, &a_key, "a-03999", 2000, 3000).await;
    let during_sweep = app.engine.evaluations() - started;
    println!(
        "{backend:?}: B waited {for_b}, A's own change {for_a} evaluations; sweep at {during_sweep} of {CATALOGUE}"
    );
    assert!(for_b <= bound, "B's change waited for {for_b} evaluations (bound {bound})");
    assert!(for_a <= bound, "A's own targeted change waited for {for_a} evaluations (bound {bound})");
    assert!(
        during_sweep < CATALOGUE as u64,
        "the sweep was still running when both changes were visible ({during_sweep} of {CATALOGUE})"
    );
    app.engine.settled().await;
    assert_eq!(price(&app, &a_key, "a-00000").await, 1500, "the sweep finished");
    assert_eq!(price(&app, &a_key, "a-03999").await, 3000, "the sweep kept the targeted change's price");
}

both_backends! {
    fairness => targeted_work_waits_for_a_bounded_part_of_a_sweep;
}
