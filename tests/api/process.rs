//! The `pricing` binary as an operator runs it: SIGTERM in the middle of traffic loses no
//! acknowledged write, logs are JSON with the request's route, status and merchant (and no
//! secrets), and traces reach an OTLP collector when one is configured.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestDb, fresh_database};
use crate::helpers::{ADMIN_KEY, product, split_token};

/// A `pricing serve` child process with its output collected line by line.
pub(crate) struct Service {
    child: Child,
    pub(crate) address: String,
    output: Arc<Mutex<Vec<String>>>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Service {
    pub(crate) async fn start(db: &TestDb, env: &[(&str, String)]) -> Service {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pricing"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PRICING_LISTEN", format!("127.0.0.1:{port}"))
            .env("PRICING_DATABASE_URL", &db.url)
            .env("PRICING_ADMIN_KEY", ADMIN_KEY)
            .env("PRICING_HTTP__WORKERS", "2")
            // The suite's processes share one PostgreSQL server with the other tests.
            .env("PRICING_STORE__MAX_CONNECTIONS", "6")
            .current_dir(&db.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the pricing binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in
            [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        let service = Service { child, address: format!("http://127.0.0.1:{port}"), output };
        service.wait_ready().await;
        service
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.address)).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service did not become ready; output:\n{}", self.output.lock().unwrap().join("\n"));
    }

    /// `kill -9`: the process gets no chance to finish anything.
    pub(crate) fn kill9(mut self) {
        let status = Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }

    /// Everything the process has printed so far.
    pub(crate) fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns whether it exited cleanly.
    async fn wait_exit(mut self) -> (bool, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                tokio::time::sleep(Duration::from_millis(100)).await; // let the readers drain
                return (status.success(), self.output.lock().unwrap().clone());
            }
            assert!(Instant::now() < deadline, "the service did not stop after SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn post(&self, path: &str, key: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.address))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// A merchant named `name` and a key with `roles`: (merchant id, token).
    pub(crate) async fn merchant_with_roles(&self, name: &str, roles: &[&str]) -> (String, String) {
        let merchant =
            self.post("/v1/merchants", ADMIN_KEY, json!({"name": name})).await["id"].as_str().unwrap().to_owned();
        let key = self.post(&format!("/v1/merchants/{merchant}/keys"), ADMIN_KEY, json!({"roles": roles})).await;
        (merchant, key["key"].as_str().unwrap().to_owned())
    }

    /// Uploads the example rule `name` (built to wasm) with `key`: its version.
    pub(crate) async fn upload_rule(&self, key: &str, name: &str) -> i64 {
        let upload = reqwest::Client::new()
            .post(format!("{}/v1/rules", self.address))
            .bearer_auth(key)
            .header("content-type", "application/wasm")
            .body(crate::common::rules::built_rule(name))
            .send()
            .await
            .unwrap();
        assert!(upload.status().is_success(), "the rule uploads");
        upload.json::<Value>().await.unwrap()["version"].as_i64().unwrap()
    }

    /// A merchant and a key with the merchant role: (merchant id, token).
    pub(crate) async fn merchant_key(&self) -> (String, String) {
        let merchant =
            self.post("/v1/merchants", ADMIN_KEY, json!({"name": "Acme"})).await["id"].as_str().unwrap().to_owned();
        let key = self.post(&format!("/v1/merchants/{merchant}/keys"), ADMIN_KEY, json!({"roles": ["merchant"]})).await;
        (merchant, key["key"].as_str().unwrap().to_owned())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

async fn every_acknowledged_write_survives_a_sigterm_mid_traffic(backend: Backend) {
    let db = fresh_database(backend).await;
    let service = Service::start(&db, &[]).await;
    let (_, key) = service.merchant_key().await;

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (address, key, acknowledged) = (service.address.clone(), key.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0.. {
                    let sku = format!("w{writer}-{i:05}");
                    let sent = client
                        .put(format!("{address}/v1/products/{sku}"))
                        .bearer_auth(&key)
                        .json(&product("EUR", 1, 2))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == StatusCode::CREATED => acknowledged.lock().unwrap().push(sku),
                        // Refused or cut off by the shutdown: not acknowledged, so not owed.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    // The signal comes once traffic flows (a bounded wait: a loaded machine writes slowly).
    let flowing = Instant::now();
    while acknowledged.lock().unwrap().len() < 20 && flowing.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    service.sigterm();
    let (clean, output) = service.wait_exit().await;
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(clean, "a SIGTERM is a clean shutdown; output:\n{}", output.join("\n"));
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 20, "traffic was flowing when the signal came ({} writes)", acknowledged.len());

    let service = Service::start(&db, &[]).await;
    let client = reqwest::Client::new();
    for sku in &acknowledged {
        let response =
            client.get(format!("{}/v1/products/{sku}", service.address)).bearer_auth(&key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "acknowledged product {sku} is missing after the restart");
    }
}

both_backends! {
    sigterm_mid_traffic => every_acknowledged_write_survives_a_sigterm_mid_traffic;
}

#[tokio::test]
async fn json_logs_carry_route_status_and_merchant_but_never_a_secret() {
    let db = fresh_database(Backend::Sqlite).await;
    let service = Service::start(&db, &[("PRICING_LOG__FORMAT", "json".into())]).await;
    let (merchant, key) = service.merchant_key().await;
    let client = reqwest::Client::new();
    let response = client
        .put(format!("{}/v1/products/tee-1", service.address))
        .bearer_auth(&key)
        .json(&product("EUR", 1, 2))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    service.sigterm();
    let (_, output) = service.wait_exit().await;

    let events: Vec<Value> = output.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!events.is_empty(), "the logs are JSON lines:\n{}", output.join("\n"));
    let put = events
        .iter()
        .find(|e| e["span"]["http.route"] == "/v1/products/{sku}" && e["fields"]["message"] == "request answered")
        .unwrap_or_else(|| panic!("no log line for the product request in:\n{}", output.join("\n")));
    assert_eq!(put["fields"]["status"], 201);
    assert_eq!(put["span"]["merchant_id"], merchant.as_str());
    assert_eq!(put["span"]["http.request.method"], "PUT");
    let everything = output.join("\n");
    assert!(!everything.contains(ADMIN_KEY), "the admin key is never logged");
    assert!(!everything.contains(split_token(&key).1), "issued secrets are never logged");
}

/// (path, body) of each request a collector received.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A stand-in OTLP/HTTP collector: records the path and body of each POST it receives.
fn start_collector() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    sink.lock().unwrap().push((path, body));
                    writer
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                        )
                        .unwrap();
                }
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn traces_and_metrics_reach_an_otlp_collector_when_one_is_configured() {
    let (port, received) = start_collector();
    let db = fresh_database(Backend::Sqlite).await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
    ];
    let service = Service::start(&db, &env).await;
    service.merchant_key().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let contains = |path: &str, needle: &[u8]| {
        received.lock().unwrap().iter().any(|(p, body)| p == path && body.windows(needle.len()).any(|w| w == needle))
    };
    while !(contains("/v1/traces", b"POST /v1/merchants") && contains("/v1/metrics", b"http.server.requests")) {
        assert!(
            Instant::now() < deadline,
            "the collector got: {:?}",
            received.lock().unwrap().iter().map(|(p, b)| (p.clone(), b.len())).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    service.sigterm();
    assert!(service.wait_exit().await.0);
}

#[tokio::test]
async fn the_migrate_command_prepares_a_database_and_exits() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = fresh_database(backend).await;
        let output = Command::new(env!("CARGO_BIN_EXE_pricing"))
            .arg("migrate")
            .env_clear()
            .env("PRICING_DATABASE_URL", &db.url)
            .current_dir(&db.dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        let name = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
        assert!(stdout.contains(&format!("{name} database is migrated")), "{stdout}");
        // The schema is in place: the store opens without migrating anything further.
        let store = pricing::store::connect(&db.url, &pricing::config::Settings::defaults().store).await.unwrap();
        assert!(store.create_merchant("After migrate").await.is_ok());
    }
}

#[tokio::test]
async fn a_bad_setting_stops_the_binary_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_pricing"))
        .arg("serve")
        .env_clear()
        .env("PRICING_ADMIN_KEY", "short")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("PRICING_ADMIN_KEY must be at least 16 characters"));
    let output = Command::new(env!("CARGO_BIN_EXE_pricing"))
        .arg("serve")
        .env_clear()
        .env("PRICING_DATABASE_URL", "mysql://nope")
        .env("PRICING_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unsupported database URL `mysql`"));
}

