//! Merchants and their keys: creation, issue, listing, revocation, the bootstrap key.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{Backend, fresh_database};
use crate::helpers::{expect_error, expect_status, product, spawn_app, spawn_app_with, split_token, test_settings};

#[tokio::test]
async fn admin_creates_a_merchant_and_reads_it_back() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.call(Method::POST, "/v1/merchants", Some(&app.admin_key), Some(json!({"name": " Acme "}))).await;
    let created = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(created["name"], "Acme", "names are trimmed");
    let id = created["id"].as_str().unwrap();
    let read = app.call(Method::GET, &format!("/v1/merchants/{id}"), Some(&app.admin_key), None).await;
    assert_eq!(expect_status(read, StatusCode::OK).await, created);
}

#[tokio::test]
async fn a_blank_or_overlong_merchant_name_is_refused_with_the_field_named() {
    let app = spawn_app(Backend::Sqlite).await;
    for name in ["", "   ", &"x".repeat(201)] {
        let response = app.call(Method::POST, "/v1/merchants", Some(&app.admin_key), Some(json!({"name": name}))).await;
        let details = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(details["fields"][0]["field"], "name", "{details}");
    }
}

#[tokio::test]
async fn an_unknown_merchant_answers_404_and_a_malformed_id_400() {
    let app = spawn_app(Backend::Sqlite).await;
    let unknown = "01a21060-23a2-71e6-b5a1-59741c0e725b";
    let response = app.call(Method::GET, &format!("/v1/merchants/{unknown}"), Some(&app.admin_key), None).await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .call(
            Method::POST,
            &format!("/v1/merchants/{unknown}/keys"),
            Some(&app.admin_key),
            Some(json!({"roles": ["feed"]})),
        )
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.call(Method::GET, "/v1/merchants/not-an-id", Some(&app.admin_key), None).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
}

#[tokio::test]
async fn an_issued_key_is_shown_once_and_listed_without_its_secret() {
    let app = spawn_app(Backend::Sqlite).await;
    let merchant = app.create_merchant("Acme").await;
    let issued = app.issue_key(&merchant, &["merchant", "checkout"]).await;
    let token = issued["key"].as_str().unwrap();
    assert!(token.starts_with("pk_") && token.len() > 70, "{token}");
    assert_eq!(issued["roles"], json!(["merchant", "checkout"]));
    assert_eq!(issued["merchant_id"], merchant.as_str());

    let listed = app.call(Method::GET, &format!("/v1/merchants/{merchant}/keys"), Some(&app.admin_key), None).await;
    let listed = expect_status(listed, StatusCode::OK).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], issued["id"]);
    assert!(listed[0].get("key").is_none());
    let (_, secret) = split_token(token);
    assert!(!listed.to_string().contains(secret), "the secret is never shown again");
    assert_eq!(app.store.keys(Some(merchant.parse().unwrap())).await.unwrap()[0].secret_sha256.len(), 32);

    let works = app.put_product(token, "tee-1", product("EUR", 1, 2)).await;
    expect_status(works, StatusCode::CREATED).await;
}

