//! Many contexts at once: one call per context on a reused instance, the batch entry point as
//! one evaluation, and the batch split into contexts by the rule's `begin-context` marks,
//! with its fallback to one call per context.

use pricing::sandbox::{CompetitorOffer, Evaluation, GuestContext, Sandbox};
use serde_json::{Map, json};

use super::common::rules::built_rule;
use super::common::wat_rules::{MARKS_IN_ORDER, MARKS_ONE, marking_rule, rule};
use super::{context, settings};

fn attack(name: &str) -> GuestContext {
    let params: Map<String, serde_json::Value> = serde_json::from_value(json!({"attack": name})).unwrap();
    context().to_guest(&params).unwrap()
}

fn kinds(evaluations: &[Evaluation]) -> Vec<&'static str> {
    evaluations.iter().map(|e| e.result.as_ref().map_or_else(|e| e.kind(), |_| "ok")).collect()
}

fn explanations(evaluations: &[Evaluation]) -> Vec<&str> {
    evaluations.iter().map(|e| e.result.as_ref().unwrap().explanation.as_str()).collect()
}

/// Contexts that differ in what competitor-match sees, and so in what it logs and decides.
fn market(n: i64) -> Vec<GuestContext> {
    (0..n)
        .map(|i| {
            let mut ctx = context();
            ctx.sku = format!("tee-{i}");
            for k in 0..(i % 4) {
                ctx.competitors.push(CompetitorOffer {
                    competitor: format!("shop-{k}"),
                    price_minor: 1700 + 37 * i + 11 * k,
                    currency: None,
                    in_stock: (i + k) % 3 != 0,
                    age_seconds: 60 * (k + 1),
                    stale: Some(false),
                });
            }
            ctx.to_guest(&Map::new()).unwrap()
        })
        .collect()
}

#[test]
fn rules_built_with_the_sdk_mark_their_contexts_and_hand_written_ones_need_not() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    for name in ["competitor-match", "hostile"] {
        assert!(sandbox.compile(&built_rule(name)).unwrap().rule.marks_contexts(), "{name}");
    }
    assert!(!sandbox.compile(&rule("(call $keep)", "")).unwrap().rule.marks_contexts());
    assert!(sandbox.compile(&marking_rule(MARKS_ONE, MARKS_IN_ORDER)).unwrap().rule.marks_contexts());
}

#[test]
fn a_batch_gives_each_context_the_decision_log_and_fuel_it_gets_alone() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let rule = sandbox.compile(&built_rule("competitor-match")).unwrap().rule;
    let ctxs = market(40);
    let batch = sandbox.evaluate_attributed(&rule, &ctxs);
    let many = sandbox.evaluate_many(&rule, &ctxs);
    assert_eq!(batch.len(), ctxs.len());
    let (mut batch_fuel, mut alone_fuel) = (0, 0);
    for (i, (ctx, (b, m))) in ctxs.iter().zip(batch.iter().zip(&many)).enumerate() {
        let alone = sandbox.evaluate(&rule, ctx);
        assert_eq!(b.result, alone.result, "context {i}");
        assert_eq!(b.stats.log, alone.stats.log, "context {i}");
        // One call per context, fresh or reused instance, costs exactly the same.
        assert_eq!(
            (&m.result, &m.stats.log, m.stats.fuel_used),
            (&alone.result, &alone.stats.log, alone.stats.fuel_used)
        );
        // In a batch the allocator's bookkeeping depends on what else the heap holds (the
        // rest of the batch), so a context's fuel differs a little from its fuel alone.
        let (b_fuel, a_fuel) = (b.stats.fuel_used, alone.stats.fuel_used);
        assert!(b_fuel.abs_diff(a_fuel) <= a_fuel / 4, "context {i}: {b_fuel} in the batch, {a_fuel} alone");
        batch_fuel += b_fuel;
        alone_fuel += a_fuel;
    }
    // Over the batch, contexts cost less than alone, never more: each is decoded into the room
    // the context before it left (a 1.2.0 rule's `evaluate-encoded`), where alone it allocates.
    assert!(
        batch_fuel <= alone_fuel && batch_fuel >= alone_fuel * 3 / 4,
        "{batch_fuel} in the batch, {alone_fuel} alone"
    );
    // The contexts really differ, so the split is not trivially right.
    assert!(batch.iter().any(|e| e.stats.log.is_empty()) && batch.iter().any(|e| e.stats.log.contains("cheapest")));
    assert!(batch.iter().map(|e| e.stats.fuel_used).collect::<std::collections::HashSet<_>>().len() > 2);
}

