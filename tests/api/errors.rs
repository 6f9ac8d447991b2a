//! Every kind of bad input gets the API's one error shape, and leaves the store untouched.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

use crate::common::{Backend, fresh_database};
use crate::helpers::{expect_error, expect_status, product, spawn_app, spawn_app_with, split_token, test_settings};

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    for body in ["{", "not json", "", r#"{"currency": "EUR",}"#] {
        let response = app
            .client
            .put(app.url("/v1/products/tee-1"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;
    }
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_an_invalid_body() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let bodies = [
        json!({"currency": "EUR", "cost_minor": 1, "base_price_minor": 2, "colour": "red"}),
        json!({"currency": "EUR", "cost_minor": 1, "base_price_minor": 2, "guardrails": {"flor_minor": 1}}),
        json!({"currency": "EUR", "cost_minor": "1", "base_price_minor": 2}),
        json!({"currency": "EUR", "cost_minor": 1.5, "base_price_minor": 2}),
        json!({"currency": "EUR", "base_price_minor": 2}),
        json!([1, 2, 3]),
    ];
    for body in bodies {
        let details =
            expect_error(app.put_product(&key, "tee-1", body).await, StatusCode::BAD_REQUEST, "invalid_body").await;
        assert_eq!(details, json!({}), "details are an object, empty when there are none");
    }
    let response =
        app.call(Method::POST, "/v1/merchants", Some(&app.admin_key), Some(json!({"name": "A", "x": 1}))).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_body").await;
}

#[tokio::test]
async fn a_body_that_is_not_declared_as_json_is_unsupported() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let mut request =
            app.client.put(app.url("/v1/products/tee-1")).bearer_auth(&key).body(product("EUR", 1, 2).to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        expect_error(request.send().await.unwrap(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_the_limit() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let body = json!({"currency": "EUR", "cost_minor": 1, "base_price_minor": 2,
                      "attributes": {"note": "x".repeat(300 * 1024)}});
    let details =
        expect_error(app.put_product(&key, "tee-1", body).await, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            .await;
    assert_eq!(details["limit_bytes"], 262_144);
    expect_error(app.get_product(&key, "tee-1").await, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_the_error_shape() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in ["/", "/v1", "/v1/product/tee-1", "/v2/products/tee-1", "/v1/products/a/b"] {
        expect_error(app.call(Method::GET, path, None, None).await, StatusCode::NOT_FOUND, "route_not_found").await;
    }
    // The `Allow` header names exactly the resource's methods (RFC 9110), OPTIONS included.
    for (method, path, allow) in [
        (Method::POST, "/healthz", "GET"),
        (Method::PATCH, "/v1/products/tee-1", "PUT, GET, DELETE"),
        (Method::DELETE, "/v1/merchants", "POST"),
        (Method::OPTIONS, "/v1/rules", "POST, GET"),
        (Method::GET, "/v1/rules/rollback", "POST"),
    ] {
        let response = app.call(method, path, None, None).await;
        assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{path}");
        expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn a_missing_malformed_or_unknown_key_is_unauthorized() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let (id_part, _) = split_token(&key);
    let forged = format!("{id_part}_{}", "A".repeat(43));
    let unknown_id = "pk_0000000000007000800000000000000a_secret";
    for authorization in [
        None,
        Some("Bearer".to_owned()),
        Some(format!("Basic {key}")),
        Some("Bearer nope".into()),
        Some(format!("Bearer {forged}")),
        Some(format!("Bearer {unknown_id}")),
    ] {
        let mut request = app.client.get(app.url("/v1/products/tee-1"));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        expect_error(request.send().await.unwrap(), StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

#[tokio::test]
async fn a_request_stuck_on_a_locked_database_times_out_and_writes_nothing() {
    let db = fresh_database(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.http.request_timeout_ms = 300;
    let app = spawn_app_with(settings, db).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;

    // Another process-like writer holds SQLite's write lock.
    let mut holder = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.unwrap();
    let response = app.put_product(&key, "tee-1", product("EUR", 1, 2)).await;
    expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "timeout").await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();

    // The service kept serving, and the abandoned write never landed.
    expect_status(app.call(Method::GET, "/healthz", None, None).await, StatusCode::OK).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    expect_error(app.get_product(&key, "tee-1").await, StatusCode::NOT_FOUND, "not_found").await;
    expect_status(app.put_product(&key, "tee-2", product("EUR", 1, 2)).await, StatusCode::CREATED).await;
}
