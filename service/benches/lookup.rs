//! Checkout lookups under load, against a constant-response endpoint in the same run, and
//! the time from a competitor signal to the new price being visible.
//!
//! The service runs in this process (release build, SQLite, 2 HTTP workers); the load
//! generator is a minimal keep-alive HTTP/1.1 client on the same machine: 32 connections on
//! one thread's event loop, one request in flight on each, as `redis-benchmark` drives Redis.
//! Run with `cargo bench -p pricing-service --bench lookup`.

#[path = "support/report.rs"]
mod report;

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use pricing::config::{Secret, Settings};
use pricing::startup::Application;
use serde_json::{Value, json};

const CONNECTIONS: usize = 32;
const RUN_FOR: Duration = Duration::from_secs(5);
const PRODUCTS: usize = 10_000;
const ADMIN: &str = "bench-admin-key-0123456789";

/// The status and total length of the response at the start of `buf`, once its head is in.
fn parse_head(buf: &[u8]) -> Option<(u16, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..end];
    let status = std::str::from_utf8(&head[9..12]).expect("ASCII status").parse().expect("a status code");
    const LENGTH: &[u8] = b"content-length:";
    let length = head
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line.len() > LENGTH.len() && line[..LENGTH.len()].eq_ignore_ascii_case(LENGTH))
                .then(|| std::str::from_utf8(&line[LENGTH.len()..]).unwrap().trim().parse().unwrap())
        })
        .unwrap_or(0);
    Some((status, end + 4 + length))
}

/// Reads one HTTP/1.1 response (headers and a Content-Length body) from an event loop's
/// socket and returns its status.
async fn read_response_async(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> u16 {
    use tokio::io::AsyncReadExt;
    buf.clear();
    loop {
        if let Some((status, total)) = parse_head(buf)
            && buf.len() >= total
        {
            return status;
        }
        let n = stream.read_buf(buf).await.expect("the server answers");
        assert!(n > 0, "the server closed the connection");
    }
}

/// Like [`load`] (one thread's event loop, the same connections), but open-loop: requests are
/// scheduled at `rate` per second, each given to the next connection in turn (queued behind
/// its previous one if that is still in flight), and latency is measured from the scheduled
/// time, so a stalled server is not hidden by the client waiting for it (coordinated
/// omission). The schedule is kept by a ticker thread that wakes the event loop every few
/// tens of microseconds: the event loop's own timers count in whole milliseconds, which
/// would add up to a millisecond to every request (the first version of this generator slept
/// per request on 32 threads, and at 70 % of the event loop's peak it fell behind its own
/// schedule: what it measured was its queue).
async fn paced(port: u16, rate: f64, requests: Requests) -> Vec<u64> {
    let client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let tick = std::sync::Arc::new(tokio::sync::Notify::new());
            let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
            let ticker = {
                let (tick, running) = (tick.clone(), running.clone());
                std::thread::spawn(move || {
                    while running.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_micros(20));
                        tick.notify_one();
                    }
                })
            };
            let mut connections = tokio::task::JoinSet::new();
            let mut schedules = Vec::new();
            for _ in 0..CONNECTIONS {
                let (send, mut due) = tokio::sync::mpsc::unbounded_channel::<(Instant, usize)>();
                schedules.push(send);
                let requests = requests.clone();
                connections.spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let mut buf = Vec::with_capacity(64 * 1024);
                    let mut latencies = Vec::new();
                    while let Some((scheduled, i)) = due.recv().await {
                        stream.write_all(requests.pick(i)).await.unwrap();
                        assert_eq!(read_response_async(&mut stream, &mut buf).await, 200);
                        latencies.push(scheduled.elapsed().as_micros() as u64);
                    }
                    latencies
                });
            }
            let interval = Duration::from_secs_f64(1.0 / rate);
            let start = Instant::now();
            let mut next = start;
            let mut i = 0usize;
            while next < start + RUN_FOR {
                tick.notified().await;
                let now = Instant::now();
                while next <= now && next < start + RUN_FOR {
                    schedules[i % CONNECTIONS].send((next, i)).unwrap();
                    i += 1;
                    next += interval;
                }
            }
            drop(schedules);
            let mut all = Vec::new();
            while let Some(latencies) = connections.join_next().await {
                all.extend(latencies.unwrap());
            }
            running.store(false, std::sync::atomic::Ordering::Relaxed);
            ticker.join().unwrap();
            all
        })
    });
    let mut all = tokio::task::spawn_blocking(move || client.join().unwrap()).await.unwrap();
    all.sort_unstable();
    all
}

