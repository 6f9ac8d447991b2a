//! The example policies, built from source to wasm in this test run, uploaded over HTTP and
//! dry-run on contexts whose right answers were worked out by hand; and the hostile Rust
//! rule, whose every attack must end in its own error kind without touching a price.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Backend;
use crate::common::rules::built_rule;
use crate::helpers::{TestApp, expect_status, product, spawn_app};

const NOW: &str = "2026-11-25T12:00:00Z";

fn context(currency: &str, cost: i64, current: i64, extra: Value) -> Value {
    let mut ctx = json!({"sku": "p", "currency": currency, "cost_minor": cost, "current_price_minor": current,
                         "base_price_minor": current, "now": NOW});
    ctx.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    ctx
}

/// Uploads `rules/<name>`, sets its parameters, dry-runs the contexts; returns the results.
async fn run_policy(app: &TestApp, key: &str, name: &str, params: Value, contexts: Vec<Value>) -> Vec<Value> {
    let version = app.rule_version(key, built_rule(name)).await;
    let path = format!("/v1/rules/{version}/params");
    expect_status(app.call(Method::PUT, &path, Some(key), Some(params)).await, StatusCode::OK).await;
    let ran = expect_status(app.dry_run(key, version, json!({"contexts": contexts})).await, StatusCode::OK).await;
    ran["results"].as_array().unwrap().clone()
}

fn price(result: &Value) -> Option<i64> {
    assert!(result["error"].is_null(), "the rule failed: {result}");
    result["decision"]["price_minor"].as_i64()
}

#[tokio::test]
async fn each_example_policy_decides_as_worked_out_by_hand() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;

    // cost-plus: 1200 × 1.25 = 1500 → nearest x.99 is 14.99; ¥1500 × 1.3333 = 2000 → ¥1980.
    let results = run_policy(
        &app,
        &key,
        "cost-plus",
        json!({"margin_bps": 2500, "ending": 99}),
        vec![context("EUR", 1200, 1999, json!({}))],
    )
    .await;
    assert_eq!(price(&results[0]), Some(1499));
    let results = run_policy(
        &app,
        &key,
        "cost-plus",
        json!({"margin_bps": 3333, "ending": 980}),
        vec![context("JPY", 1500, 2500, json!({}))],
    )
    .await;
    assert_eq!(price(&results[0]), Some(1980));

    // competitor-match: the cheapest eligible offer is a at 1899 (b is out of stock, c is
    // three hours old with a two-hour window, d is stale): 1899 − 5 = 1894. Against 1250 the
    // margin floor wins: 1200 × 1.10 = 1320. With no offer: keep.
    let offers = json!({"competitors": [
        {"competitor": "a", "price_minor": 1899, "in_stock": true, "age_seconds": 600},
        {"competitor": "b", "price_minor": 1799, "in_stock": false, "age_seconds": 600},
        {"competitor": "c", "price_minor": 1850, "in_stock": true, "age_seconds": 10800},
        {"competitor": "d", "price_minor": 1820, "in_stock": true, "age_seconds": 60, "stale": true}
    ]});
    let cheap = json!({"competitors": [{"competitor": "a", "price_minor": 1250, "in_stock": true, "age_seconds": 60}]});
    let params = json!({"undercut_minor": 5, "max_age_hours": 2, "min_margin_bps": 1000});
    let results = run_policy(
        &app,
        &key,
        "competitor-match",
        params,
        vec![
            context("EUR", 1200, 1999, offers),
            context("EUR", 1200, 1999, cheap),
            context("EUR", 1200, 1999, json!({})),
        ],
    )
    .await;
    assert_eq!(price(&results[0]), Some(1894));
    assert_eq!(results[0]["stats"]["log"], "cheapest: a at 1899");
    assert_eq!(price(&results[1]), Some(1320));
    assert_eq!(price(&results[2]), None);

    // demand-based: 60 sold in a week against 100 in stock is fast: 2000 + 5 % = 2100; two
    // sales in 30 days with 500 in stock is slow: 2000 − 5 % = 1900; 10 a week against 100
    // (70 days of cover, 40 in 30 days) is normal.
    let results = run_policy(
        &app,
        &key,
        "demand-based",
        json!({}),
        vec![
            context(
                "EUR",
                1000,
                2000,
                json!({"demand": {"units_sold_7d": 60, "units_sold_30d": 200, "inventory": 100}}),
            ),
            context("EUR", 1000, 2000, json!({"demand": {"units_sold_7d": 0, "units_sold_30d": 2, "inventory": 500}})),
            context(
                "EUR",
                1000,
                2000,
                json!({"demand": {"units_sold_7d": 10, "units_sold_30d": 40, "inventory": 100}}),
            ),
        ],
    )
    .await;
    assert_eq!(price(&results[0]), Some(2100));
    assert_eq!(price(&results[1]), Some(1900));
    assert_eq!(price(&results[2]), None);

    // markdown: 8 days after the start with 7-day steps of 10 % is the second step: 20 % off
    // 100.00 is 80.00, rounded down to an x.99 ending: 79.99.
    let now_ms = chrono::DateTime::parse_from_rfc3339(NOW).unwrap().timestamp_millis();
    let start_ms = now_ms - 8 * 86_400_000 - 3_600_000;
    let params = json!({"start_ms": start_ms, "step_days": 7, "step_bps": 1000, "max_bps": 5000, "ending": 99});
    let results = run_policy(&app, &key, "markdown", params, vec![context("EUR", 3000, 10_000, json!({}))]).await;
    assert_eq!(price(&results[0]), Some(7999));
}

