//! The store test suite: one set of tests run against both backends (an SQLite file and a
//! PostgreSQL database, fresh for each test). Catalogue writes go through the write side's
//! transactions (`write::catalogue`), which compose the store's product, price and chain rows.

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;

use common::{Backend, fresh_database};
use pricing::auth::{self, Role, Roles};
use pricing::config::Settings;
use pricing::domain::{GuardrailsInput, MerchantId, Product, ProductDraft, Sku};
use pricing::store::{self, NewRuleVersion, Store, StoreError, Upserted};
use pricing::write::catalogue;
use serde_json::{Map, Value, json};

async fn open(backend: Backend) -> Arc<Store> {
    let db = fresh_database(backend).await;
    Arc::new(store::connect(&db.url, &Settings::defaults().store).await.expect("a fresh database opens and migrates"))
}

/// Creates or replaces a product as the service does (with its price event and base price).
async fn upsert(store: &Store, merchant: MerchantId, draft: &ProductDraft) -> Result<(Product, Upserted), StoreError> {
    catalogue::put(store, merchant, draft, &pricing::write::Gate::open())
        .await
        .map(|(product, upserted, _)| (product, upserted))
}

async fn delete(store: &Store, merchant: MerchantId, sku: &Sku) -> Result<bool, StoreError> {
    catalogue::delete(store, merchant, sku, &pricing::write::Gate::open()).await
}

/// Rule changes in a transaction of their own (the service makes them through the write side,
/// with the repricing they call for).
async fn set_rule_params(
    store: &Store,
    merchant: MerchantId,
    version: i64,
    params: &Map<String, Value>,
) -> Result<Option<store::RuleVersion>, StoreError> {
    let mut tx = store.begin().await?;
    let updated = store::rules::set_params(&mut tx, merchant, version, params).await?;
    tx.commit().await?;
    Ok(updated)
}

async fn activate_rule(store: &Store, merchant: MerchantId, version: i64) -> Result<store::Activation, StoreError> {
    let mut tx = store.begin().await?;
    let activation = store::rules::activate(&mut tx, merchant, version).await?;
    tx.commit().await?;
    Ok(activation)
}

async fn roll_back_rule(store: &Store, merchant: MerchantId) -> Result<store::Activation, StoreError> {
    let mut tx = store.begin().await?;
    let activation = store::rules::roll_back(&mut tx, merchant).await?;
    tx.commit().await?;
    Ok(activation)
}

/// Signals in a transaction of their own (the service records them through the write side,
/// with the repricing they call for).
async fn record_observations(
    store: &Store,
    merchant: MerchantId,
    observations: &[store::Observation],
) -> Result<Vec<Sku>, StoreError> {
    let mut tx = store.begin().await?;
    let changed = store::signals::record_observations(&mut tx, merchant, observations).await?;
    tx.commit().await?;
    Ok(changed)
}

async fn record_demand(
    store: &Store,
    merchant: MerchantId,
    events: &[store::DemandEvent],
) -> Result<Vec<Sku>, StoreError> {
    let mut tx = store.begin().await?;
    let changed = store::signals::record_demand(&mut tx, merchant, events).await?;
    tx.commit().await?;
    Ok(changed)
}

fn draft(sku: &str, currency: &str, cost: i64, base: i64) -> ProductDraft {
    draft_with(sku, currency, cost, base, json!({}), json!({}))
}

fn draft_with(sku: &str, currency: &str, cost: i64, base: i64, guardrails: Value, attributes: Value) -> ProductDraft {
    let guardrails: GuardrailsInput = serde_json::from_value(guardrails).unwrap();
    let attributes: Map<String, Value> = serde_json::from_value(attributes).unwrap();
    ProductDraft::parse(Sku::parse(sku).unwrap(), currency, cost, base, guardrails, attributes).unwrap()
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

async fn a_store_reports_its_backend_and_answers_pings(backend: Backend) {
    let store = open(backend).await;
    store.ping().await.unwrap();
    assert_eq!(store.backend().as_str(), if backend == Backend::Sqlite { "sqlite" } else { "postgres" });
}

async fn opening_an_already_migrated_database_again_works(backend: Backend) {
    let db = fresh_database(backend).await;
    let settings = Settings::defaults().store;
    let first = store::connect(&db.url, &settings).await.unwrap();
    let merchant = first.create_merchant("Acme").await.unwrap();
    first.close().await;
    let second = store::connect(&db.url, &settings).await.unwrap();
    assert_eq!(second.merchant(merchant.id).await.unwrap(), Some(merchant));
}

async fn merchants_round_trip(backend: Backend) {
    let store = open(backend).await;
    let created = store.create_merchant("Acme GmbH").await.unwrap();
    assert_eq!(store.merchant(created.id).await.unwrap(), Some(created));
    assert_eq!(store.merchant(MerchantId::generate()).await.unwrap(), None);
}

async fn keys_round_trip_and_revoke_idempotently(backend: Backend) {
    let store = open(backend).await;
    let merchant = store.create_merchant("Acme").await.unwrap();
    let issued = auth::issue(Some(merchant.id), Roles::of(&[Role::Merchant, Role::Checkout]), Some("pos".into()));
    store.insert_key(&issued.stored).await.unwrap();
    assert_eq!(store.key(issued.stored.id).await.unwrap(), Some(issued.stored.clone()));

    let revoked = store.revoke_key(Some(merchant.id), issued.stored.id).await.unwrap().unwrap();
    let first_revocation = revoked.revoked_at.expect("revoked");
    let again = store.revoke_key(Some(merchant.id), issued.stored.id).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(first_revocation), "a second revocation keeps the first time");

    let other = store.create_merchant("Other").await.unwrap();
    assert_eq!(store.revoke_key(Some(other.id), issued.stored.id).await.unwrap(), None);
    assert_eq!(store.revoke_key(None, issued.stored.id).await.unwrap(), None);
}

