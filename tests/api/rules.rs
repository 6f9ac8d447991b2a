//! The rule API over HTTP: upload, versions, parameters, activation and rollback, dry runs,
//! and hostile modules that must neither change a price nor stop the service.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::Backend;
use crate::common::wat_rules::{EUR, rule};
use crate::helpers::{TestApp, expect_error, expect_status, product, spawn_app, spawn_app_with, test_settings};

/// A rule that always asks for `minor` EUR.
fn fixed_price_rule(minor: i64) -> Vec<u8> {
    rule(&format!("(call $set (i64.const {minor}) {EUR})"), "")
}

impl TestApp {
    pub async fn upload_rule(&self, key: &str, wasm: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.url("/v1/rules"))
            .bearer_auth(key)
            .header("content-type", "application/wasm")
            .body(wasm)
            .send()
            .await
            .unwrap()
    }

    /// Uploads a rule that must be accepted; returns its version number.
    pub async fn rule_version(&self, key: &str, wasm: Vec<u8>) -> i64 {
        let response = self.upload_rule(key, wasm).await;
        assert!(response.status().is_success(), "upload failed: {}", response.text().await.unwrap());
        response.json::<Value>().await.unwrap()["version"].as_i64().unwrap()
    }

    pub async fn dry_run(&self, key: &str, version: i64, body: Value) -> reqwest::Response {
        self.call(Method::POST, &format!("/v1/rules/{version}/dry-run"), Some(key), Some(body)).await
    }
}

#[tokio::test]
async fn an_upload_gives_a_version_with_its_hash_size_and_compile_time_and_the_same_bytes_are_one_version() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let wasm = fixed_price_rule(1899);
    let created = expect_status(app.upload_rule(&key, wasm.clone()).await, StatusCode::CREATED).await;
    assert_eq!(created["version"], 1);
    assert_eq!(created["sha256"], hex::encode(pricing::auth::sha256(&wasm)));
    assert_eq!(created["size_bytes"], wasm.len());
    assert!(created["compile_ms"].as_i64().unwrap() >= 0);
    assert_eq!(created["active"], false);
    let again = expect_status(app.upload_rule(&key, wasm).await, StatusCode::OK).await;
    assert_eq!(again, created);
    let second = expect_status(app.upload_rule(&key, fixed_price_rule(1799)).await, StatusCode::CREATED).await;
    assert_eq!(second["version"], 2);
}

