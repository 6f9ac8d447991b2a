//! Overrides over HTTP, both backends: a campaign price that starts and ends at its instants
//! while the rule's changes to it are held; percentages off, attribute filters, the product's
//! bounds and `force`, overlapping overrides in their documented order, a product put while one
//! is live, and the base price followed after the end; a boundary that fell due while the
//! service was down, applied at its start; and the EU prior price across random campaigns,
//! against a brute-force reading of the chain.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::Backend;
use crate::helpers::{TestApp, expect_error, expect_status, spawn_app, spawn_app_with, test_settings};
use crate::pipeline::{activate, price, put, verification};

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    expect_status(app.call(Method::GET, path, Some(key), None).await, StatusCode::OK).await
}

async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    expect_status(app.call(Method::POST, "/v1/overrides", Some(key), Some(body)).await, StatusCode::CREATED).await
}

async fn end(app: &TestApp, key: &str, id: &Value) -> Value {
    let path = format!("/v1/overrides/{id}");
    expect_status(app.call(Method::DELETE, &path, Some(key), None).await, StatusCode::OK).await
}

/// The SKU's decisions, oldest first.
async fn decisions(app: &TestApp, key: &str, sku: &str) -> Vec<Value> {
    let mut items =
        get(app, key, &format!("/v1/prices/{sku}/history?limit=1000")).await["items"].as_array().unwrap().clone();
    items.sort_by_key(|d| d["seq"].as_i64());
    items
}

/// Waits (at most 15 s) until the SKU's price is `want`.
async fn price_becomes(app: &TestApp, key: &str, sku: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = price(app, key, sku).await.0;
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sku} stayed at {now}, not {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn instant(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

fn later(millis: i64) -> String {
    (Utc::now() + chrono::Duration::milliseconds(millis)).to_rfc3339()
}

async fn a_campaign_starts_and_ends_at_its_instants_and_holds_the_rule_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999})).await;
    activate(&app, &key, "cost-plus", json!({"margin_bps": 2500})).await;
    assert_eq!(price(&app, &key, "tee").await.0, 1250);

    let (starts, ends) = (later(1500), later(4000));
    let made = create(
        &app,
        &key,
        json!({"sku": "tee", "price_minor": 999, "currency": "EUR",
        "starts_at": starts, "ends_at": ends, "reason": "black friday"}),
    )
    .await;
    assert_eq!(
        (&made["state"], &made["applied"], &made["reason"]),
        (&json!("scheduled"), &json!(true), &json!("black friday"))
    );
    assert_eq!(price(&app, &key, "tee").await.0, 1250, "not before its start");
    price_becomes(&app, &key, "tee", 999).await;
    let started = decisions(&app, &key, "tee").await.pop().unwrap();
    assert_eq!(
        (&started["trigger"], &started["old_price_minor"], &started["new_price_minor"]),
        (&json!("override_started"), &json!(1250), &json!(999))
    );
    assert!(instant(&started["created_at"]) >= instant(&made["starts_at"]), "recorded at its start, not before");
    assert_eq!(started["record"]["override"]["id"], made["id"]);
    assert_eq!(started["record"]["override"]["force"], false);
    let listed = get(&app, &key, "/v1/overrides?state=active").await;
    assert_eq!(listed["items"][0]["id"], made["id"]);

    // The rule still runs on a cost change, but its change waits behind the override.
    put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1999})).await;
    app.engine.settled().await;
    let held = decisions(&app, &key, "tee").await.pop().unwrap();
    assert_eq!((&held["outcome"], &held["record"]["hold"]["reason"]), (&json!("held"), &json!("override")));
    assert_eq!(held["record"]["hold"]["proposed_price_minor"], 1500);
    assert_eq!(price(&app, &key, "tee").await.0, 999);

    // At its end the price before it comes back, and the rule decides again on today's cost.
    price_becomes(&app, &key, "tee", 1500).await;
    let after = decisions(&app, &key, "tee").await;
    let ended = after.iter().find(|d| d["trigger"] == "override_ended").expect("the end is a decision");
    assert_eq!((&ended["old_price_minor"], &ended["new_price_minor"]), (&json!(999), &json!(1250)));
    assert!(instant(&ended["created_at"]) >= instant(&made["ends_at"]));
    assert_eq!(after.last().unwrap()["new_price_minor"], 1500);
    assert_eq!(get(&app, &key, &format!("/v1/overrides/{}", made["id"])).await["state"], "ended");
    assert_eq!(verification(&app, &key).await["intact"], true);
}

