//! The sandbox against a hostile corpus: every module is built in the test run (WAT here,
//! Rust rules in `tests/api`), and each one is either refused at upload with a clear reason
//! or stopped at evaluation with its own error kind, within the limits.

mod batch;
#[path = "../common/mod.rs"]
mod common;

use chrono::TimeZone;
use common::wat_rules::{EUR, USD, rule, rule_wat, with_interface};
use pricing::config::{SandboxSettings, Settings};
use pricing::sandbox::{EvalError, Evaluation, RuleContext, Sandbox, UploadError};
use serde_json::Map;

/// The defaults, with a wall-clock deadline that a busy CI machine cannot trip by accident
/// (tests of the deadline set their own).
fn settings() -> SandboxSettings {
    let mut settings = Settings::defaults().sandbox;
    settings.deadline_ms = 1_000;
    settings
}

fn context() -> RuleContext {
    RuleContext {
        sku: "tee-1".into(),
        currency: "EUR".into(),
        cost_minor: 1200,
        current_price_minor: 1999,
        base_price_minor: 1999,
        competitors: vec![],
        demand: Default::default(),
        attributes: Map::new(),
        now: chrono::Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap(),
    }
}

/// Uploads and evaluates once with `settings`.
fn evaluate_with(settings: &SandboxSettings, upload: &[u8]) -> Evaluation {
    let sandbox = Sandbox::new(settings).unwrap();
    let compiled = sandbox.compile(upload).unwrap_or_else(|e| panic!("the module should be accepted: {e}"));
    sandbox.evaluate(&compiled.rule, &context().to_guest(&Map::new()).unwrap())
}

fn evaluate(upload: &[u8]) -> Evaluation {
    evaluate_with(&settings(), upload)
}

fn refused(upload: &[u8]) -> UploadError {
    let sandbox = Sandbox::new(&settings()).unwrap();
    match sandbox.compile(upload) {
        Ok(_) => panic!("the module should be refused at upload"),
        Err(e) => e,
    }
}

// ---- well-behaved modules: the corpus's control group ----

#[test]
fn a_rule_that_keeps_the_price_is_accepted_and_keeps_it() {
    let evaluation = evaluate(&rule("(call $keep)", ""));
    let decision = evaluation.result.unwrap();
    assert_eq!(decision.price_minor, None);
    assert!(evaluation.stats.fuel_used > 0);
    assert!(evaluation.stats.peak_memory_bytes >= 65536);
}

#[test]
fn a_rule_that_sets_a_price_in_the_products_currency_is_accepted() {
    let evaluation = evaluate(&rule(&format!("(call $set (i64.const 1899) {EUR})"), ""));
    assert_eq!(evaluation.result.unwrap().price_minor, Some(1899));
}

#[test]
fn an_approximate_price_is_rounded_half_away_from_zero() {
    let evaluation = evaluate(&rule("(call $set_approx (f64.const 1898.5))", ""));
    assert_eq!(evaluation.result.unwrap().price_minor, Some(1899));
}

/// The sign and top bits of a NaN that the rule computes, as the price: the same on every
/// machine only when the engine canonicalises NaNs (x86's own `0/0` is negative, ARM's not).
#[test]
fn nans_are_canonical_so_a_replay_on_another_machine_gives_the_same_bits() {
    for nan in [
        "(f64.div (f64.const 0) (f64.const 0))",
        "(f64.sqrt (f64.const -1))",
        "(f64.add (f64.const nan:0x1234) (f64.const 1))",
    ] {
        let body = format!("(call $set (i64.shr_u (i64.reinterpret_f64 {nan}) (i64.const 48)) {EUR})");
        let evaluation = evaluate(&rule(&body, ""));
        assert_eq!(evaluation.result.unwrap().price_minor, Some(0x7ff8), "{nan}: the canonical quiet NaN");
    }
}

#[test]
fn a_slow_but_legal_rule_finishes_within_its_limits() {
    let body = "(loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (i32.lt_u (local.get $i) (i32.const 200000))))
                (call $keep)";
    let evaluation = evaluate(&rule(body, ""));
    assert_eq!(
        evaluation.result,
        Ok(pricing::sandbox::RuleDecision { price_minor: None, explanation: String::new(), tags: vec![] })
    );
    assert!(evaluation.stats.fuel_used > 200_000, "the loop burned fuel: {}", evaluation.stats.fuel_used);
}

