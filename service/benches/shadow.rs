//! What a shadow costs live repricing: signal-to-visible-price latency of a competitor-match
//! merchant with no shadow (the baseline, measured first in the same run), with a shadow of an
//! ordinary version (competitor-position), and with a shadow of a hostile rule that spins until
//! its fuel runs out on every context; and whether every live price was right throughout.
//! Each signal moves 20 SKUs (a batch), so the shadow has real work on every one.
//! SQLite, in-process service with real HTTP on loopback. Run with
//! `cargo bench -p pricing-service --bench shadow` (SHADOW_SIGNALS, default 200).

#[path = "support/report.rs"]
mod report;
#[path = "support/service.rs"]
mod service;

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use pricing::config::{Secret, Settings};
use pricing::startup::Application;
use serde_json::{Value, json};
use service::Http;

const ADMIN: &str = "bench-admin-key-0123456789";
const SKUS: usize = 20;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Sends `signals` observations (each for every SKU) and waits for each to reach the prices;
/// returns the sorted latencies in microseconds and whether every live price was right.
async fn measure(http: &Http, round: &str, signals: i64) -> (Vec<u64>, bool) {
    let mut latencies = Vec::new();
    let mut right = true;
    for n in 0..signals {
        let competitor_price = 1900 - n;
        let observed = chrono::Utc::now();
        let observations: Vec<Value> = (0..SKUS)
            .map(|i| {
                json!({"id": format!("{round}-{n}-{i}"), "sku": format!("sku-{i:02}"), "competitor": "rival",
                       "price_minor": competitor_price, "currency": "EUR", "in_stock": true, "observed_at": observed})
            })
            .collect();
        let started = Instant::now();
        http.call(reqwest::Method::POST, "/v1/signals/competitor-prices", Some(json!({"observations": observations})))
            .await;
        let last = format!("/v1/prices/sku-{:02}", SKUS - 1);
        loop {
            let price = http.call(reqwest::Method::GET, &last, None).await;
            if price["price_minor"].as_i64() == Some(competitor_price - 1) {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(started.elapsed().as_micros() as u64);
        let first = http.call(reqwest::Method::GET, "/v1/prices/sku-00", None).await;
        right &= first["price_minor"].as_i64() == Some(competitor_price - 1);
    }
    latencies.sort_unstable();
    (latencies, right)
}

async fn run() {
    let signals: i64 = std::env::var("SHADOW_SIGNALS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let hostile = common::rules::built_rule("hostile");
    let db = common::fresh_database(common::Backend::Sqlite).await;
    let mut settings = Settings::defaults();
    settings.listen = "127.0.0.1:0".into();
    settings.database_url = db.url.clone();
    settings.admin_key = Some(Secret::new(ADMIN));
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let admin = Http { client: reqwest::Client::new(), base: base.clone(), key: ADMIN.into() };
    let merchant = admin.call(reqwest::Method::POST, "/v1/merchants", Some(json!({"name": "Bench"}))).await;
    let keys = format!("/v1/merchants/{}/keys", merchant["id"].as_str().unwrap());
    let key = admin.call(reqwest::Method::POST, &keys, Some(json!({"roles": ["merchant", "checkout", "feed"]}))).await;
    let http = Http { client: reqwest::Client::new(), base, key: key["key"].as_str().unwrap().to_owned() };
    for i in 0..SKUS {
        let body = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 2500});
        http.call(reqwest::Method::PUT, &format!("/v1/products/sku-{i:02}"), Some(body)).await;
    }
    let version = |v: &Value| v["version"].as_i64().unwrap();
    let live =
        version(&http.call(reqwest::Method::POST, "/v1/rules", Some(json!({"stock": "competitor-match"}))).await);
    let ordinary =
        version(&http.call(reqwest::Method::POST, "/v1/rules", Some(json!({"stock": "competitor-position"}))).await);
    let spinning = {
        let response = http
            .client
            .post(format!("{}/v1/rules", http.base))
            .bearer_auth(&http.key)
            .header("content-type", "application/wasm")
            .body(hostile)
            .send()
            .await
            .unwrap();
        version(&response.json::<Value>().await.unwrap())
    };
    http.call(reqwest::Method::PUT, &format!("/v1/rules/{spinning}/params"), Some(json!({"attack": "spin"}))).await;
    http.call(reqwest::Method::POST, &format!("/v1/rules/{live}/activate"), None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("signal to visible price with a shadow beside the live rule ({signals} signals of {SKUS} SKUs, SQLite)");
    println!(
        "{:<34} {:>9} {:>9} {:>10} {:>10} {:>12}",
        "shadow", "p50 us", "p99 us", "p50 ratio", "p99 ratio", "prices right"
    );
    let mut baseline = None;
    for (name, shadowed) in
        [("none (baseline)", None), ("competitor-position", Some(ordinary)), ("hostile spin", Some(spinning))]
    {
        let shadow = match shadowed {
            Some(v) => Some(http.call(reqwest::Method::POST, &format!("/v1/rules/{v}/shadow"), None).await),
            None => None,
        };
        let (latencies, right) = measure(&http, name, signals).await;
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        let (b50, b99) = *baseline.get_or_insert((p50, p99));
        println!(
            "{name:<34} {p50:>9} {p99:>9} {:>10.2} {:>10.2} {:>12}",
            p50 as f64 / b50 as f64,
            p99 as f64 / b99 as f64,
            right
        );
        if shadowed.is_some() {
            let what = format!("signal to visible p99 with a shadow: {name}");
            let none = Some(("no shadow, same run", b99 as f64));
            report::figure("shadow", &what, p99 as f64, "µs", none, None);
        }
        if let Some(shadow) = shadow {
            let id = shadow["id"].as_i64().unwrap();
            let seen = http.call(reqwest::Method::POST, &format!("/v1/shadows/{id}/stop"), None).await;
            println!(
                "  shadow {id}: compared {}, skipped {}, candidate failures {}",
                seen["report"]["compared"], seen["skipped"], seen["report"]["candidate_failures"]
            );
        }
    }
}
