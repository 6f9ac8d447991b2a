//! The catalogue's price events: putting a product's base price in force, or ending its price
//! when it is deleted, is a change of the price in force like a rule's, so it is recorded in
//! the chain (the history then holds every price that was ever in force).

use chrono::{DateTime, Utc};

use super::record::DecisionRecord;
use crate::domain::{MerchantId, Outcome, Sku, Trigger};
use crate::store::{NewDecision, PriceSource};

/// A change of the price in force made by the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceEvent {
    pub trigger: Trigger,
    pub old_price_minor: Option<i64>,
    pub new_price_minor: Option<i64>,
    pub explanation: &'static str,
}

/// What writing a product with base price `base` does to the price in force: created with the
/// product, or following the base price while no rule has set one; nothing otherwise.
pub fn on_put(in_force: Option<(i64, PriceSource)>, base: i64) -> Option<PriceEvent> {
    match in_force {
        None => Some(PriceEvent {
            trigger: Trigger::ProductCreated,
            old_price_minor: None,
            new_price_minor: Some(base),
            explanation: "the product was created at its base price",
        }),
        Some((price, PriceSource::Base)) if price != base => Some(PriceEvent {
            trigger: Trigger::BasePriceChanged,
            old_price_minor: Some(price),
            new_price_minor: Some(base),
            explanation: "the base price changed while no rule had set a price",
        }),
        Some(_) => None,
    }
}

/// Deleting a product ends the price that was in force.
pub fn on_delete(price_minor: i64) -> PriceEvent {
    PriceEvent {
        trigger: Trigger::ProductDeleted,
        old_price_minor: Some(price_minor),
        new_price_minor: None,
        explanation: "the product was deleted",
    }
}

impl PriceEvent {
    /// The event as a decision to append.
    pub fn new_decision<'a>(&'a self, merchant: MerchantId, sku: &'a Sku, currency: &'a str) -> NewDecision<'a> {
        let record = move |seq: i64, created_at: DateTime<Utc>| {
            DecisionRecord::price_event(
                seq,
                merchant.to_string(),
                sku.to_string(),
                self.trigger,
                currency.to_owned(),
                self.old_price_minor,
                self.new_price_minor,
                self.explanation.to_owned(),
                created_at,
            )
            .to_canonical_json()
        };
        NewDecision {
            sku,
            trigger: self.trigger,
            outcome: Outcome::Changed,
            currency,
            old_price_minor: self.old_price_minor,
            new_price_minor: self.new_price_minor,
            clipped: false,
            rule_version: None,
            rule_sha256: None,
            record: Box::new(record),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_price_is_followed_only_until_a_rule_sets_a_price() {
        assert_eq!(on_put(None, 100).unwrap().trigger, Trigger::ProductCreated);
        assert_eq!(on_put(Some((90, PriceSource::Base)), 100).unwrap().trigger, Trigger::BasePriceChanged);
        assert_eq!(on_put(Some((100, PriceSource::Base)), 100), None);
        assert_eq!(on_put(Some((90, PriceSource::Rule)), 100), None);
    }
}
