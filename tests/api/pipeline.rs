//! The pricing pipeline end to end over HTTP, with real rules built from `rules/`: a change
//! reaches a new, guarded, recorded price that checkout reads; failures keep the price and
//! say why; the history's hash chain verifies, and a tampered record is found.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::Backend;
use crate::common::rules::built_rule;
use crate::helpers::{TestApp, expect_status, spawn_app};

pub(crate) async fn put(app: &TestApp, key: &str, sku: &str, body: Value) {
    let response = app.put_product(key, sku, body).await;
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
}

pub(crate) async fn activate(app: &TestApp, key: &str, rule: &str, params: Value) -> i64 {
    let version = app.rule_version(key, built_rule(rule)).await;
    let path = format!("/v1/rules/{version}/params");
    expect_status(app.call(Method::PUT, &path, Some(key), Some(params)).await, StatusCode::OK).await;
    // The hostile rule fails an activation's sample check on purpose: these tests want it live.
    let force = if rule == "hostile" { "?force=true" } else { "" };
    let path = format!("/v1/rules/{version}/activate{force}");
    expect_status(app.call(Method::POST, &path, Some(key), None).await, StatusCode::OK).await;
    app.engine.settled().await;
    version
}

pub(crate) async fn price(app: &TestApp, key: &str, sku: &str) -> (i64, i64) {
    let body =
        expect_status(app.call(Method::GET, &format!("/v1/prices/{sku}"), Some(key), None).await, StatusCode::OK).await;
    (body["price_minor"].as_i64().unwrap(), body["version"].as_i64().unwrap())
}

pub(crate) async fn history(app: &TestApp, key: &str, sku: &str) -> Vec<Value> {
    let body = expect_status(
        app.call(Method::GET, &format!("/v1/prices/{sku}/history"), Some(key), None).await,
        StatusCode::OK,
    )
    .await;
    body["items"].as_array().unwrap().clone()
}

pub(crate) async fn verification(app: &TestApp, key: &str) -> Value {
    expect_status(app.call(Method::GET, "/v1/audit/verify", Some(key), None).await, StatusCode::OK).await
}

async fn activation_reprices_the_catalogue_within_guardrails(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    put(&app, &key, "plain", json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1999})).await;
    put(
        &app,
        &key,
        "capped",
        json!({"currency": "EUR", "cost_minor": 3000, "base_price_minor": 1999,
                                     "guardrails": {"ceiling_minor": 2999}}),
    )
    .await;
    put(
        &app,
        &key,
        "floored",
        json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 500,
                                      "guardrails": {"floor_minor": 400}}),
    )
    .await;
    assert_eq!(price(&app, &key, "plain").await, (1999, 1), "no rule yet: the base price holds");

    // cost-plus at 25 %, nearest x.99: 1200 → 1500 → 14.99; 3000 → 3750, capped at 29.99;
    // 100 → 125 → 0.99, lifted to the floor of 4.00.
    let version = activate(&app, &key, "cost-plus", json!({"margin_bps": 2500, "ending": 99})).await;
    assert_eq!(price(&app, &key, "plain").await, (1499, 2));
    assert_eq!(price(&app, &key, "capped").await, (2999, 2));
    assert_eq!(price(&app, &key, "floored").await, (400, 2));

    let capped = history(&app, &key, "capped").await;
    assert_eq!(capped.len(), 2, "the product's creation, then the rule's decision");
    assert_eq!(capped[1]["trigger"], "product_created");
    let decision = &capped[0];
    assert_eq!((decision["outcome"].as_str(), decision["trigger"].as_str()), (Some("changed"), Some("rule_activated")));
    assert_eq!((decision["old_price_minor"].as_i64(), decision["new_price_minor"].as_i64()), (Some(1999), Some(2999)));
    assert_eq!(decision["rule_version"], version);
    assert_eq!(decision["record"]["rule_price_minor"], 3799);
    assert_eq!(decision["record"]["clips"], json!(["ceiling"]));
    assert_eq!(decision["record"]["inputs"]["cost_minor"], 3000);
    assert_eq!(decision["record"]["params"], json!({"margin_bps": 2500, "ending": 99}));
    assert!(decision["record"]["explanation"].as_str().unwrap().contains("2500"));
    assert_eq!(history(&app, &key, "floored").await[0]["record"]["clips"], json!(["floor"]));

    // A cost change reprices that product alone.
    put(&app, &key, "plain", json!({"currency": "EUR", "cost_minor": 1600, "base_price_minor": 1999})).await;
    app.engine.settled().await;
    assert_eq!(price(&app, &key, "plain").await, (1999, 3)); // 1600 × 1.25 = 2000 → 19.99
    assert_eq!(history(&app, &key, "plain").await[0]["trigger"], "product_changed");

    let verified = verification(&app, &key).await;
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(verified["records"], 3 + 4, "three creations, four rule decisions");
}