/// A rule built for 1.2.0 takes its contexts in one buffer; called through the 1.1.0 entry
/// points instead (which it still exports), it decides and logs exactly the same, alone and
/// in batches, and a whole call costs it less fuel the new way (the host no longer calls its
/// allocator for every string and list).
#[test]
fn the_encoded_entry_point_decides_as_the_lowered_one() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let encoded = sandbox.compile(&built_rule("competitor-match")).unwrap().rule;
    assert!(encoded.takes_encoded_batches());
    let lowered = encoded.lowered();
    assert!(!lowered.takes_encoded_batches());
    let ctxs = market(40);
    let (new, old) = (sandbox.evaluate_attributed(&encoded, &ctxs), sandbox.evaluate_attributed(&lowered, &ctxs));
    assert_eq!(new.len(), ctxs.len());
    for (i, (n, o)) in new.iter().zip(&old).enumerate() {
        assert_eq!((&n.result, &n.stats.log), (&o.result, &o.stats.log), "context {i}");
        let alone = sandbox.evaluate(&encoded, &ctxs[i]);
        assert_eq!((&alone.result, &alone.stats.log), (&n.result, &n.stats.log), "context {i} alone");
    }
    assert!(new.iter().any(|e| e.result.as_ref().is_ok_and(|d| d.price_minor.is_some())), "some contexts set a price");
    // The unattributed batch, whose fuel is the whole call's.
    let (batch_new, new_stats) = sandbox.evaluate_batch(&encoded, &ctxs);
    let (batch_old, old_stats) = sandbox.evaluate_batch(&lowered, &ctxs);
    assert_eq!(batch_new.unwrap(), batch_old.unwrap());
    let (new_fuel, old_fuel) = (new_stats.fuel_used, old_stats.fuel_used);
    assert!(new_fuel < old_fuel, "{new_fuel} encoded, {old_fuel} lowered");
}

#[test]
fn a_batch_splits_logs_and_fuel_at_the_marks() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let rule = sandbox.compile(&marking_rule(MARKS_ONE, MARKS_IN_ORDER)).unwrap().rule;
    let ctxs = vec![context().to_guest(&Map::new()).unwrap(); 5];
    let evaluations = sandbox.evaluate_attributed(&rule, &ctxs);
    assert_eq!(explanations(&evaluations), ["batch"; 5], "answered by the batch entry point");
    for (i, e) in evaluations.iter().enumerate() {
        assert_eq!(e.stats.log, "x".repeat(i + 1), "context {i} has its own log");
    }
    // Context i spins i thousand times: its fuel is its own, not a share of the batch's.
    let fuel: Vec<u64> = evaluations.iter().map(|e| e.stats.fuel_used).collect();
    assert!(fuel.windows(2).all(|w| w[1] > w[0] + 1000), "{fuel:?}");
    assert!(fuel[0] < 1000, "{fuel:?}");
}

#[test]
fn one_trapping_context_fails_alone_and_its_neighbours_keep_their_decisions() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let rule = sandbox.compile(&built_rule("hostile")).unwrap().rule;
    let ctxs: Vec<GuestContext> =
        ["none", "panic", "slow", "spin", "log-flood", "nan", "bad-mark", "none"].into_iter().map(attack).collect();
    let evaluations = sandbox.evaluate_attributed(&rule, &ctxs);
    assert!(
        matches!(
            kinds(&evaluations).as_slice(),
            [
                "ok",
                "guest_panic",
                "ok",
                "timeout" | "out_of_fuel",
                "output_too_large",
                "invalid_output",
                "invalid_output",
                "ok"
            ]
        ),
        "{:?}",
        kinds(&evaluations)
    );
    assert!(evaluations[1].stats.log.contains("panicked on purpose"), "{:?}", evaluations[1].stats.log);
    assert!(evaluations[4].stats.log.len() <= 1024);
    // The good contexts decide exactly as they do alone.
    assert!(matches!(&evaluations[6].result, Err(e) if e.to_string().contains("marked context 4294967295")));
    for i in [0, 2, 7] {
        let alone = sandbox.evaluate(&rule, &ctxs[i]);
        assert_eq!(evaluations[i].result, alone.result);
        assert_eq!(evaluations[i].stats.log, alone.stats.log);
        assert_eq!(evaluations[i].stats.fuel_used, alone.stats.fuel_used);
    }
    assert_eq!(evaluations[2].result.as_ref().unwrap().explanation, "slow but legal");
}

