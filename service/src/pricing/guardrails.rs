//! Guardrails applied to a rule's price, by the host, after the rule: a rule can never set a
//! price outside them. The result says which guardrails changed the rule's price.
//!
//! Order, and why:
//! 1. minimum interval: too soon after the last change, the price in force stays (unless it
//!    lies outside the bounds, which always hold: then it moves to the nearest bound);
//! 2. maximum step: the move from the current price is limited;
//! 3. bounds: the floor (the highest of the absolute floor, MAP and the margin floor over cost)
//!    and the ceiling; bounds come after the step limit because they must always hold, even
//!    when the price in force lies outside newly tightened bounds. When a cost rise lifts the
//!    margin floor above the ceiling, the ceiling wins (a legal or brand limit beats a target).
//!    Every bound lies within the money range (1 to [`MAX_AMOUNT_MINOR`]): a margin floor over
//!    a large cost is capped there, so no guarded price ever leaves it;
//! 4. rounding to the price ending, to the nearest allowed price that stays within bounds (if
//!    no such price exists, the price is left unrounded and that is recorded).

use chrono::{DateTime, Utc};

use crate::domain::{Guardrails, MAX_AMOUNT_MINOR, Rounding};

/// A guardrail that changed (or stopped) the rule's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Clip {
    MinInterval,
    MaxStep,
    Floor,
    MarginFloor,
    Map,
    Ceiling,
    Rounding,
    /// Rounding would have left the bounds, so the price stayed unrounded.
    RoundingSkipped,
}

/// The price after guardrails, and what clipped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    pub price_minor: i64,
    pub clips: Vec<Clip>,
}