both_backends! {
    activation_reprices => activation_reprices_the_catalogue_within_guardrails;
}

#[tokio::test]
async fn a_failing_rule_keeps_the_last_price_and_records_why() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    put(&app, &key, "tee-1", json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1999})).await;
    activate(&app, &key, "hostile", json!({"attack": "panic"})).await;
    assert_eq!(price(&app, &key, "tee-1").await, (1999, 1));
    let decisions = history(&app, &key, "tee-1").await;
    assert_eq!(decisions[0]["outcome"], "failed");
    assert_eq!(decisions[0]["record"]["error"], "guest_panic");
    assert!(decisions[0]["record"]["log"].as_str().unwrap().contains("panicked on purpose"));
    assert_eq!(decisions[0]["new_price_minor"], 1999);

    // Rolling back to no earlier version is refused; switching to a healthy rule reprices.
    activate(&app, &key, "cost-plus", json!({"margin_bps": 1000})).await;
    assert_eq!(price(&app, &key, "tee-1").await, (1320, 2));
    assert_eq!(verification(&app, &key).await["intact"], true);
}

#[tokio::test]
async fn a_burst_of_changes_to_one_product_gives_far_fewer_evaluations_and_the_last_input_wins() {
    let app = spawn_app(Backend::Sqlite).await;
    let (merchant, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    put(&app, &key, "hot", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999})).await;
    activate(&app, &key, "cost-plus", json!({"margin_bps": 0})).await;
    let before = app.engine.evaluations();

    // 100 cost changes as fast as HTTP allows, 8 at a time.
    let mut costs = (1..=100).map(|i| 1000 + i).collect::<Vec<i64>>().into_iter();
    loop {
        let wave: Vec<i64> = costs.by_ref().take(8).collect();
        if wave.is_empty() {
            break;
        }
        let puts = wave.iter().map(|cost| {
            app.put_product(&key, "hot", json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": 1999}))
        });
        for response in futures_util::future::join_all(puts).await {
            assert!(response.status().is_success());
        }
    }
    let last = json!({"currency": "EUR", "cost_minor": 1234, "base_price_minor": 1999});
    put(&app, &key, "hot", last).await;
    app.engine.settled().await;
    let http_evaluations = app.engine.evaluations() - before;
    // Seen here: about 35. The worker takes whatever has queued since its last round.
    assert!(http_evaluations < 70, "{http_evaluations} evaluations for 101 changes");
    assert_eq!(price(&app, &key, "hot").await.0, 1234, "the last cost decides");

    // A burst of a thousand requests for one product, queued at once, is one or two evaluations.
    let before = app.engine.evaluations();
    let sku = pricing::domain::Sku::parse("hot").unwrap();
    let burst = vec![sku; 1000];
    app.engine.request(merchant.parse().unwrap(), &burst, pricing::domain::Trigger::ProductChanged).await.unwrap();
    app.engine.settled().await;
    assert!(app.engine.evaluations() - before <= 2, "{} evaluations", app.engine.evaluations() - before);
}

