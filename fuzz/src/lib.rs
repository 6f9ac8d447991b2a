//! What the fuzz targets share: the sandbox the upload targets compile into (one per process,
//! with the service's default limits), and the checks of each path. Every check drives the
//! library function the HTTP handler uses, asserts that it does not panic, and asserts the
//! invariants of what it accepted.

use std::sync::OnceLock;

use actix_web::ResponseError;
use chrono::{Duration, TimeZone, Utc};
use pricing::api::{ApiError, parse_competitor_prices_body, parse_demand_body, parse_product_body};
use pricing::config::{PricingSettings, SandboxSettings, Settings};
use pricing::domain::{Currency, Guardrails, MAX_AMOUNT_MINOR, ProductDraft, Sku};
use pricing::pricing::{Situation, apply_guardrails};
use pricing::sandbox::{
    EvalError, Evaluation, GuestContext, MAX_TAG_BYTES, MAX_TAGS, RuleContext, Sandbox, UploadError,
};
use serde_json::{Value, json};

/// The service's settings, as `cargo run` would use them.
fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(Settings::defaults)
}

fn sandbox_settings() -> &'static SandboxSettings {
    &settings().sandbox
}

fn pricing_settings() -> &'static PricingSettings {
    &settings().pricing
}

/// One sandbox per fuzzing process, with the default limits; a small instance pool, since one
/// input runs at a time (and ASan dislikes the default pool's reservations).
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let mut settings = sandbox_settings().clone();
        settings.instance_pool = 4;
        Sandbox::new(&settings).expect("the sandbox starts")
    })
}

/// Contexts a compiled rule is evaluated on: a plain product, and one with competitors,
/// demand, attributes and parameters.
fn contexts() -> &'static [GuestContext] {
    static CONTEXTS: OnceLock<Vec<GuestContext>> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let plain: RuleContext = serde_json::from_value(json!({
            "sku": "tee-1", "currency": "EUR", "cost_minor": 1200, "current_price_minor": 1999,
            "base_price_minor": 1999, "now": "2026-11-25T12:00:00Z"
        }))
        .expect("a plain context parses");
        let rich: RuleContext = serde_json::from_value(json!({
            "sku": "mug.2", "currency": "JPY", "cost_minor": 0, "current_price_minor": 1980,
            "base_price_minor": 2980,
            "competitors": [
                {"competitor": "acme", "price_minor": 1850, "in_stock": true, "age_seconds": 600},
                {"competitor": "globex", "price_minor": 1, "currency": "USD", "in_stock": false,
                 "age_seconds": 900000, "stale": true}
            ],
            "demand": {"views_1d": 10, "views_7d": 70, "units_sold_7d": 12, "units_sold_30d": 40, "inventory": 3},
            "attributes": {"brand": "acme", "organic": true, "weight_kg": 0.2},
            "now": "2026-11-25T12:00:00Z"
        }))
        .expect("a rich context parses");
        let params = json!({"margin_bps": 3000, "undercut_minor": 10, "mode": "match"});
        let params = params.as_object().expect("params are an object");
        vec![
            plain.to_guest(&serde_json::Map::new()).expect("the plain context converts"),
            rich.to_guest(params).expect("the rich context converts"),
        ]
    })
}

/// An upload through [`Sandbox::compile`], the function `POST /v1/rules` runs (off the async
/// threads). An accepted rule must load from its stored artifact (what a restart does) and
/// evaluate without a panic, every answer within the host's limits. (Compiling the stored
/// component again, as after an engine upgrade, is what `compile` itself just did with it.)
pub fn check_upload(bytes: &[u8]) {
    let sandbox = sandbox();
    let compiled = match sandbox.compile(bytes) {
        Ok(compiled) => compiled,
        Err(e) => return check_refusal(bytes, &e),
    };
    assert!(compiled.component.starts_with(b"\0asm"), "the stored component is wasm");
    let loaded = sandbox.load(&compiled.artifact, &compiled.component).expect("an accepted rule's artifact loads");
    assert_eq!(loaded.marks_contexts(), compiled.rule.marks_contexts());

    let contexts = contexts();
    for ctx in contexts {
        check_evaluation(&sandbox.evaluate(&compiled.rule, ctx));
    }
    let batch = sandbox.evaluate_attributed(&compiled.rule, contexts);
    assert_eq!(batch.len(), contexts.len(), "one evaluation per context");
    batch.iter().for_each(check_evaluation);
}

fn check_refusal(bytes: &[u8], e: &UploadError) {
    let limit = sandbox_settings().max_module_bytes;
    assert_eq!(matches!(e, UploadError::TooLarge { .. }), bytes.len() > limit, "too_large iff over the limit: {e}");
    if !bytes.starts_with(b"\0asm") {
        assert!(matches!(e, UploadError::NotWasm | UploadError::TooLarge { .. }), "not wasm, refused as {e}");
    }
    assert!(["too_large", "not_wasm", "forbidden_import", "no_interface", "invalid"].contains(&e.kind()));
    // The API's answer to the refusal renders.
    let _ = ApiError::RuleRefused(e.clone()).error_response();
}

