//! The review page at `/ui`: served from the binary with a strict Content-Security-Policy, and
//! driven in headless Chromium (Debian's `chromium`, which `scripts/test` installs) against a
//! known history: the chart has one point per decision, the chain badge and the table agree
//! with the API, API errors are shown, and a screenshot is kept in `target/test-artefacts/`; the
//! safety net's parts (automation state, pending proposals, held decisions, overrides on the
//! chart) are drawn, and a proposal is approved by clicking its button (Chromium driven over
//! the DevTools protocol).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::common::Backend;
use crate::common::rules::built_rule;
use crate::helpers::{TestApp, expect_error, expect_status, spawn_app};

const CHROMIUM: &str = "/usr/bin/chromium";
const SKU: &str = "tee-1";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs headless Chromium on `url` with `args`, under a time limit, with a profile of its own in
/// the test's folder (so runs never share state), and returns what it printed.
async fn chromium(app: &TestApp, profile: &str, url: String, args: &[&str]) -> Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the review page test needs Debian's chromium package, which \
         scripts/test installs (or run `apt-get install chromium`)"
    );
    let profile = app.db.dir.join(format!("chromium-{profile}"));
    let mut command = Command::new("timeout");
    command.arg("60").arg(CHROMIUM).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display())).args(args).arg(url);
    // Chromium blocks; the service under test runs on this test's runtime meanwhile.
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Chromium, killed when dropped.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Opens `url` in headless Chromium driven over the DevTools protocol, waits for the page to
/// load, and returns the value of `expression` (a promise) evaluated in it: how a test clicks.
async fn evaluate_in_page(app: &TestApp, profile: &str, url: String, expression: &str) -> Value {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing (scripts/test installs it)");
    let profile = app.db.dir.join(format!("chromium-{profile}"));
    let child = Command::new("timeout")
        .arg("90")
        .arg(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .args(["--no-default-browser-check", "--disable-extensions", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--remote-debugging-port=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium starts");
    let _browser = Browser(child);
    // Chromium writes the port it listens on into the profile.
    let active = profile.join("DevToolsActivePort");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let port = loop {
        if let Some(port) = std::fs::read_to_string(&active).ok().and_then(|s| s.lines().next().map(str::to_owned))
            && !port.is_empty()
        {
            break port;
        }
        assert!(std::time::Instant::now() < deadline, "chromium did not open its DevTools port");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let targets: Value =
        app.client.get(format!("http://127.0.0.1:{port}/json/list")).send().await.unwrap().json().await.unwrap();
    let page = targets.as_array().unwrap().iter().find(|t| t["type"] == "page").expect("a page target");
    let (mut ws, _) = tokio_tungstenite::connect_async(page["webSocketDebuggerUrl"].as_str().unwrap()).await.unwrap();
    let mut next_id = 0;
    let mut call =
        async |ws: &mut tokio_tungstenite::WebSocketStream<_>, method: &str, params: Value, event: Option<&str>| {
            next_id += 1;
            let id = next_id;
            let message = json!({"id": id, "method": method, "params": params}).to_string();
            ws.send(Message::text(message)).await.unwrap();
            let (mut answer, mut seen) = (None, event.is_none());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while answer.is_none() || !seen {
                assert!(std::time::Instant::now() < deadline, "no answer to {method}");
                let Some(Ok(Message::Text(text))) = ws.next().await else { continue };
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["id"] == id {
                    answer = Some(message);
                } else if event.is_some_and(|e| message["method"] == e) {
                    seen = true;
                }
            }
            answer.unwrap()
        };
    call(&mut ws, "Page.enable", json!({}), None).await;
    call(&mut ws, "Page.navigate", json!({"url": url}), Some("Page.loadEventFired")).await;
    let params = json!({"expression": expression, "awaitPromise": true, "returnByValue": true});
    let answer = call(&mut ws, "Runtime.evaluate", params, None).await;
    assert!(answer["result"]["exceptionDetails"].is_null(), "the page's script failed: {answer}");
    answer["result"]["result"]["value"].clone()
}

/// The page's DOM after its scripts ran, as Chromium serialises it.
async fn page_dom(app: &TestApp, profile: &str, key: &str, sku: &str) -> String {
    let url = app.url(&format!("/ui#key={key}&sku={sku}"));
    let output = chromium(app, profile, url, &["--dump-dom"]).await;
    String::from_utf8(output.stdout).expect("the DOM is UTF-8")
}

/// Every element whose start tag begins with `prefix`, as its start tag.
fn start_tags<'a>(dom: &'a str, prefix: &str) -> Vec<&'a str> {
    dom.match_indices(prefix).map(|(at, _)| &dom[at..at + dom[at..].find('>').expect("the tag ends")]).collect()
}

/// The value of `name="..."` in a start tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    Some(&tag[start..start + tag[start..].find('"')?])
}

/// The text of the element with this id (no nested elements).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    &dom[start..start + dom[start..].find('<').unwrap()]
}

