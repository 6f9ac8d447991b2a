//! Signals in: competitor prices and demand reach new prices through the real policies; a
//! replayed or out-of-order feed changes nothing; stale offers are marked; bad batches are
//! refused whole.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::rules::built_rule;
use crate::common::{Backend, fresh_database};
use crate::helpers::{TestApp, expect_error, expect_status, spawn_app, spawn_app_with, test_settings};

async fn setup(app: &TestApp, rule: &str, params: Value) -> String {
    setup_merchant(app, rule, params).await.1
}

/// A merchant with product `tee-1` (EUR, cost 12.00, base 19.99) priced by `rule` with
/// `params`, settled: (merchant id, key with every role a feed test needs).
pub(crate) async fn setup_merchant(app: &TestApp, rule: &str, params: Value) -> (String, String) {
    let (merchant, key) = app.merchant_with_key(&["merchant", "checkout", "feed"]).await;
    let body = json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1999});
    expect_status(app.put_product(&key, "tee-1", body).await, StatusCode::CREATED).await;
    let version = app.rule_version(&key, built_rule(rule)).await;
    let path = format!("/v1/rules/{version}/params");
    expect_status(app.call(Method::PUT, &path, Some(&key), Some(params)).await, StatusCode::OK).await;
    let path = format!("/v1/rules/{version}/activate");
    expect_status(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::OK).await;
    app.engine.settled().await;
    (merchant, key)
}

fn offer(id: &str, competitor: &str, price: i64, in_stock: bool, minutes_ago: i64) -> Value {
    json!({"id": id, "sku": "tee-1", "competitor": competitor, "price_minor": price, "currency": "EUR",
           "in_stock": in_stock, "observed_at": Utc::now() - Duration::minutes(minutes_ago)})
}

async fn send_offers(app: &TestApp, key: &str, offers: Vec<Value>) -> Value {
    let response =
        app.call(Method::POST, "/v1/signals/competitor-prices", Some(key), Some(json!({"observations": offers}))).await;
    let receipt = expect_status(response, StatusCode::OK).await;
    app.engine.settled().await;
    receipt
}

pub(crate) async fn price(app: &TestApp, key: &str) -> i64 {
    let body = expect_status(app.call(Method::GET, "/v1/prices/tee-1", Some(key), None).await, StatusCode::OK).await;
    body["price_minor"].as_i64().unwrap()
}

pub(crate) async fn decisions(app: &TestApp, key: &str) -> Vec<Value> {
    let body =
        expect_status(app.call(Method::GET, "/v1/prices/tee-1/history", Some(key), None).await, StatusCode::OK).await;
    body["items"].as_array().unwrap().clone()
}

async fn competitor_prices_move_the_price_and_replays_or_older_offers_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = setup(&app, "competitor-match", json!({"undercut_minor": 5, "min_margin_bps": 1000})).await;
    assert_eq!(price(&app, &key).await, 1999, "no offers yet: competitor-match keeps");

    let batch = vec![offer("o-1", "a", 1899, true, 10), offer("o-2", "b", 1799, false, 10)];
    let receipt = send_offers(&app, &key, batch.clone()).await;
    assert_eq!((receipt["received"].as_i64(), receipt["skus_changed"].as_i64()), (Some(2), Some(1)));
    assert_eq!(price(&app, &key).await, 1894, "5 under the cheapest in-stock offer");
    let latest = &decisions(&app, &key).await[0];
    assert_eq!(latest["trigger"], "competitor_prices");
    let offers = latest["record"]["inputs"]["competitors"].as_array().unwrap();
    assert_eq!(offers.len(), 2, "the inputs snapshot holds both offers: {latest}");
    let recorded = decisions(&app, &key).await.len();

    // The same batch again, and an older observation of `a`: nothing changes.
    assert_eq!(send_offers(&app, &key, batch).await["skus_changed"], 0);
    assert_eq!(send_offers(&app, &key, vec![offer("o-0", "a", 1500, true, 60)]).await["skus_changed"], 0);
    assert_eq!(price(&app, &key).await, 1894);
    assert_eq!(decisions(&app, &key).await.len(), recorded, "no evaluation, no decision");

    // A newer one does.
    send_offers(&app, &key, vec![offer("o-3", "a", 1850, true, 1)]).await;
    assert_eq!(price(&app, &key).await, 1845);
    assert_eq!(
        expect_status(app.call(Method::GET, "/v1/audit/verify", Some(&key), None).await, StatusCode::OK).await["intact"],
        true
    );
}

