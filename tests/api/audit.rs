//! Audit review over HTTP: history filters and the merchant-wide feed, pagination while
//! decisions are appended, CSV and NDJSON exports, the price at an instant, verification of
//! intact and tampered chains (edited, deleted, reordered records), signed checkpoints, and the
//! replay of recorded decisions.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestDb};
use crate::helpers::{TestApp, expect_error, expect_status, spawn_app};
use crate::pipeline::{activate, history, put, verification};

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    expect_status(app.call(Method::GET, path, Some(key), None).await, StatusCode::OK).await
}

async fn items(app: &TestApp, key: &str, path: &str) -> Vec<Value> {
    get(app, key, path).await["items"].as_array().unwrap().clone()
}

fn seqs(items: &[Value]) -> Vec<i64> {
    items.iter().map(|d| d["seq"].as_i64().unwrap()).collect()
}

fn instant(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

fn query_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B")
}

/// Runs statements as someone with direct database access, after removing the append-only
/// guard.
/// Runs `statements` on the database behind the service's back, on records kept as plain text
/// (see `plain_records`), so that SQL's text functions edit them.
async fn tamper(db: &TestDb, statements: &[String]) {
    tamper_as_stored(db, &[crate::common::plain_records(db).await, statements.to_vec()].concat()).await;
}

/// Runs `statements` on the database behind the service's back, with the append-only guards off.
async fn tamper_as_stored(db: &TestDb, statements: &[String]) {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query("DROP TRIGGER IF EXISTS decisions_no_update").execute(&pool).await.unwrap();
            sqlx::query("DROP TRIGGER IF EXISTS decisions_no_delete").execute(&pool).await.unwrap();
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone())).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query("ALTER TABLE decisions DISABLE TRIGGER decisions_append_only").execute(&pool).await.unwrap();
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone())).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }
}

/// Signing keys whose secret is stored in the database (a release before the key folder kept
/// its key there).
pub const STORED_SECRETS: &str = "SELECT COUNT(*) FROM signing_keys WHERE secret_key <> ''";

/// What someone with database access runs to edit record 2 and re-hash every record after it
/// and the chain's head, so that the chain is consistent on its own.
async fn consistent_rewrite_of_record_2(app: &TestApp, merchant: &str) -> Vec<String> {
    let chain = app.store.chain(merchant.parse().unwrap(), 0, 100).await.unwrap();
    let mut prev = pricing::domain::chain::GENESIS_HASH.to_owned();
    let mut statements = Vec::new();
    for decision in chain {
        let record =
            if decision.seq == 2 { decision.record.replace("was created", "was CREATED") } else { decision.record };
        let hash = pricing::domain::chain::chain_hash(&prev, &record);
        // Hashes are stored as their bytes.
        let bytes = |hex: &str| match app.db.backend {
            Backend::Sqlite => format!("unhex('{hex}')"),
            Backend::Postgres => format!("decode('{hex}', 'hex')"),
        };
        statements.push(format!(
            "UPDATE decisions SET record = '{}', prev_hash = {}, hash = {} WHERE seq = {}",
            record.replace('\'', "''"),
            bytes(&prev),
            bytes(&hash),
            decision.seq
        ));
        prev = hash;
    }
    statements.push(format!("UPDATE chain_heads SET head_hash = '{prev}'"));
    statements
}

/// Two products, then rule v1 (cost-plus; "a" clipped by its floor), v2 (fails), v1 again
/// (kept). Returns the key and the instant between v1's and v2's decisions.
async fn known_history(app: &TestApp) -> (String, DateTime<Utc>) {
    let (_, key) = app.merchant_with_key(&["merchant", "auditor", "checkout"]).await;
    put(
        app,
        &key,
        "a",
        json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999,
                                "guardrails": {"floor_minor": 1300}}),
    )
    .await;
    put(app, &key, "b", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999})).await;
    let v1 = activate(app, &key, "cost-plus", json!({"margin_bps": 1000})).await;
    assert_eq!(v1, 1);
    let between = instant(&history(app, &key, "a").await[0]["created_at"]) + Duration::microseconds(1);
    assert_eq!(activate(app, &key, "hostile", json!({"attack": "panic"})).await, 2);
    let path = "/v1/rules/1/activate";
    expect_status(app.call(Method::POST, path, Some(&key), None).await, StatusCode::OK).await;
    app.engine.settled().await;
    (key, between)
}