fn offer(id: &str, competitor: &str, price: i64, in_stock: bool, minutes_ago: i64) -> Value {
    json!({"id": id, "sku": SKU, "competitor": competitor, "price_minor": price, "currency": "EUR",
           "in_stock": in_stock, "observed_at": Utc::now() - Duration::minutes(minutes_ago)})
}

/// A product under competitor-match and a known series of competitor offers and one cost
/// change: six rule decisions, one of them clipped by the MAP (the history may also hold
/// decisions that are not rule evaluations, such as the product's creation at its base price).
/// Returns (merchant key, auditor key).
async fn known_history(app: &TestApp) -> (String, String) {
    let (merchant, key) = app.merchant_with_key(&["merchant", "feed"]).await;
    let auditor = app.issue_key(&merchant, &["auditor"]).await["key"].as_str().unwrap().to_owned();
    let product = json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 1999,
        "guardrails": {"floor_minor": 1300, "map_minor": 1350, "ceiling_minor": 2999, "min_margin_bps": 1000}});
    // The rule is uploaded (and compiled) before the product exists, so that the chart's time
    // axis is not mostly the compile time.
    let version = app.rule_version(&key, built_rule("competitor-match")).await;
    let params = json!({"undercut_minor": 5, "min_margin_bps": 1000});
    let path = format!("/v1/rules/{version}/params");
    expect_status(app.call(Method::PUT, &path, Some(&key), Some(params)).await, StatusCode::OK).await;
    expect_status(app.put_product(&key, SKU, product.clone()).await, StatusCode::CREATED).await;
    let path = format!("/v1/rules/{version}/activate");
    expect_status(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::OK).await;
    app.engine.settled().await; // 1: kept, no competitor yet

    let batches = [
        vec![offer("o-1", "a", 1899, true, 10), offer("o-2", "b", 1799, false, 10)], // 2: 18.94
        vec![offer("o-3", "b", 1850, true, 8)],                                      // 3: 18.45
        vec![offer("o-4", "a", 1250, true, 6)], // 4: the margin floor 13.20, lifted to the MAP 13.50
        vec![offer("o-5", "a", 1700, true, 4)], // 5: 16.95
    ];
    for batch in batches {
        let body = json!({"observations": batch});
        let response = app.call(Method::POST, "/v1/signals/competitor-prices", Some(&key), Some(body)).await;
        expect_status(response, StatusCode::OK).await;
        app.engine.settled().await;
    }
    let mut cost_change = product;
    cost_change["cost_minor"] = json!(1300);
    expect_status(app.put_product(&key, SKU, cost_change).await, StatusCode::OK).await;
    app.engine.settled().await; // 6: kept at 16.95
    (key, auditor)
}