async fn keys_are_listed_per_merchant_and_admin_keys_are_counted(backend: Backend) {
    let store = open(backend).await;
    let a = store.create_merchant("A").await.unwrap();
    let b = store.create_merchant("B").await.unwrap();
    for _ in 0..3 {
        store.insert_key(&auth::issue(Some(a.id), Roles::of(&[Role::Feed]), None).stored).await.unwrap();
    }
    store.insert_key(&auth::issue(Some(b.id), Roles::of(&[Role::Feed]), None).stored).await.unwrap();
    assert_eq!(store.count_active_admin_keys().await.unwrap(), 0);
    let admin = auth::issue(None, Roles::of(&[Role::Admin]), None);
    store.insert_key(&admin.stored).await.unwrap();

    assert_eq!(store.keys(Some(a.id)).await.unwrap().len(), 3);
    assert_eq!(store.keys(Some(b.id)).await.unwrap().len(), 1);
    assert_eq!(store.keys(None).await.unwrap(), vec![admin.stored.clone()]);
    assert_eq!(store.count_active_admin_keys().await.unwrap(), 1);
    store.revoke_key(None, admin.stored.id).await.unwrap();
    assert_eq!(store.count_active_admin_keys().await.unwrap(), 0);
}

async fn an_upsert_creates_then_updates_then_changes_nothing(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    let first = draft_with("tee-1", "EUR", 1200, 1999, json!({"floor_minor": 1300}), json!({"brand": "acme"}));
    let (created, outcome) = upsert(&store, m, &first).await.unwrap();
    assert_eq!(outcome, Upserted::Created);
    assert_eq!((created.version, created.cost.minor(), created.base_price.minor()), (1, 1200, 1999));
    assert_eq!(created.guardrails.floor_minor(), Some(1300));
    assert_eq!(store.product(m, &sku("tee-1")).await.unwrap(), Some(created.clone()));

    let (same, outcome) = upsert(&store, m, &first).await.unwrap();
    assert_eq!(outcome, Upserted::Unchanged);
    assert_eq!(same, created);

    let (updated, outcome) = upsert(&store, m, &draft("tee-1", "EUR", 1250, 1999)).await.unwrap();
    assert_eq!(outcome, Upserted::Updated);
    assert_eq!((updated.version, updated.cost.minor()), (2, 1250));
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.guardrails.floor_minor().is_none(), "a PUT replaces the guardrails");
}

async fn a_products_currency_cannot_change_and_nothing_is_written(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    let (original, _) = upsert(&store, m, &draft("tee-1", "EUR", 1200, 1999)).await.unwrap();
    let err = upsert(&store, m, &draft("tee-1", "JPY", 120, 1980)).await.unwrap_err();
    assert!(matches!(err, StoreError::CurrencyMismatch { existing, .. } if existing.code() == "EUR"), "{err}");
    assert_eq!(store.product(m, &sku("tee-1")).await.unwrap(), Some(original));
    assert_eq!(store.current_price(m, &sku("tee-1")).await.unwrap().unwrap().price.minor(), 1999);
}

async fn the_base_price_stays_in_force_and_follows_changes(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    upsert(&store, m, &draft("tee-1", "JPY", 1000, 1980)).await.unwrap();
    let price = store.current_price(m, &sku("tee-1")).await.unwrap().unwrap();
    assert_eq!((price.price.minor(), price.price.currency().code(), price.version), (1980, "JPY", 1));

    // A cost change leaves the price alone.
    upsert(&store, m, &draft("tee-1", "JPY", 1100, 1980)).await.unwrap();
    assert_eq!(store.current_price(m, &sku("tee-1")).await.unwrap().unwrap().version, 1);

    upsert(&store, m, &draft("tee-1", "JPY", 1100, 2480)).await.unwrap();
    let moved = store.current_price(m, &sku("tee-1")).await.unwrap().unwrap();
    assert_eq!((moved.price.minor(), moved.version), (2480, 2));
    assert!(moved.effective_at >= price.effective_at);
}

async fn products_page_in_byte_order_without_gaps_or_repeats(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    let skus = ["b", "A", "a", "B", "a-1", "a.1", "a:1", "a_1", "Z9", "0"];
    for s in skus {
        upsert(&store, m, &draft(s, "EUR", 1, 2)).await.unwrap();
    }
    let mut expected: Vec<&str> = skus.to_vec();
    expected.sort_unstable(); // byte order, on both backends
    let mut seen = Vec::new();
    let mut after: Option<Sku> = None;
    loop {
        let page = store.products(m, after.as_ref(), 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().sku.clone());
        seen.extend(page.into_iter().map(|p| p.sku.to_string()));
    }
    assert_eq!(seen, expected);
}