fn check_evaluation(evaluation: &Evaluation) {
    let limits = sandbox_settings();
    assert!(evaluation.stats.log.len() <= limits.log_bytes, "the log is bounded");
    assert!(evaluation.stats.fuel_used <= limits.fuel_per_evaluation, "fuel is bounded");
    match &evaluation.result {
        Ok(decision) => {
            if let Some(price) = decision.price_minor {
                assert!((1..=MAX_AMOUNT_MINOR).contains(&price), "a checked price is in range: {price}");
            }
            assert!(decision.explanation.len() <= limits.explanation_bytes);
            assert!(decision.tags.len() <= MAX_TAGS);
            assert!(decision.tags.iter().all(|t| !t.is_empty() && t.len() <= MAX_TAG_BYTES));
        }
        // One input runs at a time: the pool is never full.
        Err(EvalError::Busy) => panic!("the instance pool was full"),
        Err(_) => {}
    }
}

/// The error answer of a body that was refused: one of the body's codes, and it renders.
fn check_body_refusal(e: &ApiError) {
    assert!(
        matches!(e, ApiError::InvalidJson(_) | ApiError::InvalidBody(_) | ApiError::Validation(_)),
        "a body is refused as invalid_json, invalid_body or validation_failed, not {e:?}"
    );
    let response = e.error_response();
    assert!(response.status().is_client_error());
}

/// A `PUT /v1/products/{sku}` body. An accepted product is in range and consistent, and its
/// wire form (what GET answers, and a client sends back) parses to the same product.
pub fn check_product_body(body: &[u8]) {
    let sku = Sku::parse("fuzz-sku.1").expect("the SKU parses");
    let draft = match parse_product_body(sku.clone(), body) {
        Ok(draft) => draft,
        Err(e) => return check_body_refusal(&e),
    };
    check_product(&draft);
    let seed = body.iter().fold(0_i64, |h, b| h.wrapping_mul(31).wrapping_add(i64::from(*b)));
    check_guardrails(&draft, seed);
    let wire = json!({
        "currency": draft.currency().code(),
        "cost_minor": draft.cost.minor(),
        "base_price_minor": draft.base_price.minor(),
        "guardrails": draft.guardrails.as_input(),
        "attributes": draft.attributes.as_map(),
    });
    let text = serde_json::to_vec(&wire).expect("a product serialises");
    let again = parse_product_body(sku, &text)
        .unwrap_or_else(|e| panic!("the re-serialised product {} is refused: {e}", String::from_utf8_lossy(&text)));
    assert_eq!(again, draft, "the re-serialised product {} parses to another", String::from_utf8_lossy(&text));
}

fn check_product(draft: &ProductDraft) {
    let currency = draft.currency();
    assert_eq!(draft.cost.currency(), currency);
    assert_eq!(Currency::parse(currency.code()).ok(), Some(currency), "the currency is a valid code");
    assert!((0..=MAX_AMOUNT_MINOR).contains(&draft.cost.minor()), "cost in range");
    assert!((1..=MAX_AMOUNT_MINOR).contains(&draft.base_price.minor()), "base price in range");
    let g = &draft.guardrails;
    assert_eq!(Guardrails::parse(g.as_input().clone()).as_ref(), Ok(g), "accepted guardrails parse again");
    for amount in [g.floor_minor(), g.ceiling_minor(), g.map_minor()].into_iter().flatten() {
        assert!((1..=MAX_AMOUNT_MINOR).contains(&amount), "a bound in range: {amount}");
    }
    if let Some(ceiling) = g.ceiling_minor() {
        assert!(g.floor_minor().is_none_or(|f| f <= ceiling) && g.map_minor().is_none_or(|m| m <= ceiling));
    }
    assert!(g.check_fixed_price(draft.base_price, "base_price_minor").is_ok(), "the base price is within its bounds");
    if let Some(rounding) = g.rounding() {
        // Rounding any price in range stays positive and within the range.
        for minor in [1, 2, draft.base_price.minor(), MAX_AMOUNT_MINOR] {
            let rounded = rounding.apply(minor);
            assert!(rounded >= 1, "{rounding:?} rounds {minor} to {rounded}");
            assert!(rounded <= MAX_AMOUNT_MINOR + rounding.period(), "{rounding:?} rounds {minor} to {rounded}");
        }
    }
    assert!(draft.attributes.as_map().len() <= 64);
}

