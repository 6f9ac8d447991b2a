//! Declared parameters (`pricing:policy@1.1.0`) and stock policies, over HTTP: the schema read
//! at upload, every bad parameter refused with its field named, a rule built for 1.0.0 before
//! the change still uploading and running, and every stock policy usable by name and
//! replayable on both backends.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::Backend;
use crate::common::rules::built_rule;
use crate::helpers::{TestApp, expect_error, expect_status, product, spawn_app};

/// `rules/cost-plus` as built for `pricing:policy@1.0.0` (tests/fixtures/rules/README.md).
const COST_PLUS_1_0_0: &[u8] = include_bytes!("../fixtures/rules/cost-plus-1.0.0.wasm");
/// `rules/cost-plus` as built for `pricing:policy@1.1.0`, before `evaluate-encoded`.
const COST_PLUS_1_1_0: &[u8] = include_bytes!("../fixtures/rules/cost-plus-1.1.0.wasm");

impl TestApp {
    pub async fn use_stock(&self, key: &str, name: &str) -> reqwest::Response {
        self.call(Method::POST, "/v1/rules", Some(key), Some(json!({"stock": name}))).await
    }

    async fn set_params(&self, key: &str, version: i64, params: Value) -> reqwest::Response {
        self.call(Method::PUT, &format!("/v1/rules/{version}/params"), Some(key), Some(params)).await
    }

    async fn price_of(&self, key: &str, sku: &str) -> i64 {
        let price =
            expect_status(self.call(Method::GET, &format!("/v1/prices/{sku}"), Some(key), None).await, StatusCode::OK)
                .await;
        price["price_minor"].as_i64().unwrap()
    }
}

