//! Rule evaluation throughput, as ratios against the same policy compiled natively, all
//! measured in this one process:
//!
//! - native: `competitor_match` called directly (the baseline);
//! - batch: the wasm rule's batch entry point, one instance and one call per 1000 contexts,
//!   as one evaluation (no per-context fuel or log): `evaluate-encoded`, the contexts in one
//!   buffer (`pricing:policy@1.2.0`), and, for comparison, the same rule through the 1.1.0
//!   entry point `evaluate-batch` (contexts lowered as records);
//! - attributed batch: the same call split at the rule's `begin-context` marks, each context
//!   with its own fuel, deadline and log (what the repricer runs);
//! - many: one instance per 1000 contexts, one call each (per-context fuel, time and log; the
//!   path of rules without the marks, and the batch's fallback);
//! - fresh: the wasm rule through the sandbox, a fresh pooled instance per evaluation;
//! - host only: a hand-written rule that just keeps, to show the host's share of the cost
//!   (lowering the context into the guest, lifting the decision, instantiation).
//!
//! Run with `cargo bench -p pricing-service --bench rule_eval` (builds the rule first with
//! scripts/build-rules).

#[path = "../../tests/common/wat_rules.rs"]
#[allow(dead_code)]
mod wat_rules;

#[path = "support/report.rs"]
mod report;

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use pricing::config::Settings;
use pricing::sandbox::{CompetitorOffer, RuleContext, Sandbox};
use pricing_rule_sdk::testing::{ContextBuilder, decide, take_log};
use serde_json::{Map, Value, json};

const BATCH: usize = 1000;
const RUN_FOR: Duration = Duration::from_secs(3);

/// Calls `step` (which performs `per_call` evaluations) until `RUN_FOR` has passed; returns
/// evaluations per second.
fn rate(per_call: usize, mut step: impl FnMut()) -> f64 {
    for _ in 0..3 {
        step(); // warm up
    }
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < RUN_FOR {
        step();
        calls += 1;
    }
    (calls as f64 * per_call as f64) / started.elapsed().as_secs_f64()
}

