//! The safety net's vocabulary and settings: why an automated change did not go live
//! ([`HoldReason`]), what became of a proposal ([`ProposalState`]), and a merchant's approval
//! policy and circuit breaker limits, each parsed once with its documented defaults and bounds.
//!
//! A move is measured in basis points of the price in force: `(new - old) * 10_000 / old`, so
//! doubling a price is +10,000 and halving it -5,000. Approval thresholds look at the signed
//! move (a rise and a cut each have their own); the breaker at its size.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::decision::named;
use super::{Invalid, MAX_MARGIN_BPS};

/// Why a rule's change was recorded as `held` instead of moving the price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Approval policy: a rise above `max_increase_bps`.
    LargeIncrease,
    /// Approval policy: a cut above `max_decrease_bps`.
    LargeDecrease,
    /// Approval policy: the new price's margin over cost is under `min_margin_bps`.
    LowMargin,
    /// Approval policy: the rule version was activated less than `new_version_hours` ago.
    NewVersion,
    /// Approval policy: every change needs approval.
    AllChanges,
    /// The circuit breaker has tripped: automation is paused until it is resumed.
    Breaker,
    /// The merchant froze automated changes.
    Frozen,
    /// An override (a price the merchant set by hand) is in force for the SKU.
    Override,
}

/// What became of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    /// Waiting for a decision; its price is not in force.
    Pending,
    Approved,
    Rejected,
    /// A newer evaluation of the SKU (or its deletion) took its place.
    Superseded,
    /// Nobody decided on it within the policy's `expires_after_secs`.
    Expired,
}

named!(HoldReason {
    LargeIncrease => "large_increase",
    LargeDecrease => "large_decrease",
    LowMargin => "low_margin",
    NewVersion => "new_version",
    AllChanges => "all_changes",
    Breaker => "breaker",
    Frozen => "frozen",
    Override => "override",
});
named!(ProposalState {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
    Superseded => "superseded",
    Expired => "expired",
});

impl HoldReason {
    /// Whether a change held for this reason waits as a proposal that a person may approve (the
    /// approval policy's reasons). Changes held by the breaker or a freeze are not proposals:
    /// once automation resumes, the catalogue is evaluated again on what is then true; nor are
    /// those held by an override, whose end has the rule evaluate the SKU again.
    pub fn is_proposal(self) -> bool {
        !matches!(self, HoldReason::Breaker | HoldReason::Frozen | HoldReason::Override)
    }
}

/// The signed move from `old` to `new` in basis points of `old` (see the module's doc).
pub fn move_bps(old_minor: i64, new_minor: i64) -> i64 {
    if old_minor <= 0 {
        return 0;
    }
    let moved = (i128::from(new_minor) - i128::from(old_minor)) * 10_000 / i128::from(old_minor);
    moved.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The margin of `price` over `cost`, in basis points of the cost (markup, as the margin floor
/// guardrail and rules count it): `None` without a positive cost.
pub fn margin_bps(price_minor: i64, cost_minor: i64) -> Option<i64> {
    (cost_minor > 0)
        .then(|| ((i128::from(price_minor) - i128::from(cost_minor)) * 10_000 / i128::from(cost_minor)) as i64)
}

/// Which of a rule's changes wait for a person. Every threshold is off unless set; a change
/// that meets several is held for the first in field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// A rise of more than this many basis points of the price in force (1 to 1,000,000).
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    pub max_increase_bps: Option<i64>,
    /// A cut of more than this many basis points of the price in force (1 to 10,000).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    pub max_decrease_bps: Option<i64>,
    /// A new price whose margin over cost (markup, in basis points of the cost, as the margin
    /// floor guardrail counts it) is under this (-10,000 to 1,000,000). A product without a cost
    /// is held too.
    #[schema(minimum = -10000, maximum = 1000000)]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    pub min_margin_bps: Option<i64>,
    /// Every change by a rule version in its first this many hours after its activation
    /// (1 to 8,760).
    #[schema(minimum = 1, maximum = 8760)]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    pub new_version_hours: Option<i64>,
    /// Every change.
    #[serde(default)]
    pub all_changes: bool,
    /// A proposal nobody decided on expires after this many seconds (1 to 2,592,000, 30
    /// days; default 86,400, a day). Its price never goes live.
    #[schema(minimum = 1, maximum = 2592000)]
    #[serde(default = "default_expiry", deserialize_with = "crate::domain::whole::integer")]
    pub expires_after_secs: i64,
}

const fn default_expiry() -> i64 {
    86_400
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        Self {
            max_increase_bps: None,
            max_decrease_bps: None,
            min_margin_bps: None,
            new_version_hours: None,
            all_changes: false,
            expires_after_secs: default_expiry(),
        }
    }
}