both_backends! {
    competitor_prices => competitor_prices_move_the_price_and_replays_or_older_offers_change_nothing;
    demand => demand_events_feed_the_demand_policy_once_each;
}

#[tokio::test]
async fn offers_past_the_staleness_window_are_marked_stale_and_the_policy_ignores_them() {
    let db = fresh_database(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.pricing.stale_after_secs = 3600;
    let app = spawn_app_with(settings, db).await;
    let key = setup(&app, "competitor-match", json!({"undercut_minor": 5})).await;
    send_offers(&app, &key, vec![offer("o-1", "a", 1500, true, 120)]).await;
    assert_eq!(price(&app, &key).await, 1999, "a two-hour-old offer is stale with a one-hour window");
    let latest = &decisions(&app, &key).await[0];
    assert_eq!(latest["record"]["inputs"]["competitors"][0]["stale"], true);
    assert!(latest["record"]["inputs"]["competitors"][0]["age_seconds"].as_i64().unwrap() >= 7200);
}

async fn demand_events_feed_the_demand_policy_once_each(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = setup(&app, "demand-based", json!({})).await;
    let now = Utc::now();
    let mut events = vec![
        json!({"id": "inv-1", "sku": "tee-1", "kind": "inventory", "quantity": 100, "occurred_at": now - Duration::days(3)}),
    ];
    for day in 0..6 {
        events.push(json!({"id": format!("sale-{day}"), "sku": "tee-1", "kind": "sale", "quantity": 10, "occurred_at": now - Duration::days(day) - Duration::hours(1)}));
    }
    let send =
        |events: Vec<Value>| app.call(Method::POST, "/v1/signals/demand", Some(&key), Some(json!({"events": events})));
    let receipt = expect_status(send(events.clone()).await, StatusCode::OK).await;
    assert_eq!((receipt["received"].as_i64(), receipt["skus_changed"].as_i64()), (Some(7), Some(1)));
    app.engine.settled().await;
    // 60 sold in a week against 100 in stock is fast: 19.99 + 5 % = 20.99.
    assert_eq!(price(&app, &key).await, 2099);
    let inputs = &decisions(&app, &key).await[0]["record"]["inputs"]["demand"];
    assert_eq!((inputs["units_sold_7d"].as_i64(), inputs["inventory"].as_i64()), (Some(60), Some(100)));

    let receipt = expect_status(send(events).await, StatusCode::OK).await;
    assert_eq!(receipt["skus_changed"], 0, "a replayed batch adds nothing");
    app.engine.settled().await;
    assert_eq!(price(&app, &key).await, 2099);
}

#[tokio::test]
async fn bad_or_oversized_batches_are_refused_whole_and_feeds_need_their_role() {
    let db = fresh_database(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.pricing.max_signal_batch = 3;
    let app = spawn_app_with(settings, db).await;
    let key = setup(&app, "competitor-match", json!({})).await;
    let too_many: Vec<Value> = (0..4).map(|i| offer(&format!("o-{i}"), "a", 1500, true, 1)).collect();
    let response = app
        .call(Method::POST, "/v1/signals/competitor-prices", Some(&key), Some(json!({"observations": too_many})))
        .await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let mut future = offer("o-9", "a", 1500, true, 0);
    future["observed_at"] = json!(Utc::now() + Duration::hours(2));
    let bad = vec![
        offer("o-1", "a", 1500, true, 1),
        json!({"id": "", "sku": "bad sku", "competitor": "a", "price_minor": 0,
                   "currency": "EUX", "in_stock": true, "observed_at": Utc::now()}),
        future,
    ];
    let response =
        app.call(Method::POST, "/v1/signals/competitor-prices", Some(&key), Some(json!({"observations": bad}))).await;
    let details = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let fields: Vec<&str> =
        details["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "observations[1].id",
            "observations[1].price_minor",
            "observations[1].sku",
            "observations[1].currency",
            "observations[2].observed_at"
        ]
    );
    app.engine.settled().await;
    assert_eq!(price(&app, &key).await, 1999, "the valid entry of a refused batch was not stored either");

    let merchant = app.create_merchant("Other").await;
    let checkout = app.issue_key(&merchant, &["checkout"]).await["key"].as_str().unwrap().to_owned();
    let response = app.call(Method::POST, "/v1/signals/demand", Some(&checkout), Some(json!({"events": []}))).await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn signals_from_long_ago_and_oversized_batches_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["feed"]).await;
    let offer = |id: usize, at: String| {
        json!({"id": format!("o{id}"), "sku": "tee", "competitor": "a", "price_minor": 100, "currency": "EUR",
               "in_stock": true, "observed_at": at})
    };
    let ancient = json!({"observations": [offer(0, "0001-01-01T00:00:00Z".into())]});
    let response = app.call(Method::POST, "/v1/signals/competitor-prices", Some(&key), Some(ancient)).await;
    let details = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(details.to_string().contains("days old"), "{details}");
    let now = Utc::now().to_rfc3339();
    let huge: Vec<Value> = (0..=pricing::api::MAX_PARSED_BATCH).map(|i| offer(i, now.clone())).collect();
    let response =
        app.call(Method::POST, "/v1/signals/competitor-prices", Some(&key), Some(json!({"observations": huge}))).await;
    let details = expect_error(response, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert!(details.is_object());
}

fn offer_for(sku: &str, id: &str, competitor: &str, minutes_ago: i64) -> Value {
    json!({"id": id, "sku": sku, "competitor": competitor, "price_minor": 1500, "currency": "EUR",
           "in_stock": true, "observed_at": Utc::now() - Duration::minutes(minutes_ago)})
}

async fn post_offers(app: &TestApp, key: &str, offers: Vec<Value>) -> reqwest::Response {
    app.call(Method::POST, "/v1/signals/competitor-prices", Some(key), Some(json!({"observations": offers}))).await
}

async fn competitors_per_sku_and_skus_without_a_product_have_quotas(backend: Backend) {
    let db = fresh_database(backend).await;
    let mut settings = test_settings(&db);
    settings.pricing.max_competitors_per_sku = 3;
    settings.pricing.max_skus_without_product = 2;
    let app = spawn_app_with(settings, db).await;
    let (_, key) = app.merchant_with_key(&["merchant", "feed"]).await;
    let body = json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1999});
    expect_status(app.put_product(&key, "tee-1", body.clone()).await, StatusCode::CREATED).await;

    // Three competitors fit; a fourth new one is refused with the whole batch, updates of the
    // known three always pass.
    let three: Vec<Value> = ["a", "b", "c"].iter().map(|c| offer_for("tee-1", &format!("o-{c}"), c, 30)).collect();
    expect_status(post_offers(&app, &key, three).await, StatusCode::OK).await;
    let with_fourth = vec![offer_for("tee-1", "o-a2", "a", 20), offer_for("tee-1", "o-d", "d", 20)];
    let refused =
        expect_error(post_offers(&app, &key, with_fourth).await, StatusCode::UNPROCESSABLE_ENTITY, "over_quota").await;
    assert_eq!(refused, json!({"limit": 3, "quota": "competitors_per_sku"}), "{refused}");
    let update =
        expect_status(post_offers(&app, &key, vec![offer_for("tee-1", "o-a2", "a", 20)]).await, StatusCode::OK).await;
    assert_eq!(update["skus_changed"], 1, "the refused batch stored nothing, so this update is new: {update}");

    // Two SKUs may have signals before their product exists; a third waits for its product.
    for sku in ["early-1", "early-2"] {
        expect_status(post_offers(&app, &key, vec![offer_for(sku, &format!("o-{sku}"), "a", 5)]).await, StatusCode::OK)
            .await;
    }
    expect_status(post_offers(&app, &key, vec![offer_for("early-1", "o-e1b", "b", 4)]).await, StatusCode::OK).await;
    let refused = expect_error(
        post_offers(&app, &key, vec![offer_for("early-3", "o-e3", "a", 5)]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "over_quota",
    )
    .await;
    assert_eq!(refused["quota"], "skus_without_product", "{refused}");
    let demand = json!({"events": [{"id": "e-1", "sku": "early-3", "kind": "view", "quantity": 1,
                                    "occurred_at": Utc::now()}]});
    let response = app.call(Method::POST, "/v1/signals/demand", Some(&key), Some(demand.clone())).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "over_quota").await;
    // Once a product exists for one of them, there is room again.
    expect_status(app.put_product(&key, "early-1", body).await, StatusCode::CREATED).await;
    let response = app.call(Method::POST, "/v1/signals/demand", Some(&key), Some(demand)).await;
    expect_status(response, StatusCode::OK).await;
    app.stop().await;
}