async fn each_filter_selects_the_decisions_it_names(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key, between) = known_history(&app).await;
    let triggers =
        |items: &[Value]| items.iter().map(|d| d["trigger"].as_str().unwrap().to_owned()).collect::<Vec<_>>();

    let all = items(&app, &key, "/v1/prices/a/history").await;
    assert_eq!(triggers(&all), ["rule_activated", "rule_activated", "rule_activated", "product_created"]);
    let outcomes: Vec<&str> = all.iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["kept", "failed", "changed", "changed"]);

    let of = |query: &str| format!("/v1/prices/a/history?{query}");
    assert_eq!(seqs(&items(&app, &key, &of("outcome=changed")).await), [seqs(&all)[2], seqs(&all)[3]]);
    assert_eq!(seqs(&items(&app, &key, &of("outcome=kept")).await), [seqs(&all)[0]]);
    assert_eq!(seqs(&items(&app, &key, &of("outcome=failed")).await), [seqs(&all)[1]]);
    // The floor clipped v1's price both times it ran.
    assert_eq!(seqs(&items(&app, &key, &of("outcome=clipped")).await), [seqs(&all)[0], seqs(&all)[2]]);
    assert_eq!(seqs(&items(&app, &key, &of("rule_version=2")).await), [seqs(&all)[1]]);
    assert_eq!(triggers(&items(&app, &key, &of("trigger=product_created")).await), ["product_created"]);
    assert_eq!(seqs(&items(&app, &key, &of(&format!("from={}", query_time(between)))).await), &seqs(&all)[..2]);
    assert_eq!(seqs(&items(&app, &key, &of(&format!("to={}", query_time(between)))).await), &seqs(&all)[2..]);
    let oldest = seqs(&items(&app, &key, &of("order=oldest")).await);
    assert_eq!(oldest, seqs(&all).into_iter().rev().collect::<Vec<_>>());
    // Filters combine.
    assert_eq!(seqs(&items(&app, &key, &of("rule_version=1&outcome=kept")).await), [seqs(&all)[0]]);

    // The merchant-wide feed takes the same filters, and a SKU.
    let failed = items(&app, &key, "/v1/decisions?outcome=failed").await;
    assert_eq!(failed.iter().map(|d| d["sku"].as_str().unwrap()).collect::<BTreeSet<_>>(), BTreeSet::from(["a", "b"]));
    assert_eq!(items(&app, &key, "/v1/decisions").await.len(), 8);
    assert_eq!(items(&app, &key, "/v1/decisions?sku=b&order=oldest").await[0]["trigger"], "product_created");
    let one = get(&app, &key, &format!("/v1/decisions/{}", seqs(&all)[1])).await;
    assert_eq!(one["record"]["error"], "guest_panic");

    // Bad filters get the error shape.
    for bad in [
        "outcome=bogus",
        "order=sideways",
        "rule_version=0",
        "limit=0",
        "format=csv",
        "colour=red",
        &format!("from={0}&to={0}", query_time(between)),
    ] {
        let response = app.call(Method::GET, &of(bad), Some(&key), None).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    expect_error(
        app.call(Method::GET, "/v1/decisions/0", Some(&key), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_path",
    )
    .await;
    expect_error(
        app.call(Method::GET, "/v1/decisions/999", Some(&key), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Checkout keys read prices, not history.
    let (_, checkout) = app.merchant_with_key(&["checkout"]).await;
    expect_error(
        app.call(Method::GET, "/v1/decisions", Some(&checkout), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

both_backends! {
    history_filters => each_filter_selects_the_decisions_it_names;
}

async fn pages_never_skip_or_repeat_a_decision_while_decisions_are_appended(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    for i in 0..25 {
        put(&app, &key, &format!("sku-{i:03}"), json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 200}))
            .await;
    }
    // A writer appends a decision after every page read, both directions at once.
    let writer = {
        let (client, url, key) = (app.client.clone(), app.url("/v1/products"), key.clone());
        tokio::spawn(async move {
            for i in 0..60 {
                let body = json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 300 + i});
                let response =
                    client.put(format!("{url}/sku-{:03}", i % 25)).bearer_auth(&key).json(&body).send().await;
                assert!(response.unwrap().status().is_success());
            }
        })
    };
    for order in ["newest", "oldest"] {
        let mut seen = Vec::new();
        let mut cursor: Option<i64> = None;
        loop {
            let path = match cursor {
                Some(c) => format!("/v1/decisions?order={order}&limit=7&cursor={c}"),
                None => format!("/v1/decisions?order={order}&limit=7"),
            };
            let page = get(&app, &key, &path).await;
            seen.extend(seqs(page["items"].as_array().unwrap()));
            match page["next_cursor"].as_i64() {
                Some(next) => cursor = Some(next),
                None => break,
            }
            tokio::task::yield_now().await;
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        if order == "newest" {
            sorted.reverse();
            // Newest first: from the head as it was at the first page down to 1, every one once.
            let top = seen[0];
            assert_eq!(seen, (1..=top).rev().collect::<Vec<_>>(), "newest first");
        } else {
            // Oldest first: from 1 to wherever the head was when paging ended, every one once.
            assert_eq!(seen, (1..=*seen.last().unwrap()).collect::<Vec<_>>(), "oldest first");
        }
        assert_eq!(seen, sorted);
    }
    writer.await.unwrap();
    assert_eq!(verification(&app, &key).await["intact"], true);
}

both_backends! {
    concurrent_pagination => pages_never_skip_or_repeat_a_decision_while_decisions_are_appended;
}

#[derive(serde::Deserialize)]
struct RawRecord<'a> {
    #[serde(borrow)]
    record: &'a serde_json::value::RawValue,
}

/// A minimal RFC 4180 reader for the test.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn exports_stream_every_matching_decision_as_csv_and_as_ndjson() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    // More decisions than one export page (1,000), so the export spans several store reads.
    let skus: Vec<String> = (0..1_150).map(|i| format!("item-{i:04}")).collect();
    for wave in skus.chunks(25) {
        let puts = wave.iter().map(|sku| {
            app.put_product(&key, sku, json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 250}))
        });
        for response in futures_util::future::join_all(puts).await {
            assert!(response.status().is_success());
        }
    }
    put(&app, &key, "item-0000", json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 260})).await;
    activate(&app, &key, "cost-plus", json!({"margin_bps": 1000})).await;

    let response = app.call(Method::GET, "/v1/decisions/export?format=ndjson&order=oldest", Some(&key), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(response.headers().get("transfer-encoding").map(|v| v.to_str().unwrap()), Some("chunked"));
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1_150 + 1 + 1_150, "creations, one base price change, one decision per product");
    // Enough to re-check the whole chain offline.
    let mut prev = pricing::domain::chain::GENESIS_HASH.to_owned();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], i as i64 + 1);
        assert_eq!(line["prev_hash"], prev.as_str());
        // The line carries the record as the exact text the hash covers.
        let raw: &serde_json::value::RawValue =
            serde_json::from_str::<RawRecord>(text.lines().nth(i).unwrap()).unwrap().record;
        let record = raw.get();
        assert_eq!(pricing::domain::chain::chain_hash(&prev, record), line["hash"].as_str().unwrap());
        prev = line["hash"].as_str().unwrap().to_owned();
    }

    let path = "/v1/decisions/export?format=csv&trigger=rule_activated";
    let response = app.call(Method::GET, path, Some(&key), None).await;
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("decisions.csv"));
    let rows = parse_csv(&response.text().await.unwrap());
    assert_eq!(rows[0][..5], ["seq", "created_at", "sku", "trigger", "outcome"]);
    assert_eq!(rows.len(), 1 + 1_150);
    assert!(rows[1..].iter().all(|r| r.len() == rows[0].len() && r[3] == "rule_activated"));
    let newest = &rows[1];
    assert_eq!(newest[0], lines.last().unwrap()["seq"].to_string());
    let explanation = rows[0].iter().position(|h| h == "explanation").unwrap();
    assert_eq!(newest[explanation], lines.last().unwrap()["record"]["explanation"].as_str().unwrap());

    for bad in ["/v1/decisions/export", "/v1/decisions/export?format=xml", "/v1/decisions/export?format=csv&limit=5"] {
        expect_error(app.call(Method::GET, bad, Some(&key), None).await, StatusCode::BAD_REQUEST, "invalid_query")
            .await;
    }
}