/// The situation of one change, as the approval policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub old_minor: i64,
    pub new_minor: i64,
    pub cost_minor: i64,
    /// Seconds since the deciding rule version was activated.
    pub version_age_secs: i64,
}

impl ApprovalPolicy {
    /// Whether any threshold is set.
    pub fn holds_anything(&self) -> bool {
        self.all_changes
            || self.max_increase_bps.is_some()
            || self.max_decrease_bps.is_some()
            || self.min_margin_bps.is_some()
            || self.new_version_hours.is_some()
    }

    /// The reason this change waits for approval, if it does.
    pub fn hold(&self, change: Change) -> Option<HoldReason> {
        let moved = move_bps(change.old_minor, change.new_minor);
        if self.max_increase_bps.is_some_and(|limit| moved > limit) {
            return Some(HoldReason::LargeIncrease);
        }
        if self.max_decrease_bps.is_some_and(|limit| -moved > limit) {
            return Some(HoldReason::LargeDecrease);
        }
        if let Some(limit) = self.min_margin_bps
            && margin_bps(change.new_minor, change.cost_minor).is_none_or(|margin| margin < limit)
        {
            return Some(HoldReason::LowMargin);
        }
        if self.new_version_hours.is_some_and(|hours| change.version_age_secs < hours * 3_600) {
            return Some(HoldReason::NewVersion);
        }
        self.all_changes.then_some(HoldReason::AllChanges)
    }

    pub fn check(&self) -> Result<(), Invalid> {
        let mut invalid = Invalid::new();
        let mut within = |field: &str, value: Option<i64>, low: i64, high: i64| {
            if let Some(v) = value
                && !(low..=high).contains(&v)
            {
                invalid.push(format!("approval.{field}"), format!("{low} to {high}"));
            }
        };
        within("max_increase_bps", self.max_increase_bps, 1, 1_000_000);
        within("max_decrease_bps", self.max_decrease_bps, 1, 10_000);
        within("min_margin_bps", self.min_margin_bps, -10_000, MAX_MARGIN_BPS);
        within("new_version_hours", self.new_version_hours, 1, 8_760);
        within("expires_after_secs", Some(self.expires_after_secs), 1, 2_592_000);
        invalid.or_ok(|| ())
    }
}

/// The circuit breaker's limits over a sliding window of a merchant's automated decisions
/// (those a competitor or demand signal, the schedule or a resume called for: what the rule does
/// with the merchant's own acts, a product put or imported, an activation, new parameters or
/// settings, is deliberate and not counted). No limit is checked until the window holds `min_sample` such decisions: a few
/// say little, and the guardrails are what bound a single price. Defaults are what a careful
/// merchant would start from: they let ordinary repricing through and stop a feed error that
/// moves much of the catalogue a long way at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerLimits {
    /// Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The window, in seconds, counted in whole minutes (60 to 86,400; default 3,600).
    #[schema(minimum = 60, maximum = 86400)]
    #[serde(default = "default_window", deserialize_with = "crate::domain::whole::integer")]
    pub window_secs: i64,
    /// Automated decisions the window must hold before any limit is checked (1 to 100,000;
    /// default 20).
    #[schema(minimum = 1, maximum = 100000)]
    #[serde(default = "default_sample", deserialize_with = "crate::domain::whole::integer")]
    pub min_sample: i64,
    /// The share of the catalogue whose price automation moved in the window, in basis points
    /// (1 to 10,000; default 5,000: half of it).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default = "default_share", deserialize_with = "crate::domain::whole::integer")]
    pub max_changed_share_bps: i64,
    /// The median size of the moves in the window (1 to 1,000,000; default 3,000).
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default = "default_median", deserialize_with = "crate::domain::whole::integer")]
    pub max_median_move_bps: i64,
    /// The largest move in the window (1 to 1,000,000; default 9,000).
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default = "default_largest", deserialize_with = "crate::domain::whole::integer")]
    pub max_move_bps: i64,
    /// The share of failed evaluations in the window (1 to 10,000; default 5,000).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default = "default_failed", deserialize_with = "crate::domain::whole::integer")]
    pub max_failed_share_bps: i64,
}

const fn yes() -> bool {
    true
}
const fn default_window() -> i64 {
    3_600
}
const fn default_sample() -> i64 {
    20
}
const fn default_share() -> i64 {
    5_000
}
const fn default_median() -> i64 {
    3_000
}
const fn default_largest() -> i64 {
    9_000
}
const fn default_failed() -> i64 {
    5_000
}

