//! The safety net over HTTP, both backends: approval thresholds that hold some changes as
//! proposals and let the others through; approving and rejecting (one, and by filter) through
//! the chain, which verifies and replays; supersede, expiry and guardrails re-checked on
//! approval; who may decide; the circuit breaker against a feed that lists everything at one
//! cent; and a freeze during a catalogue reprice.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::Backend;
use crate::common::rules::built_rule;
use crate::helpers::{TestApp, expect_error, expect_status, spawn_app};
use crate::pipeline::{price, verification};

struct Shop {
    merchant: String,
    key: String,
}

/// A merchant with `n` products `p-000`… (EUR, cost 1000, base 1999, `brand` a or b by
/// parity) priced by `rule` with `params`, settled.
async fn shop(app: &TestApp, n: usize, rule: &str, params: Value) -> Shop {
    let (merchant, key) = app.merchant_with_key(&["merchant", "checkout", "feed", "auditor"]).await;
    for i in 0..n {
        let brand = if i % 2 == 0 { "a" } else { "b" };
        let body = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999,
                          "attributes": {"brand": brand}});
        expect_status(app.put_product(&key, &format!("p-{i:03}"), body).await, StatusCode::CREATED).await;
    }
    let version = app.rule_version(&key, built_rule(rule)).await;
    let path = format!("/v1/rules/{version}/params");
    expect_status(app.call(Method::PUT, &path, Some(&key), Some(params)).await, StatusCode::OK).await;
    let path = format!("/v1/rules/{version}/activate");
    expect_status(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::OK).await;
    app.engine.settled().await;
    Shop { merchant, key }
}

async fn settings(app: &TestApp, key: &str, extra: Value) -> Value {
    let mut body = json!({"show_prior_price": false});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    expect_status(app.call(Method::PUT, "/v1/settings", Some(key), Some(body)).await, StatusCode::OK).await
}

async fn set_cost(app: &TestApp, key: &str, sku: &str, cost: i64) {
    let body = json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": 1999,
                      "attributes": {"brand": if sku.ends_with(['0', '2', '4', '6', '8']) { "a" } else { "b" }}});
    expect_status(app.put_product(key, sku, body).await, StatusCode::OK).await;
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    expect_status(app.call(Method::GET, path, Some(key), None).await, StatusCode::OK).await
}

async fn pending(app: &TestApp, key: &str) -> Vec<Value> {
    get(app, key, "/v1/proposals").await["items"].as_array().unwrap().clone()
}

/// The last decision of a SKU.
async fn last_decision(app: &TestApp, key: &str, sku: &str) -> Value {
    get(app, key, &format!("/v1/prices/{sku}/history?limit=1")).await["items"][0].clone()
}