async fn products_belong_to_their_merchant_only(backend: Backend) {
    let store = open(backend).await;
    let a = store.create_merchant("A").await.unwrap().id;
    let b = store.create_merchant("B").await.unwrap().id;
    upsert(&store, a, &draft("shared-sku", "EUR", 1, 100)).await.unwrap();
    upsert(&store, b, &draft("shared-sku", "USD", 1, 200)).await.unwrap();
    assert_eq!(store.product(a, &sku("shared-sku")).await.unwrap().unwrap().base_price.minor(), 100);
    assert_eq!(store.product(b, &sku("shared-sku")).await.unwrap().unwrap().base_price.minor(), 200);
    assert_eq!(store.products(a, None, 10).await.unwrap().len(), 1);
    assert!(delete(&store, a, &sku("shared-sku")).await.unwrap());
    assert!(store.product(b, &sku("shared-sku")).await.unwrap().is_some());
}

async fn a_deleted_product_and_its_price_are_gone(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    upsert(&store, m, &draft("tee-1", "EUR", 1, 2)).await.unwrap();
    assert!(delete(&store, m, &sku("tee-1")).await.unwrap());
    assert_eq!(store.product(m, &sku("tee-1")).await.unwrap(), None);
    assert_eq!(store.current_price(m, &sku("tee-1")).await.unwrap(), None);
    assert!(!delete(&store, m, &sku("tee-1")).await.unwrap(), "deleting twice finds nothing");
    // The SKU can be created again, from version 1.
    let (again, outcome) = upsert(&store, m, &draft("tee-1", "USD", 1, 3)).await.unwrap();
    assert_eq!((outcome, again.version), (Upserted::Created, 1));
}

async fn concurrent_writers_to_one_product_lose_no_update(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    upsert(&store, m, &draft("hot", "EUR", 0, 1)).await.unwrap();
    let writers = (1..=20).map(|cost| {
        let store = store.clone();
        tokio::spawn(async move { upsert(&store, m, &draft("hot", "EUR", cost, 1)).await })
    });
    for writer in writers {
        writer.await.unwrap().expect("every concurrent write succeeds");
    }
    assert_eq!(store.product(m, &sku("hot")).await.unwrap().unwrap().version, 21, "each write bumped the version once");
}

fn code<'a>(sha: &'a str, wasm: &'a [u8]) -> NewRuleVersion<'a> {
    NewRuleVersion {
        sha256: sha,
        wasm,
        component: b"component",
        artifact: b"artifact",
        compile_ms: 12,
        params_schema: None,
        stock: None,
    }
}

async fn rule_versions_number_from_one_and_the_same_bytes_are_one_version(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    let (v1, created) = store.insert_rule_version(m, &code("aa", b"one")).await.unwrap();
    assert!(created);
    assert_eq!((v1.version, v1.size_bytes, v1.compile_ms), (1, 3, 12));
    assert!(v1.params.is_empty());
    let (v2, _) = store.insert_rule_version(m, &code("bb", b"two!")).await.unwrap();
    assert_eq!(v2.version, 2);
    let (again, created) = store.insert_rule_version(m, &code("aa", b"one")).await.unwrap();
    assert!(!created);
    assert_eq!(again, v1);
    assert_eq!(store.rule_versions(m).await.unwrap(), vec![v1.clone(), v2]);
    let stored = store.rule_code(m, 1).await.unwrap().unwrap();
    assert_eq!((stored.component.as_slice(), stored.artifact.as_slice()), (&b"component"[..], &b"artifact"[..]));
    // Another merchant numbers its own versions and sees none of these.
    let other = store.create_merchant("Other").await.unwrap().id;
    assert_eq!(store.rule_version(other, 1).await.unwrap(), None);
    assert_eq!(store.insert_rule_version(other, &code("aa", b"one")).await.unwrap().0.version, 1);
}