fn fields(details: &Value) -> Vec<String> {
    details["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_declared_parameters_are_read_at_upload_and_every_bad_value_is_refused_by_name() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    let created = expect_status(app.upload_rule(&key, built_rule("cost-plus")).await, StatusCode::CREATED).await;
    let version = created["version"].as_i64().unwrap();
    let schema = created["params_schema"].as_array().unwrap_or_else(|| panic!("no schema: {created}"));
    assert_eq!(schema.len(), 2, "{schema:?}");
    assert_eq!(schema[0]["name"], "margin_bps");
    assert_eq!(schema[0]["type"], "bps");
    assert_eq!(schema[0]["default"], 3000);
    assert!(schema[0]["description"].as_str().unwrap().contains("margin"), "{schema:?}");
    assert_eq!(schema[1]["name"], "ending");
    assert_eq!(schema[1]["type"], "money");
    assert_eq!(schema[1]["optional"], true);
    assert_eq!(schema[1]["min"], 1);
    // A new version starts with its defaults, and GET shows the same declaration.
    assert_eq!(created["params"], json!({"margin_bps": 3000}));
    let read =
        expect_status(app.call(Method::GET, &format!("/v1/rules/{version}"), Some(&key), None).await, StatusCode::OK)
            .await;
    assert_eq!(read["params_schema"], created["params_schema"]);

    // The case: a misspelt name and a percentage as text are both refused, by name.
    let details = expect_error(
        app.set_params(&key, version, json!({"min_margin_bps": "30%"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&details), ["min_margin_bps"]);
    for (bad, field) in [
        (json!({"margin_bps": "30%"}), "margin_bps"),
        (json!({"margin_bps": 30.5}), "margin_bps"),
        (json!({"margin_bps": 2_000_000}), "margin_bps"),
        (json!({"ending": 0}), "ending"),
        (json!({"ending": true}), "ending"),
    ] {
        let details = expect_error(
            app.set_params(&key, version, bad.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(fields(&details), [field], "{bad}");
    }
    // Nothing refused was stored.
    let read =
        expect_status(app.call(Method::GET, &format!("/v1/rules/{version}"), Some(&key), None).await, StatusCode::OK)
            .await;
    assert_eq!(read["params"], json!({"margin_bps": 3000}));

    // Good values pass, and the defaults fill in what is left out.
    let set = expect_status(app.set_params(&key, version, json!({"ending": 99})).await, StatusCode::OK).await;
    assert_eq!(set["params"], json!({"margin_bps": 3000, "ending": 99}));
    expect_status(
        app.call(Method::POST, &format!("/v1/rules/{version}/activate"), Some(&key), None).await,
        StatusCode::OK,
    )
    .await;
    expect_status(app.put_product(&key, "tee", product("EUR", 1200, 1000)).await, StatusCode::CREATED).await;
    app.engine.settled().await;
    assert_eq!(app.price_of(&key, "tee").await, 1599, "1200 × 1.30 = 1560 → 15.99");
}

#[tokio::test]
async fn a_rule_built_for_1_0_0_before_declared_parameters_still_uploads_and_runs() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    let created = expect_status(app.upload_rule(&key, COST_PLUS_1_0_0.to_vec()).await, StatusCode::CREATED).await;
    let version = created["version"].as_i64().unwrap();
    assert!(created.get("params_schema").is_none(), "a 1.0.0 rule declares nothing: {created}");
    assert_eq!(created["params"], json!({}));
    // Its parameters stay an untyped flat object, as they were.
    expect_status(app.set_params(&key, version, json!({"margin_bps": 2500, "note": "anything"})).await, StatusCode::OK)
        .await;
    expect_status(
        app.call(Method::POST, &format!("/v1/rules/{version}/activate"), Some(&key), None).await,
        StatusCode::OK,
    )
    .await;
    expect_status(app.put_product(&key, "tee", product("EUR", 1200, 1000)).await, StatusCode::CREATED).await;
    app.engine.settled().await;
    assert_eq!(app.price_of(&key, "tee").await, 1500, "1200 × 1.25");
    let ran = expect_status(app.dry_run(&key, version, json!({"skus": ["tee"]})).await, StatusCode::OK).await;
    assert_eq!(ran["results"][0]["decision"]["price_minor"], 1500, "{ran}");
}

/// A rule built for 1.1.0 (lowered contexts) and the same source built for 1.2.0 (contexts in
/// one buffer) declare the same parameters and decide the same, alone (a dry run) and in the
/// batches of a catalogue reprice, for two merchants with the same catalogue.
#[tokio::test]
async fn a_rule_built_for_1_1_0_decides_as_the_same_rule_built_for_1_2_0() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut outcomes = Vec::new();
    for wasm in [COST_PLUS_1_1_0.to_vec(), built_rule("cost-plus")] {
        let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
        let created = expect_status(app.upload_rule(&key, wasm).await, StatusCode::CREATED).await;
        let version = created["version"].as_i64().unwrap();
        let mut skus = Vec::new();
        for (i, cost) in [1200, 999, 1, 45_000, 777].into_iter().enumerate() {
            let sku = format!("sku-{i}");
            expect_status(app.put_product(&key, &sku, product("EUR", cost, 1)).await, StatusCode::CREATED).await;
            skus.push(sku);
        }
        expect_status(app.set_params(&key, version, json!({"margin_bps": 4200, "ending": 99})).await, StatusCode::OK)
            .await;
        let ran = expect_status(app.dry_run(&key, version, json!({"skus": skus})).await, StatusCode::OK).await;
        let decisions: Vec<Value> = ran["results"].as_array().unwrap().iter().map(|r| r["decision"].clone()).collect();
        assert_eq!(decisions.len(), skus.len(), "{ran}");
        expect_status(
            app.call(Method::POST, &format!("/v1/rules/{version}/activate"), Some(&key), None).await,
            StatusCode::OK,
        )
        .await;
        app.engine.settled().await;
        let mut prices = Vec::new();
        for sku in &skus {
            prices.push(app.price_of(&key, sku).await);
        }
        outcomes.push((created["params_schema"].clone(), decisions, prices));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[1].2[0], 1699, "1200 × 1.42 = 1704, to the nearest x.99: {:?}", outcomes[1]);
}

#[tokio::test]
async fn a_stock_policy_is_chosen_by_name_and_is_an_ordinary_version() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    let listed =
        expect_status(app.call(Method::GET, "/v1/stock-policies", Some(&key), None).await, StatusCode::OK).await;
    let names: Vec<&str> = listed["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cost-plus", "competitor-match", "competitor-position", "demand-based", "markdown"]);

    let created = expect_status(app.use_stock(&key, "competitor-match").await, StatusCode::CREATED).await;
    assert_eq!(created["stock"], "competitor-match");
    assert_eq!(created["sha256"], listed["policies"][1]["sha256"], "the sha256 names the shipped build");
    assert_eq!(created["params"], json!({"max_age_hours": 24, "undercut_minor": 1, "min_margin_bps": 1000}));
    let again = expect_status(app.use_stock(&key, "competitor-match").await, StatusCode::OK).await;
    assert_eq!(again["version"], created["version"]);

    let details = expect_error(
        app.use_stock(&key, "undercut-everyone").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&details), ["stock"]);
    let response = app.call(Method::POST, "/v1/rules", Some(&key), Some(json!({"stock": 3}))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let versions = expect_status(app.call(Method::GET, "/v1/rules", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1, "nothing stored for the refusals");
}

both_backends! {
    stock_policies => every_stock_policy_prices_by_name_and_replays;
}

/// Each stock policy with the parameters and inputs it needs, and the price it must reach.
async fn every_stock_policy_prices_by_name_and_replays(backend: Backend) {
    let app = spawn_app(backend).await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let cases: [(&str, Value, i64); 5] = [
        ("cost-plus", json!({"margin_bps": 2500}), 1500),
        ("competitor-match", json!({"undercut_minor": 5}), 1695),
        ("competitor-position", json!({"position": 2}), 1799),
        // 60 sold this week against 100 in stock is fast: 5 % up from the price in force.
        ("demand-based", json!({}), 2100),
        // The start day's step: 10 % off the base price of 20.00.
        ("markdown", json!({"start_ms": now_ms - 3_600_000}), 1800),
    ];
    for (i, (name, params, want)) in cases.iter().enumerate() {
        // A merchant each, so that no other policy has priced the product before.
        let (_, key) = app.merchant_with_key(&["merchant", "auditor", "feed", "checkout"]).await;
        let sku = format!("sku-{i}");
        let body = json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 2000});
        expect_status(app.put_product(&key, &sku, body).await, StatusCode::CREATED).await;
        let observed = chrono::Utc::now().to_rfc3339();
        let offers = json!({"observations": [
            {"id": format!("{sku}-a"), "competitor": "a", "sku": sku, "price_minor": 1700, "currency": "EUR",
             "in_stock": true, "observed_at": observed},
            {"id": format!("{sku}-b"), "competitor": "b", "sku": sku, "price_minor": 1800, "currency": "EUR",
             "in_stock": true, "observed_at": observed}]});
        expect_status(
            app.call(Method::POST, "/v1/signals/competitor-prices", Some(&key), Some(offers)).await,
            StatusCode::OK,
        )
        .await;
        let events = json!({"events": [
            {"id": format!("{sku}-stock"), "sku": sku, "kind": "inventory", "quantity": 100, "occurred_at": observed},
            {"id": format!("{sku}-sold"), "sku": sku, "kind": "sale", "quantity": 60, "occurred_at": observed}]});
        expect_status(app.call(Method::POST, "/v1/signals/demand", Some(&key), Some(events)).await, StatusCode::OK)
            .await;
        app.engine.settled().await;

        let created = expect_status(app.use_stock(&key, name).await, StatusCode::CREATED).await;
        let version = created["version"].as_i64().unwrap();
        expect_status(app.set_params(&key, version, params.clone()).await, StatusCode::OK).await;
        expect_status(
            app.call(Method::POST, &format!("/v1/rules/{version}/activate"), Some(&key), None).await,
            StatusCode::OK,
        )
        .await;
        app.engine.settled().await;
        assert_eq!(app.price_of(&key, &sku).await, *want, "{name} on {sku}");

        let history = expect_status(
            app.call(Method::GET, &format!("/v1/prices/{sku}/history"), Some(&key), None).await,
            StatusCode::OK,
        )
        .await;
        let decided: Vec<&Value> =
            history["items"].as_array().unwrap().iter().filter(|d| d["rule_version"] == version).collect();
        assert!(!decided.is_empty(), "{name} decided nothing: {history}");
        for decision in decided {
            let path = format!("/v1/decisions/{}/replay", decision["seq"]);
            let replay = expect_status(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::OK).await;
            assert_eq!(replay["identical"], true, "{name}: {replay}");
        }
    }
}

/// The stock policies the service ships are the builds of `rules/` as they are now (the build
/// is reproducible): a changed example rule whose stock build was not made again
/// (`scripts/build-rules --stock`) fails here.
#[test]
fn the_shipped_stock_policies_are_the_builds_of_their_sources() {
    for name in ["cost-plus", "competitor-match", "competitor-position", "demand-based", "markdown"] {
        let shipped =
            std::fs::read(crate::common::rules::workspace().join(format!("service/stock/{name}.wasm"))).unwrap();
        assert!(built_rule(name) == shipped, "service/stock/{name}.wasm is not the build of rules/{name}");
    }
}
