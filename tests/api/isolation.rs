//! Tenant isolation and role checks: a merchant sees only its own data (another merchant's
//! product answers 404, as if it did not exist) and each role reaches only its endpoints.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::Backend;
use crate::helpers::{expect_error, expect_status, product, spawn_app};

async fn merchant_a_cannot_read_list_change_or_delete_merchant_bs_products(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key_a) = app.merchant_with_key(&["merchant", "auditor"]).await;
    let (_, key_b) = app.merchant_with_key(&["merchant"]).await;
    let b_product =
        expect_status(app.put_product(&key_b, "b-only", product("EUR", 100, 200)).await, StatusCode::CREATED).await;

    expect_error(app.get_product(&key_a, "b-only").await, StatusCode::NOT_FOUND, "not_found").await;
    let listed = expect_status(app.call(Method::GET, "/v1/products", Some(&key_a), None).await, StatusCode::OK).await;
    assert_eq!(listed["items"], json!([]));
    let delete = app.call(Method::DELETE, "/v1/products/b-only", Some(&key_a), None).await;
    expect_error(delete, StatusCode::NOT_FOUND, "not_found").await;
    // A's PUT to the same SKU makes A's own product; B's is untouched.
    expect_status(app.put_product(&key_a, "b-only", product("USD", 1, 999)).await, StatusCode::CREATED).await;
    assert_eq!(expect_status(app.get_product(&key_b, "b-only").await, StatusCode::OK).await, b_product);
    let a_view = expect_status(app.get_product(&key_a, "b-only").await, StatusCode::OK).await;
    assert_eq!(a_view["currency"], "USD");
}

/// Decision rows name their merchant by its number (migration 0020): merchants created at once
/// each get their own, and each one's history, lookups and chain hold its own records only.
async fn merchants_created_at_once_keep_their_histories_apart(backend: Backend) {
    const MERCHANTS: usize = 12;
    let app = spawn_app(backend).await;
    let created =
        futures_util::future::join_all((0..MERCHANTS).map(|_| app.merchant_with_key(&["merchant", "auditor"])));
    let merchants = created.await;
    let numbers = "SELECT COUNT(DISTINCT number) FROM merchants WHERE number IS NOT NULL";
    assert_eq!(crate::common::scalar(&app.db, numbers).await, MERCHANTS as i64);
    // The same SKU for every merchant, each at a price of its own, all at once.
    let puts = merchants
        .iter()
        .enumerate()
        .map(|(i, (_, key))| app.put_product(key, "same-sku", product("EUR", 100, 1_000 + i as i64)));
    for response in futures_util::future::join_all(puts).await {
        expect_status(response, StatusCode::CREATED).await;
    }
    for (i, (merchant, key)) in merchants.iter().enumerate() {
        let history =
            expect_status(app.call(Method::GET, "/v1/decisions", Some(key), None).await, StatusCode::OK).await;
        let items = history["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{history}");
        assert_eq!((&items[0]["sku"], &items[0]["new_price_minor"]), (&json!("same-sku"), &json!(1_000 + i as i64)));
        let record = expect_status(
            app.call(Method::GET, &format!("/v1/decisions/{}", items[0]["seq"]), Some(key), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(record["record"]["merchant_id"], json!(merchant), "{record}");
        let verified =
            expect_status(app.call(Method::GET, "/v1/audit/verify", Some(key), None).await, StatusCode::OK).await;
        assert_eq!((verified["intact"].as_bool(), verified["records"].as_i64()), (Some(true), Some(1)), "{verified}");
    }
}

both_backends! {
    tenant_isolation => merchant_a_cannot_read_list_change_or_delete_merchant_bs_products;
    histories_apart => merchants_created_at_once_keep_their_histories_apart;
}

/// (method, path, body) of every merchant- and admin-facing endpoint.
fn endpoints(merchant: &str, key_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::POST, "/v1/merchants".into(), Some(json!({"name": "X"}))),
        (Method::GET, format!("/v1/merchants/{merchant}"), None),
        (Method::POST, format!("/v1/merchants/{merchant}/keys"), Some(json!({"roles": ["feed"]}))),
        (Method::GET, format!("/v1/merchants/{merchant}/keys"), None),
        (Method::DELETE, format!("/v1/merchants/{merchant}/keys/{key_id}"), None),
        (Method::PUT, "/v1/products/probe".into(), Some(product("EUR", 1, 2))),
        (Method::GET, "/v1/products/probe".into(), None),
        (Method::GET, "/v1/products".into(), None),
        (Method::DELETE, "/v1/products/probe".into(), None),
    ]
}

#[tokio::test]
async fn each_role_reaches_only_its_endpoints() {
    let app = spawn_app(Backend::Sqlite).await;
    let merchant = app.create_merchant("Acme").await;
    let victim = app.issue_key(&merchant, &["feed"]).await;
    let victim_id = victim["id"].as_str().unwrap().to_owned();
    let admin = ("admin", app.admin_key.clone());
    let mut callers = vec![admin];
    for role in ["merchant", "feed", "checkout", "auditor"] {
        callers.push((role, app.issue_key(&merchant, &[role]).await["key"].as_str().unwrap().to_owned()));
    }
    // Which endpoints (by index in `endpoints`) each role may use.
    let allowed = |role: &str, index: usize| match role {
        "admin" => index <= 4,
        "merchant" => (5..=8).contains(&index),
        "auditor" => index == 6 || index == 7,
        _ => false,
    };
    for (role, key) in &callers {
        for (index, (method, path, body)) in endpoints(&merchant, &victim_id).into_iter().enumerate() {
            let response = app.call(method.clone(), &path, Some(key), body).await;
            let status = response.status();
            if allowed(role, index) {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{role} should reach {method} {path}, got {status}"
                );
            } else {
                expect_error(response, StatusCode::FORBIDDEN, "forbidden").await;
            }
        }
    }
}

#[tokio::test]
async fn a_key_with_several_roles_gets_the_union_of_their_rights() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, both) = app.merchant_with_key(&["checkout", "merchant"]).await;
    expect_status(app.put_product(&both, "tee-1", product("EUR", 1, 2)).await, StatusCode::CREATED).await;
    let (_, auditor) = app.merchant_with_key(&["auditor"]).await;
    let response = app.put_product(&auditor, "tee-1", product("EUR", 1, 2)).await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden").await;
}