async fn concurrent_uploads_get_distinct_versions(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    let uploads = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let sha = format!("sha-{i}");
            store.insert_rule_version(m, &code(&sha, b"x")).await.map(|(v, _)| v.version)
        })
    });
    let mut versions = Vec::new();
    for upload in uploads {
        versions.push(upload.await.unwrap().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
}

async fn parameters_are_set_per_version(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    store.insert_rule_version(m, &code("aa", b"one")).await.unwrap();
    let params: Map<String, Value> = serde_json::from_value(json!({"margin_bps": 2500, "label": "x"})).unwrap();
    let updated = set_rule_params(&store, m, 1, &params).await.unwrap().unwrap();
    assert_eq!(updated.params, params);
    assert_eq!(store.rule_version(m, 1).await.unwrap().unwrap().params, params);
    assert_eq!(set_rule_params(&store, m, 9, &params).await.unwrap(), None);
}

/// Retries queued after failures of the service's own are taken over by a sweep that starts
/// (it evaluates every product under the active rule), so a product is not decided again after
/// the sweep passed it; fresh requests stay queued, and a schedule that finds a sweep pending
/// leaves the retries behind its position alone.
async fn a_starting_sweep_takes_over_queued_retries(backend: Backend) {
    use pricing::domain::Trigger;
    use store::work;
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    store.insert_rule_version(m, &code("aa", b"one")).await.unwrap();
    activate_rule(&store, m, 1).await.unwrap();
    let (fresh, failed) = (sku("fresh"), sku("failed"));
    let now = chrono::Utc::now();
    let queued = |store: Arc<Store>| async move {
        let mut skus: Vec<String> = store
            .claim_intents(m, "look", chrono::Utc::now() + chrono::Duration::hours(1), chrono::Utc::now(), 100)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.sku.to_string())
            .collect();
        store.release_intents(m, "look", None, false).await.unwrap();
        skus.sort();
        skus
    };
    let mut tx = store.begin().await.unwrap();
    work::request(&mut tx, m, &[fresh.clone(), failed.clone()], Trigger::ProductChanged, now).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.claim_intents(m, "worker", now, now + chrono::Duration::minutes(1), 100).await.unwrap().len(), 2);
    let mut tx = store.begin().await.unwrap();
    work::retry_later(&mut tx, m, "worker", std::slice::from_ref(&failed), Trigger::ProductChanged, now).await.unwrap();
    tx.commit().await.unwrap();
    store.release_intents(m, "worker", None, false).await.unwrap();
    assert_eq!(queued(store.clone()).await, ["failed", "fresh"]);

    let mut tx = store.begin().await.unwrap();
    work::request_sweep(&mut tx, m, Trigger::ParamsChanged, true, now).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(queued(store.clone()).await, ["fresh"], "the sweep evaluates the failed product");

    // A retry behind a pending sweep's position stays when the schedule finds the sweep.
    assert!(store.claim_intents(m, "worker", now, now + chrono::Duration::minutes(1), 100).await.unwrap().len() == 1);
    let mut tx = store.begin().await.unwrap();
    work::retry_later(&mut tx, m, "worker", std::slice::from_ref(&fresh), Trigger::ParamsChanged, now).await.unwrap();
    work::request_sweep(&mut tx, m, Trigger::Schedule, false, now).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(queued(store.clone()).await, ["fresh"]);
}

async fn activation_and_rollback_walk_the_history(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    for sha in ["a", "b", "c"] {
        store.insert_rule_version(m, &code(sha, b"x")).await.unwrap();
    }
    assert_eq!(store.active_rule(m).await.unwrap(), None);
    assert!(matches!(roll_back_rule(&store, m).await, Err(StoreError::NothingToRollBack)));
    assert!(matches!(activate_rule(&store, m, 4).await, Err(StoreError::UnknownRuleVersion(4))));

    for version in [1, 2, 3] {
        assert_eq!(activate_rule(&store, m, version).await.unwrap().version, version);
    }
    let again = activate_rule(&store, m, 3).await.unwrap();
    assert_eq!((again.version, again.seq), (3, 3), "activating the active version changes nothing");

    let back = roll_back_rule(&store, m).await.unwrap();
    assert_eq!((back.version, back.kind.as_str()), (2, "rollback"));
    assert_eq!(roll_back_rule(&store, m).await.unwrap().version, 1);
    assert!(matches!(roll_back_rule(&store, m).await, Err(StoreError::NothingToRollBack)));
    assert_eq!(store.active_rule(m).await.unwrap().unwrap().version, 1);

    // A new activation after rollbacks can itself be rolled back.
    activate_rule(&store, m, 3).await.unwrap();
    assert_eq!(roll_back_rule(&store, m).await.unwrap().version, 1);
}

async fn prices_in_force_page_across_merchants_in_key_order(backend: Backend) {
    let store = open(backend).await;
    let mut expected = Vec::new();
    for name in ["A", "B", "C"] {
        let m = store.create_merchant(name).await.unwrap().id;
        for s in ["x", "Y", "z-1"] {
            upsert(&store, m, &draft(s, "EUR", 1, 5)).await.unwrap();
            expected.push((m.to_string(), s.to_owned()));
        }
    }
    expected.sort();
    let mut seen = Vec::new();
    let mut after: Option<(MerchantId, Sku)> = None;
    loop {
        let page = store.current_prices_after(after.as_ref().map(|(m, s)| (*m, s)), 4).await.unwrap();
        let Some((m, last)) = page.last() else { break };
        after = Some((*m, last.sku.clone()));
        seen.extend(page.into_iter().map(|(m, p)| (m.to_string(), p.sku.to_string())));
    }
    assert_eq!(seen, expected);
}

