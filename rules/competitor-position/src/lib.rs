//! Competitor position: be the `position`-th cheapest among the in-stock, non-stale offers seen
//! in the last `max_age_hours` (1 is the cheapest of all, 2 just above the cheapest, ...):
//! price `gap_minor` under the offer that should be next above us, never under
//! `min_margin_bps` over cost. With fewer than `position` such offers the price is kept: there
//! is no offer to stand under, and being dearer than every competitor is not a position the
//! merchant chose.
//!
//! Parameters (declared): `position` (default 1), `gap_minor` (1), `max_age_hours` (24),
//! `min_margin_bps` (1000).

use pricing_rule_sdk::pricing::{format_money, nth_cheapest_competitor, price_for_margin};
use pricing_rule_sdk::{Bps, Context, Decision, Minor, Params, export_rule, log};

const TAG: &str = "competitor-position";

#[derive(Params, Debug)]
pub struct CompetitorPosition {
    /// Where to stand among the offers: 1 for the cheapest, 2 for second cheapest, ...
    #[param(default = 1, min = 1, max = 100)]
    pub position: i64,
    /// How far under the offer just above our position, in minor units.
    #[param(default = 1, min = 0, max = 1_000_000_000)]
    pub gap_minor: Minor,
    /// Offers older than this many hours are ignored.
    #[param(default = 24, min = 1, max = 8760)]
    pub max_age_hours: i64,
    /// The price never goes under this margin over cost, in basis points.
    #[param(default = 1000, min = -9_999, max = 1_000_000)]
    pub min_margin_bps: Bps,
}

pub fn competitor_position(ctx: &Context, params: &CompetitorPosition) -> Decision {
    let max_age = Some(params.max_age_hours.saturating_mul(3600));
    // To be N-th cheapest, go just under the offer that is N-th cheapest now: N-1 offers stay
    // below us.
    let rank = usize::try_from(params.position).unwrap_or(1).max(1);
    let Some(above) = nth_cheapest_competitor(ctx, rank, max_age) else {
        return Decision::keep(format!("fewer than {rank} in-stock offers seen recently")).with_tag(TAG);
    };
    log(&format!("offer #{rank}: {} at {}", above.competitor, above.price.minor));
    let Some(floor) = price_for_margin(ctx.cost.minor, params.min_margin_bps.0) else {
        return Decision::keep("the margin floor is out of range").with_tag(TAG);
    };
    let target = above.price.minor.saturating_sub(params.gap_minor.0);
    let shown = format_money(above.price.minor, ctx.currency_exponent);
    if target >= floor && target > 0 {
        Decision::set(target, format!("position {rank}: under {} at {shown}", above.competitor)).with_tag(TAG)
    } else if floor > 0 {
        Decision::set(floor, format!("position {rank} would break the margin floor"))
            .with_tag(TAG)
            .with_tag("margin-floor")
    } else {
        Decision::keep("no positive price for that position").with_tag(TAG)
    }
}

export_rule!(competitor_position, CompetitorPosition);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::{ContextBuilder, decide};

    fn shelf() -> ContextBuilder {
        ContextBuilder::new("tee", "EUR")
            .cost(1000)
            .current_price(2500)
            .competitor("a", 2000, true, 60)
            .competitor("b", 2200, true, 60)
            .competitor("c", 1800, false, 60)
    }

    #[test]
    fn stands_just_under_the_offer_at_its_position() {
        let first = decide(competitor_position, &shelf().build());
        assert_eq!(first.price_minor(), Some(1999), "under a, the cheapest in stock");
        let second = decide(competitor_position, &shelf().param("position", 2).param("gap_minor", 5).build());
        assert_eq!(second.price_minor(), Some(2195), "a stays below us, b above");
        assert!(second.explanation.contains("20.00") || second.explanation.contains("22.00"), "{}", second.explanation);
    }

    #[test]
    fn keeps_the_price_without_enough_offers_and_respects_the_floor() {
        assert_eq!(decide(competitor_position, &shelf().param("position", 3).build()).price_minor(), None);
        let floor = decide(competitor_position, &shelf().param("min_margin_bps", 15_000).build());
        assert_eq!(floor.price_minor(), Some(2500), "cost 10.00 plus 150 %");
        assert!(floor.has_tag("margin-floor"));
    }
}
