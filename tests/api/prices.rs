//! Checkout's price lookups: answered from the price cache, which every write updates before
//! it is acknowledged and which is warmed from the store at start.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::common::Backend;
use crate::helpers::{expect_error, expect_status, product, spawn_app, spawn_app_with, test_settings};

#[tokio::test]
async fn checkout_sees_a_new_products_base_price_and_every_change_before_the_write_returns() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    expect_status(app.put_product(&key, "tee-1", product("EUR", 1200, 1999)).await, StatusCode::CREATED).await;
    let price = expect_status(app.call(Method::GET, "/v1/prices/tee-1", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(
        (price["sku"].as_str(), price["price_minor"].as_i64(), price["currency"].as_str()),
        (Some("tee-1"), Some(1999), Some("EUR"))
    );
    assert_eq!(price["version"], 1);
    assert!(price["effective_at"].is_string());

    expect_status(app.put_product(&key, "tee-1", product("EUR", 1200, 2199)).await, StatusCode::OK).await;
    let price = expect_status(app.call(Method::GET, "/v1/prices/tee-1", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!((price["price_minor"].as_i64(), price["version"].as_i64()), (Some(2199), Some(2)));

    expect_status(app.call(Method::DELETE, "/v1/products/tee-1", Some(&key), None).await, StatusCode::NO_CONTENT).await;
    expect_error(app.call(Method::GET, "/v1/prices/tee-1", Some(&key), None).await, StatusCode::NOT_FOUND, "not_found")
        .await;
}

#[tokio::test]
async fn a_lookup_answers_found_and_missing_skus_in_one_call() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    for (sku, price) in [("a", 100), ("b", 200), ("c", 300)] {
        expect_status(app.put_product(&key, sku, product("JPY", 1, price)).await, StatusCode::CREATED).await;
    }
    let body = json!({"skus": ["c", "nope", "a", "not a sku!", "b"]});
    let found =
        expect_status(app.call(Method::POST, "/v1/prices/lookup", Some(&key), Some(body)).await, StatusCode::OK).await;
    let prices: Vec<(String, i64)> = found["prices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["sku"].as_str().unwrap().to_owned(), p["price_minor"].as_i64().unwrap()))
        .collect();
    assert_eq!(prices, [("c".to_owned(), 300), ("a".to_owned(), 100), ("b".to_owned(), 200)]);
    assert_eq!(found["missing"], json!(["nope", "not a sku!"]));

    let too_many: Vec<String> = (0..1001).map(|i| format!("s{i}")).collect();
    let response = app.call(Method::POST, "/v1/prices/lookup", Some(&key), Some(json!({"skus": too_many}))).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

#[tokio::test]
async fn prices_are_for_checkout_keys_of_the_same_merchant_only() {
    let app = spawn_app(Backend::Sqlite).await;
    let merchant = app.create_merchant("Acme").await;
    let writer = app.issue_key(&merchant, &["merchant"]).await["key"].as_str().unwrap().to_owned();
    let checkout = app.issue_key(&merchant, &["checkout"]).await["key"].as_str().unwrap().to_owned();
    let (_, other_checkout) = app.merchant_with_key(&["checkout"]).await;
    expect_status(app.put_product(&writer, "tee-1", product("EUR", 1, 2)).await, StatusCode::CREATED).await;

    expect_status(app.call(Method::GET, "/v1/prices/tee-1", Some(&checkout), None).await, StatusCode::OK).await;
    let other = app.call(Method::GET, "/v1/prices/tee-1", Some(&other_checkout), None).await;
    expect_error(other, StatusCode::NOT_FOUND, "not_found").await;
    let writer_reads = app.call(Method::GET, "/v1/prices/tee-1", Some(&writer), None).await;
    expect_error(writer_reads, StatusCode::FORBIDDEN, "forbidden").await;
    let anonymous = app.call(Method::GET, "/v1/prices/tee-1", None, None).await;
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn the_cache_is_warmed_from_the_store_at_start(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    for i in 0..30 {
        let response = app.put_product(&key, &format!("sku-{i:02}"), product("EUR", 1, 1000 + i)).await;
        expect_status(response, StatusCode::CREATED).await;
    }
    let db = app.stop().await;
    let app = spawn_app_with(test_settings(&db), db).await;
    let skus: Vec<String> = (0..30).map(|i| format!("sku-{i:02}")).collect();
    let found = expect_status(
        app.call(Method::POST, "/v1/prices/lookup", Some(&key), Some(json!({"skus": skus}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found["missing"], json!([]));
    let prices: Vec<i64> =
        found["prices"].as_array().unwrap().iter().map(|p| p["price_minor"].as_i64().unwrap()).collect();
    assert_eq!(prices, (0..30).map(|i| 1000 + i).collect::<Vec<_>>());
}

both_backends! {
    cache_warmed_at_start => the_cache_is_warmed_from_the_store_at_start;
}

#[tokio::test]
async fn a_sku_named_lookup_has_a_price_like_any_other() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    let missing = app.call(Method::GET, "/v1/prices/lookup", Some(&key), None).await;
    expect_error(missing, StatusCode::NOT_FOUND, "not_found").await;
    expect_status(app.put_product(&key, "lookup", product("EUR", 100, 250)).await, StatusCode::CREATED).await;
    let found = expect_status(app.call(Method::GET, "/v1/prices/lookup", Some(&key), None).await, StatusCode::OK).await;
    assert_eq!((found["sku"].as_str(), found["price_minor"].as_i64()), (Some("lookup"), Some(250)));
    let batch = json!({"skus": ["lookup"]});
    let body =
        expect_status(app.call(Method::POST, "/v1/prices/lookup", Some(&key), Some(batch)).await, StatusCode::OK).await;
    assert_eq!(body["prices"][0]["price_minor"], 250, "the batch lookup is still the POST");
}