#[tokio::test]
async fn a_policy_gives_the_same_decision_and_fuel_on_every_run() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let offers =
        json!({"competitors": [{"competitor": "a", "price_minor": 1899, "in_stock": true, "age_seconds": 600}]});
    let contexts = vec![context("EUR", 1200, 1999, offers); 5];
    let first = run_policy(&app, &key, "competitor-match", json!({}), contexts.clone()).await;
    let second = run_policy(&app, &key, "competitor-match", json!({}), contexts).await;
    for result in first.iter().chain(&second) {
        assert_eq!(result["decision"], first[0]["decision"]);
        assert_eq!(result["stats"]["fuel_used"], first[0]["stats"]["fuel_used"]);
    }
}

#[tokio::test]
async fn every_attack_of_the_hostile_rust_rule_ends_in_its_own_error_kind() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    expect_status(app.put_product(&key, "tee-1", product("EUR", 1200, 1999)).await, StatusCode::CREATED).await;
    let version = app.rule_version(&key, built_rule("hostile")).await;
    let attacks: [(&str, &[&str]); 9] = [
        ("panic", &["guest_panic"]),
        ("alloc-bomb", &["out_of_memory"]),
        ("recursion", &["stack_overflow"]),
        ("spin", &["timeout", "out_of_fuel"]),
        ("log-flood", &["output_too_large"]),
        ("nan", &["invalid_output"]),
        ("negative", &["invalid_output"]),
        ("overflow", &["invalid_output"]),
        ("huge-explanation", &["output_too_large"]),
    ];
    for (attack, kinds) in attacks {
        let path = format!("/v1/rules/{version}/params");
        expect_status(app.call(Method::PUT, &path, Some(&key), Some(json!({"attack": attack}))).await, StatusCode::OK)
            .await;
        let ran = expect_status(app.dry_run(&key, version, json!({"skus": ["tee-1"]})).await, StatusCode::OK).await;
        let result = &ran["results"][0];
        assert!(kinds.contains(&result["error"].as_str().unwrap_or("none")), "{attack}: {result}");
        if attack == "panic" {
            let log = result["stats"]["log"].as_str().unwrap();
            assert!(log.contains("panicked on purpose"), "the panic message is in the log: {log}");
        }
    }
    // Slow but legal finishes, and behaving keeps.
    for (attack, expect_price) in [("slow", true), ("none", false)] {
        let path = format!("/v1/rules/{version}/params");
        expect_status(app.call(Method::PUT, &path, Some(&key), Some(json!({"attack": attack}))).await, StatusCode::OK)
            .await;
        let ran = expect_status(app.dry_run(&key, version, json!({"skus": ["tee-1"]})).await, StatusCode::OK).await;
        let decided = price(&ran["results"][0]);
        assert_eq!(decided.is_some(), expect_price, "{attack}: {}", ran["results"][0]);
    }
    let product = expect_status(app.get_product(&key, "tee-1").await, StatusCode::OK).await;
    assert_eq!((product["price"]["price_minor"].as_i64(), product["price"]["version"].as_i64()), (Some(1999), Some(1)));
}
