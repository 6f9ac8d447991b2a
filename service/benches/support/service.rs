//! What the benches that run the service in-process share: its settings on a bench's own
//! database, and a client that calls it with one key.

#![allow(dead_code)]

use pricing::config::{Secret, Settings};
use serde_json::Value;

pub const ADMIN_KEY: &str = "bench-admin-key-0123456789";

/// Settings for a service on any free loopback port, on the store at `url` with its signing
/// keys in `dir`, with [`ADMIN_KEY`] as the operator's key.
pub fn settings(url: &str, dir: &std::path::Path) -> Settings {
    let mut settings = Settings::defaults();
    settings.listen = "127.0.0.1:0".into();
    settings.database_url = url.to_owned();
    settings.audit.keys_dir = dir.join("keys");
    settings.admin_key = Some(Secret::new(ADMIN_KEY));
    settings
}

/// Calls the service with one key; every call must succeed.
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Http {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }
}
