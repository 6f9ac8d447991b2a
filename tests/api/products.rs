//! The product catalogue over HTTP: create, read, replace, delete, list, and refusals.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Backend;
use crate::helpers::{expect_error, expect_status, product, spawn_app};

fn full_product() -> Value {
    json!({
        "currency": "EUR",
        "cost_minor": 1200,
        "base_price_minor": 1999,
        "guardrails": {
            "floor_minor": 1300, "min_margin_bps": 1000, "ceiling_minor": 2999, "map_minor": 1500,
            "max_step_bps": 1000, "rounding": {"mode": "ending", "ending_minor": 99}, "min_interval_secs": 3600
        },
        "attributes": {"brand": "acme", "season": "ss26", "weight_kg": 0.2, "organic": true}
    })
}

#[tokio::test]
async fn a_merchant_creates_reads_replaces_and_deletes_a_product() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;

    let created = expect_status(app.put_product(&key, "tee-1", full_product()).await, StatusCode::CREATED).await;
    assert_eq!(created["sku"], "tee-1");
    assert_eq!(created["version"], 1);
    assert_eq!(created["guardrails"], full_product()["guardrails"]);
    assert_eq!(created["attributes"], full_product()["attributes"]);
    assert_eq!(created["price"]["price_minor"], 1999, "the base price is in force");
    assert_eq!(created["price"]["currency"], "EUR");

    let read = expect_status(app.get_product(&key, "tee-1").await, StatusCode::OK).await;
    assert_eq!(read, created);

    let replaced =
        expect_status(app.put_product(&key, "tee-1", product("EUR", 1250, 2199)).await, StatusCode::OK).await;
    assert_eq!((replaced["version"].as_i64(), replaced["cost_minor"].as_i64()), (Some(2), Some(1250)));
    assert_eq!(replaced["guardrails"], json!({}), "a PUT replaces the whole product");
    assert_eq!(replaced["price"]["price_minor"], 2199);
    assert_eq!(replaced["price"]["version"], 2);
    assert_eq!(replaced["created_at"], created["created_at"]);

    let deleted = app.call(Method::DELETE, "/v1/products/tee-1", Some(&key), None).await;
    expect_status(deleted, StatusCode::NO_CONTENT).await;
    expect_error(app.get_product(&key, "tee-1").await, StatusCode::NOT_FOUND, "not_found").await;
    let again = app.call(Method::DELETE, "/v1/products/tee-1", Some(&key), None).await;
    expect_error(again, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn putting_the_same_product_twice_changes_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let first = expect_status(app.put_product(&key, "tee-1", full_product()).await, StatusCode::CREATED).await;
    let second = expect_status(app.put_product(&key, "tee-1", full_product()).await, StatusCode::OK).await;
    assert_eq!(first, second);
}

#[tokio::test]
async fn a_products_currency_cannot_change() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let original = expect_status(app.put_product(&key, "tee-1", full_product()).await, StatusCode::CREATED).await;
    let response = app.put_product(&key, "tee-1", product("USD", 1, 2)).await;
    expect_error(response, StatusCode::CONFLICT, "currency_mismatch").await;
    assert_eq!(expect_status(app.get_product(&key, "tee-1").await, StatusCode::OK).await, original);
}

#[tokio::test]
async fn an_invalid_product_is_refused_with_every_field_named_and_nothing_stored() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let body = json!({
        "currency": "EUX",
        "cost_minor": -1,
        "base_price_minor": 0,
        "guardrails": {"floor_minor": 0, "max_step_bps": 0},
        "attributes": {"Bad Key": 1, "nested": {"a": 1}}
    });
    let details =
        expect_error(app.put_product(&key, "tee-1", body).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            .await;
    let fields: Vec<&str> =
        details["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "currency",
            "cost_minor",
            "base_price_minor",
            "guardrails.floor_minor",
            "guardrails.max_step_bps",
            "attributes.Bad Key",
            "attributes.nested"
        ]
    );
    expect_error(app.get_product(&key, "tee-1").await, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn guardrails_must_be_consistent_with_each_other_and_the_base_price() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let cases = [
        (json!({"floor_minor": 3000, "ceiling_minor": 2999}), "guardrails.floor_minor"),
        (json!({"map_minor": 3000, "ceiling_minor": 2999}), "guardrails.map_minor"),
        (json!({"floor_minor": 2000}), "base_price_minor"),
        (json!({"ceiling_minor": 1000}), "base_price_minor"),
        (json!({"rounding": {"mode": "multiple", "step_minor": 0}}), "guardrails.rounding.step_minor"),
    ];
    for (guardrails, field) in cases {
        let body = json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1999, "guardrails": guardrails});
        let details = expect_error(
            app.put_product(&key, "tee-1", body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(details["fields"][0]["field"], field, "{details}");
    }
}

/// JSON has one kind of number, and the API's schema counts `1999.0` as an integer.
#[tokio::test]
async fn integers_may_be_written_with_a_zero_fraction_but_not_with_another() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let body = json!({"currency": "EUR", "cost_minor": 1200.0, "base_price_minor": 1.999e3,
                      "guardrails": {"ceiling_minor": 2999.0, "rounding": {"mode": "ending", "ending_minor": 99.0}}});
    let created = expect_status(app.put_product(&key, "tee-1", body).await, StatusCode::CREATED).await;
    assert_eq!((&created["cost_minor"], &created["base_price_minor"]), (&json!(1200), &json!(1999)));
    assert_eq!(
        created["guardrails"],
        json!({"ceiling_minor": 2999, "rounding": {"mode": "ending", "ending_minor": 99}})
    );
    for body in [
        json!({"currency": "EUR", "cost_minor": 1200.5, "base_price_minor": 1999}),
        json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1999, "guardrails": {"floor_minor": 0.5}}),
    ] {
        expect_error(app.put_product(&key, "tee-2", body).await, StatusCode::BAD_REQUEST, "invalid_body").await;
    }
}

