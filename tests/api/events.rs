//! Price events out. To JetStream, against a `nats-server -js` of the test's own: the real
//! `pricing` binary, killed with `kill -9` at random moments while prices change (so some
//! changes are committed and not yet published), publishes every change of a price in force in
//! chain order per merchant, none missing. To webhooks, against a real HTTP receiver on a local
//! socket: deliveries are signed (the signature verifies), a failing receiver gets retries with
//! backoff and then the webhook is disabled, every attempt is listed, and enabling it resumes
//! where it stopped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use hmac::{KeyInit, Mac};
use pricing::domain::{MerchantId, Outcome};
use pricing::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::common::nats::PrivateNats;
use crate::common::{Backend, fresh_database};
use crate::helpers::{expect_error, expect_status, spawn_app, spawn_app_with, test_settings};
use crate::process::Service;

/// A small deterministic generator, seeded from the clock (the seed is in the messages).
fn roll(seed: &mut u64, below: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed % below
}

/// A merchant with `skus` products priced by cost-plus, over the process's API.
async fn shop(service: &Service, skus: usize) -> (String, String) {
    let (merchant, key) = service.merchant_with_roles("Events", &["merchant"]).await;
    let client = reqwest::Client::new();
    for i in 0..skus {
        let body = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999});
        let answer =
            client.put(format!("{}/v1/products/sku-{i}", service.address)).bearer_auth(&key).json(&body).send().await;
        assert_eq!(answer.unwrap().status(), StatusCode::CREATED);
    }
    let version = service.upload_rule(&key, "cost-plus").await;
    let params = client
        .put(format!("{}/v1/rules/{version}/params", service.address))
        .bearer_auth(&key)
        .json(&json!({"margin_bps": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(params.status(), StatusCode::OK);
    let activated =
        client.post(format!("{}/v1/rules/{version}/activate", service.address)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(activated.status(), StatusCode::OK);
    (merchant, key)
}

/// Cost changes, one after another, for `period`; ends early at the first failed request.
async fn churn(address: String, key: String, skus: usize, period: Duration, mut seed: u64) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let end = Instant::now() + period;
    let mut n = 0;
    while Instant::now() < end && n < 2_000 {
        n += 1;
        let sku = roll(&mut seed, skus as u64);
        let body = json!({"currency": "EUR", "cost_minor": 1000 + roll(&mut seed, 500), "base_price_minor": 1999});
        let sent = client.put(format!("{address}/v1/products/sku-{sku}")).bearer_auth(&key).json(&body).send().await;
        if !sent.is_ok_and(|r| r.status().is_success()) {
            return;
        }
    }
}

/// Every message of the merchant's price events subject, in stream order.
async fn published(context: &jetstream::Context, merchant: &str) -> Vec<Value> {
    let Ok(stream) = context.get_stream("PRICING_PRICES").await else { return Vec::new() };
    let reader = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: format!("pricing.prices.{merchant}"),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events = Vec::new();
    loop {
        let mut batch =
            reader.fetch().max_messages(1_000).expires(Duration::from_millis(300)).messages().await.unwrap();
        let before = events.len();
        while let Some(message) = batch.next().await {
            events.push(serde_json::from_slice::<Value>(&message.unwrap().payload).unwrap());
        }
        if events.len() == before {
            return events;
        }
    }
}

async fn price_events_reach_jetstream_in_chain_order_and_none_is_lost_to_kill_9(backend: Backend) {
    const SKUS: usize = 12;
    let mut seed = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64 | 1;
    let initial_seed = seed;
    let mut nats = PrivateNats::start();
    let db = fresh_database(backend).await;
    let env = [("PRICING_NATS__URL", nats.url())];
    let mut service = Service::start(&db, &env).await;
    let (merchant, key) = shop(&service, SKUS).await;
    for _ in 0..3 {
        let period = Duration::from_millis(100 + roll(&mut seed, 600));
        churn(service.address.clone(), key.clone(), SKUS, period, seed).await;
        // Killed at once: the last changes are committed, and likely not yet published.
        service.kill9();
        service = Service::start(&db, &env).await;
    }
    // Certainly between commit and publication: NATS is down while prices change, and the
    // service is killed before it comes back.
    nats.stop();
    churn(service.address.clone(), key.clone(), SKUS, Duration::from_millis(500), seed).await;
    let mut few = pricing::config::Settings::defaults().store;
    few.max_connections = 2;
    let store = Store::connect(&db.url, &few).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.has_work().await.unwrap() {
        assert!(Instant::now() < deadline, "repricing settles within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service.kill9();
    nats.restart();
    service = Service::start(&db, &env).await;

    let client = async_nats::connect(nats.url()).await.unwrap();
    let context = jetstream::new(client);
    let merchant_id: MerchantId = merchant.parse().unwrap();
    // The chain settles (repricing done), then its changes are all published.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (changes, events) = loop {
        let chain = store.chain(merchant_id, 0, 100_000).await.unwrap();
        let changes: Vec<_> = chain.into_iter().filter(|d| d.outcome == Outcome::Changed).collect();
        let events = published(&context, &merchant).await;
        let distinct: std::collections::BTreeSet<i64> =
            events.iter().map(|e| e["decision_seq"].as_i64().unwrap()).collect();
        if distinct.len() == changes.len() && !store.has_work().await.unwrap() {
            break (changes, events);
        }
        assert!(
            Instant::now() < deadline,
            "seed {initial_seed}: {} of {} changes published within 90 s",
            distinct.len(),
            changes.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(changes.len() > SKUS, "prices changed (seed {initial_seed}): {}", changes.len());

    // In stream order, dropping any repeat (a seq at or below the highest seen): exactly the
    // chain's changes, in chain order, each with its prices.
    let mut highest = 0;
    let mut firsts = Vec::new();
    let mut seen: BTreeMap<i64, Value> = BTreeMap::new();
    for event in events {
        let seq = event["decision_seq"].as_i64().unwrap();
        if let Some(earlier) = seen.get(&seq) {
            assert_eq!(earlier, &event, "a repeat carries the same event");
        }
        if seq > highest {
            highest = seq;
            firsts.push(event.clone());
        } else {
            assert!(
                seen.contains_key(&seq),
                "seq {seq} arrived after {highest} without coming before it (seed {initial_seed})"
            );
        }
        seen.insert(seq, event);
    }
    assert_eq!(firsts.len(), changes.len(), "seed {initial_seed}");
    for (event, change) in firsts.iter().zip(&changes) {
        assert_eq!(event["decision_seq"], change.seq);
        assert_eq!(event["merchant_id"], merchant);
        assert_eq!(event["sku"], change.sku);
        assert_eq!(event["currency"], change.currency);
        assert_eq!(event["old_price_minor"].as_i64(), change.old_price_minor, "{event}");
        assert_eq!(event["new_price_minor"].as_i64(), change.new_price_minor, "{event}");
        assert_eq!(event["trigger"], change.trigger.as_str());
    }
    drop(service);
}

both_backends! {
    jetstream_price_events => price_events_reach_jetstream_in_chain_order_and_none_is_lost_to_kill_9;
}

/// What the receiver got: each request's headers (lower-case names) and body.
type Received = Arc<Mutex<Vec<(BTreeMap<String, String>, Vec<u8>)>>>;

/// A webhook receiver on a local socket that answers every request with `status` (shared, so
/// the test can change it): one request per connection.
async fn receiver(status: Arc<Mutex<u16>>) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/hooks/prices", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let (log, status) = (log.clone(), status.clone());
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    let Ok(n) = socket.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at;
                    }
                };
                let head = String::from_utf8_lossy(&data[..head_end]).to_string();
                let headers: BTreeMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                    .collect();
                let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                while data.len() < head_end + 4 + length {
                    let Ok(n) = socket.read(&mut buf).await else { return };
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                }
                let body = data[head_end + 4..].to_vec();
                log.lock().unwrap().push((headers, body));
                let code = *status.lock().unwrap();
                let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (address, received)
}

/// Waits until the receiver holds `count` requests (at most 30 s).
async fn received_at_least(received: &Received, count: usize) -> Vec<(BTreeMap<String, String>, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = received.lock().unwrap().clone();
        if now.len() >= count {
            return now;
        }
        assert!(Instant::now() < deadline, "{} of {count} deliveries within 30 s", now.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verify(secret: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    let Some(signature) = headers.get("pricing-signature") else { return false };
    let Some((t, v1)) = signature.split_once(",v1=") else { return false };
    let t = t.trim_start_matches("t=");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    mac.verify_slice(&hex::decode(v1).unwrap()).is_ok() && (0..300).contains(&age)
}

#[tokio::test]
async fn webhooks_are_signed_retried_disabled_after_failures_and_resumed_when_enabled() {
    let db = fresh_database(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.webhooks.allow_private_addresses = true;
    settings.webhooks.retry_base_ms = 50;
    settings.webhooks.max_failures = 3;
    let app = spawn_app_with(settings, db).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let status = Arc::new(Mutex::new(200u16));
    let (url, received) = receiver(status.clone()).await;

    let created = app.call(Method::POST, "/v1/webhooks", Some(&key), Some(json!({"url": url}))).await;
    let created = expect_status(created, StatusCode::CREATED).await;
    let (id, secret) = (created["id"].as_str().unwrap().to_owned(), created["secret"].as_str().unwrap().to_owned());
    assert_eq!(created["enabled"], true);
    let listed = expect_status(app.call(Method::GET, "/v1/webhooks", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0].get("secret").is_none(), "the secret is shown once: {listed}");

    // A product put in force: one signed delivery with its event.
    let product = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999});
    expect_status(app.put_product(&key, "tee-1", product.clone()).await, StatusCode::CREATED).await;
    let got = received_at_least(&received, 1).await;
    let (headers, body) = &got[0];
    assert!(verify(&secret, headers, body), "the signature verifies: {headers:?}");
    assert!(!verify("whsec_other", headers, body), "and only under the webhook's secret");
    assert_eq!(headers.get("pricing-webhook-id"), Some(&id));
    let delivered: Value = serde_json::from_slice(body).unwrap();
    let event = &delivered["events"][0];
    assert_eq!((event["sku"].as_str(), event["trigger"].as_str()), (Some("tee-1"), Some("product_created")));
    assert_eq!((event["new_price_minor"].as_i64(), event["currency"].as_str()), (Some(1999), Some("EUR")));
    assert!(event["old_price_minor"].is_null());

    // The receiver fails: three attempts, then the webhook is disabled with the reason.
    *status.lock().unwrap() = 500;
    expect_status(app.put_product(&key, "tee-2", product.clone()).await, StatusCode::CREATED).await;
    let got = received_at_least(&received, 4).await;
    for (headers, body) in &got[1..4] {
        assert!(verify(&secret, headers, body));
        assert_eq!(serde_json::from_slice::<Value>(body).unwrap()["events"][0]["sku"], "tee-2");
    }
    let attempts: Vec<&str> = got[1..4].iter().map(|(h, _)| h["pricing-delivery-attempt"].as_str()).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let path = format!("/v1/webhooks/{id}");
    let hook = loop {
        let hook = expect_status(app.call(Method::GET, &path, Some(&key), None).await, StatusCode::OK).await;
        if hook["enabled"] == false {
            break hook;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(hook["disabled_reason"].as_str().unwrap().contains("3 deliveries failed in a row"), "{hook}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received.lock().unwrap().len(), 4, "a disabled webhook gets nothing");

    let deliveries = expect_status(
        app.call(Method::GET, &format!("/v1/webhooks/{id}/deliveries"), Some(&key), None).await,
        StatusCode::OK,
    )
    .await;
    let items = deliveries["items"].as_array().unwrap();
    let summary: Vec<(bool, Option<i64>, i64)> = items
        .iter()
        .map(|d| (d["delivered"].as_bool().unwrap(), d["status_code"].as_i64(), d["attempt"].as_i64().unwrap()))
        .collect();
    assert_eq!(summary, [(false, Some(500), 3), (false, Some(500), 2), (false, Some(500), 1), (true, Some(200), 1)]);

    // Enabled again, it resumes with what it had not delivered, then what follows.
    *status.lock().unwrap() = 204;
    let enabled = app.call(Method::POST, &format!("/v1/webhooks/{id}/enable"), Some(&key), None).await;
    assert_eq!(expect_status(enabled, StatusCode::OK).await["enabled"], true);
    let got = received_at_least(&received, 5).await;
    assert_eq!(serde_json::from_slice::<Value>(&got[4].1).unwrap()["events"][0]["sku"], "tee-2");
    expect_status(app.call(Method::DELETE, "/v1/products/tee-1", Some(&key), None).await, StatusCode::NO_CONTENT).await;
    let got = received_at_least(&received, 6).await;
    let deleted = &serde_json::from_slice::<Value>(&got[5].1).unwrap()["events"][0];
    assert_eq!((deleted["trigger"].as_str(), deleted["new_price_minor"].is_null()), (Some("product_deleted"), true));
    let seqs: Vec<i64> = got[4..6]
        .iter()
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap()["events"][0]["decision_seq"].as_i64().unwrap())
        .collect();
    assert!(seqs[0] < seqs[1], "in chain order: {seqs:?}");

    let response = app.call(Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_error(app.call(Method::GET, &path, Some(&key), None).await, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn webhooks_must_be_https_to_public_addresses_and_another_merchants_are_not_found() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    for url in ["http://shop.example/hook", "https://127.0.0.1/hook", "https://169.254.169.254/x", "ftp://x.example/"] {
        let response = app.call(Method::POST, "/v1/webhooks", Some(&key), Some(json!({"url": url}))).await;
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error["fields"][0]["field"], "url", "{url}: {error}");
    }
    let made =
        app.call(Method::POST, "/v1/webhooks", Some(&key), Some(json!({"url": "https://shop.example/hook"}))).await;
    let id = expect_status(made, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
    let (_, other) = app.merchant_with_key(&["merchant"]).await;
    let path = format!("/v1/webhooks/{id}");
    expect_error(app.call(Method::GET, &path, Some(&other), None).await, StatusCode::NOT_FOUND, "not_found").await;
    expect_error(app.call(Method::DELETE, &path, Some(&other), None).await, StatusCode::NOT_FOUND, "not_found").await;
    let (_, checkout) = app.merchant_with_key(&["checkout"]).await;
    expect_error(
        app.call(Method::GET, "/v1/webhooks", Some(&checkout), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}
