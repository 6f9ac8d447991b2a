//! Resident memory per cached price: the checkout cache filled with 1,000,000 prices
//! (CACHE_PRICES to change it), against the moka cache the service used before, filled the
//! same way, each in a fresh process of its own so that neither inherits the other's heap.
//! Run with `cargo bench -p pricing-service --bench cache_memory`.
//!
//! What is counted: the process's resident set after filling minus before, over the number
//! of prices. SKUs are 12 characters (`SKU-00000000`), spread over 10 merchants.

#[path = "support/report.rs"]
mod report;

use std::process::Command;

use chrono::Utc;
use pricing::cache::{CachedPrice, PriceCache};
use pricing::domain::{MerchantId, Money, Sku};
use pricing::store::CurrentPrice;

const MERCHANTS: usize = 10;
const TARGET_BYTES: f64 = 250.0;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).expect("resident field").parse().expect("a number");
    pages * 4096
}

fn prices(n: usize) -> impl Iterator<Item = (MerchantId, CurrentPrice)> {
    let merchants: Vec<MerchantId> = (0..MERCHANTS).map(|_| MerchantId::generate()).collect();
    let currency = "EUR".parse().unwrap();
    let at = Utc::now();
    (0..n).map(move |i| {
        let price = CurrentPrice {
            sku: Sku::parse(&format!("SKU-{i:08}")).unwrap(),
            price: Money::new(1_000 + i as i64 % 50_000, currency),
            version: 1 + i as i64 % 7,
            effective_at: at,
            prior_minor: (i % 3 == 0).then_some(999),
        };
        (merchants[i % MERCHANTS], price)
    })
}

/// Fills one cache in this process and prints the bytes per price.
fn child(kind: &str, n: usize) {
    let before = resident_bytes();
    match kind {
        "cache" => {
            let cache = PriceCache::new();
            for (merchant, price) in prices(n) {
                cache.put(merchant, &price);
            }
            assert_eq!(cache.len(), n);
            let after = resident_bytes();
            println!("{}", (after - before) as f64 / n as f64);
            std::hint::black_box(&cache);
        }
        "moka" => {
            let cache: moka::sync::Cache<(MerchantId, Sku), CachedPrice> = moka::sync::Cache::builder().build();
            for (merchant, price) in prices(n) {
                cache.insert((merchant, price.sku.clone()), CachedPrice::from(&price));
            }
            cache.run_pending_tasks();
            assert_eq!(cache.entry_count() as usize, n);
            let after = resident_bytes();
            println!("{}", (after - before) as f64 / n as f64);
            std::hint::black_box(&cache);
        }
        other => panic!("unknown cache {other}"),
    }
}

fn measure(kind: &str, n: usize) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe).args(["--child", kind, &n.to_string()]).output().expect("the bench runs itself");
    assert!(out.status.success(), "{kind}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().parse().expect("bytes per price")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], args[i + 2].parse().unwrap());
        return;
    }
    let n: usize = std::env::var("CACHE_PRICES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let ours = measure("cache", n);
    let moka = measure("moka", n);
    println!("{:<44} {:>16}", format!("resident bytes per cached price, {n} prices"), "bytes/price");
    println!("{:<44} {ours:>16.1}", "price cache (sharded tables)");
    println!("{:<44} {moka:>16.1}", "moka::sync::Cache (baseline)");
    report::figure(
        "cache_memory",
        &format!("resident memory per cached price, {n} prices"),
        ours,
        "bytes",
        Some(("moka::sync::Cache, same keys and prices", moka)),
        Some(report::Target::AtMost(TARGET_BYTES)),
    );
}