#[tokio::test]
async fn the_review_page_draws_a_known_history_in_headless_chromium() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, auditor) = known_history(&app).await;
    let path = format!("/v1/prices/{SKU}/history?limit=1000");
    let history = expect_status(app.call(Method::GET, &path, Some(&auditor), None).await, StatusCode::OK).await;
    let decisions = history["items"].as_array().unwrap();
    let seqs: Vec<String> = decisions.iter().map(|d| d["seq"].to_string()).collect();
    let by_rule: Vec<&Value> = decisions.iter().filter(|d| d["rule_version"].is_i64()).collect();
    let outcomes: Vec<&str> = by_rule.iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["kept", "changed", "changed", "changed", "changed", "kept"], "newest first: {history}");
    assert_eq!(by_rule[2]["record"]["clips"], json!(["map"]));
    let changed = decisions.iter().filter(|d| d["outcome"] == "changed").count();
    let count = decisions.len().to_string();
    let verified =
        expect_status(app.call(Method::GET, "/v1/audit/verify", Some(&auditor), None).await, StatusCode::OK).await;
    assert_eq!(
        (verified["intact"].as_bool(), verified["records"].as_u64()),
        (Some(true), Some(decisions.len() as u64))
    );

    let dom = page_dom(&app, "review", &auditor, SKU).await;
    let body = start_tags(&dom, "<body");
    assert_eq!(body.len(), 1);
    assert_eq!(attribute(body[0], "data-state"), Some("ready"), "the page finished without errors:\n{dom}");

    // The chart: one point per decision, each naming its decision.
    let charts = start_tags(&dom, "<svg id=\"price-chart\"");
    assert_eq!(charts.len(), 1, "one chart:\n{dom}");
    assert_eq!(attribute(charts[0], "data-points"), Some(count.as_str()));
    // The chart's own markup, without the legend's samples below it.
    let start = dom.find(charts[0]).unwrap();
    let chart = &dom[start..start + dom[start..].find("</svg>").unwrap()];
    let points = start_tags(chart, "<circle class=\"price-point");
    let mut drawn: Vec<String> = points.iter().map(|p| attribute(p, "data-seq").unwrap().to_owned()).collect();
    let mut expected = seqs.clone();
    drawn.sort();
    expected.sort();
    assert_eq!(drawn, expected, "one point per decision of the history");
    assert_eq!(points.iter().filter(|p| p.contains("outcome-changed")).count(), changed);

    // Competitors (a and b), the cost, the margin floor and the guardrail bounds share the axes.
    let competitors: Vec<&str> =
        start_tags(chart, "<g class=\"competitor\"").iter().filter_map(|g| attribute(g, "data-competitor")).collect();
    assert_eq!(competitors, ["a", "b"]);
    assert!(start_tags(chart, "<circle class=\"competitor-point").len() >= 8, "offers seen by five evaluations");
    assert_eq!(start_tags(chart, "<path class=\"cost-line\"").len(), 1);
    assert_eq!(start_tags(chart, "<path class=\"margin-line\"").len(), 1);
    let bounds: Vec<(&str, &str)> = start_tags(chart, "<line class=\"bound-line")
        .iter()
        .map(|b| (attribute(b, "data-bound").unwrap(), attribute(b, "data-minor").unwrap()))
        .collect();
    assert_eq!(bounds, [("floor", "1300"), ("map", "1350"), ("ceiling", "2999")]);

    // The chain badge says what /v1/audit/verify said.
    let badge = start_tags(&dom, "<span id=\"chain\"");
    assert_eq!(attribute(badge[0], "data-chain"), Some("intact"));
    assert_eq!(attribute(badge[0], "data-records"), Some(count.as_str()));
    assert_eq!(text_of(&dom, "chain"), format!("chain intact ({count} records)"));

    // The table: a row per decision, newest first, money in the currency's minor units.
    let rows: Vec<&str> =
        start_tags(&dom, "<tr class=\"decision").iter().map(|r| attribute(r, "data-seq").unwrap()).collect();
    assert_eq!(rows, seqs.iter().map(String::as_str).collect::<Vec<_>>());
    for text in ["18.45 EUR → 13.50 EUR", "rule asked 13.20 EUR", "<span class=\"clip\">map</span>", "5 under b (1850)"]
    {
        assert!(dom.contains(text), "the table shows {text:?}:\n{dom}");
    }
    assert!(dom.contains("competitor_prices") && dom.contains("product_changed") && dom.contains("rule_activated"));
    assert!(!dom.contains("data-code="), "no API error shown:\n{dom}");

    // A screenshot, kept as the test's artefact.
    let dir = workspace().join("target/test-artefacts");
    std::fs::create_dir_all(&dir).expect("the artefact folder can be made");
    let png = dir.join("ui-review.png");
    let _ = std::fs::remove_file(&png);
    let url = app.url(&format!("/ui#key={auditor}&sku={SKU}"));
    let screenshot = format!("--screenshot={}", png.display());
    chromium(&app, "screenshot", url, &[&screenshot, "--window-size=1280,900"]).await;
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    assert!(
        bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG of a drawn page",
        png.display()
    );
}