async fn signals_are_read_for_a_range_of_skus(backend: Backend) {
    use chrono::{Duration, Utc};
    use pricing::domain::{Currency, Money};
    use pricing::store::{DemandEvent, DemandKind, Observation};
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    for s in ["a", "b", "c"] {
        upsert(&store, m, &draft(s, "EUR", 1, 500)).await.unwrap();
    }
    let now = Utc::now();
    let eur = Currency::parse("EUR").unwrap();
    let offer = |id: &str, s: &str, who: &str, price: i64, minutes_ago: i64| Observation {
        id: id.into(),
        sku: sku(s),
        competitor: who.into(),
        price: Money::new(price, eur),
        in_stock: true,
        observed_at: now - Duration::minutes(minutes_ago),
    };
    let changed = record_observations(
        &store,
        m,
        &[
            offer("1", "a", "x", 100, 10),
            offer("2", "a", "x", 90, 5),
            offer("3", "b", "y", 80, 5),
            offer("4", "c", "z", 70, 5),
        ],
    )
    .await
    .unwrap();
    assert_eq!(changed, [sku("a"), sku("b"), sku("c")]);
    assert!(
        record_observations(&store, m, &[offer("0", "a", "x", 999, 60)]).await.unwrap().is_empty(),
        "older: ignored"
    );
    let event = |id: &str, s: &str, kind, quantity, days_ago: i64| DemandEvent {
        id: id.into(),
        sku: sku(s),
        kind,
        quantity,
        occurred_at: now - Duration::days(days_ago) - Duration::minutes(1),
    };
    let events = [
        event("s1", "a", DemandKind::Sale, 2, 0),
        event("s2", "a", DemandKind::Sale, 3, 3),
        event("s3", "a", DemandKind::Sale, 4, 20),
        event("s4", "a", DemandKind::Sale, 100, 40),
        event("v1", "a", DemandKind::View, 7, 0),
        event("i1", "a", DemandKind::Inventory, 50, 5),
        event("i2", "a", DemandKind::Inventory, 40, 1),
        event("s5", "c", DemandKind::Sale, 1, 0),
    ];
    assert_eq!(record_demand(&store, m, &events).await.unwrap().len(), 2);
    assert!(record_demand(&store, m, &events).await.unwrap().is_empty(), "replayed: nothing new");

    let signals = store.signals_between(m, &sku("a"), &sku("b"), now).await.unwrap();
    assert_eq!(signals.prices.len(), 2, "c is outside the range");
    assert_eq!(signals.observations[&sku("a")].len(), 1);
    assert_eq!(signals.observations[&sku("a")][0].price.minor(), 90, "the latest observation");
    let a = &signals.demand[&sku("a")];
    assert_eq!((a.units_sold_1d, a.units_sold_7d, a.units_sold_30d, a.views_1d), (2, 5, 9, 7));
    assert_eq!(a.inventory, Some(40), "the latest inventory level");
    assert!(!signals.demand.contains_key(&sku("c")));
    let one = store.signals_between(m, &sku("c"), &sku("c"), now).await.unwrap();
    assert_eq!((one.prices.len(), one.demand[&sku("c")].units_sold_1d), (1, 1));
}

/// Demand is counted into hourly buckets: however many events a SKU has, its windows read a
/// bounded number of rows; a replay never counts twice; what no window and no deduplication
/// needs is pruned.
async fn demand_is_counted_in_hourly_buckets_once_and_pruned(backend: Backend) {
    use chrono::{Duration, Utc};
    use pricing::store::{DemandEvent, DemandKind};

    let db = fresh_database(backend).await;
    let store = store::connect(&db.url, &Settings::defaults().store).await.unwrap();
    let m = store.create_merchant("Acme").await.unwrap().id;
    let now = Utc::now();
    let view = |i: usize, minutes_ago: i64| DemandEvent {
        id: format!("v-{i}"),
        sku: sku("hot"),
        kind: DemandKind::View,
        quantity: 1,
        occurred_at: now - Duration::minutes(minutes_ago),
    };
    let events: Vec<DemandEvent> = (0..3_000).map(|i| view(i, (i % 120) as i64)).collect();
    for chunk in events.chunks(500) {
        record_demand(&store, m, chunk).await.unwrap();
    }
    assert!(record_demand(&store, m, &events[..1_000]).await.unwrap().is_empty(), "a replay counts nothing");
    let buckets = crate::common::scalar(&db, "SELECT COUNT(*) FROM demand_buckets WHERE sku = 'hot'").await;
    assert!(buckets <= 3, "3,000 events over two hours are {buckets} counters");
    let signals = store.signals_between(m, &sku("hot"), &sku("hot"), now).await.unwrap();
    assert_eq!(signals.demand[&sku("hot")].views_1d, 3_000);

    // 33 days old: past every window, still deduplicated; 36 days: past the deduplication
    // window, so not counted at all.
    let old = |id: &str, days: i64| DemandEvent {
        id: id.into(),
        sku: sku("old"),
        kind: DemandKind::Sale,
        quantity: 5,
        occurred_at: now - Duration::days(days),
    };
    assert_eq!(record_demand(&store, m, &[old("o-33", 33)]).await.unwrap(), [sku("old")]);
    assert!(record_demand(&store, m, &[old("o-36", 36)]).await.unwrap().is_empty(), "too old to count");
    let signals = store.signals_between(m, &sku("old"), &sku("old"), now).await.unwrap();
    assert!(!signals.demand.contains_key(&sku("old")), "outside every window");
    assert!(store.prune_demand(now).await.unwrap() >= 1);
    assert_eq!(
        crate::common::scalar(&db, "SELECT COUNT(*) FROM demand_buckets WHERE sku = 'old'").await,
        0,
        "its counter is gone"
    );
    assert!(record_demand(&store, m, &[old("o-33", 33)]).await.unwrap().is_empty(), "its id still deduplicates");
    store.prune_demand(now + Duration::days(3)).await.unwrap();
    assert_eq!(crate::common::scalar(&db, "SELECT COUNT(*) FROM demand_event_ids WHERE event_id = 'o-33'").await, 0);
    assert_eq!(
        crate::common::scalar(&db, "SELECT COUNT(*) FROM demand_event_ids WHERE event_id LIKE 'v-%'").await,
        3_000,
        "recent ids stay"
    );
    store.close().await;
}

