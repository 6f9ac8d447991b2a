//! `spawn_app()` and the small client helpers every API test uses.

use actix_web::dev::ServerHandle;
use pricing::config::{Secret, Settings};
use pricing::startup::Application;
use pricing::store::Store;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, TestDb, fresh_database};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

pub struct TestApp {
    pub address: String,
    pub admin_key: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub store: Store,
    pub engine: pricing::engine::Engine,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The settings tests start from: port 0, the test database, a known admin key, few workers.
pub fn test_settings(db: &TestDb) -> Settings {
    let mut settings = Settings::defaults();
    settings.listen = "127.0.0.1:0".into();
    settings.database_url = db.url.clone();
    settings.audit.keys_dir = db.dir.join("keys");
    settings.admin_key = Some(Secret::new(ADMIN_KEY));
    settings.http.workers = 1;
    settings.store.max_connections = 4;
    // The wall-clock deadline is load-sensitive by nature; on a busy 2-core CI machine a
    // legitimate evaluation can be preempted past 10 ms. Fuel, the deterministic stop, stays.
    settings.sandbox.deadline_ms = 1_000;
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let db = fresh_database(backend).await;
    spawn_app_with(test_settings(&db), db).await
}

pub async fn spawn_app_with(settings: Settings, db: TestDb) -> TestApp {
    init_test_logging();
    let admin_key = settings.admin_key.as_ref().map(|k| k.expose().to_owned()).unwrap_or_default();
    let app = Application::build(settings).await.expect("the application starts");
    let admin_key = app.generated_admin_key().map(str::to_owned).unwrap_or(admin_key);
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let engine = app.engine();
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    // Idle connections are dropped long before the server's keep-alive ends.
    let client = reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    TestApp { address, admin_key, client, db, store, engine, handle, server }
}

/// Logs go to the test output only when `TEST_LOG` is set.
fn init_test_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt().with_env_filter("info").with_test_writer().init();
        }
    });
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request with an optional bearer key and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("the service answers")
    }

    pub async fn create_merchant(&self, name: &str) -> String {
        let response =
            self.call(Method::POST, "/v1/merchants", Some(&self.admin_key), Some(json!({"name": name}))).await;
        let body = expect_status(response, StatusCode::CREATED).await;
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn issue_key(&self, merchant: &str, roles: &[&str]) -> Value {
        let path = format!("/v1/merchants/{merchant}/keys");
        let response = self.call(Method::POST, &path, Some(&self.admin_key), Some(json!({"roles": roles}))).await;
        expect_status(response, StatusCode::CREATED).await
    }

    /// A new merchant and a key of its holding `roles`: (merchant id, bearer token).
    pub async fn merchant_with_key(&self, roles: &[&str]) -> (String, String) {
        let merchant = self.create_merchant("Test merchant").await;
        let key = self.issue_key(&merchant, roles).await["key"].as_str().unwrap().to_owned();
        (merchant, key)
    }

    pub async fn put_product(&self, key: &str, sku: &str, body: Value) -> Response {
        self.call(Method::PUT, &format!("/v1/products/{sku}"), Some(key), Some(body)).await
    }

    pub async fn get_product(&self, key: &str, sku: &str) -> Response {
        self.call(Method::GET, &format!("/v1/products/{sku}"), Some(key), None).await
    }

    /// Stops the server gracefully and waits until it has closed its store.
    pub async fn stop(self) -> TestDb {
        self.handle.stop(true).await;
        self.server.await.expect("the server task ends").expect("the server stops cleanly");
        self.db
    }
}

/// A minimal valid product body.
pub fn product(currency: &str, cost: i64, base: i64) -> Value {
    json!({"currency": currency, "cost_minor": cost, "base_price_minor": base})
}

/// Asserts the status and returns the JSON body (or `null` for an empty one).
pub async fn expect_status(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("the body is JSON") }
}

/// Asserts an error in the API's one shape, with this status and code; returns its details.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = expect_status(response, status).await;
    assert_eq!(content_type.as_deref(), Some("application/json"), "errors are JSON: {body}");
    let error = body.get("error").unwrap_or_else(|| panic!("no `error` object in {body}"));
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "a message for people: {body}");
    assert!(error["details"].is_object(), "details are always an object (maybe empty): {body}");
    error["details"].clone()
}

/// A token's public part (`pk_<id>`) and its secret; the secret may itself contain `_`.
pub fn split_token(token: &str) -> (&str, &str) {
    assert!(token.starts_with("pk_") && token.as_bytes()[35] == b'_', "{token}");
    (&token[..35], &token[36..])
}
