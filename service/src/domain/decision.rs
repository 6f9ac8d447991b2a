//! The vocabulary of decisions: why a price was looked at ([`Trigger`]) and what came of it
//! ([`Outcome`]). Their names are part of the hashed record and of the API, so they never
//! change: old chains must keep verifying.

use std::fmt;
use std::str::FromStr;

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

        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($name => Ok(<$ty>::$variant),)+
                    other => Err(UnknownName(other.to_owned())),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named!(Outcome { Changed => "changed", Kept => "kept", Failed => "failed" });
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