both_backends! {
    signal_quotas => competitors_per_sku_and_skus_without_a_product_have_quotas;
}

/// An NDJSON body as the given key sends it.
async fn post_ndjson(app: &TestApp, key: &str, path: &str, body: String) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(key)
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("the service answers")
}

fn lines(values: &[Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

/// One observation or event per line: each line checked on its own, the good ones stored, the
/// refused ones listed by number with their error in the error shape's terms; blank lines are
/// counted but skipped, `\r\n` endings and a last line without an ending are read.
async fn ndjson_lines_are_checked_one_by_one_and_the_good_ones_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = setup(&app, "competitor-match", json!({"undercut_minor": 5, "min_margin_bps": 1000})).await;
    let good = offer("n-1", "a", 1899, true, 10);
    let mut bad_currency = offer("n-2", "b", 1700, true, 10);
    bad_currency["currency"] = json!("EUX");
    let unknown_field = json!({"id": "n-3", "surprise": 1});
    let control = offer("n\u{0}4", "c", 1600, true, 10);
    let too_long = format!("{{\"id\": \"{}\"}}", "x".repeat(70 * 1024));
    let body = format!(
        "{good}\r\n\n{bad_currency}\nnot json\n{unknown_field}\n{control}\n{too_long}\n   \n{}",
        offer("n-5", "d", 1850, true, 5)
    );
    let receipt =
        expect_status(post_ndjson(&app, &key, "/v1/signals/competitor-prices", body).await, StatusCode::OK).await;
    assert_eq!(
        (&receipt["received"], &receipt["accepted"], &receipt["rejected"], &receipt["skus_changed"]),
        (&json!(7), &json!(2), &json!(5), &json!(1)),
        "{receipt}"
    );
    let rejected: Vec<(i64, &str)> = receipt["rejected_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_i64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        [
            (3, "validation_failed"),
            (4, "invalid_json"),
            (5, "invalid_body"),
            (6, "validation_failed"),
            (7, "payload_too_large")
        ]
    );
    assert_eq!(receipt["rejected_lines"][0]["details"]["fields"][0]["field"], "currency", "{receipt}");
    assert_eq!(receipt["rejected_lines"][2]["details"], json!({}));
    app.engine.settled().await;
    assert_eq!(price(&app, &key).await, 1845, "5 under the cheapest good line (d at 18.50)");

    // The same body again: stored again, changes nothing.
    let again = lines(std::slice::from_ref(&good));
    let receipt =
        expect_status(post_ndjson(&app, &key, "/v1/signals/competitor-prices", again).await, StatusCode::OK).await;
    assert_eq!((&receipt["accepted"], &receipt["skus_changed"]), (&json!(1), &json!(0)));

    // Demand events the same way.
    let events = [
        json!({"id": "d-1", "sku": "tee-1", "kind": "sale", "quantity": 3, "occurred_at": Utc::now() - Duration::hours(1)}),
        json!({"id": "d-2", "sku": "tee-1", "kind": "sale", "quantity": -1, "occurred_at": Utc::now()}),
    ];
    let receipt =
        expect_status(post_ndjson(&app, &key, "/v1/signals/demand", lines(&events)).await, StatusCode::OK).await;
    assert_eq!((&receipt["accepted"], &receipt["rejected"]), (&json!(1), &json!(1)));
    assert_eq!(receipt["rejected_lines"][0]["details"]["fields"][0]["field"], "quantity");
}