#[tokio::test]
async fn zero_decimal_currencies_take_whole_units() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let body = json!({"currency": "JPY", "cost_minor": 1200, "base_price_minor": 1980,
                      "guardrails": {"rounding": {"mode": "ending", "ending_minor": 980}}});
    let created = expect_status(app.put_product(&key, "wagashi", body).await, StatusCode::CREATED).await;
    assert_eq!(
        created["price"],
        json!({"price_minor": 1980, "currency": "JPY", "version": 1, "effective_at": created["price"]["effective_at"]})
    );
}

#[tokio::test]
async fn listing_walks_every_product_once_in_sku_order() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let mut expected: Vec<String> = (0..25).map(|i| format!("sku-{i:03}")).collect();
    for sku in expected.iter().rev() {
        expect_status(app.put_product(&key, sku, product("EUR", 1, 2)).await, StatusCode::CREATED).await;
    }
    expected.sort();
    let mut seen = Vec::new();
    let mut path = "/v1/products?limit=10".to_owned();
    let mut pages = 0;
    loop {
        let page = expect_status(app.call(Method::GET, &path, Some(&key), None).await, StatusCode::OK).await;
        pages += 1;
        seen.extend(page["items"].as_array().unwrap().iter().map(|p| p["sku"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/products?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    // A cursor is a SKU: the page after any SKU, whether or not a product has it.
    let page =
        expect_status(app.call(Method::GET, "/v1/products?cursor=sku-0125", Some(&key), None).await, StatusCode::OK)
            .await;
    assert_eq!(page["items"][0]["sku"], "sku-013");
}

#[tokio::test]
async fn a_bad_cursor_limit_or_query_field_is_an_invalid_query() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    for query in ["limit=0", "limit=1001", "limit=ten", "cursor=%%%", "cursor=-a", "cursor=", "colour=red"] {
        let response = app.call(Method::GET, &format!("/v1/products?{query}"), Some(&key), None).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
}

#[tokio::test]
async fn a_bad_sku_in_the_path_is_an_invalid_path() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let long = "x".repeat(65);
    for sku in ["-leading-dash", "caf%C3%A9", long.as_str(), "a%20b"] {
        let response = app.put_product(&key, sku, product("EUR", 1, 2)).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
        let response = app.get_product(&key, sku).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    }
}

/// The SKUs a filtered list selects, every page walked.
async fn selected(app: &crate::helpers::TestApp, key: &str, filter: &str) -> Vec<String> {
    let mut skus = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let mut path = format!("/v1/products?limit=2&{filter}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = expect_status(app.call(Method::GET, &path, Some(key), None).await, StatusCode::OK).await;
        skus.extend(page["items"].as_array().unwrap().iter().map(|p| p["sku"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return skus,
        }
    }
    panic!("more than 20 pages for {filter}");
}

async fn lists_filter_by_attribute_price_cost_and_recent_moves(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let products = [
        ("a", 1000, 2000, json!({"brand": "acme", "size": 42, "new": true})),
        ("b", 1500, 2500, json!({"brand": "acme", "size": "42"})),
        ("c", 2000, 3000, json!({"brand": "other", "size": 42.5})),
        ("d", 3000, 3500, json!({})),
        ("e", 1200, 1300, json!({"brand": "acme", "dotted.key": "x"})),
    ];
    for (sku, cost, base, attributes) in &products {
        let body = json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": base, "attributes": attributes});
        expect_status(app.put_product(&key, sku, body).await, StatusCode::CREATED).await;
    }
    assert_eq!(selected(&app, &key, "attr.brand=acme").await, ["a", "b", "e"]);
    assert_eq!(selected(&app, &key, "attr.size=42").await, ["a"], "a number matches a number");
    assert_eq!(selected(&app, &key, "attr.size=%2242%22").await, ["b"], "a quoted value is text");
    assert_eq!(selected(&app, &key, "attr.size=42.5").await, ["c"]);
    assert_eq!(selected(&app, &key, "attr.new=true").await, ["a"]);
    assert_eq!(selected(&app, &key, "attr.dotted.key=x").await, ["e"]);
    assert_eq!(selected(&app, &key, "attr.brand=acme&cost_min=1100").await, ["b", "e"]);
    assert_eq!(selected(&app, &key, "price_min=2500&price_max=3000").await, ["b", "c"]);
    assert_eq!(selected(&app, &key, "cost_max=1500").await, ["a", "b", "e"]);
    assert!(selected(&app, &key, "moved_within_secs=3600").await.is_empty(), "no rule has moved a price");
    assert!(selected(&app, &key, "attr.brand=nobody").await.is_empty());

    // Cost plus 50 % moves every price but c's (2000 + 50 % is its base price, 3000).
    crate::pipeline::activate(&app, &key, "cost-plus", json!({"margin_bps": 5000})).await;
    assert_eq!(selected(&app, &key, "moved_within_secs=3600").await, ["a", "b", "d", "e"]);
    assert_eq!(selected(&app, &key, "moved_within_secs=3600&price_min=4000").await, ["d"]);
    for query in ["price_min=-1", "price_min=x", "moved_within_secs=0", "attr.=1", "cost_max=1&cost_max=2"] {
        let response = app.call(Method::GET, &format!("/v1/products?{query}"), Some(&key), None).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
}

crate::both_backends! {
    list_filters => lists_filter_by_attribute_price_cost_and_recent_moves;
}
