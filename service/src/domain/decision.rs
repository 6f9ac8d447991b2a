//! The vocabulary of decisions: why a price was looked at ([`Trigger`]) and what came of it
//! ([`Outcome`]). Their names are part of the hashed record and of the API, so they never
//! change: old chains must keep verifying.

use serde::{Deserialize, Serialize};

/// What a decision did to the price in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The price in force moved.
    Changed,
    /// The rule (after guardrails) left the price where it was.
    Kept,
    /// The rule failed; the price stayed.
    Failed,
    /// The rule's change was held (see `hold` in the record): the price stayed, and the
    /// change waits as a proposal, or was stopped by the breaker or a freeze.
    Held,
}

/// Why a price was looked at: a repricing signal, or a price event of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    ProductChanged,
    CompetitorPrices,
    Demand,
    RuleActivated,
    ParamsChanged,
    /// A merchant setting that changes rule contexts (the competitor price ratio).
    SettingsChanged,
    Schedule,
    /// Catalogue price events: the base price put in force or the product's price ended.
    ProductCreated,
    BasePriceChanged,
    ProductDeleted,
    /// A person decided on a proposal (`resolution` in the record names the key).
    ProposalApproved,
    ProposalRejected,
    /// Automation resumed after a freeze or a tripped breaker: the catalogue is evaluated anew.
    Resumed,
    /// An override put its price in force (at its start, or when one it beat ended).
    OverrideStarted,
    /// The last override of the SKU ended: the price before it is back, and the rule is asked
    /// to decide again.
    OverrideEnded,
}

/// A name that is not part of the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known name")]
pub struct UnknownName(pub String);

macro_rules! named {
    ($ty:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(<$ty>::$variant => $name),+
                }
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::domain::UnknownName;
            fn from_str(s: &str) -> Result<Self, $crate::domain::UnknownName> {
                match s {
                    $($name => Ok(<$ty>::$variant),)+
                    other => Err($crate::domain::UnknownName(other.to_owned())),
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(super) use named;

named!(Outcome { Changed => "changed", Kept => "kept", Failed => "failed", Held => "held" });
named!(Trigger {
    ProductChanged => "product_changed",
    CompetitorPrices => "competitor_prices",
    Demand => "demand",
    RuleActivated => "rule_activated",
    ParamsChanged => "params_changed",
    SettingsChanged => "settings_changed",
    Schedule => "schedule",
    ProductCreated => "product_created",
    BasePriceChanged => "base_price_changed",
    ProductDeleted => "product_deleted",
    ProposalApproved => "proposal_approved",
    ProposalRejected => "proposal_rejected",
    Resumed => "resumed",
    OverrideStarted => "override_started",
    OverrideEnded => "override_ended",
});

impl Trigger {
    /// Whether the trigger is a price event of the catalogue rather than a rule's evaluation.
    pub fn is_price_event(self) -> bool {
        matches!(self, Trigger::ProductCreated | Trigger::BasePriceChanged | Trigger::ProductDeleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_parse_back() {
        for trigger in Trigger::ALL {
            assert_eq!(serde_json::to_value(trigger).unwrap(), trigger.as_str());
            assert_eq!(trigger.as_str().parse::<Trigger>().unwrap(), *trigger);
        }
        for outcome in Outcome::ALL {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
            assert_eq!(outcome.as_str().parse::<Outcome>().unwrap(), *outcome);
        }
        assert!("nope".parse::<Outcome>().is_err());
    }
}
