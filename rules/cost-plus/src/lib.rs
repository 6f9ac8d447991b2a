//! Cost-plus: price = cost × (1 + target margin), optionally rounded to the nearest price
//! ending.
//!
//! Parameters (declared, so the service checks them): `margin_bps` (default 3000, i.e. 30 %
//! over cost), `ending` (e.g. 99 for x.99 or 980 for ¥x980; absent for no rounding).

use pricing_rule_sdk::{Bps, Context, Decision, Minor, Params, export_rule, pricing};

#[derive(Params, Debug)]
pub struct CostPlus {
    /// Target margin over cost, in basis points (3000 = 30 %).
    #[param(default = 3000, min = -9_999, max = 1_000_000)]
    pub margin_bps: Bps,
    /// Price ending to round to, in minor units (99 for x.99, 980 for ¥x980); unset, no rounding.
    #[param(min = 1)]
    pub ending: Option<Minor>,
}

pub fn cost_plus(ctx: &Context, params: &CostPlus) -> Decision {
    let margin = params.margin_bps.0;
    if ctx.cost.minor <= 0 {
        return Decision::keep("no cost on record, so no cost-plus price").with_tag("cost-plus");
    }
    let Some(price) = pricing::price_for_margin(ctx.cost.minor, margin) else {
        return Decision::keep("the target margin gives a price out of range").with_tag("cost-plus");
    };
    let price = match params.ending {
        None => price,
        Some(Minor(ending)) => match pricing::round_to_ending(price, ending) {
            Some(rounded) => rounded,
            None => return Decision::keep(format!("{ending} is not a price ending")).with_tag("cost-plus"),
        },
    };
    if price <= 0 {
        return Decision::keep(format!("a {margin} bp margin leaves no positive price")).with_tag("cost-plus");
    }
    Decision::set(price, format!("cost {} plus {margin} bp", ctx.cost.minor)).with_tag("cost-plus")
}

export_rule!(cost_plus, CostPlus);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::{ContextBuilder, decide};

    fn tee() -> ContextBuilder {
        ContextBuilder::new("tee", "EUR").cost(1200)
    }

    #[test]
    fn adds_the_target_margin_to_the_cost() {
        let decision = decide(cost_plus, &tee().param("margin_bps", 2500).build());
        assert_eq!(decision.price_minor(), Some(1500)); // 1200 × 1.25
        assert_eq!(decision.explanation, "cost 1200 plus 2500 bp");
        assert!(decision.has_tag("cost-plus"));
    }

    #[test]
    fn defaults_to_thirty_percent_and_rounds_to_the_nearest_ending() {
        let decision = decide(cost_plus, &tee().param("ending", 99).build());
        assert_eq!(decision.price_minor(), Some(1599)); // 1200 × 1.30 = 1560 → 15.99 (39 up, 61 down)
    }

    #[test]
    fn works_in_zero_decimal_currencies() {
        let ctx =
            ContextBuilder::new("wagashi", "JPY").cost(1500).param("margin_bps", 3333).param("ending", 980).build();
        assert_eq!(decide(cost_plus, &ctx).price_minor(), Some(1980)); // 1999.95 → ¥2000 → ¥1980 (20 down)
    }

    #[test]
    fn keeps_the_price_without_a_cost() {
        assert_eq!(decide(cost_plus, &ContextBuilder::new("tee", "EUR").build()).price_minor(), None);
    }

    #[test]
    fn keeps_the_price_when_the_parameters_make_no_sense() {
        assert_eq!(decide(cost_plus, &tee().param("ending", -5).build()).price_minor(), None);
        assert_eq!(decide(cost_plus, &tee().param("margin_bps", -10_000).build()).price_minor(), None); // price 0
    }
}