#[tokio::test]
async fn an_edited_or_deleted_record_is_found_by_verification() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    for i in 0..5 {
        put(
            &app,
            &key,
            &format!("sku-{i}"),
            json!({"currency": "EUR", "cost_minor": 1000 + i, "base_price_minor": 1999}),
        )
        .await;
    }
    activate(&app, &key, "cost-plus", json!({"margin_bps": 2000})).await;
    assert_eq!(verification(&app, &key).await["records"], 5 + 5, "five creations, five rule decisions");
    let sqlite =
        pricing::store::Store::connect(&app.db.url, &pricing::config::Settings::defaults().store).await.unwrap();
    let pool = sqlite.pool();
    // Someone with database access removes the append-only guard and edits record 3's price.
    sqlx::query("DROP TRIGGER decisions_no_update").execute(pool).await.unwrap();
    sqlx::query("DROP TRIGGER decisions_no_delete").execute(pool).await.unwrap();
    // Records as plain text, so that SQL's text functions below can edit them.
    for statement in crate::common::plain_records(&app.db).await {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(pool).await.unwrap();
    }
    sqlx::query("UPDATE decisions SET new_price_minor = 1 WHERE seq = 3").execute(pool).await.unwrap();
    let verified = verification(&app, &key).await;
    assert_eq!(verified["intact"], false);
    assert_eq!(verified["first_broken"]["seq"], 3, "{verified}");

    // Editing the hashed record itself, consistently with its column, is found too.
    sqlx::query("UPDATE decisions SET new_price_minor = new_price_minor + 0 WHERE seq = 3")
        .execute(pool)
        .await
        .unwrap();
    let fixed =
        sqlx::query_as::<_, (String,)>("SELECT record FROM decisions WHERE seq = 3").fetch_one(pool).await.unwrap().0;
    let original: i64 = serde_json::from_str::<Value>(&fixed).unwrap()["new_price_minor"].as_i64().unwrap();
    sqlx::query("UPDATE decisions SET new_price_minor = $1, record = replace(record, '\"explanation\":\"', '\"explanation\":\"(edited) ') WHERE seq = 3")
        .bind(original)
        .execute(pool)
        .await
        .unwrap();
    let verified = verification(&app, &key).await;
    assert_eq!((verified["first_broken"]["seq"].as_i64(), verified["intact"].as_bool()), (Some(3), Some(false)));
    assert!(verified["first_broken"]["reason"].as_str().unwrap().contains("hash"), "{verified}");

    // Deleting a record leaves a gap at its place.
    sqlx::query("DELETE FROM decisions WHERE seq = 2").execute(pool).await.unwrap();
    let verified = verification(&app, &key).await;
    assert_eq!(verified["first_broken"]["seq"], 2, "{verified}");
}

#[tokio::test]
async fn a_schedule_reprices_merchants_with_an_active_rule_periodically() {
    let db = crate::common::fresh_database(Backend::Sqlite).await;
    let mut settings = crate::helpers::test_settings(&db);
    settings.pricing.schedule_secs = 1;
    let app = crate::helpers::spawn_app_with(settings, db).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    put(&app, &key, "tee-1", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999})).await;
    let (_, idle) = app.merchant_with_key(&["merchant"]).await;
    put(&app, &idle, "tee-1", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999})).await;
    activate(&app, &key, "cost-plus", json!({"margin_bps": 1000})).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let triggers: Vec<String> =
            history(&app, &key, "tee-1").await.iter().map(|d| d["trigger"].as_str().unwrap().to_owned()).collect();
        if triggers.iter().any(|t| t == "schedule") {
            assert_eq!(triggers[triggers.len() - 2..], ["rule_activated", "product_created"]);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no scheduled decision yet: {triggers:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let idle_history = history(&app, &idle, "tee-1").await;
    assert_eq!(idle_history.len(), 1, "a merchant without a rule is left alone: {idle_history:?}");
}
