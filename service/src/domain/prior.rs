//! The prior price that EU price-indication rules (Directive 98/6/EC, art. 6a) ask a seller to
//! show with a price reduction: the lowest price in force during the 30 days before the
//! current price took effect.
//!
//! Read from the decision history alone, which holds every price that was ever in force (see
//! `crate::pricing::record`). "In force at instant x" is the price set by the last change at or
//! before x; of several changes at the same instant only the last counts (the earlier ones
//! were never in force at any instant). The window is `[t − 30 days, t)`: it includes the price
//! in force when the window opens, which a change long before set, and excludes the new price
//! itself. A SKU younger than the window counts only from its creation; while a product was
//! deleted, no price was in force.

use chrono::{DateTime, Duration, Utc};

/// How far back the prior price looks.
pub const PRIOR_WINDOW: Duration = Duration::days(30);

/// A change of the price in force: when, and the price after it (`None`: the product was
/// deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceChange {
    pub at: DateTime<Utc>,
    pub price_minor: Option<i64>,
}

/// The lowest price in force during `[t − PRIOR_WINDOW, t)`, given the SKU's changes in
/// history order (the store passes the last change at or before the window's start and every
/// later one; more is harmless). `None` when no price was in force in the window.
pub fn lowest_in_force(changes: &[PriceChange], t: DateTime<Utc>) -> Option<i64> {
    let window_start = t - PRIOR_WINDOW;
    let mut at_start: Option<i64> = None;
    let mut lowest: Option<i64> = None;
    for (i, change) in changes.iter().enumerate() {
        if change.at >= t {
            break;
        }
        // A change followed by another at the same instant was never in force.
        if changes.get(i + 1).is_some_and(|next| next.at == change.at) {
            continue;
        }
        if change.at <= window_start {
            at_start = change.price_minor;
        } else if let Some(price) = change.price_minor {
            lowest = Some(lowest.map_or(price, |l: i64| l.min(price)));
        }
    }
    match (at_start, lowest) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hour(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + h * 3600, 0).unwrap()
    }

    /// The price in force at an instant, by scanning the whole timeline.
    fn in_force(changes: &[PriceChange], x: DateTime<Utc>) -> Option<i64> {
        changes.iter().rev().find(|c| c.at <= x).and_then(|c| c.price_minor)
    }

    /// The definition, literally: every hour of the window (changes fall on whole hours, so
    /// the price in force is constant between two sampled hours).
    fn brute_force(changes: &[PriceChange], t_hour: i64) -> Option<i64> {
        ((t_hour - 30 * 24)..t_hour).filter_map(|h| in_force(changes, hour(h))).min()
    }

    fn timeline() -> impl Strategy<Value = (Vec<PriceChange>, i64)> {
        // Up to 60 changes over 90 days, several per day and several in one hour possible,
        // deletions included; t anywhere from before the first change to after the last.
        let change = (0i64..90 * 24, prop::option::weighted(0.9, 1i64..10_000));
        (prop::collection::vec(change, 0..60), 0i64..100 * 24).prop_map(|(mut raw, t)| {
            raw.sort_by_key(|(h, _)| *h);
            let changes = raw.into_iter().map(|(h, price)| PriceChange { at: hour(h), price_minor: price }).collect();
            (changes, t)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn the_prior_price_is_the_lowest_price_in_force_at_any_instant_of_the_window((changes, t) in timeline()) {
            prop_assert_eq!(lowest_in_force(&changes, hour(t)), brute_force(&changes, t));
        }
    }

    #[test]
    fn a_sku_younger_than_the_window_counts_from_its_creation() {
        let changes = [
            PriceChange { at: hour(0), price_minor: Some(900) },
            PriceChange { at: hour(5), price_minor: Some(1_000) },
        ];
        assert_eq!(lowest_in_force(&changes, hour(10)), Some(900));
        assert_eq!(lowest_in_force(&changes, hour(0)), None, "nothing was in force before creation");
    }

    #[test]
    fn a_price_older_than_the_window_counts_while_it_was_still_in_force() {
        let changes = [
            PriceChange { at: hour(0), price_minor: Some(500) },
            PriceChange { at: hour(24 * 40), price_minor: Some(800) },
        ];
        // At day 45 the window opens at day 15, when 500 was still in force.
        assert_eq!(lowest_in_force(&changes, hour(24 * 45)), Some(500));
        // At day 71 the window opens at day 41: only 800 counts.
        assert_eq!(lowest_in_force(&changes, hour(24 * 71)), Some(800));
    }

    #[test]
    fn a_price_replaced_in_the_same_instant_never_counts() {
        let changes = [
            PriceChange { at: hour(0), price_minor: Some(700) },
            PriceChange { at: hour(3), price_minor: Some(100) },
            PriceChange { at: hour(3), price_minor: Some(650) },
        ];
        assert_eq!(lowest_in_force(&changes, hour(4)), Some(650));
    }
}
