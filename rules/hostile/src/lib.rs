//! A deliberately hostile rule for the sandbox's test corpus: never upload it for real. Its
//! `attack` parameter picks the misbehaviour, so one module covers what a Rust author could
//! do wrong or on purpose: panic, allocate without end, recurse without end, spin, flood the
//! log, answer nonsense, or lie to the host about which context it is working on.

use std::hint::black_box;

use pricing_rule_sdk::{Context, Decision, export_rule, log};

pub fn hostile(ctx: &Context) -> Decision {
    match ctx.param_str("attack").unwrap_or("none") {
        "panic" => panic!("the hostile rule panicked on purpose"),
        "alloc-bomb" => {
            // Megabytes reserved but never written: memory, not fuel, runs out.
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = Vec::with_capacity(1 << 20);
                block.push(1u8);
                hoard.push(black_box(block));
            }
        }
        "recursion" => Decision::set(deep(black_box(0)) as i64, "unreachable"),
        "spin" => {
            let mut i = 0u64;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        "log-flood" => loop {
            log("flooding the log with a line that is long enough to fill it up quickly");
        },
        "nan" => Decision::set_approx(f64::NAN, "not a number"),
        "negative" => Decision::set(-100, "a negative price"),
        "overflow" => Decision::set_approx(1e300, "beyond any i64"),
        "huge-explanation" => Decision::set(1000, "x".repeat(100_000)),
        "bad-mark" => {
            // Announces a context that does not exist, through the SDK's hidden glue: the
            // host refuses the whole call rather than guess whose costs follow.
            #[cfg(target_arch = "wasm32")]
            pricing_rule_sdk::guest::begin_context(u32::MAX);
            Decision::keep("lied about its context")
        }
        "slow" => {
            let mut acc = 0u64;
            for i in 0..black_box(200_000u64) {
                acc = acc.wrapping_mul(31).wrapping_add(i);
            }
            Decision::set(1000 + (black_box(acc) % 7) as i64, "slow but legal")
        }
        _ => Decision::keep("behaving"),
    }
}

/// Recursion that the optimiser cannot turn into a loop, on the wasm stack itself (no local
/// has its address taken, so Rust's shadow stack in linear memory stays untouched).
fn deep(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    deep(n + 1).wrapping_mul(3) ^ n
}

export_rule!(hostile);
