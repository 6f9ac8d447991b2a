//! Overrides: a price the merchant sets by hand for a SKU, or for every product whose
//! attributes match, from a start to an end (either may be open), with a reason: a campaign, a
//! clearance, a price agreed with a supplier. While one is in force the rule does not move the
//! price (its evaluations are recorded as `held`, reason `override`).
//!
//! Which override a product gets when several are in force (the order is part of the API):
//! 1. one naming its SKU beats one selecting by attributes;
//! 2. then the one that started latest;
//! 3. then the one created last (the higher id).
//!
//! An override's price is either fixed (in the product's currency; a product in another
//! currency is not covered) or a percentage off the product's base price, rounded half up to
//! the minor unit. The product's bounds (floor, ceiling, MAP, margin floor) still apply unless
//! it says `force`; the step limit, minimum interval and rounding do not, since the price is the
//! merchant's own, not an automated move.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{Attributes, Currency, Invalid, MAX_AMOUNT_MINOR, Product, Sku};

/// How an override prices a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverridePrice {
    /// This price, in this currency.
    Fixed { price_minor: i64, currency: Currency },
    /// This many basis points off the product's base price (1 to 10,000).
    PercentOff { off_bps: i64 },
}

impl OverridePrice {
    /// The override's price for a product (before its bounds); `None` when it does not apply
    /// (a fixed price in another currency).
    pub fn for_product(&self, product: &Product) -> Option<i64> {
        match self {
            OverridePrice::Fixed { price_minor, currency } => (*currency == product.currency()).then_some(*price_minor),
            OverridePrice::PercentOff { off_bps } => {
                let base = i128::from(product.base_price.minor());
                let kept = base * i128::from(10_000 - off_bps);
                i64::try_from((kept + 5_000) / 10_000).ok()
            }
        }
    }
}

/// Which products an override covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Sku(Sku),
    /// Every product whose attributes have exactly these values (all of them: the filter of
    /// `GET /v1/products?attr.<key>=`).
    Attributes(Map<String, Value>),
}

impl Selector {
    pub fn covers(&self, product: &Product) -> bool {
        match self {
            Selector::Sku(sku) => *sku == product.sku,
            Selector::Attributes(wanted) => {
                let have = product.attributes.as_map();
                wanted.iter().all(|(key, value)| have.get(key) == Some(value))
            }
        }
    }
}

/// An override as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub id: i64,
    pub selector: Selector,
    pub price: OverridePrice,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub force: bool,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// Ended early by the merchant.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Where an override is in its life, by the clock (the service applies each change at its
/// instant, within a tick).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Scheduled,
    Active,
    Ended,
}

super::decision::named!(Phase {
    Scheduled => "scheduled",
    Active => "active",
    Ended => "ended",
});

impl Override {
    /// Its phase at `now`.
    pub fn phase_at(&self, now: DateTime<Utc>) -> Phase {
        let ended = self.cancelled_at.is_some() || self.ends_at.is_some_and(|end| end <= now);
        match () {
            _ if ended => Phase::Ended,
            _ if self.starts_at <= now => Phase::Active,
            _ => Phase::Scheduled,
        }
    }

    /// The instant its current phase ends (its start, or its end), if any.
    pub fn next_boundary(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.phase_at(now) {
            Phase::Scheduled => Some(self.starts_at),
            Phase::Active => self.ends_at,
            Phase::Ended => None,
        }
    }

    /// Its price for a product it covers, while in force.
    pub fn price_for(&self, product: &Product) -> Option<i64> {
        self.selector.covers(product).then(|| self.price.for_product(product)).flatten()
    }

    /// The order of the module's doc: greater wins.
    fn precedence(&self) -> (bool, DateTime<Utc>, i64) {
        (matches!(self.selector, Selector::Sku(_)), self.starts_at, self.id)
    }
}

/// The override in force for `product` at `now`, with its price, among `overrides`.
pub fn winner<'a>(overrides: &'a [Override], product: &Product, now: DateTime<Utc>) -> Option<(&'a Override, i64)> {
    overrides
        .iter()
        .filter(|o| o.phase_at(now) == Phase::Active)
        .filter_map(|o| o.price_for(product).map(|price| (o, price)))
        .max_by_key(|(o, _)| o.precedence())
}

/// At most this many characters of reason.
pub const MAX_REASON_CHARS: usize = 500;

