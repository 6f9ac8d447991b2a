//! SQLite on a full disk: the database lives on a small ext4 image mounted for the test, and
//! a filler file takes the last free block while products keep being written and checkout
//! keeps looking prices up. Writes that cannot be stored are `503 unavailable` in the error
//! shape (never a 500) and leave nothing half-written; lookups keep answering; once space
//! returns, writes succeed again by themselves and repricing catches up; the chain verifies.
//!
//! Mounting needs root (as on the CI machine); without it the test fails and says so.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, TestDb};
use crate::helpers::{TestApp, spawn_app_with, test_settings};
use crate::pipeline::{activate, verification};

const SKUS: usize = 20;
/// Most writes tried while the disk is full.
const WRITES_WHILE_FULL: usize = 300;

/// A small ext4 filesystem image, loop-mounted; unmounted and removed on drop.
struct SmallDisk {
    image: PathBuf,
    mount: PathBuf,
}

fn run(program: &str, args: &[&str]) {
    let output =
        Command::new("timeout").arg("60").arg(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed (the full-disk test mounts a filesystem image and needs root): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl SmallDisk {
    fn new(megabytes: u32) -> Self {
        let base = std::env::temp_dir().join("pricing-tests").join(format!("disk-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&base).unwrap();
        let (image, mount) = (base.join("disk.img"), base.join("mnt"));
        std::fs::create_dir_all(&mount).unwrap();
        run("truncate", &["-s", &format!("{megabytes}M"), image.to_str().unwrap()]);
        run("mkfs.ext4", &["-q", "-F", "-m", "0", image.to_str().unwrap()]);
        run("mount", &["-o", "loop", image.to_str().unwrap(), mount.to_str().unwrap()]);
        Self { image, mount }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let mount = self.mount.to_str().unwrap();
        let umounted = Command::new("timeout").args(["60", "umount", mount]).status().is_ok_and(|s| s.success());
        if !umounted {
            let _ = Command::new("timeout").args(["60", "umount", "-l", mount]).status();
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

/// Writes a file until the filesystem has no block left.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0xa5u8; 64 * 1024];
    loop {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
}

fn product(cost: i64, note: &str) -> Value {
    let attributes: serde_json::Map<String, Value> =
        (0..32).map(|i| (format!("note_{i}"), json!(format!("{note}-{i}-{}", "x".repeat(200))))).collect();
    json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": 1999, "attributes": attributes})
}

async fn lookups_answer(app: &TestApp, key: &str) {
    for i in 0..SKUS {
        let response = app.call(Method::GET, &format!("/v1/prices/sku-{i}"), Some(key), None).await;
        assert_eq!(response.status(), StatusCode::OK, "sku-{i} is looked up while the disk is full");
    }
}

#[tokio::test]
async fn sqlite_on_a_full_disk_refuses_writes_cleanly_and_recovers() {
    let disk = SmallDisk::new(24);
    let db = TestDb {
        backend: Backend::Sqlite,
        url: format!("sqlite://{}", disk.mount.join("pricing.db").display()),
        dir: disk.mount.clone(),
    };
    let mut settings = test_settings(&db);
    settings.store.acquire_timeout_ms = 1_000;
    settings.pricing.poll_ms = 100;
    let app = spawn_app_with(settings, db).await;
    let (merchant, key) = app.merchant_with_key(&["merchant", "checkout", "auditor"]).await;
    for i in 0..SKUS {
        assert!(app.put_product(&key, &format!("sku-{i}"), product(900, "first")).await.status().is_success());
    }
    activate(&app, &key, "cost-plus", json!({"margin_bps": 1000})).await;

    // The disk fills up; writes go on.
    let filler = disk.mount.join("filler");
    fill(&filler);
    let mut acknowledged = std::collections::HashMap::new();
    let mut refused = 0;
    for round in 0..WRITES_WHILE_FULL {
        let sku = format!("sku-{}", round % SKUS);
        let cost = 1000 + round as i64;
        let response = app.put_product(&key, &sku, product(cost, &format!("round-{round}"))).await;
        let status = response.status();
        if status.is_success() {
            acknowledged.insert(sku, cost);
        } else {
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a full disk is the service's trouble: {body}");
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
            refused += 1;
            if refused >= 20 {
                break;
            }
        }
    }
    assert!(refused > 0, "the full disk refused writes ({} acknowledged)", acknowledged.len());
    lookups_answer(&app, &key).await;
    let listing = app.call(Method::GET, "/v1/products?limit=100", Some(&key), None).await;
    assert_eq!(listing.status(), StatusCode::OK, "reads keep working");

    // Space returns: writes succeed again by themselves (bounded wait).
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    loop {
        let response = app.put_product(&key, "sku-0", product(5000, "after")).await;
        if response.status().is_success() {
            acknowledged.insert("sku-0".to_owned(), 5000);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "writes did not resume: {}", response.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(Duration::from_secs(60), app.engine.settled()).await.expect("repricing settles");

    // Every acknowledged write is there, whole; repricing saw it; the chain holds.
    let merchant: pricing::domain::MerchantId = merchant.parse().unwrap();
    let chain = app.store.chain(merchant, 0, 1_000_000).await.unwrap();
    for i in 0..SKUS {
        let sku = format!("sku-{i}");
        let stored = app.call(Method::GET, &format!("/v1/products/{sku}"), Some(&key), None).await;
        let stored: Value = stored.json().await.unwrap();
        let cost = stored["cost_minor"].as_i64().unwrap();
        if let Some(acknowledged) = acknowledged.get(&sku) {
            assert_eq!(cost, *acknowledged, "{sku}: the last acknowledged cost, and no refused one");
        }
        // Whole: the attributes belong to the same write as the cost.
        let round = cost - 1000;
        let expected_note = match cost {
            900 => "first-0".to_owned(),
            5000 => "after-0".to_owned(),
            _ => format!("round-{round}-0"),
        };
        assert!(stored["attributes"]["note_0"].as_str().unwrap().starts_with(&expected_note), "{sku}: {stored}");
        let last_rule = chain
            .iter()
            .rev()
            .find(|d| d.sku == sku && d.rule_version.is_some())
            .map(|d| serde_json::from_str::<Value>(&d.record).unwrap())
            .unwrap();
        assert_eq!(last_rule["inputs"]["cost_minor"], cost, "{sku}'s last rule decision saw its last cost");
    }
    assert_eq!(verification(&app, &key).await["intact"], true);
    app.stop().await;
}