/// `atomic=true`: one refused line and nothing is stored (the answer lists it); all good and
/// all are stored in one transaction. Neither JSON nor NDJSON is `unsupported_media_type`.
async fn atomic_ndjson_stores_every_line_or_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = setup(&app, "competitor-match", json!({"undercut_minor": 5, "min_margin_bps": 1000})).await;
    let mut bad = offer("a-2", "b", 1500, true, 1);
    bad["price_minor"] = json!(0);
    let body = lines(&[offer("a-1", "a", 1800, true, 1), bad]);
    let path = "/v1/signals/competitor-prices?atomic=true";
    let details =
        expect_error(post_ndjson(&app, &key, path, body).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            .await;
    assert_eq!((&details["rejected"], &details["rejected_lines"][0]["line"]), (&json!(1), &json!(2)), "{details}");
    app.engine.settled().await;
    assert_eq!(price(&app, &key).await, 1999, "the good line was not stored either");

    let body = lines(&[offer("a-1", "a", 1800, true, 1), offer("a-3", "b", 1700, true, 1)]);
    let receipt = expect_status(post_ndjson(&app, &key, path, body).await, StatusCode::OK).await;
    assert_eq!((&receipt["accepted"], &receipt["rejected"]), (&json!(2), &json!(0)));
    app.engine.settled().await;
    assert_eq!(price(&app, &key).await, 1695);

    let response = app
        .client
        .post(app.url("/v1/signals/demand"))
        .bearer_auth(&key)
        .header("Content-Type", "text/csv")
        .body("id,sku\n")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
}

