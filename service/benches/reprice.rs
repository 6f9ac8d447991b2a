//! A full reprice of a catalogue on rule activation, on SQLite and on PostgreSQL, against the
//! rule evaluations alone measured in the same run (the share the store and the chain add).
//! Run with `cargo bench -p pricing-service --bench reprice` (REPRICE_SKUS, default 100000).

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::sync::Arc;
use std::time::Instant;

use pricing::cache::PriceCache;
use pricing::config::Settings;
use pricing::domain::{ProductDraft, Sku};
use pricing::engine::{Engine, EngineSettings};
use pricing::replication::Replication;
use pricing::rules::Rules;
use pricing::sandbox::Sandbox;
use pricing::store::{self, Store};
use pricing::write::{Prices, catalogue};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let skus: usize = std::env::var("REPRICE_SKUS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let wasm = common::rules::built_rule("cost-plus");
    println!("full reprice on activation, cost-plus rule, {skus} SKUs");
    println!("{:<10} {:>14} {:>16} {:>12} {:>18}", "backend", "seconds", "SKUs/s", "vs eval", "eval-only SKUs/s");
    // REPRICE_BACKENDS=sqlite (or postgres) measures one backend only, e.g. under a profiler.
    let only = std::env::var("REPRICE_BACKENDS").unwrap_or_default();
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let name = if backend == common::Backend::Sqlite { "sqlite" } else { "postgres" };
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let db = common::fresh_database(backend).await;
        let settings = Settings::defaults();
        let store: Store = store::connect(&db.url, &settings.store).await.unwrap();
        let merchant = store.create_merchant("Bench").await.unwrap().id;
        let writers = (0..8).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (w..skus).step_by(8) {
                    let sku = Sku::parse(&format!("sku-{i:07}")).unwrap();
                    let cost = 1000 + (i % 500) as i64;
                    let draft =
                        ProductDraft::parse(sku, "EUR", cost, 1999, Default::default(), Default::default()).unwrap();
                    catalogue::put(&store, merchant, &draft, &pricing::write::Gate::open()).await.unwrap();
                }
            })
        });
        for writer in writers {
            writer.await.unwrap();
        }
        let sandbox = Arc::new(Sandbox::new(&settings.sandbox).unwrap());
        let rules = Arc::new(Rules::new(store.clone(), sandbox.clone(), settings.pricing.stale_after_secs));
        let cache = Arc::new(PriceCache::new());
        cache.warm(&store).await.unwrap();
        let (version, _) = rules.upload(merchant, wasm.clone()).await.unwrap();

        // The evaluations alone, on the same contexts.
        let contexts = rules
            .contexts_for(merchant, &(0..skus.min(2_000)).map(|i| format!("sku-{i:07}")).collect::<Vec<_>>())
            .await
            .unwrap();
        let guest: Vec<_> = contexts.iter().map(|c| c.to_guest(&version.params).unwrap()).collect();
        let rule = rules.prepared(merchant, version.version).await.unwrap();
        let started = Instant::now();
        for chunk in guest.chunks(500) {
            assert!(sandbox.evaluate_attributed(&rule, chunk).iter().all(|e| e.result.is_ok()));
        }
        let eval_rate = guest.len() as f64 / started.elapsed().as_secs_f64();

        let prices = Prices::new(store.clone(), cache.clone(), Replication::local(), rules.clone());
        let engine = Engine::start(prices.clone(), EngineSettings::from(&settings.pricing)).await.unwrap();
        let started = Instant::now();
        prices.activate_rule(merchant, version.version).await.unwrap();
        engine.settled().await;
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(engine.evaluations(), skus as u64);
        let rate = skus as f64 / seconds;
        println!("{name:<10} {seconds:>14.2} {rate:>16.0} {:>12.3} {eval_rate:>18.0}", rate / eval_rate);
        let verified = pricing::audit::verify::verify(&store, merchant).await.unwrap();
        // Each product's creation, then its repricing.
        assert!(verified.intact && verified.records == 2 * skus as i64, "{verified:?}");
        store.close().await;
    }
}
