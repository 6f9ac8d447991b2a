//! The circuit breaker's judgement, pure: a sliding window of a merchant's automated decisions
//! (counted per minute by the store, see [`crate::store::safety`]), grown one decision at a
//! time as a batch is applied, and checked against the merchant's [`BreakerLimits`] before each
//! price moves. So the breaker trips on the decision that would cross a limit, which is then
//! held, and no later one moves a price.
//!
//! Moves are counted in a histogram of [`MOVE_BOUNDS`] (sizes in basis points), so the median
//! is known to within a bin: the breaker trips on the median only when the bin holding it lies
//! wholly above the limit. The share of the catalogue counts each SKU once per window: a change
//! counts when the price it replaces took effect before the window began.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::safety::BreakerLimits;

/// Lower bounds of the histogram's bins, in basis points of the price in force (a bin holds
/// sizes from its bound up to the next one).
pub const MOVE_BOUNDS: [i64; 32] = [
    0, 1, 5, 10, 25, 50, 100, 150, 200, 300, 400, 500, 650, 800, 1_000, 1_250, 1_500, 2_000, 2_500, 3_000, 3_500,
    4_000, 5_000, 6_000, 7_000, 8_000, 9_000, 9_500, 10_000, 15_000, 20_000, 50_000,
];

/// The bin of a move's size.
fn bin(size_bps: i64) -> usize {
    MOVE_BOUNDS.partition_point(|&low| low <= size_bps).saturating_sub(1)
}

/// Automated decisions over a span of time (a minute, or a whole window).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub evaluated: i64,
    pub failed: i64,
    /// Prices moved.
    pub changed: i64,
    /// SKUs whose price moved for the first time in the window.
    pub changed_skus: i64,
    pub largest_move_bps: i64,
    /// Moves per bin of [`MOVE_BOUNDS`].
    pub moves: Vec<i64>,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.evaluated += other.evaluated;
        self.failed += other.failed;
        self.changed += other.changed;
        self.changed_skus += other.changed_skus;
        self.largest_move_bps = self.largest_move_bps.max(other.largest_move_bps);
        if self.moves.len() < MOVE_BOUNDS.len() {
            self.moves.resize(MOVE_BOUNDS.len(), 0);
        }
        for (mine, theirs) in self.moves.iter_mut().zip(&other.moves) {
            *mine += theirs;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.evaluated == 0
    }

    /// The bin holding the median move: its lower and upper bounds (`None` above the last).
    fn median_bin(&self) -> Option<(i64, Option<i64>)> {
        let half = ((self.changed + 1) / 2).max(1);
        let mut seen = 0;
        for (i, n) in self.moves.iter().enumerate() {
            seen += n;
            if seen >= half {
                return Some((MOVE_BOUNDS[i], MOVE_BOUNDS.get(i + 1).copied()));
            }
        }
        None
    }
}

/// One automated decision, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Failed,
    Kept,
    /// A move of this many basis points (either way); `first` when the price it replaces took
    /// effect before the window began.
    Moved {
        size_bps: i64,
        first: bool,
    },
}

/// The limit a window crossed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Trip {
    /// `max_changed_share_bps`, `max_median_move_bps`, `max_move_bps` or
    /// `max_failed_share_bps`.
    pub limit: String,
    /// The limit's value.
    pub threshold: i64,
    /// What the window showed (for the median: the lower bound of its bin).
    pub observed: i64,
    /// Automated decisions in the window, this one included.
    pub sample: i64,
}

/// A merchant's window, as a batch is applied.
#[derive(Debug, Clone)]
pub struct Window {
    limits: BreakerLimits,
    /// Products in the catalogue (for the share limit).
    catalogue: i64,
    total: Counts,
    /// What this batch added, for the store to add to the current minute.
    pub added: Counts,
}

impl Window {
    pub fn new(limits: BreakerLimits, catalogue: i64, so_far: Counts) -> Self {
        let mut total = Counts { moves: vec![0; MOVE_BOUNDS.len()], ..Counts::default() };
        total.add(&so_far);
        Self { limits, catalogue, total, added: Counts { moves: vec![0; MOVE_BOUNDS.len()], ..Counts::default() } }
    }

    /// Counts one decision; the limit it makes the window cross, if any. A move that trips the
    /// breaker is not counted (it is held, not made).
    pub fn count(&mut self, decision: Counted) -> Option<Trip> {
        let mut step = Counts { moves: vec![0; MOVE_BOUNDS.len()], evaluated: 1, ..Counts::default() };
        match decision {
            Counted::Failed => step.failed = 1,
            Counted::Kept => {}
            Counted::Moved { size_bps, first } => {
                step.changed = 1;
                step.changed_skus = i64::from(first);
                step.largest_move_bps = size_bps;
                step.moves[bin(size_bps)] = 1;
            }
        }
        let mut next = self.total.clone();
        next.add(&step);
        let trip = if self.limits.enabled { crossed(&self.limits, self.catalogue, &next) } else { None };
        if trip.is_some() && matches!(decision, Counted::Moved { .. }) {
            return trip;
        }
        self.total = next;
        self.added.add(&step);
        trip
    }
}