both_backends! {
    ndjson_lines => ndjson_lines_are_checked_one_by_one_and_the_good_ones_stored;
    ndjson_atomic => atomic_ndjson_stores_every_line_or_none;
}

/// A large feed streamed with chunked transfer encoding, in pieces that cut lines anywhere:
/// every line is read and stored, in chunks of `pricing.max_signal_batch` (three
/// transactions here), and demand sums over all of them.
#[tokio::test]
async fn a_chunked_ndjson_stream_is_read_across_pieces_and_stored_in_chunks() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = fresh_database(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.pricing.max_signal_batch = 1_000;
    let app = spawn_app_with(settings, db).await;
    let key = setup(&app, "demand-based", json!({})).await;
    let at = Utc::now() - Duration::hours(2);
    let body: String = (0..2_500)
        .map(|i| {
            format!(
                "{}\n",
                json!({"id": format!("v-{i}"), "sku": "tee-1", "kind": "view", "quantity": 2, "occurred_at": at})
            )
        })
        .collect();
    let mut request = format!(
        "POST /v1/signals/demand HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    // Pieces of 997 bytes: lines are cut in the middle, and so are `\n`s' neighbours.
    for piece in body.as_bytes().chunks(997) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    for part in request.chunks(8 * 1024) {
        socket.write_all(part).await.unwrap();
        socket.flush().await.unwrap();
    }
    let mut answer = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(60), socket.read_to_string(&mut answer))
        .await
        .expect("the service answers within a minute")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let json_start = answer.find('{').unwrap();
    let json_end = answer.rfind('}').unwrap();
    let receipt: Value = serde_json::from_str(&answer[json_start..=json_end]).unwrap();
    assert_eq!(
        (&receipt["received"], &receipt["accepted"], &receipt["rejected"]),
        (&json!(2_500), &json!(2_500), &json!(0))
    );
    assert_eq!(receipt["skus_changed"], 1, "one SKU, changed in three chunks, counts once");
    app.engine.settled().await;
    let latest = &decisions(&app, &key).await[0];
    assert_eq!(latest["record"]["inputs"]["demand"]["views_1d"], 5_000, "{latest}");
}

async fn put_ratio(app: &TestApp, key: &str, ratio: i64) -> Value {
    let body = json!({"show_prior_price": false, "max_competitor_ratio": ratio});
    let settings =
        expect_status(app.call(Method::PUT, "/v1/settings", Some(key), Some(body)).await, StatusCode::OK).await;
    app.engine.settled().await;
    settings
}