async fn filters_percentages_bounds_force_and_overlaps(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    let acme = |base: i64, floor: Option<i64>| {
        let mut body = json!({"currency": "EUR", "cost_minor": 500, "base_price_minor": base,
                              "attributes": {"brand": "acme"}});
        if let Some(floor) = floor {
            body["guardrails"] = json!({"floor_minor": floor, "max_step_bps": 100});
        }
        body
    };
    put(&app, &key, "a-1", acme(1999, None)).await;
    put(&app, &key, "a-2", acme(1999, Some(1700))).await;
    put(&app, &key, "a-3", acme(1000, Some(900))).await;
    put(
        &app,
        &key,
        "other",
        json!({"currency": "EUR", "cost_minor": 500, "base_price_minor": 1999,
                                     "attributes": {"brand": "zenith"}}),
    )
    .await;

    // 20 % off every acme product, now: the step limit does not apply, the floor does.
    let sale = create(
        &app,
        &key,
        json!({"attributes": {"brand": "acme"}, "percent_off_bps": 2000,
                                         "reason": "acme week"}),
    )
    .await;
    assert_eq!((&sale["state"], &sale["applied"]), (&json!("active"), &json!(true)), "in force when it answers");
    assert_eq!(price(&app, &key, "a-1").await.0, 1599);
    assert_eq!(price(&app, &key, "a-2").await.0, 1700);
    let clipped = decisions(&app, &key, "a-2").await.pop().unwrap();
    assert_eq!(clipped["record"]["clips"], json!(["floor"]));
    assert_eq!(price(&app, &key, "other").await.0, 1999, "another brand is not covered");

    // A SKU's own override beats the filter's, and `force` goes below the floor, recorded.
    let own = create(
        &app,
        &key,
        json!({"sku": "a-3", "price_minor": 500, "currency": "EUR", "force": true,
                                        "reason": "supplier deal"}),
    )
    .await;
    assert_eq!(price(&app, &key, "a-3").await.0, 500);
    let forced = decisions(&app, &key, "a-3").await.pop().unwrap();
    assert_eq!((&forced["record"]["override"]["force"], &forced["record"]["clips"]), (&json!(true), &json!([])));

    // A product put while the sale runs is covered at once; a base price change waits.
    put(&app, &key, "a-4", acme(3000, None)).await;
    assert_eq!(price(&app, &key, "a-4").await.0, 2400);
    put(&app, &key, "a-1", acme(2199, None)).await;
    assert_eq!(price(&app, &key, "a-1").await.0, 1599, "the campaign's price stays");

    // Ending the SKU's own override leaves the filter's in force for it.
    let ended = end(&app, &key, &own["id"]).await;
    assert_eq!(ended["state"], "ended");
    assert_eq!(price(&app, &key, "a-3").await.0, 900, "20 % off 1000, at its floor");
    let next = decisions(&app, &key, "a-3").await.pop().unwrap();
    assert_eq!((&next["trigger"], &next["record"]["override"]["id"]), (&json!("override_started"), &sale["id"]));

    // Ending the sale: base prices come back, as they are now.
    end(&app, &key, &sale["id"]).await;
    assert_eq!(price(&app, &key, "a-1").await.0, 2199);
    assert_eq!(price(&app, &key, "a-2").await.0, 1999);
    assert_eq!(price(&app, &key, "a-3").await.0, 1000);
    assert_eq!(price(&app, &key, "a-4").await.0, 3000);
    put(&app, &key, "a-1", acme(2299, None)).await;
    assert_eq!(price(&app, &key, "a-1").await.0, 2299, "the base price is followed again");
    assert_eq!(get(&app, &key, "/v1/overrides?state=ended").await["items"].as_array().unwrap().len(), 2);
    assert_eq!(verification(&app, &key).await["intact"], true);
}