#[test]
fn the_log_is_kept_within_its_allowance() {
    let body = "(call $log (i32.const 600) (i32.const 100)) (call $log (i32.const 600) (i32.const 10)) (call $keep)";
    let evaluation = evaluate(&rule(body, ""));
    assert!(evaluation.result.is_ok());
    assert_eq!(evaluation.stats.log, format!("{}\n{}", "x".repeat(100), "x".repeat(10)));
}

#[test]
fn the_same_context_and_module_give_the_same_decision_and_fuel_every_time() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let body = "(loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (i32.lt_u (local.get $i) (i32.const 5000))))
                (call $set (i64.const 1899) (i32.const 512))";
    let compiled = sandbox.compile(&rule(body, "")).unwrap();
    let ctx = context().to_guest(&Map::new()).unwrap();
    let first = sandbox.evaluate(&compiled.rule, &ctx);
    for _ in 0..20 {
        let again = sandbox.evaluate(&compiled.rule, &ctx);
        assert_eq!(again.result, first.result);
        assert_eq!(again.stats.fuel_used, first.stats.fuel_used);
    }
}

#[test]
fn a_compiled_artifact_loads_without_compiling_again() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let compiled = sandbox.compile(&rule(&format!("(call $set (i64.const 1899) {EUR})"), "")).unwrap();
    let restarted = Sandbox::new(&settings()).unwrap();
    let loaded = restarted.load(&compiled.artifact, &compiled.component).unwrap();
    let evaluation = restarted.evaluate(&loaded, &context().to_guest(&Map::new()).unwrap());
    assert_eq!(evaluation.result.unwrap().price_minor, Some(1899));
    // A corrupt artifact falls back to the stored component, and gives the artifact to keep.
    let (loaded, recompiled) = restarted.load_or_recompile(b"not an artifact", &compiled.component).unwrap();
    assert!(restarted.evaluate(&loaded, &context().to_guest(&Map::new()).unwrap()).result.is_ok());
    let recompiled = recompiled.expect("a new artifact");
    let (_, again) = restarted.load_or_recompile(&recompiled, &compiled.component).unwrap();
    assert!(again.is_none(), "the kept artifact loads without compiling");
}

// ---- refused at upload ----

#[test]
fn garbage_bytes_are_not_wasm() {
    assert_eq!(refused(b"MZ\x90\x00 this is not wasm"), UploadError::NotWasm);
    assert_eq!(refused(b""), UploadError::NotWasm);
}

#[test]
fn an_over_size_module_is_refused_before_anything_else() {
    let big = format!("(data (i32.const 8192) \"{}\")", "\\00".repeat(1024 * 1024));
    let error = refused(&rule("(call $keep)", &big));
    assert!(matches!(error, UploadError::TooLarge { limit: 1_048_576, .. }), "{error}");
}

#[test]
fn a_core_module_without_the_interface_is_refused() {
    let plain = wat::parse_str(rule_wat("(call $keep)", "", 1)).unwrap();
    assert!(matches!(refused(&plain), UploadError::NoInterface(_)));
}

