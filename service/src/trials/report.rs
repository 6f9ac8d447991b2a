//! The comparison of a candidate version with the decisions that went live, and its report:
//! one shape for shadows and backtests, computed by one function from the same rows, so a
//! backtest over the decisions a shadow rode on gives the shadow's report.
//!
//! Both sides are what the rule and the product's guardrails decided (the safety net's holds
//! are not part of it: a held change is compared at the price it proposed). The candidate
//! agrees with a live decision when both come to the same outcome and the same price.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::Outcome;
use crate::pricing::Decided;
use crate::sandbox::Evaluation;

/// How many of the largest differences a report lists.
pub const LARGEST: usize = 10;

/// What one side (live or candidate) decided for a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Side {
    pub outcome: Outcome,
    /// The price after guardrails (the price in force when the rule kept it or failed).
    pub price_minor: i64,
    /// The rule's own price, before guardrails.
    pub rule_price_minor: Option<i64>,
    pub explanation: String,
    /// The failure's kind, when the rule failed.
    pub error: Option<String>,
}

impl Side {
    /// A side from an evaluation and what the guardrails made of it.
    pub fn of(evaluation: &Evaluation, decided: &Decided) -> Self {
        let decision = evaluation.result.as_ref().ok();
        Side {
            outcome: decided.outcome,
            price_minor: decided.new_price_minor,
            rule_price_minor: decision.and_then(|d| d.price_minor),
            explanation: decision.map(|d| d.explanation.clone()).unwrap_or_default(),
            error: evaluation.result.as_ref().err().map(|e| e.kind().to_owned()),
        }
    }
}

/// One live decision and what the candidate would have decided instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Comparison {
    /// The live decision's sequence number in the chain.
    pub seq: i64,
    pub sku: String,
    pub currency: String,
    pub cost_minor: i64,
    /// The price in force that both sides started from.
    pub current_minor: i64,
    pub live: Side,
    pub candidate: Side,
}

impl Comparison {
    pub fn agrees(&self) -> bool {
        self.live.outcome == self.candidate.outcome && self.live.price_minor == self.candidate.price_minor
    }

    /// Candidate minus live price, in minor units.
    pub fn difference_minor(&self) -> i64 {
        self.candidate.price_minor.saturating_sub(self.live.price_minor)
    }
}

/// A range of price differences (candidate against live, in basis points of the live price)
/// and how many comparisons fell in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// Lower bound, inclusive (`None`: unbounded).
    pub from_bps: Option<i64>,
    /// Upper bound, exclusive (`None`: unbounded).
    pub to_bps: Option<i64>,
    pub count: u64,
}

/// The edges of the difference buckets, in basis points: under -10 %, -10 to -5 %, -5 to -1 %,
/// -1 to 0 %, exactly 0, 0 to 1 %, 1 to 5 %, 5 to 10 %, 10 % and over.
const EDGES: [i64; 8] = [-1000, -500, -100, 0, 1, 100, 500, 1000];

/// Margin at recorded cost, summed over the compared decisions (one unit at each decided
/// price), per currency: what the candidate would have earned against what live did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MarginEstimate {
    pub currency: String,
    pub live_margin_minor: i64,
    pub candidate_margin_minor: i64,
    pub change_minor: i64,
    /// The change against the live margin, in basis points (absent when that margin is 0).
    pub change_bps: Option<i64>,
}

/// What a shadow or a backtest found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Live decisions compared.
    pub compared: u64,
    /// Of those, the candidate came to the same outcome and price.
    pub agreed: u64,
    /// `agreed` / `compared` in basis points (10000 when nothing was compared).
    pub agreement_bps: i64,
    /// The distribution of price differences, bucket by bucket (exact agreement on price is
    /// the bucket from 0 to 1 bp).
    pub differences: Vec<Bucket>,
    /// The largest differences, largest first, with both sides' explanations.
    pub largest: Vec<Comparison>,
    /// The candidate's failures by kind (`timeout`, `guest_panic`, ...).
    pub candidate_failures: BTreeMap<String, u64>,
    /// The live rule's failures by kind, for comparison.
    pub live_failures: BTreeMap<String, u64>,
    pub margin: Vec<MarginEstimate>,
}