async fn each_approval_threshold_holds_its_changes_and_lets_the_others_through(backend: Backend) {
    let app = spawn_app(backend).await;
    // cost-plus at 25 % over cost: cost 1000 gives 1250, a margin of 2,500 bp over cost.
    let shop = shop(&app, 8, "cost-plus", json!({"margin_bps": 2500})).await;
    let key = &shop.key;
    assert_eq!(price(&app, key, "p-000").await.0, 1250);

    settings(&app, key, json!({"approval": {"max_increase_bps": 1000, "max_decrease_bps": 2000}})).await;
    set_cost(&app, key, "p-000", 1048).await; // 1250 → 1310: +4.8 %, through
    set_cost(&app, key, "p-001", 1200).await; // 1250 → 1500: +20 %, held
    set_cost(&app, key, "p-002", 900).await; // 1250 → 1125: -10 %, through
    set_cost(&app, key, "p-003", 700).await; // 1250 → 875: -30 %, held
    app.engine.settled().await;
    assert_eq!(price(&app, key, "p-000").await.0, 1310);
    assert_eq!(price(&app, key, "p-001").await.0, 1250, "a held change keeps the price in force");
    assert_eq!(price(&app, key, "p-002").await.0, 1125);
    assert_eq!(price(&app, key, "p-003").await.0, 1250);
    let held = last_decision(&app, key, "p-001").await;
    assert_eq!((held["outcome"].as_str(), held["new_price_minor"].as_i64()), (Some("held"), Some(1250)));
    assert_eq!(held["record"]["hold"]["reason"], "large_increase");
    assert_eq!(held["record"]["hold"]["proposed_price_minor"], 1500);
    let mut reasons: Vec<(String, String, i64)> = pending(&app, key)
        .await
        .iter()
        .map(|p| {
            (
                p["sku"].as_str().unwrap().to_owned(),
                p["reason"].as_str().unwrap().to_owned(),
                p["proposed_price_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [("p-001".into(), "large_increase".into(), 1500), ("p-003".into(), "large_decrease".into(), 875)]
    );

    // Each other threshold alone, on a change of its own.
    for (policy, sku, cost, reason) in [
        (json!({"min_margin_bps": 3000}), "p-004", 1008, "low_margin"),
        (json!({"new_version_hours": 1}), "p-005", 1008, "new_version"),
        (json!({"all_changes": true}), "p-006", 1008, "all_changes"),
    ] {
        settings(&app, key, json!({"approval": policy})).await;
        set_cost(&app, key, sku, cost).await;
        app.engine.settled().await;
        assert_eq!(price(&app, key, sku).await.0, 1250, "{reason}");
        assert_eq!(last_decision(&app, key, sku).await["record"]["hold"]["reason"], reason);
    }
    // With no threshold, changes go live again.
    settings(&app, key, json!({"approval": {}})).await;
    set_cost(&app, key, "p-007", 1100).await;
    app.engine.settled().await;
    assert_eq!(price(&app, key, "p-007").await.0, 1375);
    let shown = get(&app, key, "/v1/settings").await;
    assert_eq!(shown["approval"]["all_changes"], false);
    assert_eq!(shown["approval"]["expires_after_secs"], 86_400);
    assert_eq!(verification(&app, key).await["intact"], true);
}

async fn proposals_are_approved_and_rejected_through_the_chain(backend: Backend) {
    let app = spawn_app(backend).await;
    let shop = shop(&app, 8, "cost-plus", json!({"margin_bps": 2500})).await;
    let key = &shop.key;
    let approver = app.issue_key(&shop.merchant, &["approver"]).await;
    let (approver_key, approver_id) = (approver["key"].as_str().unwrap(), approver["id"].as_str().unwrap());
    settings(&app, key, json!({"approval": {"all_changes": true}})).await;
    for i in 0..8 {
        set_cost(&app, key, &format!("p-{i:03}"), 1200).await;
    }
    app.engine.settled().await;
    let proposals = pending(&app, key).await;
    assert_eq!(proposals.len(), 8);
    let seq_of = |sku: &str| proposals.iter().find(|p| p["sku"] == sku).unwrap()["seq"].as_i64().unwrap();

    // Who may decide: the approver and the merchant; never a feed or checkout key, and no
    // other merchant (whose view of this proposal is that it does not exist).
    let path = format!("/v1/proposals/{}/approve", seq_of("p-000"));
    for roles in [["feed"], ["checkout"]] {
        let other = app.issue_key(&shop.merchant, &roles).await;
        let response = app.call(Method::POST, &path, other["key"].as_str(), None).await;
        expect_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let (_, stranger) = app.merchant_with_key(&["merchant"]).await;
    expect_error(app.call(Method::POST, &path, Some(&stranger), None).await, StatusCode::NOT_FOUND, "not_found").await;

    // One approved by the approver: the price moves, and the record names the key.
    let approved = expect_status(app.call(Method::POST, &path, Some(approver_key), None).await, StatusCode::OK).await;
    assert_eq!((approved["outcome"].as_str(), approved["price_minor"].as_i64()), (Some("changed"), Some(1500)));
    assert_eq!(price(&app, key, "p-000").await.0, 1500);
    let record = last_decision(&app, key, "p-000").await;
    assert_eq!(record["trigger"], "proposal_approved");
    assert_eq!(record["record"]["resolution"]["key_id"], approver_id);
    assert_eq!(record["record"]["resolution"]["proposal_seq"], seq_of("p-000"));
    expect_error(app.call(Method::POST, &path, Some(key), None).await, StatusCode::CONFLICT, "proposal_not_pending")
        .await;

    // One rejected by the merchant: the price stays, and the rejection is recorded.
    let path = format!("/v1/proposals/{}/reject", seq_of("p-001"));
    let rejected = expect_status(app.call(Method::POST, &path, Some(key), None).await, StatusCode::OK).await;
    assert_eq!(rejected["price_minor"], 1250);
    assert_eq!(last_decision(&app, key, "p-001").await["trigger"], "proposal_rejected");
    let shown = get(&app, key, &format!("/v1/proposals/{}", seq_of("p-001"))).await;
    assert_eq!((shown["state"].as_str(), shown["resolved_by"].is_string()), (Some("rejected"), true));

    // By filter: brand a's pending ones approved (p-002, p-004, p-006), the rest rejected.
    let body = json!({"attributes": {"brand": "a"}});
    let done = expect_status(
        app.call(Method::POST, "/v1/proposals/approve", Some(approver_key), Some(body)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["resolved"].as_array().unwrap().len(), 3, "{done}");
    for sku in ["p-002", "p-004", "p-006"] {
        assert_eq!(price(&app, key, sku).await.0, 1500, "{sku}");
    }
    let done = expect_status(
        app.call(Method::POST, "/v1/proposals/reject", Some(key), Some(json!({"reason": "all_changes"}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["resolved"].as_array().unwrap().len(), 3, "{done}");
    assert!(pending(&app, key).await.is_empty());
    for sku in ["p-003", "p-005", "p-007"] {
        assert_eq!(price(&app, key, sku).await.0, 1250, "{sku}");
    }
    let approved = get(&app, key, "/v1/proposals?state=approved").await;
    assert_eq!(approved["items"].as_array().unwrap().len(), 4);

    // The chain verifies, and a held decision replays to the price it proposed.
    assert_eq!(verification(&app, key).await["intact"], true);
    let path = format!("/v1/decisions/{}/replay", seq_of("p-003"));
    let replay = expect_status(app.call(Method::POST, &path, Some(key), None).await, StatusCode::OK).await;
    assert_eq!(replay["identical"], true, "{replay}");
}

async fn newer_evaluations_supersede_and_old_proposals_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    let shop = shop(&app, 2, "cost-plus", json!({"margin_bps": 2500})).await;
    let key = &shop.key;
    settings(&app, key, json!({"approval": {"all_changes": true, "expires_after_secs": 2}})).await;
    set_cost(&app, key, "p-000", 1200).await;
    app.engine.settled().await;
    let first = pending(&app, key).await[0]["seq"].as_i64().unwrap();
    set_cost(&app, key, "p-000", 1300).await;
    app.engine.settled().await;
    let now_pending = pending(&app, key).await;
    assert_eq!(now_pending.len(), 1);
    assert_eq!(now_pending[0]["proposed_price_minor"], 1625);
    let old = get(&app, key, &format!("/v1/proposals/{first}")).await;
    assert_eq!(old["state"], "superseded");
    assert_eq!(old["resolved_seq"], now_pending[0]["seq"]);
    let path = format!("/v1/proposals/{first}/approve");
    expect_error(app.call(Method::POST, &path, Some(key), None).await, StatusCode::CONFLICT, "proposal_not_pending")
        .await;

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(pending(&app, key).await.is_empty(), "expired proposals are not pending");
    let seq = now_pending[0]["seq"].as_i64().unwrap();
    assert_eq!(get(&app, key, &format!("/v1/proposals/{seq}")).await["state"], "expired");
    let path = format!("/v1/proposals/{seq}/approve");
    expect_error(app.call(Method::POST, &path, Some(key), None).await, StatusCode::CONFLICT, "proposal_not_pending")
        .await;
    assert_eq!(price(&app, key, "p-000").await.0, 1250);
}

async fn approval_applies_the_guardrails_as_they_are_then(backend: Backend) {
    let app = spawn_app(backend).await;
    let shop = shop(&app, 1, "cost-plus", json!({"margin_bps": 2500})).await;
    let key = &shop.key;
    settings(&app, key, json!({"approval": {"max_increase_bps": 1000}})).await;
    set_cost(&app, key, "p-000", 1200).await;
    app.engine.settled().await;
    let seq = pending(&app, key).await[0]["seq"].as_i64().unwrap();
    // The merchant lowers the ceiling before anyone approves (and before the engine, stopped
    // here, evaluates the product again).
    app.engine.shutdown(Duration::from_secs(5)).await;
    let body = json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1399,
                      "attributes": {"brand": "a"}, "guardrails": {"ceiling_minor": 1400}});
    expect_status(app.put_product(key, "p-000", body).await, StatusCode::OK).await;
    let path = format!("/v1/proposals/{seq}/approve");
    let approved = expect_status(app.call(Method::POST, &path, Some(key), None).await, StatusCode::OK).await;
    assert_eq!(approved["price_minor"], 1400, "the ceiling as it is now bounds the approved price");
    assert_eq!(price(&app, key, "p-000").await.0, 1400);
    let record = last_decision(&app, key, "p-000").await;
    assert_eq!(record["clipped"], true);
    assert_eq!(record["record"]["clips"], json!(["ceiling"]));
    assert_eq!(verification(&app, key).await["intact"], true);
}

/// Competitor observations at `price` for every product, in one batch.
async fn feed(app: &TestApp, key: &str, n: usize, price: i64, tag: &str) {
    let observations: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("{tag}-{i}"), "sku": format!("p-{i:03}"), "competitor": "rival", "price_minor": price,
                   "currency": "EUR", "in_stock": true, "observed_at": chrono::Utc::now()})
        })
        .collect();
    let body = json!({"observations": observations});
    expect_status(app.call(Method::POST, "/v1/signals/competitor-prices", Some(key), Some(body)).await, StatusCode::OK)
        .await;
    app.engine.settled().await;
}

async fn count(app: &TestApp, key: &str, query: &str) -> usize {
    get(app, key, &format!("/v1/decisions?limit=1000&{query}")).await["items"].as_array().unwrap().len()
}

async fn a_one_cent_feed_trips_the_breaker_and_resume_restarts_automation(backend: Backend) {
    const N: usize = 100;
    let app = spawn_app(backend).await;
    let shop =
        shop(&app, N, "competitor-match", json!({"undercut_minor": 5, "max_age_hours": 24, "min_margin_bps": 0})).await;
    let key = &shop.key;
    // No plausibility screen (it would hold a one-cent offer back on its own), and a breaker
    // that allows automation to move a tenth of the catalogue in its window.
    let limits = json!({"min_sample": 10, "max_changed_share_bps": 1000});
    settings(&app, key, json!({"max_competitor_ratio": 0, "breaker": limits})).await;

    feed(&app, key, N, 1, "cent").await;
    let moved = count(&app, key, "trigger=competitor_prices&outcome=changed").await;
    assert!(moved > 0 && moved <= N / 10, "{moved} prices moved; at most a tenth may");
    assert_eq!(count(&app, key, "trigger=competitor_prices&outcome=held").await, N - moved);
    let automation = get(&app, key, "/v1/automation").await;
    assert_eq!(automation["state"], "tripped", "{automation}");
    assert!(automation["breaker"]["trip"]["limit"].is_string());
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("pricing_breaker_trips"), "the trip is a metric");
    // ...and an event in the outbox that feeds JetStream and webhooks, after the moves.
    let merchant = pricing::domain::MerchantId::parse(&shop.merchant).unwrap();
    let (outbox, _) = app.store.price_changes(merchant, 0, i64::MAX, 100_000).await.unwrap();
    let trips: Vec<_> = outbox.iter().filter(|c| c.breaker_trip.is_some()).collect();
    assert_eq!(trips.len(), 1, "one trip, one event");
    let event = pricing::events::PriceEvent::from(trips[0]);
    let event = serde_json::to_value(&event).unwrap();
    assert_eq!((&event["kind"], &event["breaker"]), (&json!("breaker_tripped"), &automation["breaker"]["trip"]));
    assert_eq!(event["old_price_minor"], event["new_price_minor"], "a trip moves no price");

    // Nothing moves while it is open, whatever arrives.
    feed(&app, key, N, 2, "two-cents").await;
    set_cost(&app, key, "p-099", 1500).await;
    app.engine.settled().await;
    assert_eq!(count(&app, key, "trigger=competitor_prices&outcome=changed").await, moved);
    assert_eq!(price(&app, key, "p-099").await.0, 1999, "lookups answer the price in force");

    // The feed is fixed, the merchant widens the limits and resumes: prices follow again.
    feed(&app, key, N, 1900, "fixed").await;
    settings(&app, key, json!({"breaker": {"min_sample": 1000}})).await;
    let resumed =
        expect_status(app.call(Method::POST, "/v1/automation/resume", Some(key), None).await, StatusCode::OK).await;
    assert_eq!((resumed["state"].as_str(), resumed["changed"].as_bool()), (Some("running"), Some(true)));
    app.engine.settled().await;
    for i in [0, 50, 98] {
        assert_eq!(price(&app, key, &format!("p-{i:03}")).await.0, 1895, "p-{i:03}");
    }
    assert_eq!(price(&app, key, "p-099").await.0, 1895);
    assert_eq!(verification(&app, key).await["intact"], true);
}