/// The bulk writes of signals against a model that applies every signal in order, one at a
/// time: random batches (repeated ids, ties, older and newer offers, inventory levels at the
/// same instant, counted events past the deduplication window) leave the same offers, demand
/// figures and inventory levels, and report the same SKUs as changed.
async fn bulk_signal_writes_match_writing_one_signal_at_a_time(backend: Backend) {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use chrono::{Duration, Utc};
    use pricing::domain::{Currency, Money};
    use pricing::store::{DemandEvent, DemandKind, Observation};

    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    let now = Utc::now() - Duration::minutes(1);
    let eur = Currency::parse("EUR").unwrap();
    let mut rng = XorShift(0x5eed_0f51_67a1);
    // (sku, competitor) -> (price, observed_at micros, id): the latest wins, ties keep the first.
    let mut offers: BTreeMap<(String, String), (i64, i64, String)> = BTreeMap::new();
    let mut seen_ids: BTreeSet<String> = BTreeSet::new();
    // sku -> every counted event (kind, micros, quantity) that counted.
    let mut counted: HashMap<String, Vec<(DemandKind, i64, i64)>> = HashMap::new();
    let mut levels: BTreeMap<String, (i64, String, i64)> = BTreeMap::new();
    let skus = ["a", "b", "c", "d", "e"];
    for round in 0..12 {
        let mut observations = Vec::new();
        let mut expected_changed = BTreeSet::new();
        for i in 0..(1 + rng.below(400)) {
            let sku_name = skus[rng.below(skus.len() as u64) as usize];
            // Quotes and backslashes travel inside PostgreSQL array literals.
            let competitor = format!("shop \"{}\\", rng.below(4));
            let at = (now - Duration::seconds(rng.below(50) as i64 * 60)).timestamp_micros();
            let price = 100 + rng.below(900) as i64;
            let id = format!("o-{round}-{i}");
            let key = (sku_name.to_owned(), competitor.clone());
            if offers.get(&key).is_none_or(|(_, stored, _)| at > *stored) {
                offers.insert(key, (price, at, id.clone()));
                expected_changed.insert(sku_name.to_owned());
            }
            observations.push(Observation {
                id,
                sku: sku(sku_name),
                competitor,
                price: Money::new(price, eur),
                in_stock: rng.below(2) == 0,
                observed_at: chrono::DateTime::from_timestamp_micros(at).unwrap(),
            });
        }
        let changed = record_observations(&store, m, &observations).await.unwrap();
        let changed: BTreeSet<String> = changed.iter().map(|s| s.as_str().to_owned()).collect();
        assert_eq!(changed, expected_changed, "round {round}: SKUs whose offers changed");

        let mut events = Vec::new();
        let mut expected_changed = BTreeSet::new();
        for _ in 0..(1 + rng.below(600)) {
            let sku_name = skus[rng.below(skus.len() as u64) as usize];
            let kind = [DemandKind::View, DemandKind::AddToCart, DemandKind::Sale, DemandKind::Inventory]
                [rng.below(4) as usize];
            // Ids repeat across and within batches; some events are older than every window.
            let id = format!("e-{}", rng.below(1_500));
            let days_ago = if rng.below(20) == 0 { 36 } else { rng.below(31) as i64 };
            let at = (now - Duration::days(days_ago) - Duration::minutes(rng.below(600) as i64)).timestamp_micros();
            let quantity = rng.below(50) as i64;
            if kind == DemandKind::Inventory {
                if levels.get(sku_name).is_none_or(|(stored, stored_id, _)| (at, &id) > (*stored, stored_id)) {
                    levels.insert(sku_name.to_owned(), (at, id.clone(), quantity));
                    expected_changed.insert(sku_name.to_owned());
                }
            } else if days_ago < 35 && seen_ids.insert(id.clone()) {
                counted.entry(sku_name.to_owned()).or_default().push((kind, at, quantity));
                expected_changed.insert(sku_name.to_owned());
            }
            events.push(DemandEvent {
                id,
                sku: sku(sku_name),
                kind,
                quantity,
                occurred_at: chrono::DateTime::from_timestamp_micros(at).unwrap(),
            });
        }
        let changed = record_demand(&store, m, &events).await.unwrap();
        let changed: BTreeSet<String> = changed.iter().map(|s| s.as_str().to_owned()).collect();
        assert_eq!(changed, expected_changed, "round {round}: SKUs whose demand changed");
    }

    let signals = store.signals_between(m, &sku("a"), &sku("e"), Utc::now()).await.unwrap();
    for ((sku_name, competitor), (price, at, id)) in &offers {
        let stored = signals.observations[&sku(sku_name)].iter().find(|o| &o.competitor == competitor).unwrap();
        assert_eq!(
            (stored.price.minor(), stored.observed_at.timestamp_micros(), &stored.id),
            (*price, *at, id),
            "{sku_name}/{competitor}"
        );
    }
    let stored_offers: usize = signals.observations.values().map(Vec::len).sum();
    assert_eq!(stored_offers, offers.len());
    for sku_name in skus {
        let expected = brute_force_demand(counted.get(sku_name).map_or(&[][..], Vec::as_slice), Utc::now());
        let mut got = signals.demand.get(&sku(sku_name)).cloned().unwrap_or_default();
        assert_eq!(got.inventory, levels.get(sku_name).map(|(_, _, quantity)| *quantity), "{sku_name}: inventory");
        got.inventory = None;
        assert_eq!(got, expected, "{sku_name}: demand figures");
    }
}