/// The first limit `window` crosses, in the order of [`BreakerLimits`]' fields.
fn crossed(limits: &BreakerLimits, catalogue: i64, window: &Counts) -> Option<Trip> {
    let sample = window.evaluated;
    if sample < limits.min_sample {
        return None;
    }
    let trip =
        |limit: &str, threshold: i64, observed: i64| Trip { limit: limit.to_owned(), threshold, observed, sample };
    let share = window.changed_skus * 10_000 / catalogue.max(1);
    if share > limits.max_changed_share_bps {
        return Some(trip("max_changed_share_bps", limits.max_changed_share_bps, share));
    }
    if let Some((low, _)) = window.median_bin()
        && window.changed > 0
        && low > limits.max_median_move_bps
    {
        return Some(trip("max_median_move_bps", limits.max_median_move_bps, low));
    }
    if window.largest_move_bps > limits.max_move_bps {
        return Some(trip("max_move_bps", limits.max_move_bps, window.largest_move_bps));
    }
    let failed = window.failed * 10_000 / sample;
    (failed > limits.max_failed_share_bps).then(|| trip("max_failed_share_bps", limits.max_failed_share_bps, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BreakerLimits {
        BreakerLimits { min_sample: 10, ..BreakerLimits::default() }
    }

    #[test]
    fn bins_hold_their_bounds() {
        assert_eq!(bin(0), 0);
        assert_eq!(bin(4), 1);
        assert_eq!(bin(5), 2);
        assert_eq!(bin(9_999), 27);
        assert_eq!(bin(1_000_000), MOVE_BOUNDS.len() - 1);
    }

    #[test]
    fn nothing_is_checked_below_the_sample() {
        let mut window = Window::new(limits(), 1_000, Counts::default());
        for _ in 0..9 {
            assert_eq!(window.count(Counted::Moved { size_bps: 9_990, first: true }), None);
        }
        let trip = window.count(Counted::Moved { size_bps: 9_990, first: true }).unwrap();
        assert_eq!(trip.limit, "max_median_move_bps");
        assert_eq!(window.added.changed, 9, "the tripping move is not made");
    }

    #[test]
    fn the_share_of_the_catalogue_counts_each_sku_once() {
        let mut window =
            Window::new(BreakerLimits { max_changed_share_bps: 1_000, ..limits() }, 100, Counts::default());
        for _ in 0..50 {
            assert_eq!(window.count(Counted::Moved { size_bps: 100, first: false }), None);
        }
        for _ in 0..10 {
            assert_eq!(window.count(Counted::Moved { size_bps: 100, first: true }), None);
        }
        let trip = window.count(Counted::Moved { size_bps: 100, first: true }).unwrap();
        assert_eq!((trip.limit.as_str(), trip.observed), ("max_changed_share_bps", 1_100));
    }

    #[test]
    fn one_large_move_and_many_failures_trip() {
        let mut window = Window::new(limits(), 1_000, Counts::default());
        for _ in 0..20 {
            assert_eq!(window.count(Counted::Moved { size_bps: 200, first: true }), None);
        }
        assert_eq!(window.count(Counted::Moved { size_bps: 9_001, first: true }).unwrap().limit, "max_move_bps");

        let mut window = Window::new(limits(), 1_000, Counts::default());
        for _ in 0..10 {
            assert_eq!(window.count(Counted::Kept), None);
        }
        for _ in 0..10 {
            assert_eq!(window.count(Counted::Failed), None);
        }
        assert_eq!(window.count(Counted::Failed).unwrap().limit, "max_failed_share_bps");
    }

    #[test]
    fn earlier_minutes_count_and_a_disabled_breaker_never_trips() {
        let earlier = Counts { evaluated: 30, changed: 30, changed_skus: 30, moves: vec![0; 32], ..Counts::default() };
        let mut window = Window::new(limits(), 40, earlier.clone());
        assert_eq!(window.count(Counted::Moved { size_bps: 1, first: true }).unwrap().limit, "max_changed_share_bps");
        let mut off = Window::new(BreakerLimits { enabled: false, ..limits() }, 40, earlier);
        assert_eq!(off.count(Counted::Moved { size_bps: 99_999, first: true }), None);
    }
}