async fn bad_overrides_are_refused_and_other_merchants_cannot_see_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout", "feed"]).await;
    let (_, other) = app.merchant_with_key(&["merchant", "checkout", "feed"]).await;
    let refused = |body: Value, fields: &'static [&'static str]| {
        let (app, key) = (&app, &key);
        async move {
            let response = app.call(Method::POST, "/v1/overrides", Some(key), Some(body)).await;
            let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
            let mut named: Vec<String> =
                error["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap().to_owned()).collect();
            named.sort();
            assert_eq!(named, fields, "{error}");
        }
    };
    refused(json!({"reason": "x", "percent_off_bps": 100}), &["sku"]).await;
    refused(json!({"sku": "a", "attributes": {"b": 1}, "percent_off_bps": 100, "reason": "x"}), &["sku"]).await;
    refused(json!({"sku": "a", "percent_off_bps": 0, "reason": ""}), &["percent_off_bps", "reason"]).await;
    refused(json!({"sku": "a", "price_minor": 100, "reason": "x"}), &["currency"]).await;
    refused(
        json!({"sku": "a", "percent_off_bps": 100, "reason": "x", "ends_at": "2020-01-01T00:00:00Z"}),
        &["ends_at"],
    )
    .await;
    let array = app.call(Method::POST, "/v1/overrides", Some(&key), Some(json!([null, null]))).await;
    expect_error(array, StatusCode::BAD_REQUEST, "invalid_body").await;

    let made = create(&app, &key, json!({"sku": "a", "percent_off_bps": 100, "reason": "x"})).await;
    let path = format!("/v1/overrides/{}", made["id"]);
    expect_error(app.call(Method::GET, &path, Some(&other), None).await, StatusCode::NOT_FOUND, "not_found").await;
    expect_error(app.call(Method::DELETE, &path, Some(&other), None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(get(&app, &other, "/v1/overrides").await["items"], json!([]));
    let (_, checkout) = app.merchant_with_key(&["checkout", "feed"]).await;
    let denied = app
        .call(
            Method::POST,
            "/v1/overrides",
            Some(&checkout),
            Some(json!({"sku": "a", "percent_off_bps": 1, "reason": "x"})),
        )
        .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(&app, &key, &path).await["state"], "active", "untouched by the others");
}

async fn a_boundary_passed_while_the_service_was_down_is_applied_when_it_starts(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999})).await;
    let made = create(
        &app,
        &key,
        json!({"sku": "tee", "percent_off_bps": 5000, "starts_at": later(3000),
                                         "reason": "flash sale"}),
    )
    .await;
    let db = app.stop().await;
    let due = instant(&made["starts_at"]) + chrono::Duration::milliseconds(500);
    if let Ok(wait) = (due - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }

    let restarted = Utc::now();
    let app = spawn_app_with(test_settings(&db), db).await;
    price_becomes(&app, &key, "tee", 1000).await;
    let started = decisions(&app, &key, "tee").await.pop().unwrap();
    assert_eq!(started["trigger"], "override_started");
    assert!(instant(&started["created_at"]) >= restarted, "applied late, by the restarted service");
    assert_eq!(verification(&app, &key).await["intact"], true);
}

/// A small deterministic generator (the case is replayable from its seed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The prior price the chain says the lookup must show: the lowest price in force before the
/// current one took effect (all of this history is inside 30 days), a price replaced at the
/// same instant not counting.
fn expected_prior(history: &[Value]) -> Option<i64> {
    let moves: Vec<(DateTime<Utc>, i64)> = history
        .iter()
        .filter(|d| d["outcome"] == "changed")
        .map(|d| (instant(&d["created_at"]), d["new_price_minor"].as_i64().unwrap()))
        .collect();
    let (current_at, _) = *moves.last()?;
    moves.windows(2).filter(|pair| pair[1].0 > pair[0].0 && pair[0].0 < current_at).map(|pair| pair[0].1).min()
}

async fn the_prior_price_counts_campaign_prices_like_any_other(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    let settings = json!({"show_prior_price": true});
    expect_status(app.call(Method::PUT, "/v1/settings", Some(&key), Some(settings)).await, StatusCode::OK).await;
    put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999})).await;
    activate(&app, &key, "cost-plus", json!({"margin_bps": 2500})).await;
    let seed = std::env::var("OVERRIDE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261203_u64);
    let mut random = Lcg(seed);
    let mut live: Vec<Value> = Vec::new();
    for step in 0..24 {
        match random.below(3) {
            0 => {
                let cost = 600 + random.below(1200) as i64;
                put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": 1999})).await;
            }
            1 => {
                let body = json!({"sku": "tee", "price_minor": 500 + random.below(2000), "currency": "EUR",
                                  "reason": format!("campaign {step}")});
                live.push(create(&app, &key, body).await["id"].clone());
            }
            _ if !live.is_empty() => {
                let id = live.remove(random.below(live.len() as u64) as usize);
                end(&app, &key, &id).await;
            }
            _ => {}
        }
        app.engine.settled().await;
        let history = decisions(&app, &key, "tee").await;
        let lookup = get(&app, &key, "/v1/prices/tee").await;
        assert_eq!(
            lookup["prior_price_minor"].as_i64(),
            expected_prior(&history),
            "seed {seed}, step {step}: {lookup} after {history:?}"
        );
    }
    assert_eq!(verification(&app, &key).await["intact"], true);
}

