//! Time-based markdown: clearance in steps. Every `step_days` since `start_ms` takes
//! another `step_bps` off the base price, up to `max_bps`; before the start, the base price.
//!
//! Parameters: `start_ms` (Unix milliseconds, required), `step_days` (7), `step_bps` (1000),
//! `max_bps` (5000), `ending` (optional price ending, e.g. 99).

use pricing_rule_sdk::{Context, Decision, export_rule, pricing};

const DAY_MS: i64 = 24 * 3600 * 1000;

pub fn markdown(ctx: &Context) -> Decision {
    let Some(start) = ctx.param_i64("start_ms") else {
        return Decision::keep("no markdown start date set").with_tag("markdown");
    };
    let step_days = ctx.param_i64("step_days").unwrap_or(7).max(1);
    let step_bps = ctx.param_i64("step_bps").unwrap_or(1000);
    let max_bps = ctx.param_i64("max_bps").unwrap_or(5000);
    if ctx.now_ms < start {
        return Decision::set(ctx.base_price.minor, "markdown not started").with_tag("markdown");
    }
    let days = (ctx.now_ms - start) / DAY_MS;
    let steps = days / step_days + 1; // the first step applies on the start day
    let off = steps.saturating_mul(step_bps).min(max_bps);
    let Some(mut price) = pricing::move_bps(ctx.base_price.minor, -off) else {
        return Decision::keep("the markdown is out of range").with_tag("markdown");
    };
    if let Some(ending) = ctx.param_i64("ending") {
        price = pricing::round_down_to_ending(price, ending);
    }
    Decision::set(price, format!("day {days}: {off} bp off the base price")).with_tag("markdown")
}

export_rule!(markdown);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::{ContextBuilder, DEFAULT_NOW_MS};

    fn on_day(day: i64) -> Context {
        ContextBuilder::new("coat", "EUR")
            .base_price(10_000)
            .param("start_ms", DEFAULT_NOW_MS)
            .now_ms(DEFAULT_NOW_MS + day * DAY_MS + 3_600_000)
            .build()
    }

    #[test]
    fn takes_a_step_off_per_period_from_the_start_day() {
        assert_eq!(markdown(&on_day(0)).price_minor(), Some(9_000));
        assert_eq!(markdown(&on_day(6)).price_minor(), Some(9_000));
        assert_eq!(markdown(&on_day(7)).price_minor(), Some(8_000));
        assert_eq!(markdown(&on_day(20)).price_minor(), Some(7_000));
    }

    #[test]
    fn stops_at_the_maximum_markdown() {
        assert_eq!(markdown(&on_day(365)).price_minor(), Some(5_000));
    }

    #[test]
    fn holds_the_base_price_before_the_start_and_rounds_down_to_the_ending() {
        assert_eq!(markdown(&on_day(-3)).price_minor(), Some(10_000));
        let mut ctx = on_day(7);
        ctx.params.push(("ending".into(), 99.into()));
        assert_eq!(markdown(&ctx).price_minor(), Some(7_999));
    }

    #[test]
    fn keeps_the_price_without_a_start_date() {
        assert_eq!(markdown(&ContextBuilder::new("coat", "EUR").build()).price_minor(), None);
    }
}
