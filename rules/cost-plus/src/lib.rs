//! Cost-plus: price = cost × (1 + target margin), optionally rounded to a price ending.
//!
//! Parameters: `margin_bps` (default 3000, i.e. 30 % over cost), `ending` (e.g. 99 for x.99;
//! absent for no rounding).

use pricing_rule_sdk::{Context, Decision, export_rule, pricing};

pub fn cost_plus(ctx: &Context) -> Decision {
    let margin = ctx.param_i64("margin_bps").unwrap_or(3000);
    if ctx.cost.minor <= 0 {
        return Decision::keep("no cost on record, so no cost-plus price").with_tag("cost-plus");
    }
    let Some(mut price) = pricing::price_for_margin(ctx.cost.minor, margin) else {
        return Decision::keep("the target margin gives a price out of range").with_tag("cost-plus");
    };
    if let Some(ending) = ctx.param_i64("ending") {
        price = pricing::round_to_ending(price, ending);
    }
    Decision::set(price, format!("cost {} plus {margin} bp", ctx.cost.minor)).with_tag("cost-plus")
}

export_rule!(cost_plus);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::ContextBuilder;

    #[test]
    fn adds_the_target_margin_to_the_cost() {
        let ctx = ContextBuilder::new("tee", "EUR").cost(1200).param("margin_bps", 2500).build();
        assert_eq!(cost_plus(&ctx).price_minor(), Some(1500)); // 1200 × 1.25
    }

    #[test]
    fn defaults_to_thirty_percent_and_rounds_to_the_ending() {
        let ctx = ContextBuilder::new("tee", "EUR").cost(1200).param("ending", 99).build();
        assert_eq!(cost_plus(&ctx).price_minor(), Some(1599)); // 1560 → nearest x.99
    }

    #[test]
    fn works_in_zero_decimal_currencies() {
        let ctx =
            ContextBuilder::new("wagashi", "JPY").cost(1500).param("margin_bps", 3333).param("ending", 980).build();
        assert_eq!(cost_plus(&ctx).price_minor(), Some(1980)); // 1999.95 → 2000 → nearest ¥x980
    }

    #[test]
    fn keeps_the_price_without_a_cost() {
        let ctx = ContextBuilder::new("tee", "EUR").build();
        assert_eq!(cost_plus(&ctx).price_minor(), None);
    }
}