#[tokio::test]
async fn the_chain_badge_names_the_first_broken_record() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, auditor) = known_history(&app).await;
    // Someone with database access lifts the append-only guard and edits record 3's price.
    let sqlite =
        pricing::store::Store::connect(&app.db.url, &pricing::config::Settings::defaults().store).await.unwrap();
    sqlx::query("DROP TRIGGER decisions_no_update").execute(sqlite.pool()).await.unwrap();
    sqlx::query("UPDATE decisions SET new_price_minor = 1 WHERE seq = 3").execute(sqlite.pool()).await.unwrap();

    let path = format!("/v1/prices/{SKU}/history?limit=1000");
    let history = expect_status(app.call(Method::GET, &path, Some(&auditor), None).await, StatusCode::OK).await;
    let count = history["items"].as_array().unwrap().len();

    let dom = page_dom(&app, "broken", &auditor, SKU).await;
    let badge = start_tags(&dom, "<span id=\"chain\"");
    assert_eq!((attribute(badge[0], "data-chain"), attribute(badge[0], "data-seq")), (Some("broken"), Some("3")));
    assert!(text_of(&dom, "chain").starts_with("chain broken at #3: "), "{}", text_of(&dom, "chain"));
    // The history is still drawn: the badge is what tells the reader not to trust it.
    assert_eq!(start_tags(&dom, "<circle class=\"price-point").len(), count);
}