#[test]
fn a_module_missing_an_export_of_the_interface_is_refused() {
    let wat = rule_wat("(call $keep)", "", 1)
        .replace(r#"(func (export "evaluate-batch") (param i32 i32) (result i32) unreachable)"#, "");
    assert!(matches!(refused(&with_interface(&wat)), UploadError::NoInterface(_)));
}

#[test]
fn wasi_imports_are_refused_with_their_name() {
    let wat = rule_wat("(call $keep)", "", 1).replace(
        r#"(import "$root" "log" (func $log (param i32 i32)))"#,
        r#"(import "$root" "log" (func $log (param i32 i32)))
           (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
    );
    assert_eq!(refused(&with_interface(&wat)), UploadError::ForbiddenImport("wasi_snapshot_preview1::fd_write".into()));
}

#[test]
fn an_unknown_import_is_refused_with_its_name() {
    let wat = rule_wat("(call $keep)", "", 1)
        .replace(r#"(global $heap"#, r#"(import "env" "system" (func (param i32))) (global $heap"#);
    // Imports must come first in a module: move it up.
    let wat = wat.replace(
        r#"(import "$root" "log" (func $log (param i32 i32)))"#,
        r#"(import "$root" "log" (func $log (param i32 i32))) (import "env" "system" (func (param i32)))"#,
    );
    let wat = wat.replacen(r#"(import "env" "system" (func (param i32))) (global $heap"#, "(global $heap", 1);
    assert_eq!(refused(&with_interface(&wat)), UploadError::ForbiddenImport("env::system".into()));
}

#[test]
fn a_component_importing_wasi_is_refused_with_its_name() {
    let component = wat::parse_str(r#"(component (import "wasi:cli/environment@0.2.0" (instance)))"#).unwrap();
    assert_eq!(refused(&component), UploadError::ForbiddenImport("wasi:cli/environment@0.2.0".into()));
}

#[test]
fn a_component_that_exports_nothing_is_refused() {
    let component = wat::parse_str("(component)").unwrap();
    assert!(matches!(refused(&component), UploadError::NoInterface(_)));
}

#[test]
fn a_module_with_two_memories_is_refused() {
    let error = refused(&rule("(call $keep)", "(memory $second 1)"));
    assert!(matches!(error, UploadError::NoInterface(_) | UploadError::Invalid(_)), "{error}");
}

// ---- stopped at evaluation, each with its own kind ----

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let mut settings = settings();
    settings.deadline_ms = 60_000; // only fuel can stop it
    let evaluation = evaluate_with(&settings, &rule("(loop $l (br $l)) (unreachable)", ""));
    assert_eq!(evaluation.result, Err(EvalError::OutOfFuel(10_000_000)));
    assert_eq!(evaluation.stats.fuel_used, 10_000_000);
}

#[test]
fn an_infinite_loop_hits_the_deadline_when_fuel_is_plentiful() {
    let mut settings = settings();
    settings.fuel_per_evaluation = u64::MAX / 2; // only the clock can stop it
    settings.deadline_ms = 10;
    let evaluation = evaluate_with(&settings, &rule("(loop $l (br $l)) (unreachable)", ""));
    assert_eq!(evaluation.result, Err(EvalError::Timeout(10)));
    assert!(evaluation.stats.wall_time_us < std::time::Duration::from_secs(2));
}

#[test]
fn an_infinite_loop_in_a_start_function_is_stopped_at_instantiation() {
    let mut settings = settings();
    settings.deadline_ms = 60_000;
    let evaluation = evaluate_with(&settings, &rule("(call $keep)", "(func $spin (loop $l (br $l))) (start $spin)"));
    assert_eq!(evaluation.result, Err(EvalError::OutOfFuel(10_000_000)));
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let rec = "(func $rec (param i32) (result i32) (call $rec (i32.add (local.get 0) (i32.const 1))))";
    let evaluation = evaluate(&rule("(drop (call $rec (i32.const 0))) (unreachable)", rec));
    assert_eq!(evaluation.result, Err(EvalError::StackOverflow));
}

#[test]
fn a_memory_growth_bomb_is_stopped_at_the_memory_limit() {
    let evaluation = evaluate(&rule("(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (unreachable)", ""));
    assert_eq!(evaluation.result, Err(EvalError::OutOfMemory("memory")));
    assert!(evaluation.stats.peak_memory_bytes <= 16 * 1024 * 1024);
}

#[test]
fn a_huge_initial_memory_is_stopped_at_instantiation() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    match sandbox.compile(&with_interface(&rule_wat("(call $keep)", "", 1000))) {
        Err(e) => assert!(matches!(e, UploadError::Invalid(_) | UploadError::NoInterface(_)), "{e}"),
        Ok(compiled) => {
            let evaluation = sandbox.evaluate(&compiled.rule, &context().to_guest(&Map::new()).unwrap());
            assert!(
                matches!(evaluation.result, Err(EvalError::OutOfMemory(_)) | Err(EvalError::Trap(_))),
                "{:?}",
                evaluation.result
            );
        }
    }
}

#[test]
fn a_table_growth_bomb_is_stopped_at_the_table_limit() {
    let body = "(loop $l (drop (table.grow $t (ref.null func) (i32.const 1000))) (br $l)) (unreachable)";
    let evaluation = evaluate(&rule(body, "(table $t 1 funcref)"));
    assert_eq!(evaluation.result, Err(EvalError::OutOfMemory("table")));
}

#[test]
fn unreachable_is_a_guest_panic() {
    assert_eq!(evaluate(&rule("(unreachable)", "")).result, Err(EvalError::GuestPanic));
}

#[test]
fn a_division_by_zero_is_a_trap_of_its_own() {
    let evaluation = evaluate(&rule("(drop (i32.div_u (i32.const 1) (local.get $i))) (call $keep)", ""));
    assert!(
        matches!(evaluation.result, Err(EvalError::Trap(ref m)) if m.contains("divide by zero")),
        "{:?}",
        evaluation.result
    );
}

fn output_error(body: &str) -> EvalError {
    evaluate(&rule(body, "")).result.expect_err("the answer should be refused")
}

#[test]
fn a_nan_price_is_invalid_output() {
    assert!(
        matches!(output_error("(call $set_approx (f64.const nan))"), EvalError::InvalidOutput(m) if m.contains("finite"))
    );
    assert!(matches!(output_error("(call $set_approx (f64.const inf))"), EvalError::InvalidOutput(_)));
}

#[test]
fn a_negative_or_zero_price_is_invalid_output() {
    assert!(matches!(output_error(&format!("(call $set (i64.const -5) {EUR})")), EvalError::InvalidOutput(_)));
    assert!(matches!(output_error(&format!("(call $set (i64.const 0) {EUR})")), EvalError::InvalidOutput(_)));
    assert!(matches!(output_error("(call $set_approx (f64.const -0.4))"), EvalError::InvalidOutput(_)));
}

#[test]
fn a_price_beyond_the_i64_range_is_invalid_output() {
    assert!(matches!(output_error("(call $set_approx (f64.const 1e30))"), EvalError::InvalidOutput(_)));
    assert!(matches!(
        output_error(&format!("(call $set (i64.const 9223372036854775807) {EUR})")),
        EvalError::InvalidOutput(_)
    ));
}

#[test]
fn a_price_in_another_currency_is_invalid_output() {
    let error = output_error(&format!("(call $set (i64.const 1899) {USD})"));
    assert!(matches!(&error, EvalError::InvalidOutput(m) if m.contains("USD") && m.contains("EUR")), "{error}");
}

#[test]
fn an_unknown_action_tag_is_invalid_output() {
    let error = output_error("(drop (call $keep)) (i32.store8 (i32.const 64) (i32.const 9)) (i32.const 64)");
    assert!(matches!(error, EvalError::InvalidOutput(_)), "{error}");
}

#[test]
fn an_explanation_outside_memory_is_invalid_output() {
    let body = "(drop (call $keep)) (i32.store (i32.const 88) (i32.const 60000)) (i32.store (i32.const 92) (i32.const 100000)) (i32.const 64)";
    assert!(matches!(output_error(body), EvalError::InvalidOutput(_)));
}

#[test]
fn an_explanation_that_is_not_utf8_is_invalid_output() {
    let body = "(drop (call $keep)) (i32.store (i32.const 88) (i32.const 518)) (i32.store (i32.const 92) (i32.const 2)) (i32.const 64)";
    assert!(matches!(output_error(body), EvalError::InvalidOutput(_)));
}

#[test]
fn an_oversized_explanation_is_output_too_large() {
    let body = "(drop (call $keep)) (i32.store (i32.const 88) (i32.const 1024)) (i32.store (i32.const 92) (i32.const 600)) (i32.const 64)";
    assert!(matches!(output_error(body), EvalError::OutputTooLarge(m) if m.contains("512")));
}

#[test]
fn too_many_tags_are_output_too_large() {
    let body = "(drop (call $keep)) (i32.store (i32.const 96) (i32.const 2048)) (i32.store (i32.const 100) (i32.const 17)) (i32.const 64)";
    assert!(matches!(output_error(body), EvalError::OutputTooLarge(_)));
}

#[test]
fn a_log_flood_is_stopped_at_the_log_allowance() {
    let evaluation = evaluate(&rule("(loop $l (call $log (i32.const 600) (i32.const 100)) (br $l)) (unreachable)", ""));
    assert!(
        matches!(evaluation.result, Err(EvalError::OutputTooLarge(ref m)) if m.contains("1024")),
        "{:?}",
        evaluation.result
    );
    assert!(evaluation.stats.log.len() <= 1024);
    assert!(evaluation.stats.fuel_used < 100_000, "stopped at once, not by fuel: {}", evaluation.stats.fuel_used);
}

#[test]
fn one_sandbox_keeps_serving_after_every_kind_of_failure() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let ctx = context().to_guest(&Map::new()).unwrap();
    let good = sandbox.compile(&rule(&format!("(call $set (i64.const 1899) {EUR})"), "")).unwrap();
    let hostile = [
        rule("(loop $l (br $l)) (unreachable)", ""),
        rule("(unreachable)", ""),
        rule("(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (unreachable)", ""),
        rule(
            "(drop (call $rec (i32.const 0))) (unreachable)",
            "(func $rec (param i32) (result i32) (call $rec (local.get 0)))",
        ),
        rule("(call $set_approx (f64.const nan))", ""),
    ];
    for module in &hostile {
        let bad = sandbox.compile(module).unwrap();
        for _ in 0..3 {
            assert!(sandbox.evaluate(&bad.rule, &ctx).result.is_err());
            assert_eq!(sandbox.evaluate(&good.rule, &ctx).result.unwrap().price_minor, Some(1899));
        }
    }
}