#[test]
fn a_batch_of_good_contexts_of_a_hostile_rule_is_answered_in_one_call() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let rule = sandbox.compile(&built_rule("hostile")).unwrap().rule;
    let ctxs: Vec<GuestContext> = ["none", "slow", "negative", "none"].into_iter().map(attack).collect();
    let evaluations = sandbox.evaluate_attributed(&rule, &ctxs);
    // A refused answer fails its own entry only; the call itself succeeded.
    assert_eq!(kinds(&evaluations), ["ok", "ok", "invalid_output", "ok"]);
    assert!(evaluations[1].stats.fuel_used > 200_000 && evaluations[0].stats.fuel_used < 200_000);
}

#[test]
fn a_rule_without_the_mark_is_evaluated_one_context_per_call() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    // Its batch entry point is `unreachable`: any answer came from `evaluate`.
    let rule = sandbox.compile(&rule("(call $log (i32.const 600) (i32.const 3)) (call $keep)", "")).unwrap().rule;
    let ctxs = vec![context().to_guest(&Map::new()).unwrap(); 3];
    let evaluations = sandbox.evaluate_attributed(&rule, &ctxs);
    assert_eq!(kinds(&evaluations), ["ok"; 3]);
    assert!(evaluations.iter().all(|e| e.stats.log == "xxx" && e.stats.fuel_used > 0));
    assert!(sandbox.evaluate_attributed(&rule, &[]).is_empty());
}

#[test]
fn bad_marks_make_the_batch_fall_back_to_one_call_per_context() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let ctxs = vec![context().to_guest(&Map::new()).unwrap(); 3];
    for (what, marks) in [
        ("out of range", "(call $begin (i32.const 0)) (call $begin (i32.const 99))"),
        ("the largest index", "(call $begin (i32.const -1))"),
        ("decreasing", "(call $begin (i32.const 0)) (call $begin (i32.const 1)) (call $begin (i32.const 0))"),
        ("repeated", "(call $begin (i32.const 0)) (call $begin (i32.const 0))"),
        ("skipping", "(call $begin (i32.const 0)) (call $begin (i32.const 2)) (call $begin (i32.const 3))"),
        ("never closed", "(call $begin (i32.const 0)) (call $begin (i32.const 1)) (call $begin (i32.const 2))"),
        ("none at all", ""),
    ] {
        let rule = sandbox.compile(&marking_rule(MARKS_ONE, marks)).unwrap().rule;
        let evaluations = sandbox.evaluate_attributed(&rule, &ctxs);
        assert_eq!(explanations(&evaluations), ["single"; 3], "{what}: answered one context per call");
        assert!(evaluations.iter().all(|e| e.stats.log == "x"), "{what}");
    }
}

#[test]
fn a_single_evaluation_with_bad_marks_is_invalid_output() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let ctx = context().to_guest(&Map::new()).unwrap();
    for marks in
        ["", "(call $begin (i32.const 0))", "(call $begin (i32.const 1))", MARKS_ONE.replace("1))", "0))").as_str()]
    {
        let rule = sandbox.compile(&marking_rule(marks, MARKS_IN_ORDER)).unwrap().rule;
        let evaluation = sandbox.evaluate(&rule, &ctx);
        assert_eq!(evaluation.result.as_ref().map_err(|e| e.kind()), Err("invalid_output"), "marks {marks:?}");
    }
}

