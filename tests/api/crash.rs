//! Repricing survives `kill -9`: the real `pricing` binary takes bursts of product changes and
//! competitor signals for several merchants while one merchant's catalogue reprices, and is
//! killed at a random moment, then restarted, round after round. Afterwards every change that
//! was acknowledged has been evaluated (the last decision of each product was made on its last
//! cost and the last parameters), no request was decided twice, and every chain verifies.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pricing::domain::MerchantId;
use pricing::store::{Store, StoredDecision};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, fresh_database};
use crate::process::Service;

const ROUNDS: u32 = 4;
const SMALL_SHOPS: usize = 3;
const SMALL_SKUS: usize = 30;
const BIG_SKUS: usize = 1_500;

/// A small deterministic generator, seeded from the clock or `CRASH_SEED` (the seed is in
/// every message).
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

struct Shop {
    merchant: String,
    key: String,
    skus: Vec<String>,
    version: i64,
}

/// What the clients were told, and what may have committed without an answer.
#[derive(Default)]
struct Ledger {
    /// Per (merchant, SKU): the last cost acknowledged, and a later one sent but unanswered.
    costs: HashMap<(String, String), (i64, Option<i64>)>,
    /// The big shop's margin: the last acknowledged, and one sent but unanswered.
    margin: (i64, Option<i64>),
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn call(
    address: &str,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Option<StatusCode> {
    let mut request = client().request(method, format!("{address}{path}")).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.ok().map(|r| r.status())
}

async fn shop(service: &Service, skus: usize, name: &str) -> Shop {
    let (merchant, key) = service.merchant_with_roles(name, &["merchant", "feed"]).await;
    let version = service.upload_rule(&key, "cost-plus").await;
    let skus: Vec<String> = (0..skus).map(|i| format!("sku-{i:05}")).collect();
    let writers = skus.chunks(skus.len().div_ceil(8)).map(|chunk| {
        let (address, key, chunk) = (service.address.clone(), key.clone(), chunk.to_vec());
        tokio::spawn(async move {
            for sku in chunk {
                let body = json!({"currency": "EUR", "cost_minor": 1000, "base_price_minor": 1999});
                let status =
                    call(&address, reqwest::Method::PUT, &format!("/v1/products/{sku}"), &key, Some(body)).await;
                assert_eq!(status, Some(StatusCode::CREATED));
            }
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.unwrap();
    }
    let params = json!({"margin_bps": 1000});
    let path = format!("/v1/rules/{version}/params");
    assert_eq!(call(&service.address, reqwest::Method::PUT, &path, &key, Some(params)).await, Some(StatusCode::OK));
    let path = format!("/v1/rules/{version}/activate");
    assert_eq!(call(&service.address, reqwest::Method::POST, &path, &key, None).await, Some(StatusCode::OK));
    Shop { merchant, key, skus, version }
}

/// Cost changes to a shop's products, one writer per shop (so each product's changes are in
/// order), each change with a competitor observation; ends at the first request that fails.
async fn churn(address: String, shop: Arc<Shop>, ledger: Arc<Mutex<Ledger>>, round: u32, seed: u64) {
    let mut dice = Dice(seed | 1);
    for n in 0..400u32 {
        let sku = shop.skus[dice.roll(shop.skus.len() as u64) as usize].clone();
        let cost = 1000 + i64::from(round) * 1000 + i64::from(n) + 1;
        let entry = (shop.merchant.clone(), sku.clone());
        ledger.lock().unwrap().costs.entry(entry.clone()).or_insert((1000, None)).1 = Some(cost);
        let body = json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": 1999});
        let path = format!("/v1/products/{sku}");
        match call(&address, reqwest::Method::PUT, &path, &shop.key, Some(body)).await {
            Some(status) if status.is_success() => {
                ledger.lock().unwrap().costs.insert(entry, (cost, None));
            }
            _ => return,
        }
        let observed_at = chrono::Utc::now().to_rfc3339();
        let signal = json!({"observations": [{"id": format!("{round}-{n}"), "sku": sku, "competitor": "rival",
                                               "price_minor": cost + 500, "currency": "EUR", "in_stock": true,
                                               "observed_at": observed_at}]});
        let posted =
            call(&address, reqwest::Method::POST, "/v1/signals/competitor-prices", &shop.key, Some(signal)).await;
        if !posted.is_some_and(|s| s.is_success()) {
            return;
        }
    }
}

async fn kill_nine_at_random_moments(backend: Backend) {
    // CRASH_SEED replays a failed run's choices (the kills' moments stay the machine's).
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64);
    let mut dice = Dice(seed | 1);
    let db = fresh_database(backend).await;
    // The default pool: the churn needs the connections to keep traffic flowing between kills.
    let env = [("PRICING_PRICING__BATCH_SIZE", "100".to_owned()), ("PRICING_STORE__MAX_CONNECTIONS", "16".to_owned())];
    let mut service = Service::start(&db, &env).await;
    let mut shops = Vec::new();
    for i in 0..SMALL_SHOPS {
        shops.push(Arc::new(shop(&service, SMALL_SKUS, &format!("small-{i}")).await));
    }
    let big = shop(&service, BIG_SKUS, "big").await;
    let ledger = Arc::new(Mutex::new(Ledger { margin: (1000, None), ..Ledger::default() }));

    let store = pricing::store::connect(&db.url, &pricing::config::Settings::defaults().store).await.unwrap();
    let mut killed_with_work = 0;
    for round in 0..ROUNDS {
        let writers: Vec<_> = shops
            .iter()
            .map(|s| {
                tokio::spawn(churn(service.address.clone(), s.clone(), ledger.clone(), round, dice.roll(u64::MAX)))
            })
            .collect();
        // A new margin for the big shop: its whole catalogue reprices while the others churn.
        let margin = 1100 + i64::from(round);
        ledger.lock().unwrap().margin.1 = Some(margin);
        let path = format!("/v1/rules/{}/params", big.version);
        let body = json!({"margin_bps": margin});
        if call(&service.address, reqwest::Method::PUT, &path, &big.key, Some(body)).await == Some(StatusCode::OK) {
            ledger.lock().unwrap().margin = (margin, None);
        }
        // Long enough for traffic to flow on a busy CI machine, at a random point within it.
        tokio::time::sleep(Duration::from_millis(300 + dice.roll(700))).await;
        service.kill9();
        for writer in writers {
            writer.await.unwrap();
        }
        killed_with_work += u32::from(store.has_work().await.unwrap());
        service = Service::start(&db, &env).await;
    }
    let context = format!("seed {seed}, {backend:?}");
    let acknowledged = ledger.lock().unwrap().costs.len();
    assert!(acknowledged > 20, "{context}: traffic was flowing ({acknowledged} products changed)");
    assert!(killed_with_work > 0, "{context}: no kill left work behind, so nothing was recovered");
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let pending = unfinished(&store, &shops, &big, &ledger).await;
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: acknowledged work never evaluated after the restarts: {:?}\n{}",
            &pending[..pending.len().min(10)],
            service.output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for shop in shops.iter().map(|s| s.as_ref()).chain([&big]) {
        let merchant: MerchantId = shop.merchant.parse().unwrap();
        let decisions = chain(&store, merchant).await;
        assert_no_request_decided_twice(&decisions, &context);
        let verified = verification(&service, &shop.key).await;
        assert_eq!(verified["intact"], true, "{context}: {verified}");
    }
}

/// The merchant's chain verification, as an auditor asks for it.
async fn verification(service: &Service, key: &str) -> Value {
    let response = client().get(format!("{}/v1/audit/verify", service.address)).bearer_auth(key).send().await.unwrap();
    response.json().await.unwrap()
}

async fn chain(store: &Store, merchant: MerchantId) -> Vec<StoredDecision> {
    let mut all = Vec::new();
    loop {
        let page = store.chain(merchant, all.last().map_or(0, |d: &StoredDecision| d.seq), 1000).await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// What is not yet as the acknowledged writes require: products whose last rule decision was
/// not made on their current cost, or (the big shop) with the current margin; and costs or a
/// margin that are neither the acknowledged nor the unanswered value.
async fn unfinished(store: &Store, shops: &[Arc<Shop>], big: &Shop, ledger: &Ledger) -> Vec<String> {
    let mut pending = Vec::new();
    for shop in shops.iter().map(|s| s.as_ref()).chain([big]) {
        let merchant: MerchantId = shop.merchant.parse().unwrap();
        let mut last: BTreeMap<String, Value> = BTreeMap::new();
        for d in chain(store, merchant).await.into_iter().filter(|d| d.rule_version.is_some()) {
            last.insert(d.sku.clone(), serde_json::from_str(&d.record).unwrap());
        }
        let margin = store.rule_version(merchant, shop.version).await.unwrap().unwrap().params["margin_bps"].clone();
        if std::ptr::eq(shop, big)
            && margin != json!(ledger.margin.0)
            && Some(margin.clone()) != ledger.margin.1.map(|m| json!(m))
        {
            panic!("the big shop's margin is {margin}, neither acknowledged nor sent: {:?}", ledger.margin);
        }
        for product in store.products(merchant, None, 10_000).await.unwrap() {
            let sku = product.sku.to_string();
            let cost = product.cost.minor();
            if let Some(&(acked, sent)) = ledger.costs.get(&(shop.merchant.clone(), sku.clone())) {
                assert!(cost == acked || Some(cost) == sent, "{sku}: cost {cost}, acknowledged {acked}, sent {sent:?}");
            }
            match last.get(&sku) {
                Some(record)
                    if record["inputs"]["cost_minor"] == json!(cost) && record["params"]["margin_bps"] == margin => {}
                other => pending.push(format!(
                    "{}/{sku}: cost {cost}, last decision {:?}",
                    shop.merchant,
                    other.map(|r| &r["inputs"]["cost_minor"])
                )),
            }
        }
    }
    pending
}

/// A request is answered by one decision: consecutive decisions of a product for a product
/// change never share the cost they were made on (each change sets a new cost), and a sweep
/// decides each product once for a set of parameters.
fn assert_no_request_decided_twice(decisions: &[StoredDecision], context: &str) {
    let mut seen: HashMap<(String, String, String), i64> = HashMap::new();
    for d in decisions.iter().filter(|d| d.rule_version.is_some()) {
        let record: Value = serde_json::from_str(&d.record).unwrap();
        let what = match d.trigger.as_str() {
            "product_changed" => record["inputs"]["cost_minor"].to_string(),
            "params_changed" | "rule_activated" => record["params"].to_string(),
            _ => continue,
        };
        let key = (d.sku.clone(), d.trigger.as_str().to_owned(), what);
        if let Some(earlier) = seen.insert(key.clone(), d.seq) {
            panic!("{context}: decisions {earlier} and {} answer one request {key:?}", d.seq);
        }
    }
}

both_backends! {
    kill_nine => kill_nine_at_random_moments;
}

/// Two `pricing` processes on one PostgreSQL database: the one repricing a catalogue is killed
/// with `kill -9` halfway through; the other takes the sweep over once its claim expires and
/// finishes it, deciding no page twice. A burst of changes sent to both is decided once per
/// change, and none is lost.
#[tokio::test]
async fn a_replica_killed_mid_sweep_leaves_its_work_to_the_other() {
    let db = fresh_database(Backend::Postgres).await;
    let env = [
        ("PRICING_PRICING__BATCH_SIZE", "50".to_owned()),
        ("PRICING_PRICING__LEASE_SECS", "2".to_owned()),
        ("PRICING_PRICING__POLL_MS", "100".to_owned()),
    ];
    let first = Service::start(&db, &env).await;
    let second = Service::start(&db, &env).await;
    let big = shop(&first, BIG_SKUS, "big").await;
    let store = pricing::store::connect(&db.url, &pricing::config::Settings::defaults().store).await.unwrap();
    let merchant: MerchantId = big.merchant.parse().unwrap();

    // A new margin, asked of the first replica, which starts the sweep at once.
    let path = format!("/v1/rules/{}/params", big.version);
    let body = json!({"margin_bps": 2000});
    assert_eq!(call(&first.address, reqwest::Method::PUT, &path, &big.key, Some(body)).await, Some(StatusCode::OK));
    let deadline = Instant::now() + Duration::from_secs(60);
    let rule_decisions =
        |decisions: &[StoredDecision]| decisions.iter().filter(|d| d.trigger.as_str() == "params_changed").count();
    loop {
        let done = rule_decisions(&chain(&store, merchant).await);
        if done >= 200 {
            assert!(done < BIG_SKUS, "the sweep ended before the kill; use a larger catalogue");
            break;
        }
        assert!(Instant::now() < deadline, "the sweep did not start:\n{}", first.output());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill9();

    // A burst to the survivor while it waits out the dead replica's claim.
    let mut acknowledged = HashMap::new();
    for i in 0..40 {
        let sku = &big.skus[i * 7];
        let body = json!({"currency": "EUR", "cost_minor": 1234 + i as i64, "base_price_minor": 1999});
        let status =
            call(&second.address, reqwest::Method::PUT, &format!("/v1/products/{sku}"), &big.key, Some(body)).await;
        assert_eq!(status, Some(StatusCode::OK));
        acknowledged.insert(sku.clone(), 1234 + i as i64);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let decisions = chain(&store, merchant).await;
        let mut last: HashMap<&str, Value> = HashMap::new();
        for d in decisions.iter().filter(|d| d.rule_version.is_some()) {
            last.insert(d.sku.as_str(), serde_json::from_str(&d.record).unwrap());
        }
        let finished = big.skus.iter().all(|sku| {
            last.get(sku.as_str()).is_some_and(|r| {
                r["params"]["margin_bps"] == json!(2000)
                    && acknowledged.get(sku).is_none_or(|cost| r["inputs"]["cost_minor"] == json!(cost))
            })
        });
        if finished {
            assert_no_request_decided_twice(&decisions, "replicas");
            break;
        }
        assert!(Instant::now() < deadline, "the surviving replica did not finish the sweep:\n{}", second.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let verified = verification(&second, &big.key).await;
    assert_eq!(verified["intact"], true, "{verified}");
}
