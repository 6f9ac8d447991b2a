//! Restarts keep everything: what was written before a stop is all there after it.

use reqwest::{Method, StatusCode};

use crate::both_backends;
use crate::common::Backend;
use crate::helpers::{expect_status, product, spawn_app, spawn_app_with, test_settings};

async fn products_merchants_and_keys_survive_a_restart(backend: Backend) {
    let app = spawn_app(backend).await;
    let (merchant, key) = app.merchant_with_key(&["merchant"]).await;
    let mut written = Vec::new();
    for i in 0..40 {
        let sku = format!("tee-{i:02}");
        written.push(
            expect_status(app.put_product(&key, &sku, product("EUR", i, 100 + i)).await, StatusCode::CREATED).await,
        );
    }
    let db = app.stop().await;

    let app = spawn_app_with(test_settings(&db), db).await;
    let read = app.call(Method::GET, &format!("/v1/merchants/{merchant}"), Some(&app.admin_key), None).await;
    expect_status(read, StatusCode::OK).await;
    let listed =
        expect_status(app.call(Method::GET, "/v1/products?limit=1000", Some(&key), None).await, StatusCode::OK).await;
    let listed = listed["items"].as_array().unwrap().clone();
    assert_eq!(listed.len(), written.len());
    for (before, mut after) in written.into_iter().zip(listed) {
        // Lists leave out the price; compare the rest.
        let mut before = before;
        before.as_object_mut().unwrap().remove("price");
        after.as_object_mut().unwrap().remove("price");
        assert_eq!(before, after);
    }
}

both_backends! {
    restart_keeps_everything => products_merchants_and_keys_survive_a_restart;
}