#[tokio::test]
async fn keys_need_known_roles_and_merchant_keys_cannot_be_admin() {
    let app = spawn_app(Backend::Sqlite).await;
    let merchant = app.create_merchant("Acme").await;
    let path = format!("/v1/merchants/{merchant}/keys");
    let response = app.call(Method::POST, &path, Some(&app.admin_key), Some(json!({"roles": ["admin"]}))).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let response = app.call(Method::POST, &path, Some(&app.admin_key), Some(json!({"roles": []}))).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let response = app.call(Method::POST, &path, Some(&app.admin_key), Some(json!({"roles": ["root"]}))).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert!(app.store.keys(Some(merchant.parse().unwrap())).await.unwrap().is_empty(), "no key was stored");
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_revoking_twice_is_harmless() {
    let app = spawn_app(Backend::Sqlite).await;
    let merchant = app.create_merchant("Acme").await;
    let issued = app.issue_key(&merchant, &["merchant"]).await;
    let token = issued["key"].as_str().unwrap();
    // Used once, so it sits in the key cache when it is revoked.
    expect_status(app.put_product(token, "tee-1", product("EUR", 1, 2)).await, StatusCode::CREATED).await;

    let path = format!("/v1/merchants/{merchant}/keys/{}", issued["id"].as_str().unwrap());
    let revoked =
        expect_status(app.call(Method::DELETE, &path, Some(&app.admin_key), None).await, StatusCode::OK).await;
    assert!(revoked["revoked_at"].is_string());
    let again = expect_status(app.call(Method::DELETE, &path, Some(&app.admin_key), None).await, StatusCode::OK).await;
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);

    let refused = app.get_product(token, "tee-1").await;
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    expect_error(refused, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn a_key_cannot_be_revoked_through_another_merchant() {
    let app = spawn_app(Backend::Sqlite).await;
    let a = app.create_merchant("A").await;
    let b = app.create_merchant("B").await;
    let issued = app.issue_key(&a, &["merchant"]).await;
    let path = format!("/v1/merchants/{b}/keys/{}", issued["id"].as_str().unwrap());
    expect_error(app.call(Method::DELETE, &path, Some(&app.admin_key), None).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    let token = issued["key"].as_str().unwrap();
    expect_status(app.put_product(token, "tee-1", product("EUR", 1, 2)).await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn without_a_configured_admin_key_the_first_start_generates_one_and_keeps_only_its_hash() {
    let db = fresh_database(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.admin_key = None;
    let app = spawn_app_with(settings.clone(), db).await;
    let generated = app.admin_key.clone();
    assert!(generated.starts_with("pk_"));
    app.create_merchant("Acme").await;
    let admins = app.store.keys(None).await.unwrap();
    assert_eq!(admins.len(), 1);
    let (_, secret) = split_token(&generated);
    assert_ne!(hex::encode(admins[0].secret_sha256), secret);
    assert_eq!(admins[0].secret_sha256, pricing::auth::sha256(secret.as_bytes()));

    // A second start finds the stored key and generates none.
    let db = app.stop().await;
    let app = spawn_app_with(settings, db).await;
    assert_eq!(app.admin_key, "", "no key is generated (or printed) again");
    assert_eq!(app.store.keys(None).await.unwrap().len(), 1);
    let response = app.call(Method::POST, "/v1/merchants", Some(&generated), Some(json!({"name": "Again"}))).await;
    expect_status(response, StatusCode::CREATED).await;
}

#[tokio::test]
async fn the_operator_issues_lists_and_revokes_admin_keys_but_never_the_last_one() {
    let db = fresh_database(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.admin_key = None; // the first start generates the one admin key
    let app = spawn_app_with(settings, db).await;
    let first = app.admin_key.clone();
    let (_, merchant_key) = app.merchant_with_key(&["merchant"]).await;
    let keys = expect_status(app.call(Method::GET, "/v1/admin/keys", Some(&first), None).await, StatusCode::OK).await;
    let first_id = keys[0]["id"].as_str().unwrap().to_owned();
    let last = app.call(Method::DELETE, &format!("/v1/admin/keys/{first_id}"), Some(&first), None).await;
    expect_error(last, StatusCode::CONFLICT, "last_admin_key").await;

    let body = json!({"label": "on-call"});
    let issued = app.call(Method::POST, "/v1/admin/keys", Some(&first), Some(body)).await;
    let issued = expect_status(issued, StatusCode::CREATED).await;
    assert_eq!(issued["roles"], json!(["admin"]));
    assert!(issued.get("merchant_id").is_none(), "an admin key belongs to no merchant: {issued}");
    let second = issued["key"].as_str().unwrap().to_owned();
    let revoked = app.call(Method::DELETE, &format!("/v1/admin/keys/{first_id}"), Some(&second), None).await;
    assert!(!expect_status(revoked, StatusCode::OK).await["revoked_at"].is_null());
    let refused = app.call(Method::GET, "/v1/admin/keys", Some(&first), None).await;
    expect_error(refused, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let forbidden = app.call(Method::GET, "/v1/admin/keys", Some(&merchant_key), None).await;
    expect_error(forbidden, StatusCode::FORBIDDEN, "forbidden").await;
}