/// The host's guardrails on a rule's answer: whatever the rule proposes (any price the host's
/// check lets through), for any price in force, the guarded price is in the money range, at most
/// the ceiling, and at least the highest floor (the ceiling winning over a floor above it).
fn check_guardrails(draft: &ProductDraft, seed: i64) {
    let g = &draft.guardrails;
    let cost = draft.cost.minor();
    let base = draft.base_price.minor();
    let margin_floor = g.min_margin_bps().map(|bps| {
        let scaled = (i128::from(cost) * i128::from(10_000 + bps) + 5_000) / 10_000;
        i64::try_from(scaled).unwrap_or(i64::MAX)
    });
    let high = g.ceiling_minor().unwrap_or(MAX_AMOUNT_MINOR);
    let floor = [g.floor_minor(), g.map_minor(), margin_floor].into_iter().flatten().max();
    let low = floor.map_or(1, |f| f.clamp(1, MAX_AMOUNT_MINOR).min(high));
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    let in_range = |v: i64| v.rem_euclid(MAX_AMOUNT_MINOR) + 1;
    let proposals = [1, 2, base - 1, base, base + 1, cost, low - 1, high + 1, MAX_AMOUNT_MINOR, seed];
    for current in [base, 1, MAX_AMOUNT_MINOR, in_range(seed.rotate_left(17))] {
        for since in [Duration::seconds(1), Duration::days(40)] {
            let situation = Situation { current_minor: current, cost_minor: cost, effective_at: now - since, now };
            for proposed in proposals.map(|p| if (1..=MAX_AMOUNT_MINOR).contains(&p) { p } else { in_range(p) }) {
                let guarded = apply_guardrails(g, proposed, situation);
                let price = guarded.price_minor;
                assert!(
                    (low..=high).contains(&price),
                    "{g:?} guarded {proposed} (in force {current}, cost {cost}) to {price}, outside [{low}, {high}]"
                );
            }
        }
    }
}

/// A body of `POST /v1/signals/competitor-prices` and of `POST /v1/signals/demand` (every
/// input is tried as both). Accepted entries are in range, and their wire form parses to the same.
pub fn check_signal_body(body: &[u8]) {
    let settings = pricing_settings();
    match parse_competitor_prices_body(body, settings) {
        Ok(observations) => {
            assert!((1..=settings.max_signal_batch).contains(&observations.len()));
            let now = Utc::now();
            let wire: Vec<Value> = observations
                .iter()
                .map(|o| {
                    check_signal_common(&o.id, &o.sku, o.observed_at, now);
                    assert!((1..=128).contains(&o.competitor.chars().count()));
                    assert!((1..=MAX_AMOUNT_MINOR).contains(&o.price.minor()));
                    json!({"id": o.id, "sku": o.sku.as_str(), "competitor": o.competitor,
                           "price_minor": o.price.minor(), "currency": o.price.currency().code(),
                           "in_stock": o.in_stock, "observed_at": o.observed_at})
                })
                .collect();
            let text = serde_json::to_vec(&json!({ "observations": wire })).expect("observations serialise");
            let again = parse_competitor_prices_body(&text, settings).unwrap_or_else(|e| {
                panic!("the re-serialised observations {} are refused: {e}", String::from_utf8_lossy(&text))
            });
            assert_eq!(again, observations, "re-serialised as {}", String::from_utf8_lossy(&text));
        }
        Err(e) => check_body_refusal(&e),
    }
    match parse_demand_body(body, settings) {
        Ok(events) => {
            assert!((1..=settings.max_signal_batch).contains(&events.len()));
            let now = Utc::now();
            let wire: Vec<Value> = events
                .iter()
                .map(|e| {
                    check_signal_common(&e.id, &e.sku, e.occurred_at, now);
                    assert!((0..=1_000_000_000).contains(&e.quantity));
                    json!({"id": e.id, "sku": e.sku.as_str(), "kind": e.kind, "quantity": e.quantity,
                           "occurred_at": e.occurred_at})
                })
                .collect();
            let text = serde_json::to_vec(&json!({ "events": wire })).expect("events serialise");
            let again = parse_demand_body(&text, settings).unwrap_or_else(|e| {
                panic!("the re-serialised events {} are refused: {e}", String::from_utf8_lossy(&text))
            });
            assert_eq!(again, events, "re-serialised as {}", String::from_utf8_lossy(&text));
        }
        Err(e) => check_body_refusal(&e),
    }
}

fn check_signal_common(id: &str, sku: &Sku, at: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) {
    assert!((1..=128).contains(&id.chars().count()), "id of {} characters", id.chars().count());
    assert_eq!(Sku::parse(sku.as_str()).as_ref(), Ok(sku), "the SKU parses again");
    // The window was checked a moment ago: allow for the time since.
    assert!(at <= now + Duration::seconds(300), "{at} is in the future");
    assert!(at >= now - Duration::days(366) - Duration::seconds(60), "{at} is too old");
}