async fn the_price_at_any_instant_is_read_from_the_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor", "checkout"]).await;
    put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999})).await;
    put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 2199})).await;
    activate(&app, &key, "cost-plus", json!({"margin_bps": 1000})).await;
    expect_status(app.call(Method::DELETE, "/v1/products/tee", Some(&key), None).await, StatusCode::NO_CONTENT).await;
    let changes = items(&app, &key, "/v1/prices/tee/history?order=oldest").await;
    let triggers: Vec<&str> = changes.iter().map(|d| d["trigger"].as_str().unwrap()).collect();
    assert_eq!(triggers, ["product_created", "base_price_changed", "rule_activated", "product_deleted"]);

    let at = |t: DateTime<Utc>| format!("/v1/prices/tee/at?t={}", query_time(t));
    let created = instant(&changes[0]["created_at"]);
    expect_error(
        app.call(Method::GET, &at(created - Duration::microseconds(1)), Some(&key), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let expected = [(1999, 0), (2199, 1), (1100, 2)];
    for (price, i) in expected {
        let from = instant(&changes[i]["created_at"]);
        let until = instant(&changes[i + 1]["created_at"]) - Duration::microseconds(1);
        for t in [from, until] {
            let body = get(&app, &key, &at(t)).await;
            assert_eq!((body["price_minor"].as_i64(), &body["seq"]), (Some(price), &changes[i]["seq"]), "at {t}");
            assert_eq!(body["currency"], "EUR");
        }
    }
    // After the deletion no price was in force.
    let deleted = instant(&changes[3]["created_at"]);
    expect_error(app.call(Method::GET, &at(deleted), Some(&key), None).await, StatusCode::NOT_FOUND, "not_found").await;
    expect_error(
        app.call(Method::GET, "/v1/prices/tee/at?t=yesterday", Some(&key), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}

both_backends! {
    price_at_time => the_price_at_any_instant_is_read_from_the_history;
}

async fn verification_finds_an_edited_a_deleted_and_a_reordered_record_where_it_is(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    for i in 0..6 {
        put(
            &app,
            &key,
            &format!("sku-{i}"),
            json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 200 + i}),
        )
        .await;
    }
    let intact = verification(&app, &key).await;
    assert_eq!((intact["intact"].as_bool(), intact["records"].as_i64()), (Some(true), Some(6)));
    let broken_at = |v: &Value| (v["intact"].as_bool(), v["first_broken"]["seq"].as_i64());

    // Edited: record 3's explanation.
    tamper(
        &app.db,
        &["UPDATE decisions SET record = replace(record, 'was created', 'was CREATED') WHERE seq = 3".into()],
    )
    .await;
    let verified = verification(&app, &key).await;
    assert_eq!(broken_at(&verified), (Some(false), Some(3)), "{verified}");
    assert!(verified["first_broken"]["reason"].as_str().unwrap().contains("hash"));
    tamper(
        &app.db,
        &["UPDATE decisions SET record = replace(record, 'was CREATED', 'was created') WHERE seq = 3".into()],
    )
    .await;
    assert_eq!(verification(&app, &key).await["intact"], true, "restored");

    // A range check trusts the record before the range: the edit is found only inside it.
    tamper(
        &app.db,
        &["UPDATE decisions SET record = replace(record, 'was created', 'was CREATED') WHERE seq = 5".into()],
    )
    .await;
    assert_eq!(broken_at(&get(&app, &key, "/v1/audit/verify?from=1&to=4").await), (Some(true), None));
    assert_eq!(broken_at(&get(&app, &key, "/v1/audit/verify?from=4").await), (Some(false), Some(5)));
    tamper(
        &app.db,
        &["UPDATE decisions SET record = replace(record, 'was CREATED', 'was created') WHERE seq = 5".into()],
    )
    .await;

    // Re-dated: record 2 moved an hour back (its time drives the price at an instant).
    tamper(&app.db, &["UPDATE decisions SET created_at = created_at - 3600000000 WHERE seq = 2".into()]).await;
    let verified = verification(&app, &key).await;
    assert_eq!(broken_at(&verified), (Some(false), Some(2)), "{verified}");
    assert!(verified["first_broken"]["reason"].as_str().unwrap().contains("time"), "{verified}");
    tamper(&app.db, &["UPDATE decisions SET created_at = created_at + 3600000000 WHERE seq = 2".into()]).await;
    assert_eq!(verification(&app, &key).await["intact"], true, "restored");

    // Reordered: records 2 and 3 swap places.
    let swap = |a: i64, b: i64| {
        vec![
            format!("UPDATE decisions SET seq = -1 WHERE seq = {a}"),
            format!("UPDATE decisions SET seq = {a} WHERE seq = {b}"),
            format!("UPDATE decisions SET seq = {b} WHERE seq = -1"),
        ]
    };
    tamper(&app.db, &swap(2, 3)).await;
    let verified = verification(&app, &key).await;
    assert_eq!(broken_at(&verified), (Some(false), Some(2)), "{verified}");
    tamper(&app.db, &swap(2, 3)).await;
    assert_eq!(verification(&app, &key).await["intact"], true, "restored");

    // Deleted: record 4, then the last record.
    tamper(&app.db, &["DELETE FROM decisions WHERE seq = 4".into()]).await;
    let verified = verification(&app, &key).await;
    assert_eq!(broken_at(&verified), (Some(false), Some(4)), "{verified}");
    assert!(verified["first_broken"]["reason"].as_str().unwrap().contains("missing"));
    tamper(&app.db, &["DELETE FROM decisions WHERE seq >= 4".into()]).await;
    let verified = verification(&app, &key).await;
    assert_eq!(broken_at(&verified), (Some(false), Some(4)), "{verified}");
    expect_error(
        app.call(Method::GET, "/v1/audit/verify?from=3&to=2", Some(&key), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}

both_backends! {
    tampering => verification_finds_an_edited_a_deleted_and_a_reordered_record_where_it_is;
}

async fn checkpoint(app: &TestApp, key: &str) -> Value {
    expect_status(app.call(Method::POST, "/v1/audit/checkpoints", Some(key), None).await, StatusCode::CREATED).await
}

async fn checkpoint_keys_live_outside_the_database_and_rotate(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    let sku = |i: i64| json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 200 + i});
    for i in 0..3 {
        put(&app, &key, &format!("sku-{i}"), sku(i)).await;
    }
    let first = checkpoint(&app, &key).await;
    let first_key = first["checkpoint"]["key_id"].as_str().unwrap().to_owned();

    // The key is a file only its owner may read, in the key folder, not in the database.
    let keys = app.db.dir.join("keys");
    let file = keys.join(format!("{first_key}.key"));
    assert!(file.is_file(), "{file:?}");
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions()) & 0o077, 0);
    assert_eq!(crate::common::scalar(&app.db, STORED_SECRETS).await, 0);

    // Rotated while the service is down; after the restart the new key signs and the old
    // checkpoint still verifies by its key id.
    let db = app.stop().await;
    let rotated = pricing::audit::keys::rotate(&keys).unwrap();
    assert_ne!(rotated, first_key);
    assert!(!file.exists(), "the retired key's secret is gone");
    let app = crate::helpers::spawn_app_with(crate::helpers::test_settings(&db), db).await;
    let public = expect_status(app.call(Method::GET, "/v1/audit/public-key", None, None).await, StatusCode::OK).await;
    assert_eq!(public["key_id"], rotated.as_str());
    let all = expect_status(app.call(Method::GET, "/v1/audit/public-keys", None, None).await, StatusCode::OK).await;
    let ids: Vec<&str> = all["keys"].as_array().unwrap().iter().map(|k| k["key_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![rotated.as_str(), first_key.as_str()], "active first, then retired");
    put(&app, &key, "sku-9", sku(9)).await;
    let check = |body: Value| app.call(Method::POST, "/v1/audit/checkpoints/verify", Some(&key), Some(body));
    let checked = expect_status(check(first.clone()).await, StatusCode::OK).await;
    assert_eq!(checked["valid"], true, "{checked}");
    let second = checkpoint(&app, &key).await;
    assert_eq!(second["checkpoint"]["key_id"], rotated.as_str());
    assert_eq!(second["checkpoint"]["seq"], 4);
    assert_eq!(expect_status(check(second).await, StatusCode::OK).await["valid"], true);

    // A checkpoint made with a key the service never had does not verify, whatever id it names.
    let mut forged = first.clone();
    forged["checkpoint"]["key_id"] = json!("0011223344556677");
    assert_eq!(expect_status(check(forged).await, StatusCode::OK).await["signature_valid"], false);
    app.stop().await;
}

async fn verification_starts_at_the_newest_checkpoint_and_still_catches_rewrites(backend: Backend) {
    let app = spawn_app(backend).await;
    let (merchant, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    let sku = |i: i64| json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 200 + i});
    for i in 0..6 {
        put(&app, &key, &format!("sku-{i}"), sku(i)).await;
    }
    let whole = verification(&app, &key).await;
    assert_eq!((&whole["records"], &whole["from_seq"], &whole["anchor"]), (&json!(6), &json!(1), &Value::Null));
    expect_status(app.call(Method::POST, "/v1/audit/checkpoints", Some(&key), None).await, StatusCode::CREATED).await;
    for i in 6..9 {
        put(&app, &key, &format!("sku-{i}"), sku(i)).await;
    }
    // Only the records after the checkpoint are re-hashed; `full` re-hashes them all.
    let since = verification(&app, &key).await;
    assert_eq!((&since["intact"], &since["records"], &since["from_seq"]), (&json!(true), &json!(3), &json!(7)));
    assert_eq!(since["anchor"]["seq"], 6, "{since}");
    let full = get(&app, &key, "/v1/audit/verify?full=true").await;
    assert_eq!((&full["intact"], &full["records"], &full["anchor"]), (&json!(true), &json!(9), &Value::Null));

    // A checkpoint row nobody signed is not an anchor.
    let forged = json!({"checkpoint": {"merchant_id": merchant, "seq": 8, "head_hash": "00".repeat(32),
        "signed_at": "2026-01-01T00:00:00Z", "algorithm": "ed25519", "key_id": since["anchor"]["key_id"]},
        "signature": "AAAA"});
    tamper(
        &app.db,
        &[format!("INSERT INTO audit_checkpoints (merchant_id, seq, signed) VALUES ('{merchant}', 8, '{forged}')")],
    )
    .await;
    assert_eq!(verification(&app, &key).await["anchor"]["seq"], 6, "the forged row is ignored");

    // An edit after the checkpoint is found where it is.
    let edit = |seq: i64, from: &str, to: &str| {
        vec![format!("UPDATE decisions SET record = replace(record, '{from}', '{to}') WHERE seq = {seq}")]
    };
    tamper(&app.db, &edit(8, "was created", "was CREATED")).await;
    let broken = verification(&app, &key).await;
    assert_eq!((&broken["intact"], &broken["first_broken"]["seq"]), (&json!(false), &json!(8)), "{broken}");
    tamper(&app.db, &edit(8, "was CREATED", "was created")).await;

    // A rewrite before it that keeps the chain consistent changes the checkpointed record's
    // hash: caught at the checkpoint.
    let statements = consistent_rewrite_of_record_2(&app, &merchant).await;
    tamper(&app.db, &statements).await;
    let rewritten = verification(&app, &key).await;
    assert_eq!((&rewritten["intact"], &rewritten["first_broken"]["seq"]), (&json!(false), &json!(6)), "{rewritten}");
    assert!(rewritten["first_broken"]["reason"].as_str().unwrap().contains("checkpoint"), "{rewritten}");
    expect_error(
        app.call(Method::POST, "/v1/audit/checkpoints", Some(&key), None).await,
        StatusCode::CONFLICT,
        "chain_broken",
    )
    .await;
    app.stop().await;
}