#[test]
fn evaluating_many_contexts_attributes_each_result_and_log_and_survives_a_trap() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let rule = sandbox.compile(&built_rule("hostile")).unwrap().rule;
    let ctxs = [attack("none"), attack("panic"), attack("slow"), attack("spin"), attack("none")];
    let results = sandbox.evaluate_many(&rule, &ctxs);
    assert!(
        matches!(kinds(&results).as_slice(), ["ok", "guest_panic", "ok", "timeout" | "out_of_fuel", "ok"]),
        "{:?}",
        kinds(&results)
    );
    assert!(
        results[1].stats.log.contains("panicked on purpose"),
        "the panic's log is its own: {:?}",
        results[1].stats.log
    );
    assert_eq!(results[0].stats.log, "");
    assert_eq!(results[2].stats.log, "", "no log carried over from the panic");
    assert!(results[2].stats.fuel_used > 200_000 && results[0].stats.fuel_used < 200_000);
}

#[test]
fn a_batch_without_attribution_gets_the_fuel_time_and_log_of_that_many_evaluations() {
    let sandbox = Sandbox::new(&settings()).unwrap();
    let rule = sandbox.compile(&built_rule("competitor-match")).unwrap().rule;
    let mut ctx = context();
    ctx.competitors.push(CompetitorOffer {
        competitor: "a".into(),
        price_minor: 1899,
        currency: None,
        in_stock: true,
        age_seconds: 60,
        stale: Some(false),
    });
    // Each evaluation logs a line: a batch of 500 writes far more than one evaluation may.
    let batch = vec![ctx.to_guest(&Map::new()).unwrap(); 500];
    let (result, stats) = sandbox.evaluate_batch(&rule, &batch);
    let decisions = result.unwrap();
    assert_eq!(decisions.len(), 500);
    assert!(decisions.iter().all(|d| d.as_ref().unwrap().price_minor == Some(1898)));
    assert!(stats.log.len() > 1024);
    // Attributed, the same batch gives each context its own line.
    let attributed = sandbox.evaluate_attributed(&rule, &batch);
    assert!(attributed.iter().all(|e| e.result.as_ref().unwrap().price_minor == Some(1898)));
    assert!(attributed.iter().all(|e| e.stats.log == "cheapest: a at 1899"));
}

/// Spins `iterations` times before the first mark, then marks its contexts in order.
fn spinning_before_the_first_mark(iterations: u32) -> Vec<u8> {
    let spin = format!(
        "(block $spun (loop $s
           (br_if $spun (i32.ge_u (local.get $i) (i32.const {iterations})))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br $s)))
         (local.set $i (i32.const 0))"
    );
    marking_rule(MARKS_ONE, &format!("{spin} {MARKS_IN_ORDER}"))
}

#[test]
fn work_outside_the_contexts_has_a_bounded_allowance_and_its_failure_is_paid_once() {
    let settings = settings();
    let sandbox = Sandbox::new(&settings).unwrap();
    let ctxs = vec![context().to_guest(&Map::new()).unwrap(); 64];
    // A little work before the first mark (taking the inputs in) is what batches are for.
    let modest = sandbox.compile(&spinning_before_the_first_mark(1_000)).unwrap().rule;
    assert_eq!(explanations(&sandbox.evaluate_attributed(&modest, &ctxs)), ["batch"; 64]);
    assert!(modest.batch_usable());
    // Three evaluations' worth of fuel outside any context, in a batch of 64: more than the
    // outside allowance (one evaluation and a 64th per context, here two), although far less
    // than the 64 evaluations' worth the whole batch has.
    let iterations = u32::try_from(3 * settings.fuel_per_evaluation / 4).unwrap();
    let greedy = sandbox.compile(&spinning_before_the_first_mark(iterations)).unwrap().rule;
    let evaluations = sandbox.evaluate_attributed(&greedy, &ctxs);
    assert_eq!(explanations(&evaluations), ["single"; 64], "cut off, then one call per context");
    assert!(!greedy.batch_usable(), "its batches are not tried again");
    let again = sandbox.evaluate_attributed(&greedy, &ctxs);
    assert_eq!(explanations(&again), ["single"; 64]);
}
