//! The WebAssembly side of the SDK: bindings generated from `wit/policy.wit` (the
//! `encoded-policy` world of `pricing:policy@1.2.0`), and the conversions between them and the
//! SDK's own types. Policies never see this module; the [`crate::export_rule!`] macro does.

wit_bindgen::generate!({
    world: "encoded-policy",
    path: "wit",
    pub_export_macro: true,
    default_bindings_module: "pricing_rule_sdk::guest",
    runtime_path: "pricing_rule_sdk::guest::wit_bindgen::rt",
});

pub use wit_bindgen;

use self::pricing::policy::params as wit_params;
use self::pricing::policy::types as wit;

pub type GuestContext = wit::Context;
pub type GuestDecision = wit::Decision;
pub type GuestParamSpec = wit_params::ParamSpec;

/// The `evaluate` export: one context, through the same loop as a batch (see `crate::batch`).
pub fn evaluate(ctx: GuestContext, policy: impl Fn(&crate::Context) -> crate::Decision) -> GuestDecision {
    let mut decisions = evaluate_batch(vec![ctx], policy);
    decisions.pop().expect("one decision per context")
}

/// The `evaluate-batch` export: each context marked with `begin-context` for the host.
pub fn evaluate_batch(
    ctxs: Vec<GuestContext>,
    policy: impl Fn(&crate::Context) -> crate::Decision,
) -> Vec<GuestDecision> {
    install_panic_hook();
    crate::batch::each_context(ctxs.into_iter(), begin_context, |ctx| evaluate_one(ctx, &policy))
}

/// The `evaluate-encoded` export (1.2.0): the batch decoded context by context into one
/// reused [`crate::Context`] (see `crate::encoding`), each decoded inside its own span, so a
/// context is charged for its own decoding, as it is when it comes alone (the host sends a
/// 1.2.0 rule every context this way). A buffer that does not decode traps the call.
pub fn evaluate_encoded(batch: Vec<u8>, policy: impl Fn(&crate::Context) -> crate::Decision) -> Vec<GuestDecision> {
    install_panic_hook();
    let mut contexts = crate::encoding::Batch::new(&batch).unwrap_or_else(|e| panic!("{e}"));
    let mut ctx = crate::encoding::empty_context();
    let decisions = crate::batch::each_context(0..contexts.remaining(), begin_context, |_| {
        contexts.next_into(&mut ctx).unwrap_or_else(|e| panic!("{e}"));
        to_guest(policy(&ctx), ctx.currency.clone())
    });
    if let Err(e) = contexts.next_into(&mut ctx) {
        panic!("{e}");
    }
    decisions
}

/// A typed policy as an untyped one: its parameters read from each context. The service
/// hands only values that passed the declaration, so a failure here is a hand-made context's;
/// it panics with the reason, which the decision's log shows.
pub fn with_params<P: crate::Params>(
    policy: fn(&crate::Context, &P) -> crate::Decision,
) -> impl Fn(&crate::Context) -> crate::Decision {
    move |ctx| match P::from_context(ctx) {
        Ok(params) => policy(ctx, &params),
        Err(why) => panic!("{why}"),
    }
}

/// The `params-schema` export of a rule with declared parameters.
pub fn schema<P: crate::Params>() -> Option<Vec<GuestParamSpec>> {
    Some(P::schema().into_iter().map(spec_to_guest).collect())
}

fn spec_to_guest(spec: crate::params::ParamSpec) -> GuestParamSpec {
    use crate::params::ParamKind as K;
    let bounds = |b: crate::params::Bounds| wit_params::Bounds { min: b.min, max: b.max };
    let kind = match spec.kind {
        K::Integer(b) => wit_params::ParamKind::Integer(bounds(b)),
        K::Money(b) => wit_params::ParamKind::Money(bounds(b)),
        K::Bps(b) => wit_params::ParamKind::Bps(bounds(b)),
        K::Boolean => wit_params::ParamKind::Boolean,
        K::Text(max_bytes) => wit_params::ParamKind::Text(max_bytes),
        K::OneOf(values) => wit_params::ParamKind::OneOf(values),
    };
    GuestParamSpec {
        name: spec.name,
        kind,
        default: spec.default.map(value_to_guest),
        optional: spec.optional,
        description: spec.description,
    }
}

fn value_to_guest(value: crate::Value) -> wit::Value {
    match value {
        crate::Value::Text(s) => wit::Value::Text(s),
        crate::Value::Number(n) => wit::Value::Number(n),
        crate::Value::Boolean(b) => wit::Value::Boolean(b),
    }
}

fn evaluate_one(ctx: GuestContext, policy: &impl Fn(&crate::Context) -> crate::Decision) -> GuestDecision {
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
