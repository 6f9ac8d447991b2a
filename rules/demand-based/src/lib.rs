//! Demand-based: raise the price when stock sells through fast or cover runs low, lower it
//! for slow movers, keep it otherwise. The explanation and a tag (`fast`, `low-cover`, `slow`)
//! say which case fired.
//!
//! Cover is inventory ÷ average daily sales over the last 7 days. Parameters: `step_up_bps`
//! (500), `step_down_bps` (500), `sell_through_bps` (5000: a week's sales of at least half
//! the stock is fast), `low_cover_days` (7), `slow_units_30d` (3: fewer sales than this in 30
//! days is slow, when cover is also above `high_cover_days`, 60, or nothing sold this week).

use pricing_rule_sdk::{Bps, Context, Decision, Params, export_rule, pricing};

const TAG: &str = "demand";

#[derive(Params, Debug)]
pub struct DemandBased {
    /// How much to raise the price when stock sells fast or cover runs low.
    #[param(default = 500, min = 0, max = 10_000)]
    pub step_up_bps: Bps,
    /// How much to lower the price of a slow mover.
    #[param(default = 500, min = 0, max = 9_999)]
    pub step_down_bps: Bps,
    /// A week's sales of at least this share of the stock is fast.
    #[param(default = 5000, min = 1, max = 1_000_000)]
    pub sell_through_bps: Bps,
    /// Fewer days of stock than this at this week's pace is low cover.
    #[param(default = 7, min = 0, max = 3650)]
    pub low_cover_days: i64,
    /// A slow mover also has more days of cover than this (or sold nothing this week).
    #[param(default = 60, min = 0, max = 3650)]
    pub high_cover_days: i64,
    /// Fewer sales than this in 30 days is slow.
    #[param(default = 3, min = 0, max = 1_000_000_000)]
    pub slow_units_30d: i64,
}

pub fn demand_based(ctx: &Context, params: &DemandBased) -> Decision {
    let step_up = params.step_up_bps.0;
    let step_down = params.step_down_bps.0;
    let sell_through_bps = params.sell_through_bps.0;
    let low_cover = params.low_cover_days;
    let high_cover = params.high_cover_days;
    let slow_units = params.slow_units_30d;

    let inventory = match ctx.demand.inventory {
        None => return Decision::keep("no inventory reported").with_tag(TAG),
        Some(units) if units <= 0 => return Decision::keep("out of stock").with_tag(TAG),
        Some(units) => i128::from(units),
    };
    // Demand counters are u64 and parameters i64: i128 holds every product below exactly.
    let sold_7d = i128::from(ctx.demand.units_sold_7d);
    let sold_30d = i128::from(ctx.demand.units_sold_30d);
    let cover_days = (sold_7d > 0).then(|| inventory * 7 / sold_7d);

    let move_by = |bps: i64, why: String, case: &str| match pricing::move_bps(ctx.current_price.minor, bps) {
        Some(price) if price > 0 => Decision::set(price, why).with_tag(TAG).with_tag(case),
        _ => Decision::keep(format!("{why}, but the move is out of range")).with_tag(TAG),
    };
    if sold_7d * 10_000 >= inventory * i128::from(sell_through_bps) {
        return move_by(step_up, format!("fast: {sold_7d} sold in 7 days against {inventory} in stock"), "fast");
    }
    if let Some(days) = cover_days.filter(|days| *days < i128::from(low_cover)) {
        return move_by(step_up, format!("low cover: {days} days of stock at this week's pace"), "low-cover");
    }
    if sold_30d < i128::from(slow_units) && cover_days.is_none_or(|days| days > i128::from(high_cover)) {
        return move_by(-step_down, format!("slow: {sold_30d} sold in 30 days with {inventory} in stock"), "slow");
    }
    Decision::keep("demand is in the normal range").with_tag(TAG)
}

export_rule!(demand_based, DemandBased);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::{ContextBuilder, decide};

    fn demand_based(ctx: &Context) -> Decision {
        decide(super::demand_based, ctx)
    }

    fn stock(inventory: i64, sold_7d: u64, sold_30d: u64) -> ContextBuilder {
        ContextBuilder::new("tee", "EUR").current_price(2000).inventory(inventory).demand(|d| {
            d.units_sold_7d = sold_7d;
            d.units_sold_30d = sold_30d;
        })
    }

    #[test]
    fn raises_the_price_on_fast_sell_through() {
        let decision = demand_based(&stock(100, 60, 200).build()); // 60 ≥ 50 % of 100
        assert_eq!(decision.price_minor(), Some(2100)); // 2000 + 5 %
        assert_eq!(decision.explanation, "fast: 60 sold in 7 days against 100 in stock");
        assert!(decision.has_tag("fast"));
    }

    #[test]
    fn raises_the_price_when_cover_runs_low() {
        // 40 < 50 % of 100, so not fast; cover is 100 × 7 / 40 = 17 days, under 20.
        let decision = demand_based(&stock(100, 40, 150).param("low_cover_days", 20).build());
        assert_eq!(decision.price_minor(), Some(2100));
        assert_eq!(decision.explanation, "low cover: 17 days of stock at this week's pace");
        assert!(decision.has_tag("low-cover"));
    }

    #[test]
    fn fast_sell_through_is_checked_before_low_cover() {
        let decision = demand_based(&stock(100, 140, 400).build()); // both: 5 days of cover
        assert!(decision.has_tag("fast"));
    }

    #[test]
    fn lowers_the_price_of_slow_movers() {
        let decision = demand_based(&stock(500, 0, 2).build());
        assert_eq!(decision.price_minor(), Some(1900)); // 2000 − 5 %
        assert!(decision.has_tag("slow"));
        let decision = demand_based(&stock(500, 1, 2).param("step_down_bps", 1250).build()); // 3500 days
        assert_eq!(decision.price_minor(), Some(1750)); // 2000 − 12.5 %
    }

    #[test]
    fn keeps_the_price_in_the_normal_range() {
        let decision = demand_based(&stock(100, 10, 40).build()); // 70 days of cover, 40 sold in 30 days
        assert_eq!(decision.price_minor(), None);
        assert_eq!(decision.explanation, "demand is in the normal range");
        let decision = demand_based(&stock(5, 1, 2).build()); // few sales, but only 35 days of cover
        assert_eq!(decision.price_minor(), None);
    }

    #[test]
    fn keeps_the_price_without_inventory_or_stock() {
        let decision = demand_based(&ContextBuilder::new("tee", "EUR").build());
        assert_eq!((decision.price_minor(), decision.explanation.as_str()), (None, "no inventory reported"));
        assert_eq!(demand_based(&stock(0, 50, 50).build()).explanation, "out of stock");
    }

    #[test]
    fn huge_counters_do_not_overflow() {
        let decision = demand_based(&stock(i64::MAX, u64::MAX, u64::MAX).build());
        assert!(decision.has_tag("fast")); // 2^64 × 10 000 ≥ 2^63 × 5 000
    }
}