/// Tried as a new merchant would: an offer in USD for an EUR product, and `17` sent meaning
/// 17.00 EUR. The first is refused with its reason; the second is stored but flagged, and rules
/// do not see it until the merchant confirms it or widens the ratio.
async fn offers_in_another_currency_are_refused_and_implausible_ones_held_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = setup(&app, "competitor-match", json!({"undercut_minor": 5, "min_margin_bps": 1000})).await;
    let usd = json!({"id": "o-usd", "sku": "tee-1", "competitor": "a", "price_minor": 1500, "currency": "USD",
                     "in_stock": true, "observed_at": Utc::now() - Duration::minutes(5)});
    let response = app
        .call(
            Method::POST,
            "/v1/signals/competitor-prices",
            Some(&key),
            Some(json!({"observations": [offer("o-1", "a", 1899, true, 10), usd]})),
        )
        .await;
    let details = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(details["fields"][0]["field"], "observations[1].currency", "{details}");
    assert!(details["fields"][0]["message"].as_str().unwrap().contains("priced in EUR"), "{details}");
    app.engine.settled().await;
    assert_eq!(price(&app, &key).await, 1999, "a batch is refused whole: nothing stored");

    send_offers(&app, &key, vec![offer("o-1", "a", 1899, true, 10)]).await;
    assert_eq!(price(&app, &key).await, 1894);
    let receipt = send_offers(&app, &key, vec![offer("o-2", "b", 17, true, 5)]).await;
    let flagged = &receipt["flagged"][0];
    assert_eq!((flagged["entry"].as_i64(), flagged["competitor"].as_str()), (Some(0), Some("b")), "{receipt}");
    assert_eq!((flagged["price_minor"].as_i64(), flagged["base_price_minor"].as_i64()), (Some(17), Some(1999)));
    assert_eq!(price(&app, &key).await, 1894, "the rule did not see 0.17");
    let offers = decisions(&app, &key).await[0]["record"]["inputs"]["competitors"].clone();
    assert_eq!(offers.as_array().unwrap().len(), 1, "only `a` reached the rule: {offers}");

    // A ratio wide enough lets it in (the margin floor holds the price); the default keeps it out.
    assert_eq!(put_ratio(&app, &key, 200).await["max_competitor_ratio"], 200);
    assert_eq!(price(&app, &key).await, 1320, "1 % under 0.17 is under the 10 % margin: the floor");
    put_ratio(&app, &key, 4).await;
    assert_eq!(price(&app, &key).await, 1894);
    let settings = expect_status(app.call(Method::GET, "/v1/settings", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(settings["max_competitor_ratio"], 4);
    let out_of_range = json!({"show_prior_price": false, "max_competitor_ratio": 1001});
    let response = app.call(Method::PUT, "/v1/settings", Some(&key), Some(out_of_range)).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // Confirmed, it counts; a newer observation of the same competitor is checked anew.
    let confirm = json!({"observations": [{"sku": "tee-1", "competitor": "b"}, {"sku": "tee-1", "competitor": "zz"}]});
    let response = app.call(Method::POST, "/v1/signals/competitor-prices/confirm", Some(&key), Some(confirm)).await;
    assert_eq!(expect_status(response, StatusCode::OK).await["skus_changed"], 1);
    app.engine.settled().await;
    assert_eq!(price(&app, &key).await, 1320);
    let receipt = send_offers(&app, &key, vec![offer("o-3", "b", 16, true, 1)]).await;
    assert_eq!(receipt["flagged"].as_array().unwrap().len(), 1);
    assert_eq!(price(&app, &key).await, 1894);

    // NDJSON: the line in another currency is refused by number, the implausible one flagged.
    let lines = [
        offer("o-4", "c", 1850, true, 1),
        json!({"id": "o-5", "sku": "tee-1", "competitor": "d", "price_minor": 1500, "currency": "USD",
               "in_stock": true, "observed_at": Utc::now() - Duration::minutes(1)}),
        offer("o-6", "e", 9, true, 1),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let receipt =
        expect_status(post_ndjson(&app, &key, "/v1/signals/competitor-prices", body.clone()).await, StatusCode::OK)
            .await;
    assert_eq!((receipt["accepted"].as_i64(), receipt["rejected"].as_i64()), (Some(2), Some(1)), "{receipt}");
    assert_eq!(receipt["rejected_lines"][0]["line"], 2);
    assert_eq!(receipt["rejected_lines"][0]["code"], "validation_failed");
    assert_eq!(receipt["flagged"][0]["entry"], 3, "{receipt}");
    let response = app
        .client
        .post(app.url("/v1/signals/competitor-prices?atomic=true"))
        .bearer_auth(&key)
        .header("content-type", "application/x-ndjson")
        .body(body.replace("o-4", "o-7"))
        .send()
        .await
        .unwrap();
    let details = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(details["rejected_lines"][0]["line"], 2, "{details}");
}

both_backends! {
    signal_sense => offers_in_another_currency_are_refused_and_implausible_ones_held_back;
}
