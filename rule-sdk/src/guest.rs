//! The WebAssembly side of the SDK: bindings generated from `wit/policy.wit`, and the
//! conversions between them and the SDK's own types. Policies never see this module; the
//! [`crate::export_rule!`] macro does.

wit_bindgen::generate!({
    world: "policy",
    path: "wit",
    pub_export_macro: true,
    default_bindings_module: "pricing_rule_sdk::guest",
    runtime_path: "pricing_rule_sdk::guest::wit_bindgen::rt",
});

pub use wit_bindgen;

use self::pricing::policy::types as wit;

pub type GuestContext = wit::Context;
pub type GuestDecision = wit::Decision;

/// The `evaluate` export: one context, through the same loop as a batch (see `crate::batch`).
pub fn evaluate(ctx: GuestContext, policy: crate::Policy) -> GuestDecision {
    let mut decisions = evaluate_batch(vec![ctx], policy);
    decisions.pop().expect("one decision per context")
}

/// The `evaluate-batch` export: each context marked with `begin-context` for the host.
pub fn evaluate_batch(ctxs: Vec<GuestContext>, policy: crate::Policy) -> Vec<GuestDecision> {
    install_panic_hook();
    crate::batch::each_context(ctxs, begin_context, |ctx| evaluate_one(ctx, policy))
}

fn evaluate_one(ctx: GuestContext, policy: crate::Policy) -> GuestDecision {
    let currency = ctx.currency.clone();
    let decision = policy(&from_guest(ctx));
    to_guest(decision, currency)
}

/// A panicking policy leaves its message in the log, where the decision record shows it.
fn install_panic_hook() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| log(&format!("panic: {info}")))));
}

fn money(m: wit::Money) -> crate::Money {
    crate::Money { minor: m.minor, currency: m.currency }
}

fn entries(entries: Vec<wit::Entry>) -> Vec<(String, crate::Value)> {
    entries
        .into_iter()
        .map(|e| {
            let value = match e.value {
                wit::Value::Text(s) => crate::Value::Text(s),
                wit::Value::Number(n) => crate::Value::Number(n),
                wit::Value::Boolean(b) => crate::Value::Boolean(b),
            };
            (e.key, value)
        })
        .collect()
}

fn from_guest(ctx: wit::Context) -> crate::Context {
    let d = ctx.demand;
    crate::Context {
        sku: ctx.sku,
        currency: ctx.currency,
        currency_exponent: ctx.currency_exponent,
        cost: money(ctx.cost),
        current_price: money(ctx.current_price),
        base_price: money(ctx.base_price),
        competitors: ctx
            .competitors
            .into_iter()
            .map(|o| crate::CompetitorOffer {
                competitor: o.competitor,
                price: money(o.price),
                in_stock: o.in_stock,
                age_seconds: o.age_seconds,
                stale: o.stale,
            })
            .collect(),
        demand: crate::Demand {
            views_1d: d.views_1d,
            views_7d: d.views_7d,
            add_to_carts_1d: d.add_to_carts_1d,
            add_to_carts_7d: d.add_to_carts_7d,
            units_sold_1d: d.units_sold_1d,
            units_sold_7d: d.units_sold_7d,
            units_sold_30d: d.units_sold_30d,
            inventory: d.inventory,
        },
        attributes: entries(ctx.attributes),
        params: entries(ctx.params),
        now_ms: ctx.now_ms,
    }
}

fn to_guest(decision: crate::Decision, currency: String) -> wit::Decision {
    let action = match decision.action {
        crate::Action::Keep => wit::Action::Keep,
        crate::Action::Set(minor) => wit::Action::Set(wit::Money { minor, currency }),
        crate::Action::SetApprox(minor) => wit::Action::SetApprox(wit::ApproxPrice { minor, currency }),
    };
    wit::Decision { action, explanation: decision.explanation, tags: decision.tags }
}