/// What the demand windows hold, summed from the events themselves: a window of D days is the
/// last D x 24 hourly buckets, the one `now` falls in included.
fn brute_force_demand(
    events: &[(pricing::store::DemandKind, i64, i64)],
    now: chrono::DateTime<chrono::Utc>,
) -> pricing::store::DemandSummary {
    use pricing::store::DemandKind;
    const HOUR: i64 = 3_600_000_000;
    let current = now.timestamp_micros().div_euclid(HOUR);
    let mut summary = pricing::store::DemandSummary::default();
    for &(kind, at, quantity) in events {
        let hours_ago = current - at.div_euclid(HOUR);
        let within = |days: i64| (0..days * 24).contains(&hours_ago);
        let sum = |total: &mut i64, days: i64| {
            if within(days) {
                *total += quantity;
            }
        };
        match kind {
            DemandKind::View => {
                sum(&mut summary.views_1d, 1);
                sum(&mut summary.views_7d, 7);
            }
            DemandKind::AddToCart => {
                sum(&mut summary.add_to_carts_1d, 1);
                sum(&mut summary.add_to_carts_7d, 7);
            }
            DemandKind::Sale => {
                sum(&mut summary.units_sold_1d, 1);
                sum(&mut summary.units_sold_7d, 7);
                sum(&mut summary.units_sold_30d, 30);
            }
            DemandKind::Inventory => {}
        }
    }
    summary
}

/// A SKU with hundreds of thousands of demand events (a popular product's month) gets the
/// figures a brute-force sum over its events gives, read from its hourly counters.
async fn a_large_demand_history_sums_like_brute_force(backend: Backend) {
    use chrono::{Duration, Utc};
    use pricing::store::{DemandEvent, DemandKind};

    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    let now = Utc::now() - Duration::minutes(1);
    let mut rng = XorShift(0xdead_beef_1234);
    let mut events = Vec::with_capacity(300_000);
    let mut model = Vec::with_capacity(300_000);
    for i in 0..300_000 {
        let kind = match rng.below(10) {
            0 => DemandKind::Sale,
            1 | 2 => DemandKind::AddToCart,
            _ => DemandKind::View,
        };
        let at = (now - Duration::seconds(rng.below(34 * 86_400) as i64)).timestamp_micros();
        let quantity = 1 + rng.below(3) as i64;
        model.push((kind, at, quantity));
        events.push(DemandEvent {
            id: format!("ev-{i}"),
            sku: sku("hot"),
            kind,
            quantity,
            occurred_at: chrono::DateTime::from_timestamp_micros(at).unwrap(),
        });
    }
    for chunk in events.chunks(20_000) {
        record_demand(&store, m, chunk).await.unwrap();
    }
    let read_at = Utc::now();
    let signals = store.signals_between(m, &sku("hot"), &sku("hot"), read_at).await.unwrap();
    let mut got = signals.demand[&sku("hot")].clone();
    got.inventory = None;
    assert_eq!(got, brute_force_demand(&model, read_at));
    assert!(got.views_7d > 40_000, "a busy week: {got:?}");
}

/// A small deterministic generator, so a failing history can be reproduced from its seed.
struct XorShift(u64);

