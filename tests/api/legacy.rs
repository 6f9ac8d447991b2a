//! A database written by the previous release (commit 80bd5b4, the last before the store
//! refactor) still works with the current code: it opens and migrates, its hash chain verifies
//! byte for byte, the checkpoint that release signed still checks, its catalogue, prices,
//! rules and history read back as that release answered them, its rule decisions replay
//! identically, and the current code appends to its chain. The fixture, and what the old
//! release answered, are in tests/fixtures/legacy-v0 (made by its make.sh).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use pricing::config::Secret;
use pricing::domain::chain::GENESIS_HASH;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Connection;

use crate::both_backends;
use crate::common::{Backend, TestDb, fresh_database};
use crate::helpers::{TestApp, expect_error, expect_status, spawn_app_with, test_settings};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    workspace().join("tests/fixtures/legacy-v0").join(name)
}

fn fixture_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"))
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// A fresh database holding the old release's data: the SQLite file copied in, or the
/// PostgreSQL dump loaded into a new database.
async fn legacy_database(backend: Backend) -> TestDb {
    let db = fresh_database(backend).await;
    match backend {
        Backend::Sqlite => {
            let path = db.url.strip_prefix("sqlite://").expect("an SQLite URL");
            std::fs::copy(fixture("pricing.db"), path).expect("the fixture copies");
        }
        Backend::Postgres => {
            // pg_dump's psql meta-commands (`\restrict`, `\unrestrict`) are not SQL; the rest,
            // `SET`s and `set_config` included, runs as one simple query.
            let dump = std::fs::read_to_string(fixture("postgres.sql")).expect("the dump reads");
            let sql: String =
                dump.lines().filter(|line| !line.starts_with('\\')).flat_map(|line| [line, "\n"]).collect();
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("the new database answers");
            tokio::time::timeout(Duration::from_secs(120), sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn))
                .await
                .expect("the dump loads in time")
                .expect("the dump loads");
            conn.close().await.ok();
        }
    }
    db
}

/// The migrations the store records as applied (version, success).
async fn applied_migrations(db: &TestDb) -> Vec<(i64, bool)> {
    let query = "SELECT version, success FROM _sqlx_migrations ORDER BY version";
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query_as(query).fetch_all(&mut conn).await.unwrap();
            conn.close().await.ok();
            rows
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query_as(query).fetch_all(&mut conn).await.unwrap();
            conn.close().await.ok();
            rows
        }
    }
}

/// The versions of the current code's migrations for a backend, from their file names.
fn migration_versions(backend: Backend) -> Vec<i64> {
    let dir = workspace().join("migrations").join(backend_name(backend));
    let mut versions: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sql"))
        .map(|name| name.split('_').next().unwrap().parse().unwrap())
        .collect();
    versions.sort_unstable();
    versions
}

/// Every field the old release answered has the same value now (the current code may add
/// fields).
#[track_caller]
fn assert_answers_as_before(now: &Value, before: &Value, what: &str) {
    let before_fields = before.as_object().unwrap_or_else(|| panic!("{what}: the fixture holds an object"));
    for (field, value) in before_fields {
        assert_eq!(now.get(field), Some(value), "{what}: field `{field}`\nnow:    {now}\nbefore: {before}");
    }
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    expect_status(app.call(Method::GET, path, Some(key), None).await, StatusCode::OK).await
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().unwrap_or_else(|| panic!("a page of items: {page}")).clone()
}

#[derive(Deserialize)]
struct ExportLine<'a> {
    seq: i64,
    #[serde(borrow)]
    record: &'a RawValue,
    prev_hash: String,
    hash: String,
}

