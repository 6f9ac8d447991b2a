//! Demand-based: raise the price when stock sells through fast or cover runs low, lower it
//! for slow movers, keep it otherwise.
//!
//! Cover is inventory ÷ average daily sales over 7 days. Parameters: `step_up_bps` (500),
//! `step_down_bps` (500), `low_cover_days` (7), `high_cover_days` (60),
//! `sell_through_bps` (5000: a week's sales at least half the stock counts as fast),
//! `slow_units_30d` (3: fewer sales than this in 30 days is slow).

use pricing_rule_sdk::{Context, Decision, export_rule, pricing};

pub fn demand_based(ctx: &Context) -> Decision {
    let step_up = ctx.param_i64("step_up_bps").unwrap_or(500);
    let step_down = ctx.param_i64("step_down_bps").unwrap_or(500);
    let low_cover = ctx.param_i64("low_cover_days").unwrap_or(7);
    let high_cover = ctx.param_i64("high_cover_days").unwrap_or(60);
    let sell_through_bps = ctx.param_i64("sell_through_bps").unwrap_or(5000);
    let slow_units = ctx.param_i64("slow_units_30d").unwrap_or(3);

    let Some(inventory) = ctx.demand.inventory.filter(|i| *i > 0) else {
        return Decision::keep("no inventory reported").with_tag("demand");
    };
    let sold_7d = ctx.demand.units_sold_7d as i64;
    let price = ctx.current_price.minor;
    let moved = |bps: i64, why: String, tag: &str| match pricing::move_bps(price, bps) {
        Some(p) if p > 0 => Decision::set(p, why).with_tag("demand").with_tag(tag),
        _ => Decision::keep("the move is out of range").with_tag("demand"),
    };
    // Days of cover at the last week's pace (×7 keeps it in integers).
    let cover_days = (sold_7d > 0).then(|| inventory * 7 / sold_7d);
    if sold_7d * 10_000 >= inventory * sell_through_bps {
        return moved(step_up, format!("{sold_7d} sold in 7 days against {inventory} in stock"), "fast");
    }
    if let Some(days) = cover_days.filter(|d| *d < low_cover) {
        return moved(step_up, format!("only {days} days of cover"), "low-cover");
    }
    if (ctx.demand.units_sold_30d as i64) < slow_units && cover_days.is_none_or(|d| d > high_cover) {
        let why = format!("{} sold in 30 days with {inventory} in stock", ctx.demand.units_sold_30d);
        return moved(-step_down, why, "slow");
    }
    Decision::keep("demand is in the normal range").with_tag("demand")
}

export_rule!(demand_based);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::ContextBuilder;

    fn stock(inventory: i64, sold_7d: u64, sold_30d: u64) -> Context {
        ContextBuilder::new("tee", "EUR")
            .current_price(2000)
            .inventory(inventory)
            .demand(|d| {
                d.units_sold_7d = sold_7d;
                d.units_sold_30d = sold_30d;
            })
            .build()
    }

    #[test]
    fn raises_the_price_on_fast_sell_through() {
        let decision = demand_based(&stock(100, 60, 200)); // 60 ≥ 50 % of 100
        assert_eq!(decision.price_minor(), Some(2100));
        assert!(decision.tags.contains(&"fast".to_owned()));
    }

    #[test]
    fn raises_the_price_when_cover_runs_low() {
        let decision = demand_based(&stock(100, 140, 400)); // fast too: checked first
        assert!(decision.tags.contains(&"fast".to_owned()));
        let ctx = {
            let mut c = stock(100, 40, 150); // 40 < 50: not fast; cover 100×7/40 = 17 days
            c.params.push(("low_cover_days".into(), 20.into()));
            c
        };
        let decision = demand_based(&ctx);
        assert_eq!(decision.price_minor(), Some(2100));
        assert!(decision.tags.contains(&"low-cover".to_owned()));
    }

    #[test]
    fn lowers_the_price_of_slow_movers() {
        let decision = demand_based(&stock(500, 0, 2));
        assert_eq!(decision.price_minor(), Some(1900));
        assert!(decision.tags.contains(&"slow".to_owned()));
    }

    #[test]
    fn keeps_the_price_in_the_normal_range_or_without_inventory() {
        assert_eq!(demand_based(&stock(100, 10, 40)).price_minor(), None); // cover 70 days, 40 sold
        assert_eq!(demand_based(&ContextBuilder::new("tee", "EUR").build()).price_minor(), None);
    }
}
