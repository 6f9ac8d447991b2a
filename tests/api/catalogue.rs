//! Catalogue imports and exports over HTTP: CSV and NDJSON bodies become jobs, every line is
//! checked like a `PUT` (bad ones reported by number and code, nothing half-written), atomic and
//! replace modes, an identical import changes nothing, export then import round-trips byte for
//! byte, and an import interrupted by a restart finishes after it.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::Backend;
use crate::helpers::{TestApp, expect_error, expect_status, product, spawn_app, spawn_app_with, test_settings};
use crate::pipeline::verification;

const CSV_HEADER: &str = "sku,currency,cost_minor,base_price_minor,floor_minor,rounding,attr.brand,attr.size";

async fn import(app: &TestApp, key: &str, query: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/v1/products/import{query}")))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body.into())
        .send()
        .await
        .unwrap();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let job = expect_status(response, StatusCode::ACCEPTED).await;
    assert_eq!(location, Some(format!("/v1/jobs/{}", job["id"].as_str().unwrap())));
    job
}

/// Polls a job until it has ended (at most 120 s); the job.
async fn finished(app: &TestApp, key: &str, job: &Value) -> Value {
    let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = expect_status(app.call(Method::GET, &path, Some(key), None).await, StatusCode::OK).await;
        if ["completed", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "the job ends within 120 s: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn export(app: &TestApp, key: &str, format: &str) -> Vec<u8> {
    let response = app.call(Method::GET, &format!("/v1/products/export?format={format}"), Some(key), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

/// How many decisions the merchant's history holds, read page by page (at most 100 pages).
async fn decisions(app: &TestApp, key: &str) -> usize {
    let (mut count, mut cursor) = (0, String::new());
    for _ in 0..100 {
        let path = format!("/v1/decisions?limit=1000{cursor}");
        let page = expect_status(app.call(Method::GET, &path, Some(key), None).await, StatusCode::OK).await;
        count += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return count,
        }
    }
    panic!("the history has more than 100 pages");
}

fn rejected(job: &Value) -> Vec<(i64, String)> {
    job["rejected_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_i64().unwrap(), r["code"].as_str().unwrap().to_owned()))
        .collect()
}

async fn good_lines_land_and_bad_ones_are_reported_by_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    // An existing product in another currency: its line is refused, nothing of it written.
    expect_status(app.put_product(&key, "dollar", product("USD", 100, 200)).await, StatusCode::CREATED).await;
    let csv = format!(
        "{CSV_HEADER}\r\n\
         tee-1,EUR,1000,1999,1500,ending:99,acme,\"M, tall\"\r\n\
         tee-2,EUR,x,1999,,,acme,\r\n\
         dollar,EUR,100,200,,,,\r\n\
         \"tee-3\",EUR,1000,1999,2500,,\"say \"\"hi\"\"\",\"two\nlines\"\r\n\
         tee-4,EUR,1000,2999,,,42,\r\n"
    );
    let job = finished(&app, &key, &import(&app, &key, "", "text/csv", csv).await).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        (job["lines_read"].as_i64(), job["applied"].as_i64(), job["rejected"].as_i64()),
        (Some(5), Some(2), Some(3))
    );
    // Line 5 spans two physical lines; the next record starts at line 7.
    assert_eq!(
        rejected(&job),
        [(3, "validation_failed".into()), (4, "currency_mismatch".into()), (5, "validation_failed".into())]
    );
    let fields = &job["rejected_lines"][0]["details"]["fields"];
    assert_eq!(fields[0]["field"], "cost_minor", "{job}");
    let tee = expect_status(app.get_product(&key, "tee-1").await, StatusCode::OK).await;
    assert_eq!(tee["attributes"], json!({"brand": "acme", "size": "M, tall"}));
    assert_eq!(tee["guardrails"], json!({"floor_minor": 1500, "rounding": {"mode": "ending", "ending_minor": 99}}));
    assert_eq!(tee["price"]["price_minor"], 1999);
    let four = expect_status(app.get_product(&key, "tee-4").await, StatusCode::OK).await;
    assert_eq!(four["attributes"], json!({"brand": 42}), "a number cell is a number");
    expect_status(app.get_product(&key, "tee-2").await, StatusCode::NOT_FOUND).await;
    assert_eq!(expect_status(app.get_product(&key, "dollar").await, StatusCode::OK).await["currency"], "USD");

    // NDJSON: the same checks, line by line.
    let ndjson = "{\"sku\":\"nd-1\",\"currency\":\"EUR\",\"cost_minor\":1,\"base_price_minor\":5}\n\
                  \n\
                  {\"sku\":\"nd-2\",\"currency\":\"EUR\",\"cost_minor\":1}\n\
                  not json\n\
                  {\"sku\":\"nd-3\",\"currency\":\"EUR\",\"cost_minor\":1,\"base_price_minor\":5,\"colour\":\"red\"}\n\
                  {\"sku\":\"nd 4\",\"currency\":\"EUR\",\"cost_minor\":1,\"base_price_minor\":5}\n";
    let job = finished(&app, &key, &import(&app, &key, "", "application/x-ndjson", ndjson).await).await;
    assert_eq!((job["applied"].as_i64(), job["rejected"].as_i64()), (Some(1), Some(4)), "{job}");
    assert_eq!(
        rejected(&job),
        [
            (3, "invalid_body".into()),
            (4, "invalid_json".into()),
            (5, "invalid_body".into()),
            (6, "validation_failed".into())
        ]
    );
    assert_eq!(verification(&app, &key).await["intact"], true);

    // A CSV header naming an unknown column is refused at once, in the error shape.
    let response = app
        .client
        .post(app.url("/v1/products/import"))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .body("sku,currency,cost_minor,base_price_minor,colour\nx,EUR,1,2,red\n")
        .send()
        .await
        .unwrap();
    let details = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(details["fields"][0]["field"], "header.colour");
    let response = app.call(Method::POST, "/v1/products/import", Some(&key), Some(json!({}))).await;
    expect_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
}

fn catalogue_csv(n: usize, cost: i64) -> String {
    let mut csv = format!("{CSV_HEADER}\n");
    for i in 0..n {
        csv.push_str(&format!("sku-{i:05},EUR,{cost},{},,,brand-{},\n", cost * 2 + i as i64, i % 7));
    }
    csv
}

async fn identical_imports_change_nothing_and_exports_round_trip(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    let file = catalogue_csv(300, 500);
    let first = finished(&app, &key, &import(&app, &key, "", "text/csv", file.clone()).await).await;
    assert_eq!((first["applied"].as_i64(), first["changed"].as_i64()), (Some(300), Some(300)), "{first}");
    let recorded = decisions(&app, &key).await;
    assert_eq!(recorded, 300, "one price event per created product");
    let second = finished(&app, &key, &import(&app, &key, "", "text/csv", file).await).await;
    assert_eq!((second["applied"].as_i64(), second["changed"].as_i64()), (Some(300), Some(0)), "{second}");
    assert_eq!(decisions(&app, &key).await, recorded, "an identical import appends nothing");

    // An attribute that reads as a number is kept as text, and round-trips.
    let body = json!({"currency": "EUR", "cost_minor": 1, "base_price_minor": 9,
                      "attributes": {"brand": "42", "note": "a \"quoted\", text", "new": true}});
    expect_status(app.put_product(&key, "odd", body).await, StatusCode::CREATED).await;
    for (format, content_type) in [("csv", "text/csv"), ("ndjson", "application/x-ndjson")] {
        let exported = export(&app, &key, format).await;
        let (_, other) = app.merchant_with_key(&["merchant", "auditor"]).await;
        let job = finished(&app, &other, &import(&app, &other, "", content_type, exported.clone()).await).await;
        assert_eq!((job["applied"].as_i64(), job["rejected"].as_i64()), (Some(301), Some(0)), "{job}");
        assert_eq!(
            export(&app, &other, format).await,
            exported,
            "{format}: export, import, export gives the same bytes"
        );
        // Importing a merchant's own export changes nothing.
        let again = finished(&app, &key, &import(&app, &key, "", content_type, exported).await).await;
        assert_eq!(again["changed"], 0, "{again}");
    }
    let odd = expect_status(app.get_product(&key, "odd").await, StatusCode::OK).await;
    assert_eq!(odd["attributes"]["brand"], "42");
}

async fn atomic_imports_write_all_or_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    let mut file = catalogue_csv(50, 100);
    file.push_str("bad,EUR,-1,5,,,,\n");
    let job = finished(&app, &key, &import(&app, &key, "?atomic=true", "text/csv", file).await).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(rejected(&job), [(52, "validation_failed".into())]);
    assert_eq!(decisions(&app, &key).await, 0, "nothing of a refused atomic import is written");
    let job = finished(&app, &key, &import(&app, &key, "?atomic=true", "text/csv", catalogue_csv(50, 100)).await).await;
    assert_eq!((job["state"].as_str(), job["applied"].as_i64()), (Some("completed"), Some(50)), "{job}");
}

