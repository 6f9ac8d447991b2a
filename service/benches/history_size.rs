//! Stored bytes per decision on each backend: a competitor-match merchant whose 2,000
//! products (HISTORY_SKUS) are repriced by rounds of competitor observations (HISTORY_ROUNDS,
//! default 5); the decisions table and its indexes are measured before and after the rounds,
//! so the figure is what one more repricing decision costs the store. The baseline is the
//! canonical record itself (the JSON the chain hashes), read back through the store. The
//! chain must verify at the end. Run with `cargo bench -p pricing-service --bench history_size`
//! (the sizes do not depend on the build profile; `--profile dev` gives the same figures).

#[path = "support/report.rs"]
mod report;
#[path = "support/service.rs"]
mod service;

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use pricing::domain::MerchantId;
use pricing::startup::Application;
use pricing::store::Store;
use serde_json::{Value, json};
use service::{ADMIN_KEY, Http};

const TARGET_BYTES: f64 = 500.0;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Bytes the decisions table and its indexes take, and how many decisions it holds.
async fn stored(store: &Store, backend: common::Backend) -> (f64, f64) {
    let mut tx = store.begin().await.unwrap();
    let bytes: i64 = match backend {
        common::Backend::Sqlite => sqlx::query_scalar(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'decisions')",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap(),
        common::Backend::Postgres => sqlx::query_scalar("SELECT pg_total_relation_size('decisions')::BIGINT")
            .fetch_one(&mut *tx)
            .await
            .unwrap(),
    };
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM decisions").fetch_one(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    (bytes as f64, count as f64)
}

/// Bytes per table or index of the decisions table, largest first.
async fn breakdown(store: &Store, backend: common::Backend) -> Vec<(String, i64)> {
    let mut tx = store.begin().await.unwrap();
    let sql = match backend {
        common::Backend::Sqlite => {
            "SELECT name, SUM(pgsize) AS size FROM dbstat
             WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'decisions') GROUP BY name ORDER BY size DESC"
        }
        // The table alone (its TOAST apart), and each index.
        common::Backend::Postgres => {
            "SELECT c.relname::TEXT, pg_relation_size(c.oid)::BIGINT AS size FROM pg_class c
             WHERE c.oid = 'decisions'::regclass
                OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'decisions'::regclass)
             UNION ALL
             SELECT 'toast', COALESCE(pg_total_relation_size(NULLIF(reltoastrelid, 0)), 0)::BIGINT
             FROM pg_class WHERE oid = 'decisions'::regclass
             ORDER BY size DESC"
        }
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    rows
}

