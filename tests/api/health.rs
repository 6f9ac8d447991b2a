//! Liveness, readiness, metrics and the OpenAPI document.

use reqwest::{Method, StatusCode};

use crate::both_backends;
use crate::common::Backend;
use crate::helpers::{expect_status, product, spawn_app};

#[tokio::test]
async fn healthz_answers_without_a_key() {
    let app = spawn_app(Backend::Sqlite).await;
    let body = expect_status(app.call(Method::GET, "/healthz", None, None).await, StatusCode::OK).await;
    assert_eq!(body["status"], "ok");
}

async fn readyz_names_the_store_it_reached(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = expect_status(app.call(Method::GET, "/readyz", None, None).await, StatusCode::OK).await;
    assert_eq!(body["store"], if backend == Backend::Sqlite { "sqlite" } else { "postgres" });
}

both_backends! {
    readyz => readyz_names_the_store_it_reached;
}

#[tokio::test]
async fn readyz_fails_cleanly_once_the_store_is_gone() {
    let app = spawn_app(Backend::Sqlite).await;
    app.store.close().await;
    let response = app.call(Method::GET, "/readyz", None, None).await;
    crate::helpers::expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_not_by_raw_path() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    app.put_product(&key, "secret-sku-name", product("EUR", 1, 2)).await;
    let response = app.call(Method::GET, "/metrics", None, None).await;
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("http_server_requests_total") && l.contains(r#"http_route="/v1/products/{sku}""#))
        .unwrap_or_else(|| panic!("no request counter for the product route in:\n{text}"));
    assert!(line.contains(r#"http_request_method="PUT""#) && line.contains(r#"http_response_status_code="201""#));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(!text.contains("secret-sku-name"), "raw paths stay out of labels");
    assert!(text.contains("http_server_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn metrics_show_the_repricing_engines_work_and_its_queue() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    for sku in ["a", "b", "c"] {
        app.put_product(&key, sku, product("EUR", 1000, 1999)).await;
    }
    crate::pipeline::activate(&app, &key, "cost-plus", serde_json::json!({"margin_bps": 1000})).await;
    let text = app.call(Method::GET, "/metrics", None, None).await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("pricing_reprice_evaluations_total"), 3.0, "one evaluation per product");
    assert!(value("pricing_reprice_worker_busy_seconds_total") > 0.0, "a worker's busy time is counted");
    assert!(text.contains("pricing_reprice_sweeps"), "{text}");
    assert!(text.contains("pricing_reprice_oldest_seconds"), "{text}");
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_metric_series_and_answers_say_nosniff() {
    let app = spawn_app(Backend::Sqlite).await;
    for i in 0..50 {
        let method = Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        let response = app.call(method, &format!("/made/up/{i}"), None, None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    let text = app.call(Method::GET, "/metrics", None, None).await.text().await.unwrap();
    assert!(!text.contains("M1X") && !text.contains("/made/up"), "made-up values became labels:\n{text}");
    let series = text.lines().filter(|l| l.starts_with("http_server_requests_total")).collect::<Vec<_>>();
    assert_eq!(series.len(), 1, "one series for all of them: {series:?}");
    assert!(series[0].contains(r#"http_request_method="_OTHER""#) && series[0].contains(r#"http_route="unmatched""#));
}

#[tokio::test]
async fn the_openapi_document_lists_every_v1_route() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = expect_status(app.call(Method::GET, "/openapi.json", None, None).await, StatusCode::OK).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/merchants", "post"),
        ("/v1/merchants/{merchant_id}", "get"),
        ("/v1/merchants/{merchant_id}/keys", "post"),
        ("/v1/merchants/{merchant_id}/keys", "get"),
        ("/v1/merchants/{merchant_id}/keys/{key_id}", "delete"),
        ("/v1/products", "get"),
        ("/v1/products/{sku}", "put"),
        ("/v1/products/{sku}", "get"),
        ("/v1/products/{sku}", "delete"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is documented");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