/// Requests made before the clock starts, so that the load generator spends its share of the
/// two cores on sending and reading, not on formatting: request `i` is `table[(i * stride) % len]`.
#[derive(Clone)]
struct Requests {
    table: std::sync::Arc<Vec<Vec<u8>>>,
    stride: usize,
}

impl Requests {
    fn new(table: Vec<Vec<u8>>, stride: usize) -> Self {
        Self { table: std::sync::Arc::new(table), stride }
    }

    fn pick(&self, i: usize) -> &[u8] {
        &self.table[(i * self.stride) % self.table.len()]
    }
}

/// `CONNECTIONS` keep-alive connections with one request in flight each, driven by one thread's
/// event loop: the shape of `redis-benchmark` (one thread, epoll, no pipelining by default), so
/// that the service and the Redis baseline are loaded alike. Sends `requests` for `RUN_FOR`;
/// returns the latencies in microseconds, sorted.
async fn load(port: u16, requests: Requests) -> Vec<u64> {
    let client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let until = Instant::now() + RUN_FOR;
            let mut connections = tokio::task::JoinSet::new();
            for c in 0..CONNECTIONS {
                let requests = requests.clone();
                connections.spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let mut buf = Vec::with_capacity(64 * 1024);
                    let mut latencies = Vec::new();
                    let mut i = c;
                    while Instant::now() < until {
                        let started = Instant::now();
                        stream.write_all(requests.pick(i)).await.unwrap();
                        assert_eq!(read_response_async(&mut stream, &mut buf).await, 200);
                        latencies.push(started.elapsed().as_micros() as u64);
                        i += CONNECTIONS;
                    }
                    latencies
                });
            }
            let mut all = Vec::new();
            while let Some(latencies) = connections.join_next().await {
                all.extend(latencies.unwrap());
            }
            all
        })
    });
    let mut all = tokio::task::spawn_blocking(move || client.join().unwrap()).await.unwrap();
    all.sort_unstable();
    all
}

