//! Catalogue import on SQLite and on PostgreSQL, in one run: IMPORT_PRODUCTS (default
//! 1,000,000) new products as one CSV file through `POST /v1/products/import`, timed from the
//! first byte sent until the job has completed, then the chain verified (`GET /v1/audit/verify`,
//! timed too). The baseline, in the same run against the same service: IMPORT_SAMPLE (default
//! 20,000) other new products through `PUT /v1/products/{sku}` from 16 concurrent clients, as
//! products per second. Target: the whole import in under 60 s on each backend.
//!
//! The service runs in-process (release build, 2 HTTP workers, 2 cores shared with the client
//! and, for PostgreSQL, the database). Run with `cargo bench -p pricing-service --bench import`
//! (IMPORT_BACKENDS=sqlite or postgres for one).

#[path = "support/report.rs"]
mod report;
#[path = "support/service.rs"]
mod service;

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pricing::startup::Application;
use serde_json::{Value, json};
use service::ADMIN_KEY;

const CLIENTS: usize = 16;
const TARGET_SECS: f64 = 60.0;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn catalogue(products: usize) -> Vec<u8> {
    let mut csv = String::with_capacity(products * 64);
    csv.push_str("sku,currency,cost_minor,base_price_minor,floor_minor,attr.brand,attr.size\n");
    for i in 0..products {
        csv.push_str(&format!(
            "imp-{i:07},EUR,{},{},{},brand-{},{}\n",
            500 + i % 700,
            1500 + i % 900,
            1000,
            i % 50,
            i % 12
        ));
    }
    csv.into_bytes()
}

async fn run() {
    let products = env("IMPORT_PRODUCTS", 1_000_000);
    let sample = env("IMPORT_SAMPLE", 20_000);
    let only = std::env::var("IMPORT_BACKENDS").unwrap_or_default();
    let file = catalogue(products);
    println!(
        "import of {products} products ({:.1} MB of CSV); baseline: {sample} PUTs from {CLIENTS} clients",
        file.len() as f64 / 1e6
    );
    println!(
        "{:<9} {:>12} {:>12} {:>14} {:>9} {:>12} {:>10}",
        "backend", "import s", "products/s", "PUT products/s", "ratio", "verify s", "target"
    );
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let name = if backend == common::Backend::Sqlite { "sqlite" } else { "postgres" };
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let db = common::fresh_database(backend).await;
        let mut settings = service::settings(&db.url, &db.dir);
        settings.http.workers = 2;
        settings.http.request_timeout_ms = 600_000;
        let app = Application::build(settings).await.unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        let key = merchant_key(&client, &address).await;

        let put_rate = puts(&client, &address, &key, sample).await;

        let started = Instant::now();
        let response = client
            .post(format!("{address}/v1/products/import"))
            .bearer_auth(&key)
            .header("content-type", "text/csv")
            .body(file.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap_or_default());
        let job: Value = response.json().await.unwrap();
        let job = wait(&client, &address, &key, job["id"].as_str().unwrap()).await;
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(job["state"], "completed", "{job}");
        assert_eq!(job["applied"].as_u64(), Some(products as u64), "{job}");
        let verifying = Instant::now();
        let verified: Value = client
            .get(format!("{address}/v1/audit/verify"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let verify_secs = verifying.elapsed().as_secs_f64();
        assert_eq!(verified["intact"], true, "the chain verifies after the import: {verified}");
        let rate = products as f64 / seconds;
        let what = format!("{name}: import of {products} products, seconds");
        report::figure("import", &what, seconds, "s", None, Some(report::Target::AtMost(TARGET_SECS)));
        let what = format!("{name}: import rate against concurrent PUTs");
        report::figure("import", &what, rate, "products/s", Some(("PUTs from 16 clients, same run", put_rate)), None);
        println!(
            "{name:<9} {seconds:>12.1} {rate:>12.0} {put_rate:>14.0} {:>8.1}x {verify_secs:>12.1} {:>10}",
            rate / put_rate,
            if seconds < TARGET_SECS { "met" } else { "not met" }
        );
        handle.stop(true).await;
        let _ = server.await;
    }
}

async fn merchant_key(client: &reqwest::Client, address: &str) -> String {
    let merchant: Value = client
        .post(format!("{address}/v1/merchants"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "Import"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issued: Value = client
        .post(format!("{address}/v1/merchants/{}/keys", merchant["id"].as_str().unwrap()))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"roles": ["merchant", "auditor"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    issued["key"].as_str().unwrap().to_owned()
}

/// `sample` new products through concurrent PUTs: products per second.
async fn puts(client: &reqwest::Client, address: &str, key: &str, sample: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (client, address, key, next) = (client.clone(), address.to_owned(), key.to_owned(), next.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sample {
                    return;
                }
                let body = json!({"currency": "EUR", "cost_minor": 500, "base_price_minor": 1500,
                                  "attributes": {"brand": "put"}});
                for _ in 0..20 {
                    let status = client
                        .put(format!("{address}/v1/products/put-{i:07}"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    if status != 503 {
                        assert_eq!(status, 201);
                        break;
                    }
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    sample as f64 / started.elapsed().as_secs_f64()
}

async fn wait(client: &reqwest::Client, address: &str, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(1_800);
    loop {
        let job: Value =
            client.get(format!("{address}/v1/jobs/{id}")).bearer_auth(key).send().await.unwrap().json().await.unwrap();
        if ["completed", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
            return job;
        }
        assert!(Instant::now() < deadline, "the import ends within 30 minutes: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