/// Rows that a foreign key would have refused, counted in the store: prices in force without
/// their product, products and decisions without their merchant. PostgreSQL keeps no such
/// constraint on these bulk-written tables (migration 0019): the write order keeps them.
async fn orphans(app: &TestApp) -> [i64; 3] {
    let mut tx = app.store.begin().await.unwrap();
    let mut counts = [0; 3];
    for (count, sql) in counts.iter_mut().zip([
        "SELECT COUNT(*) FROM current_prices c WHERE NOT EXISTS
           (SELECT 1 FROM products p WHERE p.merchant_id = c.merchant_id AND p.sku = c.sku)",
        "SELECT COUNT(*) FROM products p WHERE NOT EXISTS (SELECT 1 FROM merchants m WHERE m.id = p.merchant_id)",
        "SELECT COUNT(*) FROM decisions d WHERE NOT EXISTS (SELECT 1 FROM merchants m WHERE m.number = d.merchant_number)",
    ]) {
        *count = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap();
    }
    tx.rollback().await.unwrap();
    counts
}

async fn replace_deletes_what_the_file_leaves_out_and_can_be_undone(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    finished(&app, &key, &import(&app, &key, "", "text/csv", catalogue_csv(40, 100)).await).await;
    let before = export(&app, &key, "ndjson").await;
    // A file with a rejected line deletes nothing.
    let mut partial = catalogue_csv(30, 100);
    partial.push_str("sku-00031,EUR,x,1,,,,\n");
    let job = finished(&app, &key, &import(&app, &key, "?mode=replace", "text/csv", partial).await).await;
    assert_eq!((job["deleted"].as_i64(), job["rejected"].as_i64()), (Some(0), Some(1)), "{job}");
    assert!(job["note"].as_str().unwrap().contains("no product was deleted"), "{job}");

    let job =
        finished(&app, &key, &import(&app, &key, "?mode=replace", "text/csv", catalogue_csv(30, 100)).await).await;
    assert_eq!((job["state"].as_str(), job["deleted"].as_i64()), (Some("completed"), Some(10)), "{job}");
    expect_status(app.get_product(&key, "sku-00035").await, StatusCode::NOT_FOUND).await;
    expect_status(app.call(Method::DELETE, "/v1/products/sku-00001", Some(&key), None).await, StatusCode::NO_CONTENT)
        .await;
    assert_eq!(orphans(&app).await, [0; 3], "a deletion leaves no price without its product");
    let path = format!("/v1/jobs/{}/deleted", job["id"].as_str().unwrap());
    let undo = app.call(Method::GET, &path, Some(&key), None).await.bytes().await.unwrap().to_vec();
    assert_eq!(undo.iter().filter(|b| **b == b'\n').count(), 10);
    finished(&app, &key, &import(&app, &key, "", "application/x-ndjson", undo).await).await;
    let deleted_by_hand = before.split(|b| *b == b'\n').find(|line| line.windows(9).any(|w| w == b"sku-00001"));
    let restore = [deleted_by_hand.unwrap(), b"\n"].concat();
    finished(&app, &key, &import(&app, &key, "", "application/x-ndjson", restore).await).await;
    assert_eq!(export(&app, &key, "ndjson").await, before, "importing what was deleted restores the catalogue");
    assert_eq!(orphans(&app).await, [0; 3]);
    assert_eq!(verification(&app, &key).await["intact"], true);
}

