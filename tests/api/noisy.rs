//! A hostile tenant cannot hurt another: while merchant H floods dry runs of a rule that spins
//! until its fuel runs out (with a small instance pool), merchant G's repricing decisions are
//! all recorded on its rule's own merits, none failed for want of an instance. H's excess
//! requests are refused with `429` in the API's error shape, with the limit in `details`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::wat_rules::rule;
use crate::common::{Backend, fresh_database};
use crate::helpers::{expect_status, product, spawn_app_with, test_settings};
use crate::pipeline::activate;

#[tokio::test]
async fn a_tenant_flooding_dry_runs_of_a_spinning_rule_leaves_another_tenants_decisions_intact() {
    let db = fresh_database(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.sandbox.instance_pool = 3;
    settings.pricing.workers = 1;
    let app = Arc::new(spawn_app_with(settings, db).await);
    let (_, hostile) = app.merchant_with_key(&["merchant"]).await;
    let (_, good) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    for i in 0..20 {
        app.put_product(&good, &format!("g-{i}"), product("EUR", 1000 + i, 1999)).await;
    }
    let spinning = app.rule_version(&hostile, rule("(loop $l (br $l)) (unreachable)", "")).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (answered, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flooders: Vec<_> = (0..6)
        .map(|_| {
            let (app, hostile, stop) = (app.clone(), hostile.clone(), stop.clone());
            let (answered, refused) = (answered.clone(), refused.clone());
            tokio::spawn(async move {
                let body = json!({"contexts": [{"sku": "x", "currency": "EUR", "cost_minor": 1, "current_price_minor": 2,
                                                "base_price_minor": 2, "now": "2026-12-01T00:00:00Z"}]});
                for _ in 0..2_000 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let response = app.dry_run(&hostile, spinning, body.clone()).await;
                    match response.status() {
                        StatusCode::OK => answered.fetch_add(1, Ordering::SeqCst),
                        StatusCode::TOO_MANY_REQUESTS => {
                            let error: Value = response.json().await.unwrap();
                            assert_eq!(error["error"]["code"], "too_many_requests");
                            assert!(error["error"]["details"]["limit"].as_u64().unwrap() >= 1, "{error}");
                            refused.fetch_add(1, Ordering::SeqCst)
                        }
                        other => panic!("a dry run answered {other}: {}", response.text().await.unwrap()),
                    };
                }
            })
        })
        .collect();

    // Meanwhile G activates its rule and changes every product twice.
    activate(&app, &good, "cost-plus", json!({"margin_bps": 1000})).await;
    for round in 0..2 {
        for i in 0..20 {
            let response =
                app.put_product(&good, &format!("g-{i}"), product("EUR", 2000 + round * 100 + i, 1999)).await;
            assert!(response.status().is_success());
        }
    }
    app.engine.settled().await;
    stop.store(true, Ordering::SeqCst);
    for flooder in flooders {
        flooder.await.unwrap();
    }
    assert!(answered.load(Ordering::SeqCst) > 0 && refused.load(Ordering::SeqCst) > 0, "the flood ran into its limit");

    let feed = app.call(Method::GET, "/v1/decisions?limit=1000", Some(&good), None).await;
    let feed = expect_status(feed, StatusCode::OK).await;
    let by_rule: Vec<&Value> =
        feed["items"].as_array().unwrap().iter().filter(|d| d["rule_version"].is_i64()).collect();
    assert!(by_rule.len() >= 20, "G's products were repriced: {} decisions", by_rule.len());
    for decision in &by_rule {
        assert_ne!(decision["outcome"], "failed", "{decision}");
    }
    for i in 0..20 {
        let sku = format!("g-{i}");
        let price = app.call(Method::GET, &format!("/v1/prices/{sku}"), Some(&good), None).await;
        let price = expect_status(price, StatusCode::OK).await;
        let newest = by_rule.iter().find(|d| d["sku"] == sku.as_str()).unwrap();
        assert_eq!(newest["record"]["inputs"]["cost_minor"], 2100 + i, "{sku} was decided on its last cost");
        assert_eq!(price["price_minor"], newest["new_price_minor"], "{sku}: the price in force is the rule's");
    }
}
