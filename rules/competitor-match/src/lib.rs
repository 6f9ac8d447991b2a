//! Competitor match: beat the cheapest in-stock competitor seen in the last `max_age_hours`
//! by `undercut_minor`, but never go under `min_margin_bps` over cost. With no such
//! competitor, keep the price.
//!
//! Parameters: `max_age_hours` (default 24), `undercut_minor` (default 1),
//! `min_margin_bps` (default 1000).

use pricing_rule_sdk::{Context, Decision, export_rule, log, pricing};

pub fn competitor_match(ctx: &Context) -> Decision {
    let max_age_seconds = ctx.param_i64("max_age_hours").unwrap_or(24).saturating_mul(3600);
    let undercut = ctx.param_i64("undercut_minor").unwrap_or(1);
    let min_margin = ctx.param_i64("min_margin_bps").unwrap_or(1000);

    let Some(cheapest) = pricing::cheapest_competitor(ctx, Some(max_age_seconds)) else {
        return Decision::keep("no in-stock competitor seen recently").with_tag("competitor-match");
    };
    log(&format!("cheapest: {} at {}", cheapest.competitor, cheapest.price.minor));
    let target = cheapest.price.minor - undercut;
    let floor = pricing::price_for_margin(ctx.cost.minor, min_margin).unwrap_or(i64::MAX);
    if target >= floor {
        let why = format!("{undercut} under {} ({})", cheapest.competitor, cheapest.price.minor);
        Decision::set(target, why).with_tag("competitor-match")
    } else {
        let why = format!("{} undercut would break the {min_margin} bp margin floor", cheapest.competitor);
        Decision::set(floor, why).with_tag("competitor-match").with_tag("margin-floor")
    }
}

export_rule!(competitor_match);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::{ContextBuilder, run};

    fn shelf() -> ContextBuilder {
        ContextBuilder::new("tee", "EUR").cost(1200).current_price(1999)
    }

    #[test]
    fn undercuts_the_cheapest_in_stock_competitor() {
        let ctx = shelf()
            .competitor("a", 1899, true, 3600)
            .competitor("b", 1799, false, 3600) // out of stock: ignored
            .competitor("c", 1850, true, 600)
            .param("undercut_minor", 5)
            .build();
        let (decision, log) = run(competitor_match, &ctx);
        assert_eq!(decision.price_minor(), Some(1845));
        assert_eq!(log, ["cheapest: c at 1850"]);
    }

    #[test]
    fn never_goes_under_the_margin_floor() {
        let ctx = shelf().competitor("a", 1250, true, 60).param("min_margin_bps", 1000).build();
        let decision = competitor_match(&ctx);
        assert_eq!(decision.price_minor(), Some(1320)); // 1200 × 1.10
        assert!(decision.tags.contains(&"margin-floor".to_owned()));
    }

    #[test]
    fn ignores_offers_older_than_the_window_and_then_keeps() {
        let ctx = shelf().competitor("a", 1500, true, 3 * 3600).param("max_age_hours", 2).build();
        assert_eq!(competitor_match(&ctx).price_minor(), None);
        assert_eq!(competitor_match(&shelf().build()).price_minor(), None);
    }
}
