//! Signals from NATS JetStream, against a real `nats-server -js` of the test's own: observations
//! and demand published to a merchant's subjects reach its prices; a message that can never be
//! stored lands on the dead-letter subject with its error while the next one is stored; and a
//! `pricing` process killed with `kill -9` in the middle of a stream, then restarted, loses and
//! double-counts nothing.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{self, PullConsumer};
use chrono::Utc;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::nats::PrivateNats;
use crate::common::{Backend, fresh_database};
use crate::helpers::{TestApp, expect_status, spawn_app_with, test_settings};
use crate::process::Service;
use crate::signals::{decisions, price, setup_merchant};

const STREAM: &str = "PRICING_SIGNALS";
const CONSUMER: &str = "pricing-signals";

async fn spawn_app_with_nats(backend: Backend, nats: &PrivateNats) -> TestApp {
    let db = fresh_database(backend).await;
    let mut settings = test_settings(&db);
    settings.nats.url = Some(nats.url());
    spawn_app_with(settings, db).await
}

/// A JetStream context once the service has made its stream (publishing before that finds no
/// stream to take the message).
async fn jetstream_ready(nats: &PrivateNats) -> jetstream::Context {
    let client = async_nats::connect(nats.url()).await.expect("the test connects to its NATS server");
    let context = jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    while context.get_stream(STREAM).await.is_err() {
        assert!(Instant::now() < deadline, "the service did not create the {STREAM} stream within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    context
}

async fn publish(context: &jetstream::Context, subject: String, body: Vec<u8>) {
    let ack = context.publish(subject, body.into()).await.expect("published");
    ack.await.expect("the stream stored the message");
}

fn subject(merchant: &str, kind: &str) -> String {
    format!("pricing.signals.{merchant}.{kind}")
}

/// Polls `probe` until it returns `Some`, for at most `limit`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn observations_and_demand_from_jetstream_reach_prices(backend: Backend) {
    let nats = PrivateNats::start();
    let app = spawn_app_with_nats(backend, &nats).await;
    let (shop, shop_key) =
        setup_merchant(&app, "competitor-match", json!({"undercut_minor": 5, "min_margin_bps": 1000})).await;
    let (store, store_key) = setup_merchant(&app, "demand-based", json!({})).await;
    let context = jetstream_ready(&nats).await;

    // One entry as a message body, as one HTTP entry.
    let offer = json!({"id": "o-1", "sku": "tee-1", "competitor": "a", "price_minor": 1899, "currency": "EUR",
                       "in_stock": true, "observed_at": Utc::now() - chrono::Duration::minutes(5)});
    publish(&context, subject(&shop, "competitor"), serde_json::to_vec(&offer).unwrap()).await;
    eventually(Duration::from_secs(30), "the offer reaches the price", || async {
        (price(&app, &shop_key).await == 1894).then_some(())
    })
    .await;
    let latest = &decisions(&app, &shop_key).await[0];
    assert_eq!(latest["trigger"], "competitor_prices", "{latest}");

    // A batch as a message body, as an HTTP batch.
    let now = Utc::now();
    let mut events = vec![json!({"id": "inv-1", "sku": "tee-1", "kind": "inventory", "quantity": 100,
                                 "occurred_at": now - chrono::Duration::days(3)})];
    for day in 0..6 {
        events.push(json!({"id": format!("sale-{day}"), "sku": "tee-1", "kind": "sale", "quantity": 10,
                           "occurred_at": now - chrono::Duration::days(day) - chrono::Duration::hours(1)}));
    }
    let batch = serde_json::to_vec(&json!({"events": events})).unwrap();
    publish(&context, subject(&store, "demand"), batch.clone()).await;
    eventually(Duration::from_secs(30), "the demand reaches the price", || async {
        (price(&app, &store_key).await == 2099).then_some(())
    })
    .await;
    let inputs = &decisions(&app, &store_key).await[0]["record"]["inputs"]["demand"];
    assert_eq!((inputs["units_sold_7d"].as_i64(), inputs["inventory"].as_i64()), (Some(60), Some(100)));

    // The same batch again (a redelivery, a replaying producer) counts nothing twice.
    let recorded = decisions(&app, &store_key).await.len();
    publish(&context, subject(&store, "demand"), batch).await;
    settled_consumer(&context).await;
    app.engine.settled().await;
    assert_eq!(decisions(&app, &store_key).await.len(), recorded, "nothing changed, nothing evaluated");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let rows = metrics
        .lines()
        .find(|l| l.starts_with("pricing_signals_rows_total") && l.contains("kind=\"demand\""))
        .unwrap_or_else(|| panic!("no demand row counter in\n{metrics}"));
    assert!(rows.ends_with(" 14"), "two batches of 7 events were stored (one changing nothing): {rows}");
}

/// Waits until the service's consumer has every message delivered and acknowledged.
async fn settled_consumer(context: &jetstream::Context) {
    eventually(Duration::from_secs(60), "the consumer takes and acknowledges every message", || async {
        let info = consumer_info(context).await?;
        (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
    })
    .await;
}

/// The service's consumer as the server sees it now (none before the service made it).
async fn consumer_info(context: &jetstream::Context) -> Option<consumer::Info> {
    let consumer: PullConsumer = context.get_stream(STREAM).await.ok()?.get_consumer(CONSUMER).await.ok()?;
    Some(consumer.cached_info().clone())
}

both_backends! {
    jetstream_signals => observations_and_demand_from_jetstream_reach_prices;
    jetstream_kill_9 => a_consumer_killed_mid_stream_and_restarted_loses_and_double_counts_nothing;
}

#[tokio::test]
async fn a_message_that_can_never_be_stored_is_dead_lettered_and_the_next_one_is_stored() {
    let nats = PrivateNats::start();
    let app = spawn_app_with_nats(Backend::Sqlite, &nats).await;
    let (shop, key) =
        setup_merchant(&app, "competitor-match", json!({"undercut_minor": 5, "min_margin_bps": 1000})).await;
    let context = jetstream_ready(&nats).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut dead = client.subscribe("pricing.dead-letters.>").await.unwrap();
    client.flush().await.unwrap();

    let offer = |id: &str, price: i64, currency: &str| {
        json!({"id": id, "sku": "tee-1", "competitor": "a", "price_minor": price, "currency": currency,
               "in_stock": true, "observed_at": Utc::now() - chrono::Duration::minutes(5)})
    };
    let nobody = pricing::domain::MerchantId::generate().to_string();
    let poison: Vec<(String, Vec<u8>, &str)> = vec![
        (subject(&shop, "competitor"), b"{not json".to_vec(), "invalid_json"),
        (subject(&shop, "competitor"), serde_json::to_vec(&json!({"sku": "tee-1"})).unwrap(), "invalid_body"),
        (subject(&shop, "competitor"), serde_json::to_vec(&offer("o-1", -5, "EUR")).unwrap(), "validation_failed"),
        (subject(&nobody, "competitor"), serde_json::to_vec(&offer("o-2", 1500, "EUR")).unwrap(), "unknown_merchant"),
        (subject(&shop, "competitor"), serde_json::to_vec(&offer("o-4", 1500, "USD")).unwrap(), "currency_mismatch"),
    ];
    for (subject, body, _) in &poison {
        publish(&context, subject.clone(), body.clone()).await;
    }
    publish(&context, subject(&shop, "competitor"), serde_json::to_vec(&offer("o-3", 1899, "EUR")).unwrap()).await;

    for (subject, body, code) in &poison {
        let letter = tokio::time::timeout(Duration::from_secs(30), dead.next())
            .await
            .expect("a dead letter within 30 s")
            .expect("the subscription is open");
        let headers = letter.headers.as_ref().expect("a dead letter carries its error in headers");
        assert_eq!(headers.get("Pricing-Subject").map(|v| v.as_str()), Some(subject.as_str()));
        assert_eq!(headers.get("Pricing-Error-Code").map(|v| v.as_str()), Some(*code), "{subject}");
        assert!(!headers.get("Pricing-Error").unwrap().as_str().is_empty());
        assert_eq!(&letter.payload[..], &body[..], "the message is copied as it came");
        let merchant = subject.split('.').nth(2).unwrap();
        assert_eq!(letter.subject.as_str(), format!("pricing.dead-letters.{merchant}.competitor"));
    }
    eventually(Duration::from_secs(30), "the good message after the poison is stored", || async {
        (price(&app, &key).await == 1894).then_some(())
    })
    .await;
    settled_consumer(&context).await;
    let kept = context.get_stream("PRICING_DEAD_LETTERS").await.unwrap().get_info().await.unwrap();
    assert_eq!(kept.state.messages, poison.len() as u64, "dead letters are kept in their stream");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("pricing_signals_dead_letters_total") && l.ends_with(" 5")),
        "{metrics}"
    );
}