async fn a_database_of_the_previous_release_opens_verifies_and_replays(backend: Backend) {
    let name = backend_name(backend);
    let expected = fixture_json(&format!("expected-{name}.json"));
    let checkpoint = fixture_json(&format!("checkpoint-{name}.json"));
    assert_eq!(expected["commit"], "80bd5b4", "the fixture comes from the previous release");
    let db = legacy_database(backend).await;
    let mut settings = test_settings(&db);
    settings.admin_key = Some(Secret::new(expected["admin_key"].as_str().unwrap()));
    let app = spawn_app_with(settings, db.clone()).await;
    let key = expected["key"].as_str().unwrap();
    let merchant = expected["merchant_id"].as_str().unwrap();
    let admin = app.admin_key.clone();

    // Migrated: the old release's migrations kept, the current code's newer ones applied.
    let applied = applied_migrations(&db).await;
    assert_eq!(applied.iter().map(|m| m.0).collect::<Vec<_>>(), migration_versions(backend));
    assert!(applied.iter().all(|m| m.1), "every migration succeeded: {applied:?}");

    // The operator's view: the merchant and its key, as the old release listed them; the key
    // the old release issued still authenticates (below, every call uses it).
    let merchant_view = get(&app, &admin, &format!("/v1/merchants/{merchant}")).await;
    assert_answers_as_before(&merchant_view, &expected["merchant"], "merchant");
    let keys = get(&app, &admin, &format!("/v1/merchants/{merchant}/keys")).await;
    let keys = keys.as_array().or_else(|| keys["items"].as_array()).expect("a list of keys").clone();
    let keys_before = expected["keys"].as_array().unwrap();
    assert_eq!(keys.len(), keys_before.len(), "{keys:?}");
    for (now, before) in keys.iter().zip(keys_before) {
        assert_answers_as_before(now, before, "key");
    }

    // The chain verifies exactly as it did for the old release.
    let verification = get(&app, key, "/v1/audit/verify").await;
    // Every field the old release answered is the same (fields added since are allowed).
    assert_answers_as_before(&verification, &expected["verify"], "verification of the old chain");
    assert_eq!(verification["intact"], true);
    let records = expected["verify"]["records"].as_i64().unwrap();
    assert_eq!(records, expected["decisions"].as_array().unwrap().len() as i64);

    // Byte for byte: the exported records are the text the old release hashed into the chain.
    let response = app.call(Method::GET, "/v1/decisions/export?format=ndjson&order=oldest", Some(key), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let export = response.text().await.unwrap();
    let mut prev = GENESIS_HASH.to_owned();
    let lines: Vec<&str> = export.lines().collect();
    assert_eq!(lines.len() as i64, records, "every record exported");
    for (line, before) in lines.into_iter().zip(expected["decisions"].as_array().unwrap()) {
        let line: ExportLine = serde_json::from_str(line).expect("an NDJSON decision view");
        let hash = hex::encode(Sha256::digest(format!("{}\n{}", line.prev_hash, line.record.get())));
        assert_eq!(Some(line.seq), before["seq"].as_i64());
        assert_eq!(line.prev_hash, prev, "record {} links to the one before", line.seq);
        assert_eq!(hash, line.hash, "record {} hashes to its stored hash", line.seq);
        assert_eq!(
            Some(line.hash.as_str()),
            before["hash"].as_str(),
            "record {} as the old release hashed it",
            line.seq
        );
        prev = line.hash;
    }
    assert_eq!(Some(prev.as_str()), expected["verify"]["head_hash"].as_str());

    // The checkpoint the old release signed checks with the current code, with the same key.
    let public_key =
        expect_status(app.call(Method::GET, "/v1/audit/public-key", None, None).await, StatusCode::OK).await;
    assert_answers_as_before(&public_key, &expected["public_key"], "checkpoint key");
    assert_eq!(public_key["key_id"], checkpoint["checkpoint"]["key_id"]);
    let check = app.call(Method::POST, "/v1/audit/checkpoints/verify", Some(key), Some(checkpoint.clone())).await;
    let check = expect_status(check, StatusCode::OK).await;
    assert_eq!(
        (&check["valid"], &check["signature_valid"], &check["chain_matches"]),
        (&json!(true), &json!(true), &json!(true)),
        "{check}"
    );
    assert_eq!(check["verification"]["records"], records);

    // Every decision as the old release listed it, and each SKU's history (the deleted
    // product's included) holds the same decisions.
    let feed = items(&get(&app, key, "/v1/decisions?order=oldest&limit=1000").await);
    let decisions = expected["decisions"].as_array().unwrap();
    assert_eq!(feed.len(), decisions.len());
    for (now, before) in feed.iter().zip(decisions) {
        assert_answers_as_before(now, before, "decision");
    }
    let deleted = expected["deleted_sku"].as_str().unwrap();
    let skus: BTreeSet<&str> = decisions.iter().map(|d| d["sku"].as_str().unwrap()).collect();
    assert!(skus.contains(deleted), "the deleted product has a history");
    for sku in skus {
        let history = items(&get(&app, key, &format!("/v1/prices/{sku}/history?order=oldest&limit=1000")).await);
        let of_sku: Vec<&Value> = decisions.iter().filter(|d| d["sku"] == sku).collect();
        assert_eq!(history.len(), of_sku.len(), "history of {sku}");
        for (now, before) in history.iter().zip(of_sku) {
            assert_answers_as_before(now, before, &format!("history of {sku}"));
        }
    }
    let last_of_deleted = decisions.iter().rev().find(|d| d["sku"] == deleted).unwrap();
    assert_eq!(last_of_deleted["trigger"], "product_deleted");

    // Replays of the old release's rule decisions (both rule versions, clipped ones included)
    // are identical, as they were then; a catalogue event is not a rule decision.
    let replays = expected["replays"].as_array().unwrap();
    assert!(replays.len() > 20, "the fixture replays its rule decisions: {}", replays.len());
    let versions: BTreeSet<i64> = replays.iter().map(|r| r["rule_version"].as_i64().unwrap()).collect();
    assert_eq!(versions, BTreeSet::from([1, 2]));
    for before in replays {
        let seq = before["seq"].as_i64().unwrap();
        let replay = app.call(Method::POST, &format!("/v1/decisions/{seq}/replay"), Some(key), None).await;
        let replay = expect_status(replay, StatusCode::OK).await;
        assert_eq!(replay["identical"], true, "replay of {seq}: {replay}");
        assert_eq!(replay["differences"], json!([]), "replay of {seq}");
        assert_eq!(replay["rule_version"], before["rule_version"], "replay of {seq}");
    }
    let created = decisions.iter().find(|d| d["trigger"] == "product_created").unwrap()["seq"].as_i64().unwrap();
    let response = app.call(Method::POST, &format!("/v1/decisions/{created}/replay"), Some(key), None).await;
    expect_error(response, StatusCode::CONFLICT, "not_a_rule_decision").await;

    // The catalogue, the prices in force (with the prior price the old release computed) and
    // the rules are what the old release answered.
    let catalogue = items(&get(&app, key, "/v1/products?limit=1000").await);
    let listed: Vec<&str> = catalogue.iter().map(|p| p["sku"].as_str().unwrap()).collect();
    let expected_skus: Vec<&str> = expected["skus"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(listed, expected_skus);
    for before in expected["products"].as_array().unwrap() {
        let sku = before["sku"].as_str().unwrap();
        assert_answers_as_before(&get(&app, key, &format!("/v1/products/{sku}")).await, before, "product");
    }
    for before in expected["prices"].as_array().unwrap() {
        let sku = before["sku"].as_str().unwrap();
        assert_eq!(&get(&app, key, &format!("/v1/prices/{sku}")).await, before, "price in force of {sku}");
    }
    let lookup = app
        .call(Method::POST, "/v1/prices/lookup", Some(key), Some(json!({"skus": [expected_skus[0], deleted]})))
        .await;
    let lookup = expect_status(lookup, StatusCode::OK).await;
    assert_eq!(lookup["missing"], json!([deleted]));
    assert_eq!(&lookup["prices"][0], &expected["prices"][0]);
    let rules = get(&app, key, "/v1/rules").await;
    assert_eq!(rules["active_version"], expected["rules"]["active_version"]);
    let versions_before = expected["rules"]["versions"].as_array().unwrap();
    assert_eq!(rules["versions"].as_array().map(Vec::len), Some(versions_before.len()));
    for (now, before) in rules["versions"].as_array().unwrap().iter().zip(versions_before) {
        assert_answers_as_before(now, before, "rule version");
    }

    // The deleted product stays deleted, its history stays (above).
    expect_error(app.get_product(key, deleted).await, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.call(Method::GET, &format!("/v1/prices/{deleted}"), Some(key), None).await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;

    // Opening the database decided nothing by itself.
    app.engine.settled().await;
    assert_answers_as_before(&get(&app, key, "/v1/audit/verify").await, &expected["verify"], "verification");

    // The current code continues the old chain: a new offer reprices a product with the old
    // rule version, linked to the old head; the chain and the old checkpoint still verify.
    let sku = "tee-red-m";
    let offer = json!({"id": "legacy-test-1", "sku": sku, "competitor": "a", "price_minor": 1700,
                       "currency": "EUR", "in_stock": true, "observed_at": Utc::now()});
    let response = app
        .call(Method::POST, "/v1/signals/competitor-prices", Some(key), Some(json!({"observations": [offer]})))
        .await;
    assert_eq!(expect_status(response, StatusCode::OK).await["skus_changed"], 1);
    app.engine.settled().await;
    let latest = items(&get(&app, key, &format!("/v1/prices/{sku}/history?limit=1")).await).remove(0);
    assert_eq!(latest["seq"], records + 1);
    assert_eq!(latest["prev_hash"], expected["verify"]["head_hash"]);
    assert_eq!(latest["trigger"], "competitor_prices");
    assert_eq!(latest["rule_version"], expected["rules"]["active_version"]);
    let price = get(&app, key, &format!("/v1/prices/{sku}")).await;
    assert_eq!(price["price_minor"], latest["new_price_minor"]);
    let verification = get(&app, key, "/v1/audit/verify").await;
    assert_eq!((verification["intact"].as_bool(), verification["records"].as_i64()), (Some(true), Some(records + 1)));
    let replay = app.call(Method::POST, &format!("/v1/decisions/{}/replay", records + 1), Some(key), None).await;
    assert_eq!(expect_status(replay, StatusCode::OK).await["identical"], true);
    let check = app.call(Method::POST, "/v1/audit/checkpoints/verify", Some(key), Some(checkpoint)).await;
    assert_eq!(expect_status(check, StatusCode::OK).await["valid"], true);
    let made = app.call(Method::POST, "/v1/audit/checkpoints", Some(key), None).await;
    let made = expect_status(made, StatusCode::CREATED).await;
    assert_eq!(made["checkpoint"]["seq"], records + 1);
    assert_eq!(made["checkpoint"]["key_id"], expected["public_key"]["key_id"], "still the old release's key");

    // The old release's demand events were folded into hourly counters, their ids and the
    // latest inventory level kept.
    assert_eq!(
        crate::common::scalar(&db, "SELECT COUNT(*) FROM demand_event_ids").await,
        4,
        "every counted event's id"
    );
    let views = "SELECT CAST(SUM(quantity) AS BIGINT) FROM demand_buckets WHERE sku = 'tee-red-m' AND kind = 'view'";
    assert_eq!(crate::common::scalar(&db, views).await, 40);
    assert_eq!(crate::common::scalar(&db, "SELECT quantity FROM inventory_levels WHERE sku = 'mug-blue'").await, 120);

    // That key moved out of the database into the key folder; only its public half stays.
    let key_id = expected["public_key"]["key_id"].as_str().unwrap();
    assert!(db.dir.join("keys").join(format!("{key_id}.key")).is_file(), "the key is in the folder");
    assert_eq!(crate::common::scalar(&db, crate::audit::STORED_SECRETS).await, 0, "no secret is left in the database");

    app.stop().await;
}

both_backends! {
    legacy_v0_database => a_database_of_the_previous_release_opens_verifies_and_replays;
}
