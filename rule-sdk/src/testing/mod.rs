//! A native test harness: build contexts in a line or two, run a policy on them with plain
//! `cargo test`, and read what it logged.

#[cfg(not(target_arch = "wasm32"))]
pub mod fixtures;

use crate::{CompetitorOffer, Context, Demand, Money, Value};

/// 2026-01-01T00:00:00Z, the default `now` of a built context.
pub const DEFAULT_NOW_MS: i64 = 1_767_225_600_000;

/// Decimal places of common zero- and three-decimal currencies; two for the rest.
fn exponent_of(currency: &str) -> u8 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV"
        | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Builds a [`Context`]. Defaults: cost 0, current and base price 1000, no competitors, no
/// demand, no attributes or parameters, `now` = [`DEFAULT_NOW_MS`], and the currency's usual
/// exponent (0 for JPY, 3 for KWD, 2 otherwise; [`ContextBuilder::currency_exponent`] sets it).
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    ctx: Context,
}

impl ContextBuilder {
    pub fn new(sku: &str, currency: &str) -> Self {
        let money = |minor| Money { minor, currency: currency.to_owned() };
        Self {
            ctx: Context {
                sku: sku.to_owned(),
                currency: currency.to_owned(),
                currency_exponent: exponent_of(currency),
                cost: money(0),
                current_price: money(1000),
                base_price: money(1000),
                competitors: Vec::new(),
                demand: Demand::default(),
                attributes: Vec::new(),
                params: Vec::new(),
                now_ms: DEFAULT_NOW_MS,
            },
        }
    }

    fn money(&self, minor: i64) -> Money {
        Money { minor, currency: self.ctx.currency.clone() }
    }

    pub fn cost(mut self, minor: i64) -> Self {
        self.ctx.cost = self.money(minor);
        self
    }

    pub fn current_price(mut self, minor: i64) -> Self {
        self.ctx.current_price = self.money(minor);
        self
    }

    pub fn base_price(mut self, minor: i64) -> Self {
        self.ctx.base_price = self.money(minor);
        self
    }

    /// A fresh offer in the product's currency.
    pub fn competitor(self, name: &str, price_minor: i64, in_stock: bool, age_seconds: i64) -> Self {
        let currency = self.ctx.currency.clone();
        self.offer(name, price_minor, &currency, in_stock, age_seconds, false)
    }

    /// An offer the service marked stale.
    pub fn stale_competitor(self, name: &str, price_minor: i64, in_stock: bool, age_seconds: i64) -> Self {
        let currency = self.ctx.currency.clone();
        self.offer(name, price_minor, &currency, in_stock, age_seconds, true)
    }

    /// An offer in another currency.
    pub fn competitor_in(self, name: &str, price_minor: i64, currency: &str, in_stock: bool, age_seconds: i64) -> Self {
        self.offer(name, price_minor, currency, in_stock, age_seconds, false)
    }

    fn offer(mut self, name: &str, minor: i64, currency: &str, in_stock: bool, age_seconds: i64, stale: bool) -> Self {
        self.ctx.competitors.push(CompetitorOffer {
            competitor: name.to_owned(),
            price: Money { minor, currency: currency.to_owned() },
            in_stock,
            age_seconds,
            stale,
        });
        self
    }

    /// Sets demand figures: `.demand(|d| d.units_sold_7d = 70)`.
    pub fn demand(mut self, set: impl FnOnce(&mut Demand)) -> Self {
        set(&mut self.ctx.demand);
        self
    }

    pub fn inventory(mut self, units: i64) -> Self {
        self.ctx.demand.inventory = Some(units);
        self
    }

    pub fn attribute(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.ctx.attributes.push((key.to_owned(), value.into()));
        self
    }

    pub fn param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.ctx.params.push((key.to_owned(), value.into()));
        self
    }

    pub fn currency_exponent(mut self, exponent: u8) -> Self {
        self.ctx.currency_exponent = exponent;
        self
    }

    pub fn now_ms(mut self, now_ms: i64) -> Self {
        self.ctx.now_ms = now_ms;
        self
    }

    pub fn build(self) -> Context {
        self.ctx
    }
}

/// The lines logged on this thread since the last call.
#[cfg(not(target_arch = "wasm32"))]
pub fn take_log() -> Vec<String> {
    crate::log::native::take()
}

/// Runs a policy as the service would (one context) and returns its decision and log.
#[cfg(not(target_arch = "wasm32"))]
pub fn run(policy: crate::Policy, ctx: &Context) -> (crate::Decision, Vec<String>) {
    take_log();
    let decision = policy(ctx);
    (decision, take_log())
}

