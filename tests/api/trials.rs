//! Shadows and backtests over HTTP: a version that undercuts by 2 rides beside the live one
//! (undercutting by 1) on a real signal feed, its report matching the decisions recorded; a
//! backtest over the same decisions gives the same report; a spinning shadow leaves every
//! live decision as it would have been; a shadow's version is activated from it.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Backend;
use crate::common::rules::built_rule;
use crate::helpers::{TestApp, expect_error, expect_status, spawn_app};

const SKUS: usize = 12;

async fn call(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>, status: StatusCode) -> Value {
    expect_status(app.call(method, path, Some(key), body).await, status).await
}

/// A stock policy as a new version with `params`; returns its number.
async fn stock_version(app: &TestApp, key: &str, name: &str, params: Value) -> i64 {
    let created = expect_status(app.use_stock(key, name).await, StatusCode::CREATED).await;
    let version = created["version"].as_i64().unwrap();
    call(app, key, Method::PUT, &format!("/v1/rules/{version}/params"), Some(params), StatusCode::OK).await;
    version
}

/// One competitor observation per SKU, at `price + i`.
async fn feed(app: &TestApp, key: &str, round: usize, price: i64) {
    let observed = chrono::Utc::now().to_rfc3339();
    let observations: Vec<Value> = (0..SKUS)
        .map(|i| {
            json!({"id": format!("r{round}-{i}"), "competitor": "rival", "sku": format!("sku-{i}"),
                   "price_minor": price + i as i64, "currency": "EUR", "in_stock": true, "observed_at": observed})
        })
        .collect();
    call(
        app,
        key,
        Method::POST,
        "/v1/signals/competitor-prices",
        Some(json!({"observations": observations})),
        StatusCode::OK,
    )
    .await;
}

/// The live rule decisions of `version` after `after_seq`.
async fn live_decisions(app: &TestApp, key: &str, version: i64, after_seq: i64) -> Vec<Value> {
    let page =
        call(app, key, Method::GET, &format!("/v1/decisions?rule_version={version}&limit=1000"), None, StatusCode::OK)
            .await;
    page["items"].as_array().unwrap().iter().filter(|d| d["seq"].as_i64().unwrap() > after_seq).cloned().collect()
}

async fn last_seq(app: &TestApp, key: &str) -> i64 {
    let page = call(app, key, Method::GET, "/v1/decisions?limit=1", None, StatusCode::OK).await;
    page["items"][0]["seq"].as_i64().unwrap_or(0)
}

/// Waits (at most a minute) until the trial at `path` satisfies `done`.
async fn wait_for(app: &TestApp, key: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let trial = call(app, key, Method::GET, path, None, StatusCode::OK).await;
        if done(&trial) {
            return trial;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: {trial}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A merchant of [`SKUS`] products with competitor-match (undercut by 1) uploaded; returns the
/// app, a key and the version.
async fn catalogue_undercut_by_one() -> (TestApp, String, i64) {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "feed", "checkout"]).await;
    for i in 0..SKUS {
        let body = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 2500});
        expect_status(app.put_product(&key, &format!("sku-{i}"), body).await, StatusCode::CREATED).await;
    }
    let live = stock_version(&app, &key, "competitor-match", json!({"undercut_minor": 1})).await;
    (app, key, live)
}