#[tokio::test]
async fn refused_uploads_say_why_and_store_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let wasi = crate::common::wat_rules::with_interface(
        &crate::common::wat_rules::rule_wat("(call $keep)", "", 1).replace(
            r#"(import "$root" "log" (func $log (param i32 i32)))"#,
            r#"(import "$root" "log" (func $log (param i32 i32))) (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))"#,
        ),
    );
    for (wasm, reason) in [
        (b"garbage".to_vec(), "not_wasm"),
        (wasi, "forbidden_import"),
        (wat::parse_str("(module)").unwrap(), "no_interface"),
    ] {
        let details =
            expect_error(app.upload_rule(&key, wasm).await, StatusCode::UNPROCESSABLE_ENTITY, "rule_refused").await;
        assert_eq!(details["reason"], reason);
    }
    let oversize = vec![0u8; 1024 * 1024 + 1];
    let details =
        expect_error(app.upload_rule(&key, oversize).await, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(details["limit_bytes"], 1024 * 1024);
    let as_text = app
        .client
        .post(app.url("/v1/rules"))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_error(as_text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    // JSON names a stock policy, and nothing else.
    let response = app.call(Method::POST, "/v1/rules", Some(&key), Some(json!({}))).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;
    let listed = expect_status(app.call(Method::GET, "/v1/rules", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(listed, json!({"active_version": null, "versions": []}));
}

#[tokio::test]
async fn activation_and_rollback_move_the_active_version() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let v1 = app.rule_version(&key, fixed_price_rule(1899)).await;
    let v2 = app.rule_version(&key, fixed_price_rule(1799)).await;
    let activate = |v: i64| {
        let path = format!("/v1/rules/{v}/activate");
        let (app, key) = (&app, &key);
        async move { app.call(Method::POST, &path, Some(key), None).await }
    };
    expect_status(activate(v1).await, StatusCode::OK).await;
    let active = expect_status(activate(v2).await, StatusCode::OK).await;
    assert_eq!((active["active_version"].as_i64(), active["kind"].as_str()), (Some(v2), Some("activate")));

    let listed = expect_status(app.call(Method::GET, "/v1/rules", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(listed["active_version"], v2);
    let flags: Vec<bool> =
        listed["versions"].as_array().unwrap().iter().map(|v| v["active"].as_bool().unwrap()).collect();
    assert_eq!(flags, [false, true]);

    let back =
        expect_status(app.call(Method::POST, "/v1/rules/rollback", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!((back["active_version"].as_i64(), back["kind"].as_str()), (Some(v1), Some("rollback")));
    let none = app.call(Method::POST, "/v1/rules/rollback", Some(&key), None).await;
    expect_error(none, StatusCode::CONFLICT, "nothing_to_roll_back").await;
    expect_error(activate(99).await, StatusCode::NOT_FOUND, "not_found").await;
    let bad = app.call(Method::POST, "/v1/rules/zero/activate", Some(&key), None).await;
    expect_error(bad, StatusCode::BAD_REQUEST, "invalid_path").await;
}

#[tokio::test]
async fn parameters_are_validated_and_kept_per_version() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let v = app.rule_version(&key, fixed_price_rule(1899)).await;
    let path = format!("/v1/rules/{v}/params");
    let params = json!({"margin_bps": 2500, "ending": "99", "aggressive": true});
    let updated =
        expect_status(app.call(Method::PUT, &path, Some(&key), Some(params.clone())).await, StatusCode::OK).await;
    assert_eq!(updated["params"], params);
    let read =
        expect_status(app.call(Method::GET, &format!("/v1/rules/{v}"), Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(read["params"], params);
    for bad in [json!({"nested": {"a": 1}}), json!({"Bad Key": 1}), json!([1, 2])] {
        let response = app.call(Method::PUT, &path, Some(&key), Some(bad)).await;
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    let unknown = app.call(Method::PUT, "/v1/rules/42/params", Some(&key), Some(json!({}))).await;
    expect_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let read =
        expect_status(app.call(Method::GET, &format!("/v1/rules/{v}"), Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(read["params"], params, "refused updates changed nothing");
}

#[tokio::test]
async fn a_dry_run_shows_the_decision_and_persists_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    expect_status(app.put_product(&key, "tee-1", product("EUR", 1200, 1999)).await, StatusCode::CREATED).await;
    let v = app.rule_version(&key, fixed_price_rule(1899)).await;
    let context = json!({"sku": "ad-hoc", "currency": "EUR", "cost_minor": 100, "current_price_minor": 2000,
                         "base_price_minor": 2000, "now": "2026-11-25T12:00:00Z"});
    let ran =
        expect_status(app.dry_run(&key, v, json!({"skus": ["tee-1"], "contexts": [context]})).await, StatusCode::OK)
            .await;
    assert_eq!(ran["persisted"], false);
    let results = ran["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["sku"], "tee-1");
    assert_eq!(results[0]["decision"]["price_minor"], 1899);
    assert_eq!(results[0]["change_minor"], -100);
    assert!(results[0]["stats"]["fuel_used"].as_u64().unwrap() > 0);
    assert_eq!(results[1]["change_minor"], -101);

    let product = expect_status(app.get_product(&key, "tee-1").await, StatusCode::OK).await;
    assert_eq!(product["price"]["price_minor"], 1999, "a dry run changes no price");
    assert_eq!(product["price"]["version"], 1);

    let unknown = app.dry_run(&key, v, json!({"skus": ["nope"]})).await;
    expect_error(unknown, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let empty = app.dry_run(&key, v, json!({})).await;
    expect_error(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

#[tokio::test]
async fn hostile_rules_fail_with_their_own_kind_change_no_price_and_the_service_keeps_serving() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    expect_status(app.put_product(&key, "tee-1", product("EUR", 1200, 1999)).await, StatusCode::CREATED).await;

    // Meanwhile another client reads the catalogue without pause.
    let reader = {
        let (client, url, key) = (app.client.clone(), app.url("/v1/products/tee-1"), key.clone());
        tokio::spawn(async move {
            let mut answered = 0;
            let stop = std::time::Instant::now() + std::time::Duration::from_secs(3);
            while std::time::Instant::now() < stop {
                let response = client.get(&url).bearer_auth(&key).send().await.expect("the service answers");
                assert_eq!(response.status(), StatusCode::OK);
                answered += 1;
            }
            answered
        })
    };
    let corpus = [
        ("(loop $l (br $l)) (unreachable)", "", &["timeout", "out_of_fuel"][..]),
        ("(unreachable)", "", &["guest_panic"]),
        ("(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (unreachable)", "", &["out_of_memory"]),
        (
            "(loop $l (drop (table.grow $t (ref.null func) (i32.const 1000))) (br $l)) (unreachable)",
            "(table $t 1 funcref)",
            &["out_of_memory"],
        ),
        (
            "(drop (call $rec (i32.const 0))) (unreachable)",
            "(func $rec (param i32) (result i32) (call $rec (local.get 0)))",
            &["stack_overflow"],
        ),
        ("(call $set_approx (f64.const nan))", "", &["invalid_output"]),
        ("(call $set (i64.const -5) (i32.const 512))", "", &["invalid_output"]),
        ("(call $set (i64.const 1899) (i32.const 515))", "", &["invalid_output"]),
        ("(loop $l (call $log (i32.const 600) (i32.const 100)) (br $l)) (unreachable)", "", &["output_too_large"]),
    ];
    for (body, extra, kinds) in corpus {
        let v = app.rule_version(&key, rule(body, extra)).await;
        let ran = expect_status(app.dry_run(&key, v, json!({"skus": ["tee-1"]})).await, StatusCode::OK).await;
        let result = &ran["results"][0];
        assert!(result["decision"].is_null(), "{result}");
        let kind = result["error"].as_str().unwrap();
        assert!(kinds.contains(&kind), "{body}: expected one of {kinds:?}, got {result}");
        assert!(result["error_message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let answered = reader.await.unwrap();
    assert!(answered > 10, "the catalogue kept answering ({answered} reads)");
    let product = expect_status(app.get_product(&key, "tee-1").await, StatusCode::OK).await;
    assert_eq!((product["price"]["price_minor"].as_i64(), product["price"]["version"].as_i64()), (Some(1999), Some(1)));
}

#[tokio::test]
async fn a_merchant_cannot_see_or_use_another_merchants_rules() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key_a) = app.merchant_with_key(&["merchant"]).await;
    let (_, key_b) = app.merchant_with_key(&["merchant"]).await;
    let v = app.rule_version(&key_a, fixed_price_rule(1899)).await;
    for (method, path, body) in [
        (Method::GET, format!("/v1/rules/{v}"), None),
        (Method::POST, format!("/v1/rules/{v}/activate"), None),
        (Method::PUT, format!("/v1/rules/{v}/params"), Some(json!({}))),
        (
            Method::POST,
            format!("/v1/rules/{v}/dry-run"),
            Some(
                json!({"contexts": [{"sku": "x", "currency": "EUR", "cost_minor": 1, "current_price_minor": 2, "base_price_minor": 2, "now": "2026-11-25T12:00:00Z"}]}),
            ),
        ),
    ] {
        expect_error(app.call(method, &path, Some(&key_b), body).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    let listed = expect_status(app.call(Method::GET, "/v1/rules", Some(&key_b), None).await, StatusCode::OK).await;
    assert_eq!(listed["versions"], json!([]));
    // B uploading the same bytes makes B's own version 1.
    assert_eq!(app.rule_version(&key_b, fixed_price_rule(1899)).await, 1);
}

#[tokio::test]
async fn auditors_read_rules_but_cannot_change_them() {
    let app = spawn_app(Backend::Sqlite).await;
    let merchant = app.create_merchant("Acme").await;
    let writer = app.issue_key(&merchant, &["merchant"]).await["key"].as_str().unwrap().to_owned();
    let auditor = app.issue_key(&merchant, &["auditor"]).await["key"].as_str().unwrap().to_owned();
    let v = app.rule_version(&writer, fixed_price_rule(1899)).await;
    expect_status(app.call(Method::GET, "/v1/rules", Some(&auditor), None).await, StatusCode::OK).await;
    expect_status(app.call(Method::GET, &format!("/v1/rules/{v}"), Some(&auditor), None).await, StatusCode::OK).await;
    expect_error(app.upload_rule(&auditor, fixed_price_rule(1)).await, StatusCode::FORBIDDEN, "forbidden").await;
    let activate = app.call(Method::POST, &format!("/v1/rules/{v}/activate"), Some(&auditor), None).await;
    expect_error(activate, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn rules_survive_a_restart_and_load_without_recompiling(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let v = app.rule_version(&key, fixed_price_rule(1899)).await;
    expect_status(app.call(Method::POST, &format!("/v1/rules/{v}/activate"), Some(&key), None).await, StatusCode::OK)
        .await;
    let db = app.stop().await;

    let app = spawn_app_with(test_settings(&db), db).await;
    let listed = expect_status(app.call(Method::GET, "/v1/rules", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(listed["active_version"], v);
    let context = json!({"sku": "x", "currency": "EUR", "cost_minor": 1, "current_price_minor": 2000, "base_price_minor": 2000, "now": "2026-11-25T12:00:00Z"});
    let ran = expect_status(app.dry_run(&key, v, json!({"contexts": [context]})).await, StatusCode::OK).await;
    assert_eq!(ran["results"][0]["decision"]["price_minor"], 1899);
}

both_backends! {
    rules_survive_a_restart => rules_survive_a_restart_and_load_without_recompiling;
}

#[tokio::test]
async fn uploads_beyond_the_merchants_quota_are_refused_and_a_repeat_is_free() {
    let db = crate::common::fresh_database(Backend::Sqlite).await;
    let mut settings = crate::helpers::test_settings(&db);
    settings.sandbox.max_rule_versions = 2;
    let app = crate::helpers::spawn_app_with(settings, db).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let first = app.rule_version(&key, fixed_price_rule(1899)).await;
    app.rule_version(&key, fixed_price_rule(1799)).await;
    let refused = app.upload_rule(&key, fixed_price_rule(1699)).await;
    let details = expect_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "over_quota").await;
    assert_eq!((details["limit"].as_u64(), details["quota"].as_str()), (Some(2), Some("versions")), "{details}");
    // The same bytes again are the version already stored, quota or not.
    assert_eq!(app.rule_version(&key, fixed_price_rule(1899)).await, first);
}

#[tokio::test]
async fn a_dry_run_on_a_product_shows_the_price_its_guardrails_would_allow() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let body = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1299,
                      "guardrails": {"ceiling_minor": 1500}});
    expect_status(app.put_product(&key, "tee-1", body).await, StatusCode::CREATED).await;
    let v = app.rule_version(&key, fixed_price_rule(1899)).await;
    let ran = expect_status(app.dry_run(&key, v, json!({"skus": ["tee-1"]})).await, StatusCode::OK).await;
    let result = &ran["results"][0];
    assert_eq!(result["decision"]["price_minor"], 1899, "the rule's own answer: {result}");
    assert_eq!(result["guarded"]["new_price_minor"], 1500, "what the engine would put in force: {result}");
    assert_eq!(result["guarded"]["clips"], json!(["ceiling"]));
    assert_eq!(result["guarded"]["outcome"], "changed");
}

#[tokio::test]
async fn a_dry_run_context_without_stale_is_judged_by_its_age() {
    let db = crate::common::fresh_database(Backend::Sqlite).await;
    let mut settings = crate::helpers::test_settings(&db);
    settings.pricing.stale_after_secs = 86_400;
    let app = crate::helpers::spawn_app_with(settings, db).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let v = app.rule_version(&key, crate::common::rules::built_rule("competitor-match")).await;
    // The rule's own age limit is far away: only staleness can set an offer aside.
    let params = json!({"max_age_hours": 1000, "undercut_minor": 1, "min_margin_bps": 0});
    expect_status(
        app.call(Method::PUT, &format!("/v1/rules/{v}/params"), Some(&key), Some(params)).await,
        StatusCode::OK,
    )
    .await;
    let context = |offer: serde_json::Value| {
        json!({"sku": "x", "currency": "EUR", "cost_minor": 100, "current_price_minor": 2000,
               "base_price_minor": 2000, "now": "2026-11-25T12:00:00Z", "competitors": [offer]})
    };
    let old = json!({"competitor": "a", "price_minor": 1500, "in_stock": true, "age_seconds": 200_000});
    let fresh = json!({"competitor": "a", "price_minor": 1500, "in_stock": true, "age_seconds": 600});
    let mut said_fresh = old.clone();
    said_fresh["stale"] = json!(false);
    let body = json!({"contexts": [context(old), context(fresh), context(said_fresh)]});
    let ran = expect_status(app.dry_run(&key, v, body).await, StatusCode::OK).await;
    let prices: Vec<Option<i64>> =
        ran["results"].as_array().unwrap().iter().map(|r| r["decision"]["price_minor"].as_i64()).collect();
    assert_eq!(prices, [None, Some(1499), Some(1499)], "200,000 s is past a day's window; a given flag stands: {ran}");
}
