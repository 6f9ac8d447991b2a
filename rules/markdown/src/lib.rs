//! Time-based markdown: clearance in steps. From the day of `start_ms` on, every `step_days`
//! takes another `step_bps` off the base price, up to `max_bps` in all; before the start, the
//! base price holds.
//!
//! Parameters (declared): `start_ms` (Unix milliseconds; unset, the price is kept), `step_days`
//! (7), `step_bps` (1000), `max_bps` (5000), `ending` (optional price ending such as 99; the
//! price rounds down to it, so rounding never takes back part of a markdown).

use pricing_rule_sdk::{Bps, Context, Decision, Minor, Params, export_rule, pricing};

const DAY_MS: i64 = 24 * 3600 * 1000;
const TAG: &str = "markdown";

#[derive(Params, Debug)]
pub struct Markdown {
    /// When the markdown starts, in Unix milliseconds; unset, the price is kept.
    #[param(min = 0)]
    pub start_ms: Option<i64>,
    /// Days between two steps.
    #[param(default = 7, min = 1, max = 3650)]
    pub step_days: i64,
    /// What each step takes off the base price.
    #[param(default = 1000, min = 0, max = 9_999)]
    pub step_bps: Bps,
    /// The most taken off in all (under 100 %, which would leave no price).
    #[param(default = 5000, min = 0, max = 9_999)]
    pub max_bps: Bps,
    /// Price ending to round down to, in minor units (99 for x.99).
    #[param(min = 1)]
    pub ending: Option<Minor>,
}

pub fn markdown(ctx: &Context, params: &Markdown) -> Decision {
    let Some(start) = params.start_ms else {
        return Decision::keep("no markdown start date set").with_tag(TAG);
    };
    let step_days = params.step_days.max(1);
    let step_bps = params.step_bps.0.max(0);
    // A markdown of 100 % or more would leave no price to sell at.
    let max_bps = params.max_bps.0.clamp(0, 9_999);
    if ctx.now_ms < start {
        return Decision::set(ctx.base_price.minor, "markdown not started").with_tag(TAG);
    }
    let days = ctx.now_ms.saturating_sub(start) / DAY_MS;
    let steps = days / step_days + 1; // the first step applies on the start day
    let off = steps.saturating_mul(step_bps).min(max_bps);
    let Some(price) = pricing::move_bps(ctx.base_price.minor, -off) else {
        return Decision::keep("the markdown is out of range").with_tag(TAG);
    };
    let price = match params.ending {
        None => Some(price),
        Some(Minor(ending)) => pricing::round_down_to_ending(price, ending),
    };
    match price {
        Some(price) if price > 0 => {
            Decision::set(price, format!("day {days}: {off} bp off the base price")).with_tag(TAG)
        }
        _ => Decision::keep("the markdown leaves no valid price").with_tag(TAG),
    }
}

export_rule!(markdown, Markdown);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::{ContextBuilder, DEFAULT_NOW_MS, decide};

    fn markdown(ctx: &Context) -> Decision {
        decide(super::markdown, ctx)
    }

    /// A coat at 100.00 whose markdown started at DEFAULT_NOW_MS, seen `day` days (and an
    /// hour) later.
    fn on_day(day: i64) -> ContextBuilder {
        ContextBuilder::new("coat", "EUR")
            .base_price(10_000)
            .param("start_ms", DEFAULT_NOW_MS)
            .now_ms(DEFAULT_NOW_MS + day * DAY_MS + 3_600_000)
    }

    fn price_on_day(day: i64) -> Option<i64> {
        markdown(&on_day(day).build()).price_minor()
    }

    #[test]
    fn takes_a_step_off_per_period_from_the_start_day() {
        assert_eq!(price_on_day(0), Some(9_000));
        assert_eq!(price_on_day(6), Some(9_000));
        assert_eq!(price_on_day(7), Some(8_000));
        assert_eq!(price_on_day(20), Some(7_000));
        assert_eq!(markdown(&on_day(20).build()).explanation, "day 20: 3000 bp off the base price");
    }

    #[test]
    fn stops_at_the_maximum_markdown() {
        assert_eq!(price_on_day(365), Some(5_000));
        assert_eq!(markdown(&on_day(365).param("max_bps", 20_000).build()).price_minor(), Some(1), "99.99 % off");
    }

    #[test]
    fn holds_the_base_price_before_the_start() {
        assert_eq!(price_on_day(-3), Some(10_000));
    }

    #[test]
    fn rounds_down_to_the_ending() {
        assert_eq!(markdown(&on_day(7).param("ending", 99).build()).price_minor(), Some(7_999)); // 80.00 → 79.99
    }

    #[test]
    fn uses_the_step_parameters() {
        let ctx = on_day(9).param("step_days", 3).param("step_bps", 500).build(); // 4th step
        assert_eq!(markdown(&ctx).price_minor(), Some(8_000));
    }

    #[test]
    fn keeps_the_price_without_a_start_date() {
        assert_eq!(markdown(&ContextBuilder::new("coat", "EUR").build()).price_minor(), None);
    }
}