/// A new override as asked for, checked by [`OverrideDraft::parse`].
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideInput {
    /// The SKU it covers; or give `attributes`.
    #[serde(default)]
    #[schema(value_type = Option<Sku>)]
    pub sku: Option<String>,
    /// Every product with exactly these attribute values (at least one); or give `sku`.
    #[serde(default, deserialize_with = "super::object::optional_object")]
    pub attributes: Option<Map<String, Value>>,
    /// A fixed price, with `currency`; or give `percent_off_bps`.
    #[serde(default, deserialize_with = "super::whole::optional_integer")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub price_minor: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Option<Currency>)]
    pub currency: Option<String>,
    /// Basis points off the base price (1 to 10,000).
    #[serde(default, deserialize_with = "super::whole::optional_integer")]
    #[schema(minimum = 1, maximum = 10000)]
    pub percent_off_bps: Option<i64>,
    /// When it starts (RFC 3339; default now).
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// When it ends (RFC 3339; default never), after `starts_at` and in the future.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Put the price in force even outside the product's floor, ceiling, MAP or margin floor
    /// (recorded in each decision).
    #[serde(default)]
    pub force: bool,
    /// Why (1 to 500 characters), recorded in each decision.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// A checked new override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideDraft {
    pub selector: Selector,
    pub price: OverridePrice,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub force: bool,
    pub reason: String,
}