both_backends! {
    checkpoint_keys => checkpoint_keys_live_outside_the_database_and_rotate;
    incremental_verification => verification_starts_at_the_newest_checkpoint_and_still_catches_rewrites;
}

#[tokio::test]
async fn a_signed_checkpoint_later_proves_that_nothing_before_it_changed() {
    use base64::Engine as _;
    use ed25519_dalek::Verifier as _;

    let app = spawn_app(Backend::Sqlite).await;
    let (merchant, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    for i in 0..4 {
        put(&app, &key, &format!("sku-{i}"), json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 200}))
            .await;
    }
    let checkpoint =
        expect_status(app.call(Method::POST, "/v1/audit/checkpoints", Some(&key), None).await, StatusCode::CREATED)
            .await;
    assert_eq!(checkpoint["checkpoint"]["seq"], 4);
    assert_eq!(checkpoint["checkpoint"]["merchant_id"], merchant.as_str());

    // The signature checks offline with the published key, without the service.
    let public = expect_status(app.call(Method::GET, "/v1/audit/public-key", None, None).await, StatusCode::OK).await;
    assert_eq!(public["key_id"], checkpoint["checkpoint"]["key_id"]);
    let key_bytes: [u8; 32] = hex::decode(public["public_key_hex"].as_str().unwrap()).unwrap().try_into().unwrap();
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).unwrap();
    // The signed JSON has the checkpoint's fields in their documented order.
    let fields: pricing::audit::checkpoint::Checkpoint =
        serde_json::from_value(checkpoint["checkpoint"].clone()).unwrap();
    let mut message = b"pricing-checkpoint-v1\n".to_vec();
    message.extend_from_slice(serde_json::to_string(&fields).unwrap().as_bytes());
    let signature =
        base64::engine::general_purpose::STANDARD.decode(checkpoint["signature"].as_str().unwrap()).unwrap();
    verifying.verify(&message, &ed25519_dalek::Signature::from_slice(&signature).unwrap()).unwrap();

    // Later, with more decisions appended, the checkpoint still holds.
    put(&app, &key, "sku-9", json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 200})).await;
    let check = |body: Value| app.call(Method::POST, "/v1/audit/checkpoints/verify", Some(&key), Some(body));
    let checked = expect_status(check(checkpoint.clone()).await, StatusCode::OK).await;
    assert_eq!((checked["valid"].as_bool(), checked["reason"].as_str()), (Some(true), None), "{checked}");

    // A checkpoint someone altered is not the service's.
    let mut forged = checkpoint.clone();
    forged["checkpoint"]["seq"] = json!(5);
    let checked = expect_status(check(forged).await, StatusCode::OK).await;
    assert_eq!((checked["valid"].as_bool(), checked["signature_valid"].as_bool()), (Some(false), Some(false)));

    // Someone with database access edits record 2 and rehashes every record after it and the
    // head: the chain verifies on its own, but not against the checkpoint.
    let statements = consistent_rewrite_of_record_2(&app, &merchant).await;
    tamper(&app.db, &statements).await;
    let rewritten = verification(&app, &key).await;
    assert_eq!(rewritten["first_broken"]["seq"], 4, "caught at the kept checkpoint: {rewritten}");
    assert_eq!(get(&app, &key, "/v1/audit/verify?full=true").await["intact"], true, "consistent without it");
    let checked = expect_status(check(checkpoint.clone()).await, StatusCode::OK).await;
    assert_eq!((checked["valid"].as_bool(), checked["signature_valid"].as_bool()), (Some(false), Some(true)));
    assert_eq!(checked["chain_matches"], false);
    assert!(checked["reason"].as_str().unwrap().contains("record 4"), "{checked}");

    // A broken chain is never signed.
    tamper(&app.db, &["DELETE FROM decisions WHERE seq = 3".into()]).await;
    expect_error(
        app.call(Method::POST, "/v1/audit/checkpoints", Some(&key), None).await,
        StatusCode::CONFLICT,
        "chain_broken",
    )
    .await;
}