/// What the guardrails need to know besides the rule's price.
#[derive(Debug, Clone, Copy)]
pub struct Situation {
    pub current_minor: i64,
    pub cost_minor: i64,
    /// When the price in force took effect.
    pub effective_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// `value × (10 000 + bps) / 10 000`, rounded half away from zero, saturating.
fn scale(value: i64, bps: i64) -> i64 {
    let product = i128::from(value) * i128::from(10_000 + bps);
    let half = if product >= 0 { 5_000 } else { -5_000 };
    i64::try_from((product + half) / 10_000).unwrap_or(if product >= 0 { i64::MAX } else { i64::MIN })
}

pub fn apply(guardrails: &Guardrails, proposed_minor: i64, situation: Situation) -> Guarded {
    let mut clips = Vec::new();
    let current = situation.current_minor;
    let (floor, low, high) = bounds(guardrails, situation.cost_minor);
    let too_soon = proposed_minor != current
        && guardrails
            .min_interval_secs()
            .is_some_and(|interval| (situation.now - situation.effective_at).num_seconds() < interval);
    let mut price = if too_soon {
        clips.push(Clip::MinInterval);
        current
    } else {
        proposed_minor
    };
    if !too_soon && let Some(step) = guardrails.max_step_bps() {
        let (low, high) = (scale(current, -step.min(10_000)).max(1), scale(current, step));
        if price < low || price > high {
            price = price.clamp(low, high);
            clips.push(Clip::MaxStep);
        }
    }
    if price < low {
        price = low;
        clips.push(floor.map_or(Clip::Floor, |(_, clip)| clip));
    } else if price > high {
        price = high;
        clips.push(Clip::Ceiling);
    }
    if too_soon {
        // The price in force stays, moved only into the bounds: nothing else, no rounding.
        return Guarded { price_minor: price, clips };
    }

    if let Some(rounding) = guardrails.rounding() {
        match round_within(rounding, price, low, high) {
            Some(rounded) if rounded != price => {
                price = rounded;
                clips.push(Clip::Rounding);
            }
            Some(_) => {}
            None => clips.push(Clip::RoundingSkipped),
        }
    }
    Guarded { price_minor: price, clips }
}

/// A price the merchant set by hand (an override) within the product's bounds alone: the floor,
/// MAP, margin floor and ceiling hold, while the step limit, minimum interval and rounding,
/// which tame automated moves, do not apply.
pub fn within_bounds(guardrails: &Guardrails, price_minor: i64, cost_minor: i64) -> Guarded {
    let (floor, low, high) = bounds(guardrails, cost_minor);
    match price_minor {
        p if p < low => Guarded { price_minor: low, clips: vec![floor.map_or(Clip::Floor, |(_, clip)| clip)] },
        p if p > high => Guarded { price_minor: high, clips: vec![Clip::Ceiling] },
        p => Guarded { price_minor: p, clips: Vec::new() },
    }
}

/// The binding floor (value and which guardrail), and the bounds `[low, high]` every price
/// must lie in: within the money range, the ceiling winning over a floor above it.
fn bounds(guardrails: &Guardrails, cost_minor: i64) -> (Option<(i64, Clip)>, i64, i64) {
    let floors = [
        (guardrails.floor_minor(), Clip::Floor),
        (guardrails.map_minor(), Clip::Map),
        (guardrails.min_margin_bps().map(|bps| scale(cost_minor, bps)), Clip::MarginFloor),
    ];
    let floor = floors
        .iter()
        .filter_map(|(value, clip)| value.map(|v| (v.clamp(1, MAX_AMOUNT_MINOR), *clip)))
        .max_by_key(|(v, _)| *v);
    let high = guardrails.ceiling_minor().unwrap_or(MAX_AMOUNT_MINOR).clamp(1, MAX_AMOUNT_MINOR);
    let low = floor.map_or(1, |(f, _)| f.min(high));
    (floor, low, high)
}

/// The rounding of `price`, or the nearest allowed price on the other side when that one is
/// outside `[low, high]`; `None` when no allowed price lies within the bounds nearby.
fn round_within(rounding: Rounding, price: i64, low: i64, high: i64) -> Option<i64> {
    let rounded = rounding.apply(price);
    if (low..=high).contains(&rounded) {
        return Some(rounded);
    }
    let step = rounding.period();
    let other = if rounded < low { rounded.checked_add(step)? } else { rounded.checked_sub(step)? };
    (low..=high).contains(&other).then_some(other)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::domain::GuardrailsInput;

    fn guardrails(json: serde_json::Value) -> Guardrails {
        Guardrails::parse(serde_json::from_value::<GuardrailsInput>(json).unwrap()).unwrap()
    }

    #[test]
    fn hand_set_prices_keep_to_the_bounds_alone() {
        let g = guardrails(serde_json::json!({"floor_minor": 1300, "ceiling_minor": 2999, "max_step_bps": 100,
            "min_margin_bps": 2000, "rounding": {"mode": "ending", "ending_minor": 99}}));
        assert_eq!(within_bounds(&g, 1500, 1000), Guarded { price_minor: 1500, clips: vec![] }, "no step, no rounding");
        assert_eq!(within_bounds(&g, 1000, 1000).clips, vec![Clip::Floor]);
        assert_eq!(within_bounds(&g, 1000, 1200), Guarded { price_minor: 1440, clips: vec![Clip::MarginFloor] });
        assert_eq!(within_bounds(&g, 5000, 1000), Guarded { price_minor: 2999, clips: vec![Clip::Ceiling] });
    }

    fn situation(current: i64, cost: i64) -> Situation {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        Situation { current_minor: current, cost_minor: cost, effective_at: now - Duration::days(1), now }
    }

    fn guard(g: serde_json::Value, proposed: i64, s: Situation) -> (i64, Vec<Clip>) {
        let guarded = apply(&guardrails(g), proposed, s);
        (guarded.price_minor, guarded.clips)
    }

    #[test]
    fn a_price_within_every_guardrail_passes_untouched() {
        let g = serde_json::json!({"floor_minor": 1300, "ceiling_minor": 2999, "max_step_bps": 1000});
        assert_eq!(guard(g, 1899, situation(1999, 1200)), (1899, vec![]));
    }

    #[test]
    fn the_floor_map_and_margin_floor_take_the_highest() {
        let s = situation(1999, 1200);
        assert_eq!(guard(serde_json::json!({"floor_minor": 1300}), 1000, s), (1300, vec![Clip::Floor]));
        assert_eq!(
            guard(serde_json::json!({"floor_minor": 1300, "map_minor": 1400}), 1000, s),
            (1400, vec![Clip::Map])
        );
        // 1200 + 25 % = 1500 beats both.
        let g = serde_json::json!({"floor_minor": 1300, "map_minor": 1400, "min_margin_bps": 2500});
        assert_eq!(guard(g, 1000, s), (1500, vec![Clip::MarginFloor]));
    }

    #[test]
    fn the_ceiling_caps_and_wins_over_a_margin_floor_above_it() {
        let s = situation(1999, 1200);
        assert_eq!(guard(serde_json::json!({"ceiling_minor": 2999}), 5000, s), (2999, vec![Clip::Ceiling]));
        let g = serde_json::json!({"ceiling_minor": 1400, "min_margin_bps": 5000}); // margin floor 1800
        assert_eq!(guard(g, 2500, s), (1400, vec![Clip::Ceiling]));
        assert_eq!(guard(serde_json::json!({"ceiling_minor": 1400, "min_margin_bps": 5000}), 1000, s).0, 1400);
    }

    #[test]
    fn the_step_is_limited_relative_to_the_current_price() {
        let g = serde_json::json!({"max_step_bps": 1000});
        assert_eq!(guard(g.clone(), 1000, situation(2000, 0)), (1800, vec![Clip::MaxStep]));
        assert_eq!(guard(g.clone(), 3000, situation(2000, 0)), (2200, vec![Clip::MaxStep]));
        assert_eq!(guard(g, 2100, situation(2000, 0)), (2100, vec![]));
    }

    #[test]
    fn bounds_hold_even_when_the_step_limit_would_stop_short_of_them() {
        // The price in force (1000) is below a newly raised floor (1500); a 10 % step would
        // reach only 1100, but the floor must hold.
        let g = serde_json::json!({"max_step_bps": 1000, "floor_minor": 1500});
        assert_eq!(guard(g, 1000, situation(1000, 0)), (1500, vec![Clip::Floor]));
    }

    #[test]
    fn rounding_goes_to_the_ending_and_stays_within_bounds() {
        let s = situation(2000, 0);
        let g = serde_json::json!({"rounding": {"mode": "ending", "ending_minor": 99}});
        assert_eq!(guard(g, 1910, s), (1899, vec![Clip::Rounding]));
        // 1301 rounds to 1299, under the floor: the next ending up, 1399, is within bounds.
        let g = serde_json::json!({"floor_minor": 1300, "rounding": {"mode": "ending", "ending_minor": 99}});
        assert_eq!(guard(g, 1301, s), (1399, vec![Clip::Rounding]));
        // Between 1300 and 1350 no price ends in 99: left unrounded, and recorded.
        let g = serde_json::json!({"floor_minor": 1300, "ceiling_minor": 1350, "rounding": {"mode": "ending", "ending_minor": 99}});
        assert_eq!(guard(g, 1320, s), (1320, vec![Clip::RoundingSkipped]));
    }

    #[test]
    fn a_change_too_soon_after_the_last_keeps_the_price() {
        let mut s = situation(2000, 0);
        s.effective_at = s.now - Duration::minutes(30);
        let g = serde_json::json!({"min_interval_secs": 3600});
        assert_eq!(guard(g.clone(), 1800, s), (2000, vec![Clip::MinInterval]));
        s.effective_at = s.now - Duration::minutes(61);
        assert_eq!(guard(g.clone(), 1800, s), (1800, vec![]));
        // Keeping the price is never "too soon".
        s.effective_at = s.now;
        assert_eq!(guard(g, 2000, s), (2000, vec![]));
    }

    #[test]
    fn bounds_hold_even_when_it_is_too_soon_to_change() {
        let mut s = situation(2500, 0);
        s.effective_at = s.now - Duration::minutes(5);
        // The ceiling was lowered below the price in force: the price moves to it now.
        let g = serde_json::json!({"min_interval_secs": 3600, "ceiling_minor": 1999});
        assert_eq!(guard(g, 2400, s), (1999, vec![Clip::MinInterval, Clip::Ceiling]));
        let g = serde_json::json!({"min_interval_secs": 3600, "floor_minor": 3000});
        assert_eq!(guard(g, 2400, s), (3000, vec![Clip::MinInterval, Clip::Floor]));
    }

    #[test]
    fn a_margin_floor_over_a_huge_cost_stays_within_the_money_range() {
        let s = situation(2000, MAX_AMOUNT_MINOR);
        let g = serde_json::json!({"min_margin_bps": 100_000});
        assert_eq!(guard(g, 2000, s), (MAX_AMOUNT_MINOR, vec![Clip::MarginFloor]));
    }

    #[test]
    fn no_guardrails_means_only_positivity() {
        assert_eq!(guard(serde_json::json!({}), 1, situation(2000, 0)), (1, vec![]));
    }
}