/// Changes of one SKU: (hour, price after it; `None` for a deletion).
type Timeline = Vec<(i64, Option<i64>)>;

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random price histories written straight into the decisions table (changes on whole hours
/// over 90 days: several a day, several in one hour, deletions), then the store's price at an
/// instant and prior price compared with a brute-force scan of every hour.
async fn the_prior_price_and_the_price_at_an_instant_match_a_brute_force_scan(backend: Backend) {
    let db = fresh_database(backend).await;
    let store = store::connect(&db.url, &Settings::defaults().store).await.unwrap();
    let merchant = store.create_merchant("shop").await.unwrap().id;
    let base = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let hour = |h: i64| base + chrono::Duration::hours(h);
    let mut rng = XorShift(0x5eed_cafe);
    let mut histories: Vec<(String, Timeline)> = Vec::new();
    let mut statements = Vec::new();
    let mut seq = 0;
    for n in 0..24 {
        let sku = format!("sku-{n:02}");
        let mut changes: Timeline = (0..rng.below(30))
            .map(|_| {
                let price = (rng.below(10) > 0).then(|| 1 + rng.below(5_000) as i64);
                (rng.below(90 * 24) as i64, price)
            })
            .collect();
        changes.sort_by_key(|(h, _)| *h);
        for (h, price) in &changes {
            seq += 1;
            let price = price.map_or("NULL".to_owned(), |p| p.to_string());
            statements.push(format!(
                "INSERT INTO decisions (merchant_number, seq, sku, trigger_kind, outcome, currency, old_price_minor,
                                        new_price_minor, clipped, record, created_at, prev_hash, hash)
                 VALUES ((SELECT number FROM merchants WHERE id = '{merchant}'), {seq}, '{sku}', 'schedule', 'changed', 'EUR', NULL, {price}, FALSE, '{{}}', {}, '', '')",
                hour(*h).timestamp_micros()
            ));
        }
        // A decision that kept the price never counts as a change.
        seq += 1;
        statements.push(format!(
            "INSERT INTO decisions (merchant_number, seq, sku, trigger_kind, outcome, currency, old_price_minor,
                                    new_price_minor, clipped, record, created_at, prev_hash, hash)
             VALUES ((SELECT number FROM merchants WHERE id = '{merchant}'), {seq}, '{sku}', 'schedule', 'kept', 'EUR', 1, 1, FALSE, '{{}}', {}, '', '')",
            hour(45 * 24).timestamp_micros()
        ));
        histories.push((sku, changes));
    }
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            for statement in &statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone())).execute(&pool).await.unwrap();
            }
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            for statement in &statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone())).execute(&pool).await.unwrap();
            }
        }
    }
    let in_force =
        |changes: &[(i64, Option<i64>)], h: i64| changes.iter().rev().find(|(at, _)| *at <= h).and_then(|c| c.1);
    let mut checked = 0;
    for (sku_text, changes) in &histories {
        let sku = Sku::parse(sku_text).unwrap();
        let mut instants: Vec<i64> = changes.iter().flat_map(|(h, _)| [*h, h + 1, h + 24 * 30]).collect();
        instants.extend((0..5).map(|_| rng.below(100 * 24) as i64));
        for t in instants {
            let expected_prior = ((t - 30 * 24)..t).filter_map(|h| in_force(changes, h)).min();
            let prior = pricing::pricing::prior::prior_price(store.pool(), merchant, &sku, hour(t)).await.unwrap();
            assert_eq!(prior, expected_prior, "prior price of {sku_text} at hour {t}: {changes:?}");
            let at = store.price_change_at(merchant, &sku, hour(t)).await.unwrap().and_then(|d| d.new_price_minor);
            assert_eq!(at, in_force(changes, t), "price of {sku_text} at hour {t}: {changes:?}");
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked} instants checked");
}

async fn the_price_cache_converges_on_the_store(backend: Backend) {
    let store = open(backend).await;
    let m = store.create_merchant("Acme").await.unwrap().id;
    for sku in ["a", "b", "c"] {
        upsert(&store, m, &draft(sku, "EUR", 100, 200)).await.unwrap();
    }
    let cache = pricing::cache::PriceCache::new();
    assert_eq!(cache.warm(&store).await.unwrap(), 3);
    // Behind the cache's back: one product deleted, one created, one given a new base price.
    delete(&store, m, &sku("a")).await.unwrap();
    upsert(&store, m, &draft("d", "EUR", 100, 400)).await.unwrap();
    upsert(&store, m, &draft("b", "EUR", 100, 300)).await.unwrap();
    let (_, removed) = cache.reconcile(&store).await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(cache.get(m, sku("a")), None, "the deleted product has no price");
    assert_eq!(cache.get(m, sku("d")).map(|p| p.price_minor), Some(400), "the new product has one");
    assert_eq!(cache.get(m, sku("b")).map(|p| p.price_minor), Some(300), "the new base price is in force");
    assert_eq!(cache.get(m, sku("c")).map(|p| p.price_minor), Some(200));
}

both_backends! {
    cache_reconciliation => the_price_cache_converges_on_the_store;
    prior_price_brute_force => the_prior_price_and_the_price_at_an_instant_match_a_brute_force_scan;
    signals_by_range => signals_are_read_for_a_range_of_skus;
    demand_buckets => demand_is_counted_in_hourly_buckets_once_and_pruned;
    bulk_signal_writes => bulk_signal_writes_match_writing_one_signal_at_a_time;
    large_demand_history => a_large_demand_history_sums_like_brute_force;
    warm_paging => prices_in_force_page_across_merchants_in_key_order;
    rule_versions => rule_versions_number_from_one_and_the_same_bytes_are_one_version;
    concurrent_uploads => concurrent_uploads_get_distinct_versions;
    rule_parameters => parameters_are_set_per_version;
    activation_history => activation_and_rollback_walk_the_history;
    sweeps_take_over_retries => a_starting_sweep_takes_over_queued_retries;

    a_store_reports_its_backend => a_store_reports_its_backend_and_answers_pings;
    reopening_a_migrated_database => opening_an_already_migrated_database_again_works;
    merchants_round_trip => merchants_round_trip;
    keys_round_trip => keys_round_trip_and_revoke_idempotently;
    keys_are_listed_per_merchant => keys_are_listed_per_merchant_and_admin_keys_are_counted;
    upsert_outcomes => an_upsert_creates_then_updates_then_changes_nothing;
    currency_is_fixed => a_products_currency_cannot_change_and_nothing_is_written;
    base_price_in_force => the_base_price_stays_in_force_and_follows_changes;
    pagination_order => products_page_in_byte_order_without_gaps_or_repeats;
    merchant_scoping => products_belong_to_their_merchant_only;
    deletion => a_deleted_product_and_its_price_are_gone;
    concurrent_writers => concurrent_writers_to_one_product_lose_no_update;
}