async fn replaying_recorded_decisions_gives_identical_results(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor", "feed"]).await;
    put(
        &app,
        &key,
        "tee",
        json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1800,
                                  "guardrails": {"ceiling_minor": 1850, "max_step_bps": 500}}),
    )
    .await;
    activate(&app, &key, "competitor-match", json!({})).await;
    let observed = chrono::Utc::now().to_rfc3339();
    let signal = json!({"observations": [
        {"id": "o-1", "competitor": "shop-a", "sku": "tee", "price_minor": 1700, "currency": "EUR",
         "in_stock": true, "observed_at": observed},
        {"id": "o-2", "competitor": "shop-b", "sku": "tee", "price_minor": 1650, "currency": "EUR",
         "in_stock": true, "observed_at": observed}]});
    let response = app.call(Method::POST, "/v1/signals/competitor-prices", Some(&key), Some(signal)).await;
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    app.engine.settled().await;
    activate(&app, &key, "hostile", json!({"attack": "panic"})).await;

    let decisions = items(&app, &key, "/v1/prices/tee/history").await;
    let rule_decisions: Vec<&Value> = decisions.iter().filter(|d| !d["rule_version"].is_null()).collect();
    assert!(rule_decisions.len() >= 3, "{decisions:?}");
    assert!(rule_decisions.iter().any(|d| d["outcome"] == "failed"));
    assert!(rule_decisions.iter().any(|d| d["clipped"] == true), "the step limit clipped at least one: {decisions:?}");
    for decision in &rule_decisions {
        let path = format!("/v1/decisions/{}/replay", decision["seq"]);
        let replay = expect_status(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::OK).await;
        assert_eq!(replay["identical"], true, "{replay}");
        assert_eq!(replay["differences"], json!([]));
    }

    // A catalogue event has no rule to replay; an unknown decision is 404.
    let created = decisions.last().unwrap();
    assert_eq!(created["trigger"], "product_created");
    let path = format!("/v1/decisions/{}/replay", created["seq"]);
    expect_error(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::CONFLICT, "not_a_rule_decision")
        .await;
    expect_error(
        app.call(Method::POST, "/v1/decisions/9999/replay", Some(&key), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A record whose inputs were altered replays differently, and the replay says how.
    let changed = rule_decisions.iter().find(|d| d["outcome"] == "changed").unwrap();
    let seq = changed["seq"].as_i64().unwrap();
    tamper(&app.db, &[format!(
        "UPDATE decisions SET record = replace(record, '\"price_minor\":1650', '\"price_minor\":1500') WHERE seq = {seq}"
    )])
    .await;
    let path = format!("/v1/decisions/{seq}/replay");
    let replay = expect_status(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(replay["identical"], false, "{replay}");
    let fields: Vec<&str> =
        replay["differences"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"rule_price_minor"), "{replay}");
    assert_eq!(verification(&app, &key).await["first_broken"]["seq"], seq, "and the chain shows the edit");
}

both_backends! {
    replay => replaying_recorded_decisions_gives_identical_results;
}

async fn checkout_lookups_carry_the_prior_price_when_the_merchant_shows_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "checkout"]).await;
    put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 2000})).await;
    put(&app, &key, "new", json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 900})).await;
    activate(&app, &key, "cost-plus", json!({"margin_bps": 1000})).await;
    let lookup = |sku: &str| {
        let path = format!("/v1/prices/{sku}");
        let (app, key) = (&app, &key);
        async move { get(app, key, &path).await }
    };
    assert_eq!(lookup("tee").await["price_minor"], 1100);
    assert!(lookup("tee").await.get("prior_price_minor").is_none(), "off by default");
    let settings = get(&app, &key, "/v1/settings").await;
    assert_eq!((&settings["show_prior_price"], &settings["max_competitor_ratio"]), (&json!(false), &json!(4)));

    let on = app.call(Method::PUT, "/v1/settings", Some(&key), Some(json!({"show_prior_price": true}))).await;
    expect_status(on, StatusCode::OK).await;
    // 2000 was in force until 1100 took effect.
    assert_eq!(lookup("tee").await["prior_price_minor"], 2000);
    assert_eq!(lookup("new").await["prior_price_minor"], 900);
    // A new price's prior price counts every price of the last 30 days, the current one too.
    put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": 1100, "base_price_minor": 2000})).await;
    app.engine.settled().await;
    let body = lookup("tee").await;
    assert_eq!((body["price_minor"].as_i64(), body["prior_price_minor"].as_i64()), (Some(1210), Some(1100)));
    let batch = app.call(Method::POST, "/v1/prices/lookup", Some(&key), Some(json!({"skus": ["tee", "new"]}))).await;
    let batch = expect_status(batch, StatusCode::OK).await;
    assert_eq!(batch["prices"][0]["prior_price_minor"], 1100);
    // A product created now has had no earlier price.
    put(&app, &key, "fresh", json!({"currency": "EUR", "cost_minor": 1, "base_price_minor": 500})).await;
    app.engine.settled().await;
    assert_eq!(get(&app, &key, "/v1/prices/fresh/history").await["items"].as_array().unwrap().len(), 2);
    assert_eq!(lookup("fresh").await["prior_price_minor"], 500, "its base price was in force before the rule's");

    let off = app.call(Method::PUT, "/v1/settings", Some(&key), Some(json!({"show_prior_price": false}))).await;
    expect_status(off, StatusCode::OK).await;
    assert!(lookup("tee").await.get("prior_price_minor").is_none());
    let bad = app.call(Method::PUT, "/v1/settings", Some(&key), Some(json!({"show_prior_price": "yes"}))).await;
    expect_error(bad, StatusCode::BAD_REQUEST, "invalid_body").await;
}