impl OverrideDraft {
    /// Checks an input at `now`, naming every bad field.
    pub fn parse(input: OverrideInput, now: DateTime<Utc>) -> Result<Self, Invalid> {
        let mut invalid = Invalid::default();
        let selector = match (input.sku, input.attributes) {
            (Some(sku), None) => match Sku::parse(&sku) {
                Ok(sku) => Some(Selector::Sku(sku)),
                Err(e) => {
                    invalid.push("sku", e.to_string());
                    None
                }
            },
            (None, Some(attributes)) if attributes.is_empty() => {
                invalid.push("attributes", "at least one attribute");
                None
            }
            (None, Some(attributes)) => match Attributes::check_named("attributes", &attributes) {
                Ok(()) => Some(Selector::Attributes(attributes)),
                Err(e) => {
                    invalid.absorb_all(e);
                    None
                }
            },
            _ => {
                invalid.push("sku", "give exactly one of `sku` and `attributes`");
                None
            }
        };
        let price = match (input.price_minor, input.currency, input.percent_off_bps) {
            (Some(price_minor), Some(currency), None) => {
                if !(1..=MAX_AMOUNT_MINOR).contains(&price_minor) {
                    invalid.push("price_minor", format!("1 to {MAX_AMOUNT_MINOR}"));
                }
                match Currency::parse(&currency) {
                    Ok(currency) => Some(OverridePrice::Fixed { price_minor, currency }),
                    Err(e) => {
                        invalid.push("currency", e.to_string());
                        None
                    }
                }
            }
            (Some(_), None, None) => {
                invalid.push("currency", "a fixed price needs its currency");
                None
            }
            (None, None, Some(off_bps)) => {
                if !(1..=10_000).contains(&off_bps) {
                    invalid.push("percent_off_bps", "1 to 10000");
                }
                Some(OverridePrice::PercentOff { off_bps })
            }
            _ => {
                invalid.push("price_minor", "give either `price_minor` with `currency`, or `percent_off_bps`");
                None
            }
        };
        let starts_at = input.starts_at.unwrap_or(now);
        if let Some(end) = input.ends_at {
            if end <= starts_at {
                invalid.push("ends_at", "after `starts_at`");
            } else if end <= now {
                invalid.push("ends_at", "in the future");
            }
        }
        let reason = input.reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            invalid.push("reason", format!("1 to {MAX_REASON_CHARS} characters"));
        }
        invalid.or_ok(|| ())?;
        let (Some(selector), Some(price)) = (selector, price) else {
            unreachable!("a missing selector or price is recorded as invalid");
        };
        Ok(Self { selector, price, starts_at, ends_at: input.ends_at, force: input.force, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProductDraft;

    fn product(sku: &str, base: i64, attributes: Value) -> Product {
        let attributes = attributes.as_object().unwrap().clone();
        let draft =
            ProductDraft::parse(Sku::parse(sku).unwrap(), "EUR", 0, base, Default::default(), attributes).unwrap();
        Product {
            sku: draft.sku,
            cost: draft.cost,
            base_price: draft.base_price,
            guardrails: draft.guardrails,
            attributes: draft.attributes,
            version: 1,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn made(id: i64, selector: Selector, price: OverridePrice, start: i64, end: Option<i64>) -> Override {
        Override {
            id,
            selector,
            price,
            starts_at: at(start),
            ends_at: end.map(at),
            force: false,
            reason: "test".into(),
            created_at: at(0),
            cancelled_at: None,
        }
    }

    fn brand(value: &str) -> Selector {
        let mut map = Map::new();
        map.insert("brand".into(), Value::from(value));
        Selector::Attributes(map)
    }

    #[test]
    fn percent_off_rounds_half_up_and_fixed_prices_keep_to_their_currency() {
        let tee = product("tee", 1999, serde_json::json!({}));
        assert_eq!(OverridePrice::PercentOff { off_bps: 1500 }.for_product(&tee), Some(1699));
        assert_eq!(OverridePrice::PercentOff { off_bps: 10_000 }.for_product(&tee), Some(0));
        let half = product("half", 5, serde_json::json!({}));
        assert_eq!(OverridePrice::PercentOff { off_bps: 5000 }.for_product(&half), Some(3), "2.5 rounds up");
        let eur = OverridePrice::Fixed { price_minor: 900, currency: Currency::parse("EUR").unwrap() };
        let usd = OverridePrice::Fixed { price_minor: 900, currency: Currency::parse("USD").unwrap() };
        assert_eq!((eur.for_product(&tee), usd.for_product(&tee)), (Some(900), None));
    }

    #[test]
    fn phases_follow_the_clock_and_a_cancel_ends_at_once() {
        let mut o = made(1, brand("acme"), OverridePrice::PercentOff { off_bps: 100 }, 10, Some(20));
        assert_eq!(
            [o.phase_at(at(9)), o.phase_at(at(10)), o.phase_at(at(20))],
            [Phase::Scheduled, Phase::Active, Phase::Ended]
        );
        assert_eq!(
            (o.next_boundary(at(0)), o.next_boundary(at(15)), o.next_boundary(at(25))),
            (Some(at(10)), Some(at(20)), None)
        );
        o.cancelled_at = Some(at(5));
        assert_eq!(o.phase_at(at(15)), Phase::Ended);
    }

    #[test]
    fn a_sku_beats_attributes_then_the_latest_start_then_the_last_made() {
        let tee = product("tee", 2000, serde_json::json!({"brand": "acme"}));
        let other = product("cap", 2000, serde_json::json!({"brand": "other"}));
        let off = |bps| OverridePrice::PercentOff { off_bps: bps };
        let overrides = vec![
            made(1, Selector::Sku(Sku::parse("tee").unwrap()), off(1000), 0, Some(50)),
            made(2, brand("acme"), off(2000), 5, None),
            made(3, brand("acme"), off(3000), 5, None),
            made(4, brand("acme"), off(4000), 1, None),
        ];
        let won = |product: &Product, now| winner(&overrides, product, at(now)).map(|(o, price)| (o.id, price));
        assert_eq!(won(&tee, 0), Some((1, 1800)));
        assert_eq!(won(&tee, 60), Some((3, 1400)), "the SKU's ended: the latest start, then the last made");
        assert_eq!(won(&tee, 2), Some((1, 1800)));
        assert_eq!(won(&other, 10), None);
    }

    #[test]
    fn drafts_name_every_bad_field() {
        let parse = |json: Value| {
            OverrideDraft::parse(serde_json::from_value(json).unwrap(), at(0)).map_err(|e| {
                let mut fields: Vec<String> = e.errors().iter().map(|f| f.field.clone()).collect();
                fields.sort();
                fields
            })
        };
        let good = parse(serde_json::json!({"sku": "tee", "percent_off_bps": 1500, "reason": "summer"})).unwrap();
        assert_eq!((good.starts_at, good.ends_at), (at(0), None));
        assert_eq!(
            parse(serde_json::json!({"reason": " "})).unwrap_err(),
            ["price_minor", "reason", "sku"].map(String::from).to_vec()
        );
        assert_eq!(
            parse(serde_json::json!({"sku": "tee", "attributes": {"a": 1}, "price_minor": 0, "currency": "EUR",
                "reason": "x", "starts_at": "2027-01-01T00:00:00Z", "ends_at": "2026-12-31T00:00:00Z"}))
            .unwrap_err(),
            ["ends_at", "price_minor", "sku"].map(String::from).to_vec()
        );
        assert_eq!(
            parse(serde_json::json!({"attributes": {}, "percent_off_bps": 10001, "reason": "x",
                "ends_at": "2020-01-01T00:00:00Z", "starts_at": "2019-01-01T00:00:00Z"}))
            .unwrap_err(),
            ["attributes", "ends_at", "percent_off_bps"].map(String::from).to_vec()
        );
        assert_eq!(
            parse(serde_json::json!({"sku": "tee", "price_minor": 100, "reason": "x"})).unwrap_err(),
            ["currency"].map(String::from).to_vec()
        );
    }
}