impl Report {
    /// The report of `comparisons`, in any order.
    pub fn of<'a>(comparisons: impl IntoIterator<Item = &'a Comparison>) -> Self {
        let mut compared = 0u64;
        let mut agreed = 0u64;
        let mut counts = [0u64; EDGES.len() + 1];
        let mut largest: Vec<&Comparison> = Vec::new();
        let mut candidate_failures = BTreeMap::new();
        let mut live_failures = BTreeMap::new();
        let mut margins: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for c in comparisons {
            compared += 1;
            agreed += u64::from(c.agrees());
            counts[bucket(c)] += 1;
            if let Some(kind) = &c.candidate.error {
                *candidate_failures.entry(kind.clone()).or_insert(0) += 1;
            }
            if let Some(kind) = &c.live.error {
                *live_failures.entry(kind.clone()).or_insert(0) += 1;
            }
            let margin = margins.entry(c.currency.as_str()).or_insert((0, 0));
            margin.0 = margin.0.saturating_add(c.live.price_minor.saturating_sub(c.cost_minor));
            margin.1 = margin.1.saturating_add(c.candidate.price_minor.saturating_sub(c.cost_minor));
            if c.difference_minor() != 0 {
                largest.push(c);
                if largest.len() > 4 * LARGEST {
                    keep_largest(&mut largest);
                }
            }
        }
        keep_largest(&mut largest);
        let lows = std::iter::once(None).chain(EDGES.iter().map(|e| Some(*e)));
        let highs = EDGES.iter().map(|e| Some(*e)).chain(std::iter::once(None));
        let differences =
            lows.zip(highs).zip(counts).map(|((from_bps, to_bps), count)| Bucket { from_bps, to_bps, count }).collect();
        let margin = margins
            .into_iter()
            .map(|(currency, (live, candidate))| MarginEstimate {
                currency: currency.to_owned(),
                live_margin_minor: live,
                candidate_margin_minor: candidate,
                change_minor: candidate.saturating_sub(live),
                change_bps: (live != 0)
                    .then(|| (i128::from(candidate.saturating_sub(live)) * 10_000 / i128::from(live).abs()) as i64),
            })
            .collect();
        Report {
            compared,
            agreed,
            agreement_bps: (agreed * 10_000).checked_div(compared).map_or(10_000, |bps| bps as i64),
            differences,
            largest: largest.into_iter().cloned().collect(),
            candidate_failures,
            live_failures,
            margin,
        }
    }
}

/// The largest differences first (ties by sequence number, so the list is the same however
/// the comparisons were read), at most [`LARGEST`].
fn keep_largest(largest: &mut Vec<&Comparison>) {
    largest.sort_by_key(|c| (std::cmp::Reverse(c.difference_minor().unsigned_abs()), c.seq));
    largest.truncate(LARGEST);
}

/// The bucket of a comparison's difference, in basis points of the live price.
fn bucket(c: &Comparison) -> usize {
    let base = i128::from(c.live.price_minor.max(1));
    let diff = i128::from(c.difference_minor());
    // Rounded toward minus infinity, so a difference of -0.5 bp falls under 0.
    let bps = (diff * 10_000).div_euclid(base);
    EDGES.iter().take_while(|edge| bps >= i128::from(**edge)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(price: i64, outcome: Outcome) -> Side {
        Side {
            outcome,
            price_minor: price,
            rule_price_minor: Some(price),
            explanation: format!("{price}"),
            error: None,
        }
    }

    fn comparison(seq: i64, live: i64, candidate: i64) -> Comparison {
        Comparison {
            seq,
            sku: format!("s{seq}"),
            currency: "EUR".into(),
            cost_minor: 1000,
            current_minor: live,
            live: side(live, Outcome::Changed),
            candidate: side(candidate, Outcome::Changed),
        }
    }

    #[test]
    fn counts_agreement_buckets_margin_and_the_largest_differences() {
        let rows = [
            comparison(1, 2000, 2000),
            comparison(2, 2000, 1999),
            comparison(3, 2000, 1500),
            comparison(4, 2000, 2300),
        ];
        let report = Report::of(&rows);
        assert_eq!((report.compared, report.agreed, report.agreement_bps), (4, 1, 2500));
        let counts: Vec<u64> = report.differences.iter().map(|b| b.count).collect();
        // -25 % | -10..-5 | -5..-1 | -0.05 % | 0 | .. | +15 %
        assert_eq!(counts, [1, 0, 0, 1, 1, 0, 0, 0, 1]);
        let seqs: Vec<i64> = report.largest.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [3, 4, 2]);
        assert_eq!(report.margin[0].live_margin_minor, 4000);
        assert_eq!(report.margin[0].candidate_margin_minor, 3799);
        assert_eq!(report.margin[0].change_bps, Some(-502));
    }

    #[test]
    fn failures_are_counted_by_kind_and_never_agree_with_a_change() {
        let mut failed = comparison(1, 2100, 2000);
        failed.candidate = Side {
            outcome: Outcome::Failed,
            price_minor: 2000,
            rule_price_minor: None,
            explanation: String::new(),
            error: Some("timeout".into()),
        };
        let report = Report::of([&failed]);
        assert_eq!(report.agreed, 0);
        assert_eq!(report.candidate_failures.get("timeout"), Some(&1));
        assert_eq!(Report::of([]).agreement_bps, 10_000);
    }
}