both_backends! {
    prior_price => checkout_lookups_carry_the_prior_price_when_the_merchant_shows_it;
}

#[tokio::test]
async fn postgres_refuses_to_truncate_the_history() {
    let app = spawn_app(Backend::Postgres).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    put(&app, &key, "tee", json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 200})).await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let refused = sqlx::query("TRUNCATE decisions CASCADE").execute(&pool).await.unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    pool.close().await;
    assert_eq!(verification(&app, &key).await["records"], 1, "the history is still there");
}

/// A power loss may drop what SQLite's log has not synced; a signed checkpoint must never
/// cover records that could vanish that way. Copying the database file alone (without its
/// write-ahead log) is what such a loss leaves at worst: it still holds every record the
/// checkpoint covers.
#[tokio::test]
async fn what_a_checkpoint_covers_is_in_the_database_file_itself() {
    let app = spawn_app(Backend::Sqlite).await;
    let (merchant, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    for i in 0..5 {
        put(&app, &key, &format!("sku-{i}"), json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 200}))
            .await;
    }
    let signed = checkpoint(&app, &key).await;
    let seq = signed["checkpoint"]["seq"].as_i64().unwrap();
    assert_eq!(seq, 5);
    let file = app.db.dir.join("pricing.db");
    let copy = app.db.dir.join("after-power-loss.db");
    std::fs::copy(&file, &copy).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", copy.display())).await.unwrap();
    let covered: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM decisions
         WHERE merchant_number = (SELECT number FROM merchants WHERE id = $1) AND seq <= $2",
    )
    .bind(&merchant)
    .bind(seq)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(covered, seq, "every record the checkpoint covers is in the file, not only in the log");
}