fn offers() -> Vec<(&'static str, i64, bool, i64)> {
    vec![
        ("a", 1899, true, 600),
        ("b", 1799, false, 600),
        ("c", 1850, true, 3_000),
        ("d", 1920, true, 60),
        ("e", 1875, true, 90_000),
    ]
}

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let built =
        Command::new("bash").arg("scripts/build-rules").arg("competitor-match").current_dir(root).output().unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let wasm = std::fs::read(format!("{root}/target/rules/competitor-match.wasm")).unwrap();

    // The same inputs for both: the native context and the host's context.
    let params: Map<String, Value> = serde_json::from_value(json!({"undercut_minor": 5, "max_age_hours": 24})).unwrap();
    let mut native = ContextBuilder::new("tee-1", "EUR").cost(1200).current_price(1999);
    for (name, price, in_stock, age) in offers() {
        native = native.competitor(name, price, in_stock, age);
    }
    let native = native.param("undercut_minor", 5).param("max_age_hours", 24).build();
    let host = RuleContext {
        sku: "tee-1".into(),
        currency: "EUR".into(),
        cost_minor: 1200,
        current_price_minor: 1999,
        base_price_minor: 1999,
        competitors: offers()
            .into_iter()
            .map(|(name, price, in_stock, age)| CompetitorOffer {
                competitor: name.into(),
                price_minor: price,
                currency: None,
                in_stock,
                age_seconds: age,
                stale: Some(false),
            })
            .collect(),
        demand: Default::default(),
        attributes: Map::new(),
        now: chrono::Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap(),
    };
    let guest = host.to_guest(&params).unwrap();
    let batch = vec![guest.clone(); BATCH];

    let sandbox = Sandbox::new(&Settings::defaults().sandbox).unwrap();
    let rule = sandbox.compile(&wasm).unwrap().rule;
    // Same decision everywhere, or the comparison means nothing. The native side reads its
    // declared parameters from the context on every call, as the guest does.
    let expected = decide(rule_competitor_match::competitor_match, &native).price_minor();
    assert_eq!(sandbox.evaluate(&rule, &guest).result.unwrap().price_minor, expected);

    let mut n = 0u32;
    let native_rate = rate(1, || {
        black_box(decide(rule_competitor_match::competitor_match, black_box(&native)));
        n += 1;
        if n.is_multiple_of(1024) {
            take_log(); // the native log buffer would otherwise grow without end
        }
    });
    let batch_rate = rate(BATCH, || {
        let (result, _) = sandbox.evaluate_batch(&rule, black_box(&batch));
        assert_eq!(result.unwrap().len(), BATCH);
    });
    let lowered = rule.lowered();
    assert!(rule.takes_encoded_batches() && !lowered.takes_encoded_batches());
    let lowered_rate = rate(BATCH, || {
        let (result, _) = sandbox.evaluate_batch(&lowered, black_box(&batch));
        assert_eq!(result.unwrap().len(), BATCH);
    });
    assert!(rule.marks_contexts(), "the SDK's rules mark their contexts");
    let attributed_rate = rate(BATCH, || {
        let evaluations = sandbox.evaluate_attributed(&rule, black_box(&batch));
        if let Some(failed) = evaluations.iter().find_map(|e| e.result.as_ref().err()) {
            panic!("an evaluation failed: {failed} ({:?})", failed.kind());
        }
    });
    let many_rate = rate(BATCH, || {
        let evaluations = sandbox.evaluate_many(&rule, black_box(&batch));
        if let Some(failed) = evaluations.iter().find_map(|e| e.result.as_ref().err()) {
            panic!("an evaluation failed: {failed} ({:?})", failed.kind());
        }
    });
    let fresh_rate = rate(1, || {
        black_box(sandbox.evaluate(&rule, black_box(&guest)).result.unwrap());
    });
    // The host's share: a hand-written rule that only keeps, on the same contexts.
    let keep = sandbox.compile(&wat_rules::rule("(call $keep)", "")).unwrap().rule;
    let keep_many_rate = rate(BATCH, || {
        black_box(sandbox.evaluate_many(&keep, black_box(&batch)));
    });
    let keep_fresh_rate = rate(1, || {
        black_box(sandbox.evaluate(&keep, black_box(&guest)));
    });
    let fuel = sandbox.evaluate(&rule, &guest).stats.fuel_used;

    println!(
        "rule evaluation, competitor-match, {} competitors per context, wasm {} bytes, {fuel} fuel per evaluation",
        offers().len(),
        wasm.len()
    );
    println!("{:<42} {:>14} {:>12} {:>10}", "mode", "evals/s", "us/eval", "vs native");
    for (mode, r) in [
        ("native (baseline)", native_rate),
        ("wasm, batch entry point, 1000 per call", batch_rate),
        ("wasm, 1.1.0 batch entry (lowered records)", lowered_rate),
        ("wasm, attributed batch, 1000 per call", attributed_rate),
        ("wasm, reused instance, 1000 calls", many_rate),
        ("wasm, fresh pooled instance per eval", fresh_rate),
        ("host only (WAT keep), reused instance", keep_many_rate),
        ("host only (WAT keep), fresh instance", keep_fresh_rate),
    ] {
        println!("{mode:<42} {r:>14.0} {:>12.3} {:>10.3}", 1e6 / r, r / native_rate);
    }
    println!(
        "attributed batch vs unattributed batch: {:.3}; vs one call per context: {:.3}",
        attributed_rate / batch_rate,
        attributed_rate / many_rate
    );
    // Rates are per process, and the bench runs on one thread: per core.
    let group = "rule_eval";
    let native = Some(("native policy, same contexts", native_rate));
    use report::{Target, figure};
    figure(
        group,
        "wasm batch, evaluations per second per core",
        batch_rate,
        "evals/s",
        native,
        Some(Target::AtLeast(1e6)),
    );
    figure(group, "wasm batch against native", batch_rate, "evals/s", native, Some(Target::RatioAtLeast(0.25)));
    figure(group, "wasm attributed batch (what repricing runs)", attributed_rate, "evals/s", native, None);
    let lowered_baseline = Some(("the same rule through the 1.1.0 entry point (lowered records)", lowered_rate));
    figure(group, "wasm batch, contexts in one buffer (1.2.0)", batch_rate, "evals/s", lowered_baseline, None);
    // A fresh instance's cost: a fresh instance per evaluation over a reused one's calls.
    let fresh_us = 1e6 / fresh_rate - 1e6 / many_rate;
    let what = "fresh instance, competitor-match (Rust guest): cost over a reused one";
    figure(group, what, fresh_us, "µs", None, Some(Target::AtMost(5.0)));
    let keep_fresh_us = 1e6 / keep_fresh_rate - 1e6 / keep_many_rate;
    let what = "fresh instance, a WAT rule that keeps (the host's share): cost over a reused one";
    figure(group, what, keep_fresh_us, "µs", None, None);
}
