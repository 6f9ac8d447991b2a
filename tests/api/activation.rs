//! Activation that tells the truth: a dry run's price is the price activation then sets,
//! guardrail clips included, and a version whose dry run over a sample of the catalogue
//! fails is refused unless forced.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Backend;
use crate::common::rules::built_rule;
use crate::helpers::{TestApp, expect_error, expect_status, spawn_app};

async fn call(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
    app.call(method, path, Some(key), body).await
}

async fn price(app: &TestApp, key: &str, sku: &str) -> i64 {
    let price =
        expect_status(call(app, key, Method::GET, &format!("/v1/prices/{sku}"), None).await, StatusCode::OK).await;
    price["price_minor"].as_i64().unwrap()
}

#[tokio::test]
async fn a_dry_run_shows_what_activation_sets_and_a_failing_sample_refuses_activation_unless_forced() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "feed", "checkout"]).await;
    let skus = ["a", "b", "c"];
    for sku in skus {
        let body = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 2000,
                          "guardrails": {"max_step_bps": 500}});
        expect_status(app.put_product(&key, sku, body).await, StatusCode::CREATED).await;
    }
    let observed = chrono::Utc::now().to_rfc3339();
    let observations: Vec<Value> = skus
        .iter()
        .map(|sku| {
            json!({"id": format!("o-{sku}"), "competitor": "rival", "sku": sku, "price_minor": 1500,
                          "currency": "EUR", "in_stock": true, "observed_at": observed})
        })
        .collect();
    let response =
        call(&app, &key, Method::POST, "/v1/signals/competitor-prices", Some(json!({"observations": observations})))
            .await;
    expect_status(response, StatusCode::OK).await;

    // A version that panics on every product: refused, with what the sample found.
    let hostile = app.rule_version(&key, built_rule("hostile")).await;
    let params = json!({"attack": "panic"});
    expect_status(
        call(&app, &key, Method::PUT, &format!("/v1/rules/{hostile}/params"), Some(params)).await,
        StatusCode::OK,
    )
    .await;
    let refused = call(&app, &key, Method::POST, &format!("/v1/rules/{hostile}/activate"), None).await;
    let details = expect_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "sample_failed").await;
    assert_eq!((details["sampled"].as_u64(), details["failed"].as_u64()), (Some(3), Some(3)), "{details}");
    assert_eq!(details["failures"]["guest_panic"], 3);
    assert!(details["examples"][0]["message"].as_str().is_some(), "{details}");
    let rules = expect_status(call(&app, &key, Method::GET, "/v1/rules", None).await, StatusCode::OK).await;
    assert_eq!(rules["active_version"], Value::Null, "nothing was activated");
    // Forced, it goes live, and the answer still says what the sample found.
    let forced = call(&app, &key, Method::POST, &format!("/v1/rules/{hostile}/activate?force=true"), None).await;
    let forced = expect_status(forced, StatusCode::OK).await;
    assert_eq!(forced["sample"]["failed"], 3);
    app.engine.settled().await;
    assert_eq!(price(&app, &key, "a").await, 2000, "a failing rule keeps the price");

    // A working version: its dry run (the step limit clipping 14.99 to 19.00) is what it sets.
    let created = expect_status(app.use_stock(&key, "competitor-match").await, StatusCode::CREATED).await;
    let version = created["version"].as_i64().unwrap();
    let ran =
        call(&app, &key, Method::POST, &format!("/v1/rules/{version}/dry-run"), Some(json!({"skus": skus}))).await;
    let ran = expect_status(ran, StatusCode::OK).await;
    let activated = call(&app, &key, Method::POST, &format!("/v1/rules/{version}/activate"), None).await;
    let activated = expect_status(activated, StatusCode::OK).await;
    assert_eq!((activated["sample"]["sampled"].as_u64(), activated["sample"]["failed"].as_u64()), (Some(3), Some(0)));
    app.engine.settled().await;
    for result in ran["results"].as_array().unwrap() {
        let sku = result["sku"].as_str().unwrap();
        assert_eq!(result["decision"]["price_minor"], 1499, "the rule's own price: {result}");
        assert_eq!(result["guarded"]["new_price_minor"], 1900, "5 % down at most: {result}");
        assert!(!result["guarded"]["clips"].as_array().unwrap().is_empty(), "{result}");
        assert_eq!(price(&app, &key, sku).await, 1900, "{sku}: the dry run's price went live");
    }
}