#[tokio::test]
async fn the_review_page_shows_the_apis_errors() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, auditor) = app.merchant_with_key(&["auditor"]).await;

    // A key the service does not know: every call fails, and the page says why.
    let dom = page_dom(&app, "bad-key", "pk_not_a_real_key", SKU).await;
    assert_eq!(attribute(start_tags(&dom, "<body")[0], "data-state"), Some("error"), "{dom}");
    let codes: Vec<&str> =
        start_tags(&dom, "<p class=\"error\"").iter().filter_map(|p| attribute(p, "data-code")).collect();
    assert_eq!(codes, ["unauthorized"; 6], "{dom}");
    assert_eq!(attribute(start_tags(&dom, "<span id=\"chain\"")[0], "data-chain"), Some("error"));
    assert!(start_tags(&dom, "<svg id=\"price-chart\"").is_empty());

    // A good key and an unknown SKU: the product is not found, and its history is empty.
    let dom = page_dom(&app, "unknown-sku", &auditor, "no-such-sku").await;
    let codes: Vec<&str> =
        start_tags(&dom, "<p class=\"error\"").iter().filter_map(|p| attribute(p, "data-code")).collect();
    assert_eq!(codes, ["not_found"], "{dom}");
    assert!(dom.contains("product no-such-sku was not found"), "the API's message is shown:\n{dom}");
    assert!(dom.contains("no-such-sku has no decisions yet"));
    assert_eq!(text_of(&dom, "chain"), "chain intact (0 records)");
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_content_security_policy_and_wrong_methods_get_the_error_shape() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut etag = None;
    for (path, content_type) in [
        ("/ui", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        // No key: the page holds no data, its own API calls carry the key.
        let response = app.call(Method::GET, path, None, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(header("content-type"), content_type, "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("http") && !csp.contains('*') && !csp.contains("unsafe"), "no other origin: {csp}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = response.text().await.unwrap();
        // Nothing is loaded from elsewhere: the only URL in the assets is the SVG namespace.
        for (at, _) in body.match_indices("://") {
            assert!(body[..at].ends_with("http") && body[at..].starts_with("://www.w3.org/2000/svg"), "{path}");
        }
        if path == "/ui" {
            assert!(body.contains("<script src=\"/ui/app.js\""), "{body}");
            etag = Some(header("etag"));
        }
    }

    // Unchanged assets are revalidated, not sent again.
    let response = app.client.get(app.url("/ui")).header(header::IF_NONE_MATCH, etag.unwrap()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    // `/ui/` leads to the page.
    let response = app.call(Method::GET, "/ui/", None, None).await;
    assert_eq!(response.url().path(), "/ui");
    assert_eq!(response.status(), StatusCode::OK);

    for (method, path) in [(Method::POST, "/ui"), (Method::PUT, "/ui"), (Method::DELETE, "/ui/app.js")] {
        expect_error(app.call(method, path, None, None).await, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            .await;
    }
    expect_error(app.call(Method::GET, "/ui/nothing.js", None, None).await, StatusCode::NOT_FOUND, "route_not_found")
        .await;
}

#[tokio::test]
async fn the_review_page_shows_proposals_the_automation_state_and_overrides() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "feed"]).await;
    let product = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999});
    expect_status(app.put_product(&key, SKU, product.clone()).await, StatusCode::CREATED).await;
    let version = app.rule_version(&key, built_rule("cost-plus")).await;
    let path = format!("/v1/rules/{version}/params");
    expect_status(app.call(Method::PUT, &path, Some(&key), Some(json!({"margin_bps": 2500}))).await, StatusCode::OK)
        .await;
    let path = format!("/v1/rules/{version}/activate");
    expect_status(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::OK).await;
    app.engine.settled().await;

    // A campaign that has run: 9.99 for a second and a half.
    let ends = (Utc::now() + Duration::milliseconds(1500)).to_rfc3339();
    let body = json!({"sku": SKU, "price_minor": 999, "currency": "EUR", "ends_at": ends, "reason": "flash sale"});
    let made =
        expect_status(app.call(Method::POST, "/v1/overrides", Some(&key), Some(body)).await, StatusCode::CREATED).await;
    let path = format!("/v1/overrides/{}", made["id"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let o = expect_status(app.call(Method::GET, &path, Some(&key), None).await, StatusCode::OK).await;
        if o["state"] == "ended" && o["applied"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the override did not end: {o}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.engine.settled().await;
    // Every change waits for a person: a cost rise becomes a proposal; then automation is frozen.
    let settings = json!({"show_prior_price": false, "approval": {"all_changes": true}});
    expect_status(app.call(Method::PUT, "/v1/settings", Some(&key), Some(settings)).await, StatusCode::OK).await;
    let mut rise = product;
    rise["cost_minor"] = json!(1200);
    expect_status(app.put_product(&key, SKU, rise).await, StatusCode::OK).await;
    app.engine.settled().await;
    let pending = expect_status(app.call(Method::GET, "/v1/proposals", Some(&key), None).await, StatusCode::OK).await;
    let seq = pending["items"][0]["seq"].to_string();
    let freeze = json!({"reason": "checking a feed"});
    let path = "/v1/automation/freeze";
    expect_status(app.call(Method::POST, path, Some(&key), Some(freeze)).await, StatusCode::OK).await;

    let dom = page_dom(&app, "safety", &key, SKU).await;
    assert_eq!(attribute(start_tags(&dom, "<body")[0], "data-state"), Some("ready"), "no errors:\n{dom}");
    assert_eq!(attribute(start_tags(&dom, "<span id=\"automation\"")[0], "data-automation"), Some("frozen"));
    assert!(text_of(&dom, "automation").ends_with(": checking a feed"), "{}", text_of(&dom, "automation"));
    let proposals: Vec<&str> =
        start_tags(&dom, "<tr class=\"proposal\"").iter().filter_map(|r| attribute(r, "data-seq")).collect();
    assert_eq!(proposals, [seq.as_str()], "{dom}");
    let buttons: Vec<(&str, &str)> = start_tags(&dom, "<button type=\"button\" class=\"decide")
        .iter()
        .map(|b| (attribute(b, "data-seq").unwrap(), attribute(b, "data-verdict").unwrap()))
        .collect();
    assert_eq!(buttons, [(seq.as_str(), "approve"), (seq.as_str(), "reject")]);
    assert!(dom.contains("12.50 EUR → 15.00 EUR"), "the proposed change:\n{dom}");
    let bands = start_tags(&dom, "<rect class=\"override-band override-ended\"");
    assert_eq!(bands.len(), 1, "the campaign's span on the chart:\n{dom}");
    assert_eq!(attribute(bands[0], "data-override"), Some(made["id"].to_string().as_str()));
    assert!(dom.contains("override_started") && dom.contains("override_ended"), "its decisions in the table");
    assert_eq!(start_tags(&dom, "<circle class=\"price-point outcome-held\"").len(), 1, "the held change");

    // A person approves it on the page: the price moves, the chain names the key.
    let clicked =
        evaluate_in_page(&app, "approve", app.url(&format!("/ui#key={key}&sku={SKU}")), APPROVE_ON_THE_PAGE).await;
    assert_eq!(clicked, json!({"proposals": 0, "state": "ready", "errors": ""}), "the page after the click");
    let product = expect_status(app.get_product(&key, SKU).await, StatusCode::OK).await;
    assert_eq!(product["price"]["price_minor"], 1500, "approved: 12.50 to 15.00");
    let path = format!("/v1/proposals/{seq}");
    let proposal = expect_status(app.call(Method::GET, &path, Some(&key), None).await, StatusCode::OK).await;
    assert_eq!(proposal["state"], "approved");
    let (key_id, _) = crate::helpers::split_token(&key);
    let resolved_by = proposal["resolved_by"].as_str().unwrap().replace('-', "");
    assert_eq!(Some(resolved_by.as_str()), key_id.strip_prefix("pk_"), "the deciding key: {proposal}");
}

/// Waits for the page to be drawn, clicks the first proposal's approve button, waits for the
/// page to be drawn again without it, and says what it then shows.
const APPROVE_ON_THE_PAGE: &str = r#"(async () => {
  const until = async (ready) => {
    for (let i = 0; i < 400 && !ready(); i += 1) await new Promise((r) => setTimeout(r, 50));
  };
  await until(() => document.body.dataset.state === 'ready' && document.querySelector('button.decide-approve'));
  document.querySelector('button.decide-approve').click();
  await until(() => document.body.dataset.state === 'ready' && !document.querySelector('tr.proposal'));
  return {
    proposals: document.querySelectorAll('tr.proposal').length,
    state: document.body.dataset.state,
    errors: document.getElementById('errors').textContent,
  };
})()"#;