/// The canonical records' total length, as the store gives them back.
async fn canonical_bytes(store: &Store, merchant: MerchantId, after: i64) -> f64 {
    let mut total = 0usize;
    let mut seq = after;
    loop {
        let page = store.chain(merchant, seq, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        seq = last.seq;
        total += page.iter().map(|d| d.record.len()).sum::<usize>();
    }
    total as f64
}

async fn run() {
    let skus = env("HISTORY_SKUS", 2_000);
    let rounds = env("HISTORY_ROUNDS", 5);
    let only = std::env::var("HISTORY_BACKENDS").unwrap_or_default();
    println!("stored bytes per decision: {skus} SKUs, competitor-match, {rounds} rounds of two competitors' prices");
    println!("{:<9} {:>10} {:>16} {:>18} {:>8}", "backend", "decisions", "bytes/decision", "canonical bytes", "ratio");
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let name = if backend == common::Backend::Sqlite { "sqlite" } else { "postgres" };
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let db = common::fresh_database(backend).await;
        let app = Application::build(service::settings(&db.url, &db.dir)).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let store = app.store();
        let engine = app.engine();
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let admin = Http { client: reqwest::Client::new(), base: base.clone(), key: ADMIN_KEY.into() };
        let merchant = admin.call(reqwest::Method::POST, "/v1/merchants", Some(json!({"name": "History"}))).await;
        let merchant_id = MerchantId::parse(merchant["id"].as_str().unwrap()).unwrap();
        let keys = format!("/v1/merchants/{merchant_id}/keys");
        let key = admin.call(reqwest::Method::POST, &keys, Some(json!({"roles": ["merchant", "feed"]}))).await;
        let http = Http { client: reqwest::Client::new(), base, key: key["key"].as_str().unwrap().to_owned() };
        let lines: Vec<String> = (0..skus)
            .map(|i| {
                json!({"sku": format!("tee-{i:06}"), "currency": "EUR", "cost_minor": 1200 + (i % 300) as i64,
                       "base_price_minor": 2999, "attributes": {"brand": "acme", "season": "ss26"},
                       "guardrails": {"floor_minor": 1300, "ceiling_minor": 4999, "max_step_bps": 1000,
                                      "rounding": {"mode": "ending", "ending_minor": 99}}})
                .to_string()
            })
            .collect();
        let import = http
            .client
            .post(format!("{}/v1/products/import", http.base))
            .bearer_auth(&http.key)
            .header("content-type", "application/x-ndjson")
            .body(lines.join("\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(import.status(), 202);
        let job = import.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        while http.call(reqwest::Method::GET, &format!("/v1/jobs/{job}"), None).await["state"] != "completed" {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let rule = http.call(reqwest::Method::POST, "/v1/rules", Some(json!({"stock": "competitor-match"}))).await;
        let version = rule["version"].as_i64().unwrap();
        let params = json!({"min_margin_bps": 1000, "undercut_minor": 5});
        http.call(reqwest::Method::PUT, &format!("/v1/rules/{version}/params"), Some(params)).await;
        http.call(reqwest::Method::POST, &format!("/v1/rules/{version}/activate?force=true"), None).await;
        engine.settled().await;

        let (bytes_before, count_before) = stored(&store, backend).await;
        let last_before = store.chain_head(merchant_id).await.unwrap().map_or(0, |(seq, _)| seq);
        for round in 0..rounds {
            let observed = chrono::Utc::now();
            for chunk in (0..skus).collect::<Vec<_>>().chunks(2_000) {
                let observations: Vec<Value> = chunk
                    .iter()
                    .flat_map(|i| {
                        let sku = format!("tee-{i:06}");
                        [("rival-a", 2600 - 40 * round as i64 - (i % 50) as i64), ("rival-b", 2700 - 30 * round as i64)]
                            .map(|(competitor, price)| {
                                json!({"id": format!("{round}-{competitor}-{sku}"), "sku": sku, "competitor": competitor,
                                       "price_minor": price, "currency": "EUR", "in_stock": round % 2 == 0,
                                       "observed_at": observed})
                            })
                    })
                    .collect();
                let body = json!({"observations": observations});
                http.call(reqwest::Method::POST, "/v1/signals/competitor-prices", Some(body)).await;
            }
            engine.settled().await;
        }
        let (bytes_after, count_after) = stored(&store, backend).await;
        let decisions = count_after - count_before;
        let per_decision = (bytes_after - bytes_before) / decisions;
        let canonical = canonical_bytes(&store, merchant_id, last_before).await / decisions;
        let verified = http.call(reqwest::Method::GET, "/v1/audit/verify", None).await;
        assert_eq!(verified["intact"], true, "{verified}");
        println!(
            "{name:<9} {decisions:>10} {per_decision:>16.0} {canonical:>18.0} {:>8.2}   (whole table: {:.0} bytes for {count_after} decisions)",
            per_decision / canonical,
            bytes_after / count_after
        );
        for (object, bytes) in breakdown(&store, backend).await {
            println!("  {object:<32} {:>8.0} bytes per decision", bytes as f64 / count_after);
        }
        let what = format!("{name}: stored bytes per repricing decision, chain verifying");
        let baseline = Some(("the canonical record (JSON the chain hashes)", canonical));
        report::figure(
            "history_size",
            &what,
            per_decision,
            "bytes",
            baseline,
            Some(report::Target::AtMost(TARGET_BYTES)),
        );
        handle.stop(true).await;
        let _ = server.await;
        store.close().await;
    }
}