impl Default for BreakerLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            window_secs: default_window(),
            min_sample: default_sample(),
            max_changed_share_bps: default_share(),
            max_median_move_bps: default_median(),
            max_move_bps: default_largest(),
            max_failed_share_bps: default_failed(),
        }
    }
}

impl BreakerLimits {
    /// The window in whole minutes (at least one).
    pub fn window_minutes(&self) -> i64 {
        (self.window_secs + 59) / 60
    }

    pub fn check(&self) -> Result<(), Invalid> {
        let mut invalid = Invalid::new();
        let mut within = |field: &str, value: i64, low: i64, high: i64| {
            if !(low..=high).contains(&value) {
                invalid.push(format!("breaker.{field}"), format!("{low} to {high}"));
            }
        };
        within("window_secs", self.window_secs, 60, 86_400);
        within("min_sample", self.min_sample, 1, 100_000);
        within("max_changed_share_bps", self.max_changed_share_bps, 1, 10_000);
        within("max_median_move_bps", self.max_median_move_bps, 1, 1_000_000);
        within("max_move_bps", self.max_move_bps, 1, 1_000_000);
        within("max_failed_share_bps", self.max_failed_share_bps, 1, 10_000);
        invalid.or_ok(|| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(old: i64, new: i64) -> Change {
        Change { old_minor: old, new_minor: new, cost_minor: 500, version_age_secs: 10 * 3_600 }
    }

    #[test]
    fn moves_are_measured_against_the_price_in_force() {
        assert_eq!(move_bps(1000, 2000), 10_000);
        assert_eq!(move_bps(1000, 500), -5_000);
        assert_eq!(move_bps(1999, 1), -9_994);
        assert_eq!(margin_bps(1300, 1000), Some(3_000));
        assert_eq!(margin_bps(800, 1000), Some(-2_000));
        assert_eq!(margin_bps(800, 0), None);
    }

    #[test]
    fn each_threshold_holds_its_changes_and_lets_the_others_through() {
        let none = ApprovalPolicy::default();
        assert!(!none.holds_anything());
        assert_eq!(none.hold(change(1000, 9000)), None);

        let up = ApprovalPolicy { max_increase_bps: Some(1_000), ..ApprovalPolicy::default() };
        assert_eq!(up.hold(change(1000, 1101)), Some(HoldReason::LargeIncrease));
        assert_eq!(up.hold(change(1000, 1100)), None, "exactly the threshold goes through");
        assert_eq!(up.hold(change(1000, 100)), None, "a cut is not a rise");

        let down = ApprovalPolicy { max_decrease_bps: Some(1_000), ..ApprovalPolicy::default() };
        assert_eq!(down.hold(change(1000, 899)), Some(HoldReason::LargeDecrease));
        assert_eq!(down.hold(change(1000, 5000)), None);

        let margin = ApprovalPolicy { min_margin_bps: Some(2_500), ..ApprovalPolicy::default() };
        assert_eq!(margin.hold(change(1000, 600)), Some(HoldReason::LowMargin), "margin 2,000 bps over 500");
        assert_eq!(margin.hold(change(1000, 700)), None, "margin 4,000 bps");

        let fresh = ApprovalPolicy { new_version_hours: Some(2), ..ApprovalPolicy::default() };
        assert_eq!(fresh.hold(Change { version_age_secs: 7_199, ..change(1000, 1001) }), Some(HoldReason::NewVersion));
        assert_eq!(fresh.hold(Change { version_age_secs: 7_200, ..change(1000, 1001) }), None);

        let all = ApprovalPolicy { all_changes: true, ..ApprovalPolicy::default() };
        assert_eq!(all.hold(change(1000, 1001)), Some(HoldReason::AllChanges));
    }

    #[test]
    fn settings_out_of_bounds_name_their_field() {
        let bad = ApprovalPolicy { max_decrease_bps: Some(10_001), expires_after_secs: 0, ..ApprovalPolicy::default() };
        let invalid = bad.check().unwrap_err();
        let fields: Vec<&str> = invalid.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["approval.max_decrease_bps", "approval.expires_after_secs"]);
        assert!(BreakerLimits::default().check().is_ok());
        assert!(BreakerLimits { window_secs: 10, ..BreakerLimits::default() }.check().is_err());
        assert_eq!(BreakerLimits { window_secs: 61, ..BreakerLimits::default() }.window_minutes(), 2);
    }

    #[test]
    fn names_round_trip() {
        for reason in HoldReason::ALL {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
            assert_eq!(reason.as_str().parse::<HoldReason>().unwrap(), *reason);
        }
        for state in ProposalState::ALL {
            assert_eq!(state.as_str().parse::<ProposalState>().unwrap(), *state);
        }
    }
}