#[tokio::test]
async fn a_failing_rule_is_a_metric_and_its_log_is_on_the_page() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant"]).await;
    let product = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999});
    expect_status(app.put_product(&key, SKU, product).await, StatusCode::CREATED).await;
    let version = app.rule_version(&key, built_rule("hostile")).await;
    let path = format!("/v1/rules/{version}/params");
    expect_status(app.call(Method::PUT, &path, Some(&key), Some(json!({"attack": "panic"}))).await, StatusCode::OK)
        .await;
    let path = format!("/v1/rules/{version}/activate?force=true");
    expect_status(app.call(Method::POST, &path, Some(&key), None).await, StatusCode::OK).await;
    app.engine.settled().await;

    let failed = app.call(Method::GET, "/v1/decisions?outcome=failed&limit=1000", Some(&key), None).await;
    let failed = expect_status(failed, StatusCode::OK).await["items"].as_array().unwrap().len();
    assert!(failed >= 1);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("pricing_rule_failures_total{") && l.contains("kind=\"guest_panic\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<usize>().ok());
    assert_eq!(counted, Some(failed), "each recorded failure counted by kind:\n{metrics}");

    let dom = page_dom(&app, "failure", &key, SKU).await;
    assert_eq!(attribute(start_tags(&dom, "<body")[0], "data-state"), Some("ready"), "{dom}");
    assert!(dom.contains("<details class=\"log\">"), "the log is on the page:\n{dom}");
    assert!(dom.contains("the hostile rule panicked on purpose"), "with the panic's message:\n{dom}");
}