/// A small deterministic generator, seeded from the clock (the seed is in the messages).
fn roll(seed: &mut u64, below: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed % below
}

const MESSAGES: usize = 120;
const EVENTS_PER_MESSAGE: usize = 25;

async fn a_consumer_killed_mid_stream_and_restarted_loses_and_double_counts_nothing(backend: Backend) {
    let mut seed = Utc::now().timestamp_nanos_opt().unwrap() as u64 | 1;
    let initial_seed = seed;
    let nats = PrivateNats::start();
    let db = fresh_database(backend).await;
    // Small fetches, so the stream is consumed in many transactions and the kill falls between.
    // Messages the killed process held come back after 3 s.
    let env = [
        ("PRICING_NATS__URL", nats.url()),
        ("PRICING_NATS__FETCH_BATCH", "4".to_owned()),
        ("PRICING_NATS__ACK_WAIT_SECS", "3".to_owned()),
    ];
    let service = Service::start(&db, &env).await;
    let (merchant, key) = demand_shop(&service).await;
    let context = jetstream_ready(&nats).await;

    let at = Utc::now() - chrono::Duration::hours(2);
    let message = |n: usize| {
        let events: Vec<Value> = (0..EVENTS_PER_MESSAGE)
            .map(|i| json!({"id": format!("v-{n}-{i}"), "sku": "tee-1", "kind": "view", "quantity": 1, "occurred_at": at}))
            .collect();
        serde_json::to_vec(&json!({"events": events})).unwrap()
    };
    for n in 0..MESSAGES {
        publish(&context, subject(&merchant, "demand"), message(n)).await;
    }
    // Killed once some, but not all, of the messages are acknowledged.
    let kill_after = 1 + roll(&mut seed, MESSAGES as u64 / 2);
    eventually(Duration::from_secs(60), "the service acknowledges some messages", || async {
        (consumer_info(&context).await?.ack_floor.stream_sequence >= kill_after).then_some(())
    })
    .await;
    service.kill9();
    let acknowledged = consumer_info(&context).await.unwrap().ack_floor.stream_sequence;
    assert!(
        acknowledged < MESSAGES as u64,
        "the kill came mid-stream (seed {initial_seed}): {acknowledged} of {MESSAGES} acknowledged"
    );
    // Replayed by a producer while the service is down: stored already, counted once.
    for n in 0..5 {
        publish(&context, subject(&merchant, "demand"), message(n)).await;
    }

    let service = Service::start(&db, &env).await;
    settled_consumer(&context).await;
    let expected = (MESSAGES * EVENTS_PER_MESSAGE) as i64;
    let views = eventually(Duration::from_secs(60), "the last decision sees every view", || async {
        let views = latest_views(&service, &key).await;
        (views >= expected).then_some(views)
    })
    .await;
    assert_eq!(views, expected, "every event counted exactly once (seed {initial_seed}, killed after {acknowledged})");
    drop(service);
}

/// A merchant with `tee-1` priced by the demand-based rule, over the process's HTTP API.
async fn demand_shop(service: &Service) -> (String, String) {
    let (merchant, key) = service.merchant_with_roles("Views", &["merchant", "checkout"]).await;
    let client = reqwest::Client::new();
    let send =
        |method: Method, path: &str| client.request(method, format!("{}{path}", service.address)).bearer_auth(&key);
    let product = json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1999});
    let response = send(Method::PUT, "/v1/products/tee-1").json(&product).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let version = service.upload_rule(&key, "demand-based").await;
    let response = send(Method::POST, &format!("/v1/rules/{version}/activate")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    (merchant, key)
}

/// The views in the latest decision's inputs for `tee-1` (0 before any).
async fn latest_views(service: &Service, key: &str) -> i64 {
    let history = reqwest::Client::new()
        .get(format!("{}/v1/prices/tee-1/history", service.address))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let history: Value = expect_status(history, StatusCode::OK).await;
    history["items"][0]["record"]["inputs"]["demand"]["views_1d"].as_i64().unwrap_or(0)
}