async fn an_import_resumes_after_a_restart(backend: Backend) {
    let db = crate::common::fresh_database(backend).await;
    let mut settings = test_settings(&db);
    settings.imports.piece_bytes = 2_000;
    settings.imports.lease_secs = 1;
    let app = spawn_app_with(settings.clone(), db).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    let job = import(&app, &key, "", "text/csv", catalogue_csv(3_000, 100)).await;
    let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    // Stop once some pieces (not all) are in.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = expect_status(app.call(Method::GET, &path, Some(&key), None).await, StatusCode::OK).await;
        if now["lines_read"].as_i64().unwrap() > 0 || now["state"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the import starts: {now}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let db = app.stop().await;
    let app = spawn_app_with(settings, db).await;
    let job = finished(&app, &key, &job).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!((job["lines_read"].as_i64(), job["applied"].as_i64()), (Some(3_000), Some(3_000)), "{job}");
    let listed = expect_status(
        app.call(Method::GET, "/v1/products?limit=1000&cursor=sku-02499", Some(&key), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 500);
    assert_eq!(verification(&app, &key).await["intact"], true);
    let exported = export(&app, &key, "csv").await;
    assert_eq!(exported.iter().filter(|b| **b == b'\n').count(), 3_001);
}

/// A running import, cancelled: it stops after the piece it is writing, what it applied stays
/// applied (each product whole, with its creation record), the chain verifies, and the job
/// stays to be read; its progress (rate, time left) was shown while it ran.
async fn a_cancelled_import_keeps_what_it_applied(backend: Backend) {
    let db = crate::common::fresh_database(backend).await;
    let mut settings = test_settings(&db);
    settings.imports.piece_bytes = 2_000;
    let app = spawn_app_with(settings, db).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor"]).await;
    const LINES: i64 = 20_000;
    let job = import(&app, &key, "", "text/csv", catalogue_csv(LINES as usize, 100)).await;
    let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = loop {
        let now = expect_status(app.call(Method::GET, &path, Some(&key), None).await, StatusCode::OK).await;
        if now["state"] == "running" && now["applied"].as_i64().unwrap() > 0 && now.get("eta_seconds").is_some() {
            break now;
        }
        assert_ne!(now["state"], "completed", "the import is cancelled before it ends: {now}");
        assert!(Instant::now() < deadline, "the import starts: {now}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(running["lines_total"].as_i64(), Some(LINES), "{running}");
    assert!(running["lines_per_second"].as_f64().unwrap() > 0.0, "{running}");
    assert!(running["eta_seconds"].as_f64().unwrap() >= 0.0, "{running}");

    let cancelled = expect_status(app.call(Method::DELETE, &path, Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(cancelled["cancel_requested"], true, "{cancelled}");
    let ended = finished(&app, &key, &job).await;
    assert_eq!(ended["state"], "cancelled", "{ended}");
    let applied = ended["applied"].as_i64().unwrap();
    assert!(applied > 0 && applied < LINES, "it stopped part of the way: {ended}");

    // What was applied stays, whole: each applied line is a product, exported with its price,
    // and each product's creation is in the chain, which verifies.
    let exported = export(&app, &key, "ndjson").await;
    assert_eq!(exported.iter().filter(|b| **b == b'\n').count() as i64, applied);
    assert_eq!(decisions(&app, &key).await as i64, applied, "one creation record per applied product");
    assert_eq!(verification(&app, &key).await["intact"], true);
    assert_eq!(orphans(&app).await, [0; 3]);

    // An ended job is left as it is, and can still be read.
    let again = expect_status(app.call(Method::DELETE, &path, Some(&key), None).await, StatusCode::OK).await;
    assert_eq!((again["state"].as_str(), again["applied"].as_i64()), (Some("cancelled"), Some(applied)), "{again}");
}

/// While merchant A's large import runs (hundreds of pieces), merchant B's lookups answer and
/// B's product changes are repriced: B does not wait for A's import to end.
async fn another_merchant_is_served_during_a_large_import(backend: Backend) {
    let db = crate::common::fresh_database(backend).await;
    let mut settings = test_settings(&db);
    settings.imports.piece_bytes = 2_000;
    let app = spawn_app_with(settings, db).await;
    let (_, a) = app.merchant_with_key(&["merchant"]).await;
    let (_, b) = app.merchant_with_key(&["merchant", "checkout"]).await;
    expect_status(app.put_product(&b, "b-1", product("EUR", 1000, 1999)).await, StatusCode::CREATED).await;
    crate::pipeline::activate(&app, &b, "cost-plus", json!({"margin_bps": 1000})).await;
    assert_eq!(crate::pipeline::price(&app, &b, "b-1").await.0, 1100);

    let job = import(&app, &a, "", "text/csv", catalogue_csv(20_000, 100)).await;
    let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = expect_status(app.call(Method::GET, &path, Some(&a), None).await, StatusCode::OK).await;
        if now["lines_read"].as_i64().unwrap() > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "A's import starts: {now}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // B changes its cost three times while A's import runs; each change reaches B's price.
    for (round, cost) in [2000, 3000, 4000].into_iter().enumerate() {
        expect_status(app.put_product(&b, "b-1", product("EUR", cost, 1999)).await, StatusCode::OK).await;
        let wanted = cost + cost / 10;
        let deadline = Instant::now() + Duration::from_secs(30);
        while crate::pipeline::price(&app, &b, "b-1").await.0 != wanted {
            assert!(Instant::now() < deadline, "round {round}: B's change is repriced");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let during = expect_status(app.call(Method::GET, &path, Some(&a), None).await, StatusCode::OK).await;
    assert_eq!(during["state"], "running", "B was served while A's import was still running: {during}");
    let done = finished(&app, &a, &job).await;
    assert_eq!((done["state"].as_str(), done["applied"].as_i64()), (Some("completed"), Some(20_000)), "{done}");
}

both_backends! {
    other_merchants_are_served_during_an_import => another_merchant_is_served_during_a_large_import;
    import_lines_are_checked_one_by_one => good_lines_land_and_bad_ones_are_reported_by_number;
    imports_are_idempotent_and_round_trip => identical_imports_change_nothing_and_exports_round_trip;
    atomic_import => atomic_imports_write_all_or_nothing;
    replace_import => replace_deletes_what_the_file_leaves_out_and_can_be_undone;
    import_resumes_after_restart => an_import_resumes_after_a_restart;
    cancelled_import => a_cancelled_import_keeps_what_it_applied;
}

/// `pricing import FILE` as an operator runs it: the real binary against the running service.
async fn run_import_command(app: &TestApp, key: &str, file: std::path::PathBuf, extra: &[&str]) -> (bool, String) {
    let mut args: Vec<String> = vec!["import".into(), file.display().to_string(), "--url".into(), app.address.clone()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let key = key.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pricing"))
            .args(&args)
            .env("PRICING_KEY", key)
            .env_remove("PRICING_CONFIG")
            .output()
            .expect("the pricing binary runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test]
async fn the_import_command_uploads_a_file_and_sums_the_job_up() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let file = app.db.dir.join("catalogue.csv");
    let mut csv = catalogue_csv(3, 100);
    csv.push_str("bad,EUR,-1,5,,,,\n");
    std::fs::write(&file, csv).unwrap();
    let (ok, said) = run_import_command(&app, &key, file.clone(), &[]).await;
    assert!(ok, "{said}");
    assert!(said.contains("completed: 4 lines read, 3 applied (3 changed), 1 rejected"), "{said}");
    assert!(said.contains("line 5: validation_failed"), "{said}");
    expect_status(app.get_product(&key, "sku-00002").await, StatusCode::OK).await;

    // An atomic import with a bad line fails, and the command says so with its exit code.
    let (ok, said) = run_import_command(&app, &key, file, &["--atomic"]).await;
    assert!(!ok, "{said}");
    assert!(said.contains("failed") && said.contains("nothing"), "{said}");
    let (ok, said) = run_import_command(&app, &key, app.db.dir.join("missing.csv"), &[]).await;
    assert!(!ok, "{said}");
}