/// Requests per second of `redis-benchmark` running `command` against the local Redis, when
/// both are there (the design's baseline for checkout lookups): `-t get` for single lookups,
/// and a 100-key MGET (keys set first) for batch lookups.
fn redis_rate(command: &[String], label: &str) -> Option<f64> {
    let mut args = vec!["60".to_owned(), "redis-benchmark".into(), "-c".into(), CONNECTIONS.to_string()];
    args.extend(["-n".into(), "300000".into(), "-q".into()]);
    args.extend(command.iter().cloned());
    let output = std::process::Command::new("timeout").args(&args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "GET: 90579.71 requests per second, p50=0.183 msec"
    // Progress lines ("GET: rps=...") come first, separated by carriage returns: take the last.
    let rate = text.rsplit(&format!("{label}:")).next()?.split_whitespace().next()?.parse().ok()?;
    Some(rate)
}

/// Keys per second that Redis serves as 100-key MGETs (each key holding a price's JSON).
fn redis_mget_keys_rate() -> Option<f64> {
    let keys: Vec<String> = (0..100).map(|i| format!("bench-price-{i}")).collect();
    let mut mset = vec!["timeout".to_owned(), "10".into(), "redis-cli".into(), "MSET".into()];
    for key in &keys {
        mset.extend([key.clone(), r#"{"price_minor":2001,"currency":"EUR","version":1}"#.into()]);
    }
    let set = std::process::Command::new(&mset[0]).args(&mset[1..]).output().ok()?;
    if !set.status.success() {
        return None;
    }
    let mut command = vec!["MGET".to_owned()];
    command.extend(keys);
    // The label redis-benchmark prints for a custom command is the command line itself.
    let rate = redis_rate(&command, &command.join(" "))?;
    Some(rate * 100.0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn get(path: &str, key: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n\r\n").into_bytes()
}

fn post(path: &str, key: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn call(client: &reqwest::Client, method: reqwest::Method, url: String, key: &str, body: Option<Value>) -> Value {
    let mut request = client.request(method, url).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    response.json().await.unwrap_or(Value::Null)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let db = common::fresh_database(common::Backend::Sqlite).await;
    let mut settings = Settings::defaults();
    settings.listen = "127.0.0.1:0".into();
    settings.database_url = db.url.clone();
    settings.admin_key = Some(Secret::new(ADMIN));
    settings.http.workers = std::env::var("LOOKUP_HTTP_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let app = Application::build(settings).await.unwrap();
    let port = app.port();
    let engine = app.engine();
    let store = app.store();
    tokio::spawn(app.run_until_stopped());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let merchant =
        call(&client, reqwest::Method::POST, format!("{base}/v1/merchants"), ADMIN, Some(json!({"name": "Bench"})))
            .await;
    let merchant_id = merchant["id"].as_str().unwrap().to_owned();
    let key = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/merchants/{merchant_id}/keys"),
        ADMIN,
        Some(json!({"roles": ["merchant", "checkout", "feed"]})),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Products through the API, so that the running service's own cache holds their prices.
    for wave in (0..PRODUCTS).collect::<Vec<_>>().chunks(64) {
        let puts = wave.iter().map(|i| {
            let body = json!({"currency": "EUR", "cost_minor": 1200, "base_price_minor": 2000 + (i % 7) as i64});
            call(&client, reqwest::Method::PUT, format!("{base}/v1/products/sku-{i:05}"), &key, Some(body))
        });
        futures_util::future::join_all(puts).await;
    }
    let _ = store;

    // Request i asks for SKU (i * 7919) % PRODUCTS, the batch i for 100 SKUs from i * 100.
    let lookup_requests =
        Requests::new((0..PRODUCTS).map(|k| get(&format!("/v1/prices/sku-{k:05}"), &key)).collect(), 7919);
    if let Ok(rate) = std::env::var("LOOKUP_PROFILE") {
        // Only single lookups, paced at the rate given (requests/s), for a profiler attached
        // to this process.
        eprintln!("profiling window starts");
        let paced = paced(port, rate.parse().expect("LOOKUP_PROFILE is requests/s"), lookup_requests).await;
        eprintln!("profiling window ends: p50 {} us, p99 {} us", percentile(&paced, 0.5), percentile(&paced, 0.99));
        return;
    }
    let constant = load(port, Requests::new(vec![b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec()], 1)).await;
    let lookups = load(port, lookup_requests.clone()).await;
    let batch_body = |i: usize| {
        let skus: Vec<String> = (0..100).map(|j| format!("sku-{:05}", (i * 100 + j * 37) % PRODUCTS)).collect();
        json!({"skus": skus}).to_string()
    };
    let batch_requests = (0..PRODUCTS / 100).map(|i| post("/v1/prices/lookup", &key, &batch_body(i))).collect();
    let batches = load(port, Requests::new(batch_requests, 1)).await;

    let seconds = RUN_FOR.as_secs_f64();
    println!("checkout lookups, {PRODUCTS} products, {CONNECTIONS} connections, {}s per mode", RUN_FOR.as_secs());
    println!("{:<34} {:>12} {:>10} {:>10} {:>10}", "mode", "requests/s", "p50 us", "p99 us", "vs const");
    let constant_rate = constant.len() as f64 / seconds;
    for (mode, latencies) in [
        ("GET /healthz (constant)", &constant),
        ("GET /v1/prices/{sku}", &lookups),
        ("POST /v1/prices/lookup (100 SKUs)", &batches),
    ] {
        let rate = latencies.len() as f64 / seconds;
        println!(
            "{mode:<34} {rate:>12.0} {:>10} {:>10} {:>10.3}",
            percentile(latencies, 0.50),
            percentile(latencies, 0.99),
            rate / constant_rate
        );
    }
    println!("batch lookup: {:.0} SKU prices/s", batches.len() as f64 * 100.0 / seconds);
    let peak = lookups.len() as f64 / seconds;
    let at_70 = paced(port, 0.7 * peak, lookup_requests).await;
    println!(
        "GET /v1/prices/{{sku}} paced at 70% of peak ({:.0} requests/s offered, {:.0} done): p50 {} us, p99 {} us",
        0.7 * peak,
        at_70.len() as f64 / seconds,
        percentile(&at_70, 0.50),
        percentile(&at_70, 0.99)
    );
    // The same pace on the constant endpoint: what the generator, the HTTP layer and the
    // machine's scheduling add whatever the handler does.
    let healthz = Requests::new(vec![b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec()], 1);
    let constant_at_70 = paced(port, 0.7 * peak, healthz).await;
    println!(
        "GET /healthz at the same pace: p50 {} us, p99 {} us",
        percentile(&constant_at_70, 0.50),
        percentile(&constant_at_70, 0.99)
    );
    let redis = redis_rate(&["-t".into(), "get".into()], "GET");
    if let Some(redis) = redis {
        println!(
            "redis GET baseline (redis-benchmark -t get -c {CONNECTIONS}): {redis:.0} requests/s; lookups are {:.3} of it",
            lookups.len() as f64 / seconds / redis
        );
    }
    let redis_mget = redis_mget_keys_rate();
    if let Some(keys) = redis_mget {
        println!("redis MGET baseline (100 keys, -c {CONNECTIONS}): {keys:.0} keys/s");
    }
    {
        use report::{Target, figure};
        let group = "lookup";
        let constant = Some(("GET /healthz, constant response", constant_rate));
        figure(group, "GET /healthz (constant response)", constant_rate, "requests/s", None, None);
        let redis_get = redis.map(|r| ("redis GET (redis-benchmark -t get -c 32)", r));
        figure(
            group,
            "single lookup GET /v1/prices/{sku}",
            peak,
            "requests/s",
            redis_get,
            Some(Target::RatioAtLeast(1.0)),
        );
        figure(group, "single lookup against the constant endpoint", peak, "requests/s", constant, None);
        let paced_p50 = percentile(&at_70, 0.50) as f64;
        figure(group, "single lookup p50 paced at 70% of peak", paced_p50, "µs", None, None);
        let paced_p99 = percentile(&at_70, 0.99) as f64;
        let constant_p99 = Some(("GET /healthz at the same pace", percentile(&constant_at_70, 0.99) as f64));
        let target = Some(Target::AtMost(1000.0));
        figure(group, "single lookup p99 paced at 70% of peak", paced_p99, "µs", constant_p99, target);
        let batch_rate = batches.len() as f64 * 100.0 / seconds;
        let mget = redis_mget.map(|r| ("redis MGET of 100 keys, keys/s", r));
        figure(
            group,
            "batch lookup, 100 SKUs per request",
            batch_rate,
            "SKU prices/s",
            mget,
            Some(Target::AtLeast(2e6)),
        );
    }

    // Signal to visible price: competitor-match active; each observation undercuts the last.
    let wasm = common::rules::built_rule("competitor-match");
    let uploaded = client
        .post(format!("{base}/v1/rules"))
        .bearer_auth(&key)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let version = uploaded["version"].as_i64().unwrap();
    call(&client, reqwest::Method::POST, format!("{base}/v1/rules/{version}/activate"), &key, None).await;
    engine.settled().await;
    let mut latencies = Vec::new();
    for n in 0..200i64 {
        let competitor_price = 1900 - n;
        let observation = json!({"observations": [{"id": format!("o-{n}"), "sku": "sku-00001", "competitor": "rival",
            "price_minor": competitor_price, "currency": "EUR", "in_stock": true, "observed_at": chrono::Utc::now()}]});
        let started = Instant::now();
        call(&client, reqwest::Method::POST, format!("{base}/v1/signals/competitor-prices"), &key, Some(observation))
            .await;
        loop {
            let price = call(&client, reqwest::Method::GET, format!("{base}/v1/prices/sku-00001"), &key, None).await;
            if price["price_minor"].as_i64() == Some(competitor_price - 1) {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(started.elapsed().as_micros() as u64);
    }
    latencies.sort_unstable();
    println!(
        "signal to visible price: p50 {} us, p99 {} us ({} signals, SQLite)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    let group = "lookup";
    let p50 = percentile(&latencies, 0.5) as f64;
    report::figure(group, "signal to visible price p50 (SQLite)", p50, "µs", None, None);
    let p99 = percentile(&latencies, 0.99) as f64;
    report::figure(
        group,
        "signal to visible price p99 (SQLite)",
        p99,
        "µs",
        None,
        Some(report::Target::AtMost(5000.0)),
    );
}
