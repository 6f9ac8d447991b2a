//! Competitor match: beat the cheapest in-stock, non-stale competitor seen in the last
//! `max_age_hours` by `undercut_minor`, but never go under `min_margin_bps` over cost. With no
//! such competitor, keep the price.
//!
//! Parameters (declared): `max_age_hours` (default 24), `undercut_minor` (default 1),
//! `min_margin_bps` (default 1000, i.e. at least 10 % over cost).

use pricing_rule_sdk::{Bps, Context, Decision, Minor, Params, export_rule, log, pricing};

const TAG: &str = "competitor-match";

#[derive(Params, Debug)]
pub struct CompetitorMatch {
    /// Offers older than this many hours are ignored.
    #[param(default = 24, min = 1, max = 8760)]
    pub max_age_hours: i64,
    /// How far under the cheapest offer to go, in minor units (0 to match it).
    #[param(default = 1, min = 0, max = 1_000_000_000)]
    pub undercut_minor: Minor,
    /// The price never goes under this margin over cost, in basis points.
    #[param(default = 1000, min = -9_999, max = 1_000_000)]
    pub min_margin_bps: Bps,
}

pub fn competitor_match(ctx: &Context, params: &CompetitorMatch) -> Decision {
    let max_age_seconds = params.max_age_hours.saturating_mul(3600);
    let undercut = params.undercut_minor.0;
    let min_margin = params.min_margin_bps.0;

    let Some(cheapest) = pricing::cheapest_competitor(ctx, Some(max_age_seconds)) else {
        return Decision::keep("no in-stock competitor seen recently").with_tag(TAG);
    };
    log(&format!("cheapest: {} at {}", cheapest.competitor, cheapest.price.minor));
    let Some(floor) = pricing::price_for_margin(ctx.cost.minor, min_margin) else {
        return Decision::keep(format!("a {min_margin} bp margin floor is out of range")).with_tag(TAG);
    };
    let target = cheapest.price.minor.saturating_sub(undercut);
    if target >= floor && target > 0 {
        let why = format!("{undercut} under {} ({})", cheapest.competitor, cheapest.price.minor);
        Decision::set(target, why).with_tag(TAG)
    } else if floor > 0 {
        let why = format!("{} undercut would break the {min_margin} bp margin floor", cheapest.competitor);
        Decision::set(floor, why).with_tag(TAG).with_tag("margin-floor")
    } else {
        Decision::keep(format!("undercutting {} leaves no positive price", cheapest.competitor)).with_tag(TAG)
    }
}

export_rule!(competitor_match, CompetitorMatch);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::{ContextBuilder, decide, run};

    fn competitor_match(ctx: &Context) -> Decision {
        decide(super::competitor_match, ctx)
    }

    fn shelf() -> ContextBuilder {
        ContextBuilder::new("tee", "EUR").cost(1200).current_price(1999)
    }

    #[test]
    fn undercuts_the_cheapest_in_stock_competitor() {
        let ctx = shelf()
            .competitor("a", 1899, true, 3600)
            .competitor("b", 1799, false, 3600) // out of stock: ignored
            .stale_competitor("d", 1700, true, 60) // stale: ignored
            .competitor("c", 1850, true, 600)
            .param("undercut_minor", 5)
            .build();
        let (decision, log) = run(competitor_match, &ctx);
        assert_eq!(decision.price_minor(), Some(1845)); // 1850 − 5
        assert_eq!(decision.explanation, "5 under c (1850)");
        assert_eq!(log, ["cheapest: c at 1850"]);
    }

    #[test]
    fn undercuts_by_one_minor_unit_by_default() {
        let ctx = shelf().competitor("a", 1899, true, 60).build();
        assert_eq!(competitor_match(&ctx).price_minor(), Some(1898));
    }

    #[test]
    fn never_goes_under_the_margin_floor() {
        let ctx = shelf().competitor("a", 1250, true, 60).param("min_margin_bps", 1000).build();
        let decision = competitor_match(&ctx);
        assert_eq!(decision.price_minor(), Some(1320)); // 1200 × 1.10, not 1249
        assert!(decision.has_tag("margin-floor"));
    }

    #[test]
    fn ignores_offers_older_than_the_window() {
        let ctx = shelf().competitor("a", 1500, true, 3 * 3600).param("max_age_hours", 2).build();
        assert_eq!(competitor_match(&ctx).price_minor(), None);
        let ctx = shelf().competitor("a", 1500, true, 3 * 3600).param("max_age_hours", 4).build();
        assert_eq!(competitor_match(&ctx).price_minor(), Some(1499));
    }

    #[test]
    fn keeps_the_price_without_an_eligible_competitor() {
        let (decision, log) = run(competitor_match, &shelf().competitor_in("a", 900, "USD", true, 60).build());
        assert_eq!(decision.price_minor(), None);
        assert_eq!(decision.explanation, "no in-stock competitor seen recently");
        assert!(log.is_empty());
    }

    #[test]
    fn keeps_the_price_when_undercutting_leaves_nothing() {
        let ctx = ContextBuilder::new("freebie", "EUR").competitor("a", 3, true, 60).param("undercut_minor", 5).build();
        assert_eq!(competitor_match(&ctx).price_minor(), None); // no cost, so no floor to fall back on
    }

    #[test]
    fn keeps_the_price_when_the_margin_floor_is_out_of_range() {
        let ctx = shelf().cost(i64::MAX / 2).competitor("a", 1500, true, 60).param("min_margin_bps", 20_000).build();
        assert_eq!(competitor_match(&ctx).price_minor(), None);
    }
}