#[tokio::test]
async fn the_local_runner_reports_the_decision_fuel_memory_time_and_log() {
    use crate::common::wat_rules::rule;
    let dir = fresh_database(Backend::Sqlite).await.dir;
    let body = "(call $log (i32.const 600) (i32.const 5)) (call $set (i64.const 1899) (i32.const 512))";
    std::fs::write(dir.join("rule.wasm"), rule(body, "")).unwrap();
    std::fs::write(dir.join("spin.wasm"), rule("(loop $l (br $l)) (unreachable)", "")).unwrap();
    let context = json!({"sku": "tee-1", "currency": "EUR", "cost_minor": 1200, "current_price_minor": 1999,
                         "base_price_minor": 1999, "now": "2026-11-25T12:00:00Z"});
    std::fs::write(dir.join("context.json"), context.to_string()).unwrap();
    std::fs::write(dir.join("params.json"), r#"{"margin_bps": 2500}"#).unwrap();
    let run = |wasm: &str| {
        Command::new(env!("CARGO_BIN_EXE_pricing"))
            .args(["rule", "run", "--wasm", wasm, "--input", "context.json", "--params", "params.json"])
            .current_dir(&dir)
            .env_clear()
            .env("PRICING_SANDBOX__DEADLINE_MS", "1000")
            .output()
            .unwrap()
    };
    let output = run("rule.wasm");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("the report is JSON on stdout");
    assert_eq!(report["decision"]["price_minor"], 1899);
    assert!(report["error"].is_null());
    assert!(report["fuel_used"].as_u64().unwrap() > 0);
    assert!(report["peak_memory_bytes"].as_u64().unwrap() >= 65536);
    assert!(report["wall_time_us"].as_u64().is_some());
    assert_eq!(report["log"], "xxxxx");

    let output = run("spin.wasm");
    assert_eq!(output.status.code(), Some(1), "a failing rule fails the command");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(matches!(report["error"]["kind"].as_str(), Some("timeout" | "out_of_fuel")), "{report}");
}