both_backends! {
    damaged_packed_record => a_damaged_packed_record_is_found_where_it_is_and_the_rest_stays_readable;
}
async fn a_damaged_packed_record_is_found_where_it_is_and_the_rest_stays_readable(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    for i in 0..4 {
        let body = json!({"currency": "EUR", "cost_minor": 100, "base_price_minor": 200 + i});
        put(&app, &key, &format!("sku-{i}"), body).await;
    }
    // Every record is kept packed, its text column empty, and reads back as the chain hashed it.
    let packed = "SELECT COUNT(*) FROM decisions WHERE packed IS NOT NULL AND record = ''";
    assert_eq!(crate::common::scalar(&app.db, packed).await, 4);
    assert_eq!(verification(&app, &key).await["intact"], true);
    let before = history(&app, &key, "sku-3").await;
    assert!(before[0]["record"]["explanation"].as_str().unwrap().contains("created"), "{before:?}");

    let cut = match backend {
        Backend::Sqlite => "UPDATE decisions SET packed = substr(packed, 1, length(packed) - 3) WHERE seq = 2",
        Backend::Postgres => {
            "UPDATE decisions SET packed = substring(packed from 1 for length(packed) - 3) WHERE seq = 2"
        }
    };
    tamper_as_stored(&app.db, &[cut.into()]).await;
    let verified = verification(&app, &key).await;
    assert_eq!((verified["intact"].as_bool(), verified["first_broken"]["seq"].as_i64()), (Some(false), Some(2)));
    assert_eq!(history(&app, &key, "sku-3").await, before, "the other records read as before");
}