#[tokio::test]
async fn a_shadow_reports_on_live_traffic_and_a_backtest_of_the_same_decisions_agrees() {
    let (app, key, live) = catalogue_undercut_by_one().await;
    let candidate = stock_version(&app, &key, "competitor-position", json!({"position": 1, "gap_minor": 2})).await;
    call(&app, &key, Method::POST, &format!("/v1/rules/{live}/activate"), None, StatusCode::OK).await;
    feed(&app, &key, 0, 1900).await;
    app.engine.settled().await;

    let before = last_seq(&app, &key).await;
    let shadow =
        call(&app, &key, Method::POST, &format!("/v1/rules/{candidate}/shadow"), None, StatusCode::CREATED).await;
    let id = shadow["id"].as_i64().unwrap();
    assert_eq!((shadow["state"].as_str(), shadow["report"]["compared"].as_i64()), (Some("running"), Some(0)));
    // One shadow at a time.
    let again = app.call(Method::POST, &format!("/v1/rules/{candidate}/shadow"), Some(&key), None).await;
    expect_error(again, StatusCode::CONFLICT, "trial_running").await;

    for round in 1..=3 {
        feed(&app, &key, round, 1800 - 50 * round as i64).await;
        app.engine.settled().await;
    }
    let recorded = live_decisions(&app, &key, live, before).await;
    assert_eq!(recorded.len(), 3 * SKUS, "one live decision per SKU and round");
    let path = format!("/v1/shadows/{id}");
    let seen = wait_for(&app, &key, &path, "the shadow compares every live decision", |t| {
        t["report"]["compared"].as_u64() == Some(recorded.len() as u64)
    })
    .await;
    let report = &seen["report"];
    assert_eq!(seen["skipped"], 0);
    // Undercutting by 2 instead of 1 never agrees, and is one cent cheaper every time.
    assert_eq!(report["agreed"], 0);
    let largest = report["largest"].as_array().unwrap();
    assert!(!largest.is_empty());
    for c in largest {
        assert_eq!(
            c["candidate"]["price_minor"].as_i64().unwrap(),
            c["live"]["price_minor"].as_i64().unwrap() - 1,
            "{c}"
        );
        assert!(c["live"]["explanation"].as_str().unwrap().contains("under rival"), "{c}");
        assert!(c["candidate"]["explanation"].as_str().unwrap().contains("position 1"), "{c}");
    }
    let margin = &report["margin"][0];
    assert_eq!(margin["change_minor"], -(recorded.len() as i64), "one cent less margin per decision");
    // The live prices are the live rule's: the shadow moved none.
    let price = call(&app, &key, Method::GET, "/v1/prices/sku-0", None, StatusCode::OK).await;
    assert_eq!(price["price_minor"], 1649, "rival at 1650, undercut by 1");

    let stopped = call(&app, &key, Method::POST, &format!("{path}/stop"), None, StatusCode::OK).await;
    assert_eq!(stopped["state"], "stopped");
    assert_eq!(stopped["report"], seen["report"]);

    // A backtest over the same decisions (the shadow's time span) gives the same report.
    let range = json!({"from": stopped["started_at"], "to": stopped["ended_at"]});
    let backtest =
        call(&app, &key, Method::POST, &format!("/v1/rules/{candidate}/backtest"), Some(range), StatusCode::ACCEPTED)
            .await;
    let path = format!("/v1/backtests/{}", backtest["id"]);
    let done = wait_for(&app, &key, &path, "the backtest completes", |t| t["state"] == "completed").await;
    assert_eq!(done["total"], recorded.len());
    assert_eq!(done["done"], recorded.len());
    assert_eq!(done["report"], stopped["report"], "the backtest's report is the shadow's");
    let cancel = app.call(Method::DELETE, &path, Some(&key), None).await;
    expect_error(cancel, StatusCode::CONFLICT, "trial_not_running").await;

    // Activating from a shadow makes its version live and stops it.
    let shadow =
        call(&app, &key, Method::POST, &format!("/v1/rules/{candidate}/shadow"), None, StatusCode::CREATED).await;
    let activated =
        call(&app, &key, Method::POST, &format!("/v1/shadows/{}/activate", shadow["id"]), None, StatusCode::OK).await;
    assert_eq!(activated["state"], "stopped");
    app.engine.settled().await;
    let price = call(&app, &key, Method::GET, "/v1/prices/sku-0", None, StatusCode::OK).await;
    assert_eq!(price["price_minor"], 1648, "now undercutting by 2");
}

#[tokio::test]
async fn a_spinning_shadow_leaves_every_live_decision_as_it_would_have_been() {
    let (app, key, live) = catalogue_undercut_by_one().await;
    call(&app, &key, Method::POST, &format!("/v1/rules/{live}/activate"), None, StatusCode::OK).await;
    let hostile = app.rule_version(&key, built_rule("hostile")).await;
    let params = json!({"attack": "spin"});
    call(&app, &key, Method::PUT, &format!("/v1/rules/{hostile}/params"), Some(params), StatusCode::OK).await;
    app.engine.settled().await;

    let before = last_seq(&app, &key).await;
    let shadow =
        call(&app, &key, Method::POST, &format!("/v1/rules/{hostile}/shadow"), None, StatusCode::CREATED).await;
    for round in 1..=3 {
        feed(&app, &key, round, 1800 - 50 * round as i64).await;
        app.engine.settled().await;
        // Every live decision of the round is the live rule's, made and correct.
        for i in 0..SKUS {
            let price = call(&app, &key, Method::GET, &format!("/v1/prices/sku-{i}"), None, StatusCode::OK).await;
            assert_eq!(price["price_minor"], 1800 - 50 * round as i64 + i as i64 - 1, "round {round}, sku-{i}");
        }
    }
    let recorded = live_decisions(&app, &key, live, before).await;
    assert_eq!(recorded.len(), 3 * SKUS);
    assert!(recorded.iter().all(|d| d["outcome"] == "changed"), "no live decision failed");
    let path = format!("/v1/shadows/{}", shadow["id"]);
    let seen = wait_for(&app, &key, &path, "the shadow looks at every live decision or skips it", |t| {
        t["report"]["compared"].as_i64().unwrap() + t["skipped"].as_i64().unwrap() == recorded.len() as i64
    })
    .await;
    let compared = seen["report"]["compared"].as_u64().unwrap();
    assert!(compared > 0, "{seen}");
    // A spin is stopped by fuel (deterministic) or, on a loaded machine, by the deadline.
    let failures = seen["report"]["candidate_failures"].as_object().unwrap();
    let stopped: u64 = ["out_of_fuel", "timeout"].iter().filter_map(|k| failures.get(*k)?.as_u64()).sum();
    assert_eq!(stopped, compared, "every shadow evaluation spun out: {seen}");
    assert_eq!(seen["report"]["live_failures"], json!({}));
}