async fn a_freeze_stops_a_running_reprice_at_once(backend: Backend) {
    // Large enough that the sweep is still running when the freeze arrives on a busy machine.
    const N: usize = 6_000;
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    let products: Vec<Value> = (0..N)
        .map(|i| json!({"sku": format!("p-{i:04}"), "currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999}))
        .collect();
    let body: String = products.iter().map(|p| format!("{p}\n")).collect();
    crate::overrides::import(&app, &key, body).await;
    let version = app.rule_version(&key, built_rule("cost-plus")).await;
    let path = format!("/v1/rules/{version}/activate");
    expect_status(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::OK).await;
    // Let the sweep start, then freeze.
    for _ in 0..400 {
        let first = get(&app, &key, "/v1/decisions?limit=1&trigger=rule_activated&outcome=changed").await;
        if !first["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let body = json!({"reason": "holiday check"});
    let frozen =
        expect_status(app.call(Method::POST, "/v1/automation/freeze", Some(&key), Some(body)).await, StatusCode::OK)
            .await;
    assert_eq!(frozen["state"], "frozen");
    assert_eq!(frozen["frozen"]["reason"], "holiday check");
    let at_freeze = crate::common::scalar(&app.db, "SELECT COUNT(*) FROM decisions WHERE outcome = 'changed'").await;
    app.engine.settled().await;
    let after = crate::common::scalar(&app.db, "SELECT COUNT(*) FROM decisions WHERE outcome = 'changed'").await;
    assert_eq!(after, at_freeze, "no price moved after the freeze was acknowledged");
    let held = crate::common::scalar(&app.db, "SELECT COUNT(*) FROM decisions WHERE outcome = 'held'").await;
    let rule_moved = at_freeze - N as i64; // the import's creations are changes too
    assert!(held > 0, "the sweep went on, holding its changes");
    assert_eq!(rule_moved + held, N as i64, "every product was evaluated once: moved before, held after");
    let held_one = get(&app, &key, "/v1/decisions?outcome=held&limit=1").await["items"][0]["sku"].clone();
    let held_one = held_one.as_str().unwrap().to_owned();
    assert_eq!(price(&app, &key, &held_one).await.0, 1999, "lookups answer the price in force");

    let lifted =
        expect_status(app.call(Method::POST, "/v1/automation/unfreeze", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(lifted["state"], "running");
    app.engine.settled().await;
    assert_eq!(price(&app, &key, &held_one).await.0, 1300, "after the freeze, the catalogue is evaluated anew");
    assert_eq!(verification(&app, &key).await["intact"], true);
}

both_backends! {
    approval_thresholds => each_approval_threshold_holds_its_changes_and_lets_the_others_through;
    approve_and_reject => proposals_are_approved_and_rejected_through_the_chain;
    supersede_and_expiry => newer_evaluations_supersede_and_old_proposals_expire;
    approval_rechecks_guardrails => approval_applies_the_guardrails_as_they_are_then;
    breaker => a_one_cent_feed_trips_the_breaker_and_resume_restarts_automation;
    freeze => a_freeze_stops_a_running_reprice_at_once;
    dry_runs => a_dry_run_says_what_the_safety_net_would_do;
}

async fn a_dry_run_says_what_the_safety_net_would_do(backend: Backend) {
    let app = spawn_app(backend).await;
    let shop = shop(&app, 2, "cost-plus", json!({"margin_bps": 2500})).await;
    let key = &shop.key;
    let version = get(&app, key, "/v1/rules").await["active_version"].as_i64().unwrap();
    let dry = |sku: &'static str| {
        let (app, key) = (&app, key);
        async move {
            let ran = expect_status(app.dry_run(key, version, json!({"skus": [sku]})).await, StatusCode::OK).await;
            ran["results"][0]["guarded"].clone()
        }
    };
    settings(&app, key, json!({"approval": {"max_increase_bps": 1000}})).await;
    set_cost(&app, key, "p-000", 1200).await; // 1250 → 1500: held live
    app.engine.settled().await;
    assert_eq!(last_decision(&app, key, "p-000").await["record"]["hold"]["reason"], "large_increase");
    let guarded = dry("p-000").await;
    assert_eq!((&guarded["new_price_minor"], &guarded["held"]), (&json!(1500), &json!("large_increase")), "as live");
    assert!(dry("p-001").await.get("held").is_none(), "a kept price is not held: {}", dry("p-001").await);

    let path = "/v1/automation/freeze";
    expect_status(app.call(Method::POST, path, Some(key), Some(json!({"reason": "x"}))).await, StatusCode::OK).await;
    assert_eq!(dry("p-000").await["held"], "frozen");
    let body = json!({"sku": "p-000", "price_minor": 999, "currency": "EUR", "reason": "sale"});
    expect_status(app.call(Method::POST, "/v1/overrides", Some(key), Some(body)).await, StatusCode::CREATED).await;
    assert_eq!(dry("p-000").await["held"], "override", "an override comes first");
}