/// Imports NDJSON lines and waits (at most a minute) for the job to complete.
pub(crate) async fn import(app: &TestApp, key: &str, lines: String) {
    let response = app
        .client
        .post(app.url("/v1/products/import"))
        .bearer_auth(key)
        .header("Content-Type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .unwrap();
    let job = expect_status(response, StatusCode::ACCEPTED).await;
    let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = get(app, key, &path).await;
        if job["state"] == "completed" {
            assert_eq!(job["rejected"], 0, "{job}");
            return;
        }
        assert!(Instant::now() < deadline && job["state"] != "failed", "the import did not complete: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The prices of `p-0000`… in force, in SKU order.
async fn lookup_all(app: &TestApp, key: &str, n: usize) -> Vec<i64> {
    let skus: Vec<String> = (0..n).map(|i| format!("p-{i:04}")).collect();
    let response = app.call(Method::POST, "/v1/prices/lookup", Some(key), Some(json!({"skus": skus}))).await;
    let found = expect_status(response, StatusCode::OK).await;
    found["prices"].as_array().unwrap().iter().map(|p| p["price_minor"].as_i64().unwrap()).collect()
}

async fn an_override_of_many_products_is_applied_page_by_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    // More than two of the writer's pages (200 SKUs each), and products it does not cover.
    let n = 450;
    let mut lines = String::new();
    for i in 0..n + 20 {
        let brand = if i < n { "acme" } else { "zenith" };
        lines.push_str(&format!(
            "{{\"sku\":\"p-{i:04}\",\"currency\":\"EUR\",\"cost_minor\":100,\"base_price_minor\":1000,\"attributes\":{{\"brand\":\"{brand}\"}}}}\n"
        ));
    }
    import(&app, &key, lines).await;
    let sale =
        create(&app, &key, json!({"attributes": {"brand": "acme"}, "percent_off_bps": 1000, "reason": "sale"})).await;
    let during = lookup_all(&app, &key, n + 20).await;
    assert!(during[..n].iter().all(|p| *p == 900) && during[n..].iter().all(|p| *p == 1000), "{during:?}");
    // An import while it runs: new acme products come under it, and a product moved to acme.
    let line = |i: usize| {
        format!(
            "{{\"sku\":\"p-{i:04}\",\"currency\":\"EUR\",\"cost_minor\":100,\"base_price_minor\":1000,\"attributes\":{{\"brand\":\"acme\"}}}}\n"
        )
    };
    let more: String = (n + 20..n + 30).chain([n]).map(line).collect();
    import(&app, &key, more).await;
    let during = lookup_all(&app, &key, n + 30).await;
    assert!(during[..=n].iter().all(|p| *p == 900) && during[n + 20..].iter().all(|p| *p == 900), "{during:?}");
    assert!(during[n + 1..n + 20].iter().all(|p| *p == 1000), "{during:?}");
    end(&app, &key, &sale["id"]).await;
    assert!(lookup_all(&app, &key, n + 30).await.iter().all(|p| *p == 1000));
    let started = get(&app, &key, "/v1/decisions?trigger=override_started&limit=1000").await;
    let ended = get(&app, &key, "/v1/decisions?trigger=override_ended&limit=1000").await;
    let (started, ended) = (started["items"].as_array().unwrap().len(), ended["items"].as_array().unwrap().len());
    assert_eq!((started, ended), (n + 11, n + 11));
    assert_eq!(verification(&app, &key).await["intact"], true);
}

both_backends! {
    many_products => an_override_of_many_products_is_applied_page_by_page;
    campaign => a_campaign_starts_and_ends_at_its_instants_and_holds_the_rule_back;
    filters_and_overlaps => filters_percentages_bounds_force_and_overlaps;
    refusals => bad_overrides_are_refused_and_other_merchants_cannot_see_them;
    restart_across_a_boundary => a_boundary_passed_while_the_service_was_down_is_applied_when_it_starts;
    prior_price_across_campaigns => the_prior_price_counts_campaign_prices_like_any_other;
}