/// Runs a policy with declared parameters on one context: its parameters read from the
/// context as the rule does in the service (the declared defaults for those left out), then
/// the policy. A value of the wrong kind panics with the reason, as it would in the guest
/// (the service itself never hands one; bounds are the service's to check).
pub fn decide<P: crate::Params>(policy: crate::TypedPolicy<P>, ctx: &Context) -> crate::Decision {
    match P::from_context(ctx) {
        Ok(params) => policy(ctx, &params),
        Err(why) => panic!("{why}"),
    }
}

/// Runs a policy on many contexts as the batch entry point does, and returns each context's
/// decision with the lines it logged: the same split the host makes of a batch's log.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_batch(policy: crate::Policy, ctxs: &[Context]) -> Vec<(crate::Decision, Vec<String>)> {
    take_log();
    let mut logs: Vec<Vec<String>> = Vec::with_capacity(ctxs.len());
    // Each mark closes the previous context's log; the first closes whatever came before.
    let decisions = crate::batch::each_context(
        ctxs.iter(),
        |index| {
            let lines = take_log();
            if index > 0 {
                logs.push(lines);
            }
        },
        policy,
    );
    decisions.into_iter().zip(logs).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decision, log};

    fn logs_and_keeps(ctx: &Context) -> Decision {
        log(&format!("looked at {}", ctx.sku));
        log("kept");
        Decision::keep("nothing to do")
    }

    #[test]
    fn a_built_context_has_the_documented_defaults() {
        let ctx = ContextBuilder::new("sku-1", "EUR").build();
        assert_eq!((ctx.cost.minor, ctx.current_price.minor, ctx.base_price.minor), (0, 1000, 1000));
        assert_eq!(ctx.currency_exponent, 2);
        assert_eq!(ctx.now_ms, DEFAULT_NOW_MS);
        assert!(ctx.competitors.is_empty() && ctx.params.is_empty() && ctx.attributes.is_empty());
        assert_eq!(ctx.demand, Demand::default());
    }

    #[test]
    fn every_amount_is_in_the_context_currency_unless_an_offer_says_otherwise() {
        let ctx = ContextBuilder::new("gyoza", "JPY")
            .cost(500)
            .competitor("a", 980, true, 60)
            .competitor_in("b", 700, "USD", true, 60)
            .build();
        assert_eq!(ctx.currency_exponent, 0);
        assert_eq!(ctx.cost, Money { minor: 500, currency: "JPY".into() });
        assert_eq!(ctx.competitors[0].price.currency, "JPY");
        assert_eq!(ctx.competitors[1].price.currency, "USD");
        assert_eq!(ContextBuilder::new("x", "KWD").build().currency_exponent, 3);
    }

    #[test]
    fn demand_figures_and_inventory_are_set_together() {
        let ctx = ContextBuilder::new("sku-1", "EUR").demand(|d| d.units_sold_7d = 70).inventory(12).build();
        assert_eq!((ctx.demand.units_sold_7d, ctx.demand.inventory), (70, Some(12)));
    }

    #[test]
    fn run_returns_the_decision_with_only_that_evaluation_log() {
        log("left over from an earlier call");
        let ctx = ContextBuilder::new("sku-1", "EUR").build();
        let (decision, lines) = run(logs_and_keeps, &ctx);
        assert_eq!(decision, Decision::keep("nothing to do"));
        assert_eq!(lines, ["looked at sku-1", "kept"]);
        assert!(take_log().is_empty(), "run drains the log");
    }

    fn logs_its_sku_twice_when_expensive(ctx: &Context) -> Decision {
        log(&format!("looked at {}", ctx.sku));
        if ctx.cost.minor > 500 {
            log("expensive");
            return Decision::set(ctx.cost.minor * 2, "doubled");
        }
        Decision::keep("cheap")
    }

    #[test]
    fn run_batch_gives_each_context_its_own_decision_and_log() {
        log("left over from an earlier call");
        let ctxs = [
            ContextBuilder::new("a", "EUR").cost(100).build(),
            ContextBuilder::new("b", "EUR").cost(900).build(),
            ContextBuilder::new("c", "EUR").cost(200).build(),
        ];
        let results = run_batch(logs_its_sku_twice_when_expensive, &ctxs);
        assert_eq!(results.len(), 3);
        assert_eq!(results[1].0.price_minor(), Some(1800));
        assert_eq!(results[0].1, ["looked at a"]);
        assert_eq!(results[1].1, ["looked at b", "expensive"]);
        assert_eq!(results[2].1, ["looked at c"]);
        // The batch split agrees with one run per context.
        for (ctx, (decision, lines)) in ctxs.iter().zip(&results) {
            assert_eq!(&run(logs_its_sku_twice_when_expensive, ctx), &(decision.clone(), lines.clone()));
        }
        assert!(run_batch(logs_its_sku_twice_when_expensive, &[]).is_empty());
    }
}
