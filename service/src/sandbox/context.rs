//! What a rule sees and what it answers, on the host's side: JSON-friendly types (the local
//! runner reads them from files, dry runs take them over HTTP), their conversion to the
//! interface's types, and the host's check of every answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::bindings;
use crate::domain::{Attributes, Currency, Invalid, MAX_AMOUNT_MINOR};

/// The inputs of one evaluation. Every amount is in minor units of `currency`, except a
/// competitor offer that names a currency of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleContext {
    pub sku: String,
    #[schema(value_type = crate::domain::Currency)]
    pub currency: String,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub cost_minor: i64,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub current_price_minor: i64,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub base_price_minor: i64,
    #[serde(default)]
    pub competitors: Vec<CompetitorOffer>,
    #[serde(default)]
    pub demand: Demand,
    #[serde(default)]
    #[schema(schema_with = Attributes::schema)]
    pub attributes: Map<String, Value>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompetitorOffer {
    pub competitor: String,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    pub price_minor: i64,
    /// Defaults to the product's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub in_stock: bool,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    pub age_seconds: i64,
    /// Older than the merchant's staleness window. The service always sets it; a context given
    /// by hand (a dry run's, the local runner's) may leave it out, and it is then judged from
    /// `age_seconds` against the configured window (see [`RuleContext::judge_staleness`]).
    /// Written as a plain boolean, so recorded contexts read the same as before.
    #[serde(default, serialize_with = "stale_as_bool")]
    #[schema(value_type = Option<bool>)]
    pub stale: Option<bool>,
}

fn stale_as_bool<S: serde::Serializer>(stale: &Option<bool>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(stale.unwrap_or(false))
}

impl RuleContext {
    /// Judges the offers whose staleness was left out: stale when older than `window_secs`,
    /// as the service judges the offers it reads.
    pub fn judge_staleness(&mut self, window_secs: u64) {
        for offer in &mut self.competitors {
            if offer.stale.is_none() {
                offer.stale = Some(u64::try_from(offer.age_seconds).unwrap_or(0) > window_secs);
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Demand {
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(schema_with = count)]
    pub views_1d: u64,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(schema_with = count)]
    pub views_7d: u64,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(schema_with = count)]
    pub add_to_carts_1d: u64,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(schema_with = count)]
    pub add_to_carts_7d: u64,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(schema_with = count)]
    pub units_sold_1d: u64,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(schema_with = count)]
    pub units_sold_7d: u64,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(schema_with = count)]
    pub units_sold_30d: u64,
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    pub inventory: Option<i64>,
}

/// The schema of a demand count: any `u64` (an `int64` format would say less).
fn count() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::Custom("uint64".to_owned())))
        .minimum(Some(0))
        .maximum(Some(u64::MAX as usize))
        .default(Some(0.into()))
        .build()
}

/// A rule's decision after the host's checks: a price in the product's currency, or keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RuleDecision {
    /// The price the rule asks for, in minor units; `None` keeps the price in force.
    pub price_minor: Option<i64>,
    pub explanation: String,
    pub tags: Vec<String>,
}

/// Limits on what a decision may carry.
#[derive(Debug, Clone, Copy)]
pub struct OutputLimits {
    pub explanation_bytes: usize,
    pub max_tags: usize,
    pub tag_bytes: usize,
}

/// Why the host refused a rule's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
}

impl RuleContext {
    /// Checks the context and converts it for the guest; `params` are the rule version's
    /// merchant parameters (a flat object, like attributes).
    pub fn to_guest(&self, params: &Map<String, Value>) -> Result<bindings::Context, Invalid> {
        let mut invalid = Invalid::new();
        let currency = Currency::parse(&self.currency).map_err(|e| invalid.push("currency", e.to_string())).ok();
        Attributes::check_named("attributes", &self.attributes).map_err(|e| invalid.extend(e)).ok();
        Attributes::check_named("params", params).map_err(|e| invalid.extend(e)).ok();
        for (field, value) in [
            ("cost_minor", self.cost_minor),
            ("current_price_minor", self.current_price_minor),
            ("base_price_minor", self.base_price_minor),
        ] {
            if !(0..=MAX_AMOUNT_MINOR).contains(&value) {
                invalid.push(field, format!("must be between 0 and {MAX_AMOUNT_MINOR}"));
            }
        }
        let currency = match (currency, invalid.is_empty()) {
            (Some(currency), true) => currency,
            _ => return Err(invalid),
        };
        let money = |minor: i64| bindings::Money { minor, currency: self.currency.clone() };
        Ok(bindings::Context {
            sku: self.sku.clone(),
            currency: self.currency.clone(),
            currency_exponent: currency.exponent(),
            cost: money(self.cost_minor),
            current_price: money(self.current_price_minor),
            base_price: money(self.base_price_minor),
            competitors: self
                .competitors
                .iter()
                .map(|o| bindings::CompetitorOffer {
                    competitor: o.competitor.clone(),
                    price: bindings::Money {
                        minor: o.price_minor,
                        currency: o.currency.clone().unwrap_or_else(|| self.currency.clone()),
                    },
                    in_stock: o.in_stock,
                    age_seconds: o.age_seconds,
                    stale: o.stale.unwrap_or(false),
                })
                .collect(),
            demand: bindings::Demand {
                views_1d: self.demand.views_1d,
                views_7d: self.demand.views_7d,
                add_to_carts_1d: self.demand.add_to_carts_1d,
                add_to_carts_7d: self.demand.add_to_carts_7d,
                units_sold_1d: self.demand.units_sold_1d,
                units_sold_7d: self.demand.units_sold_7d,
                units_sold_30d: self.demand.units_sold_30d,
                inventory: self.demand.inventory,
            },
            attributes: entries(&self.attributes),
            params: entries(params),
            now_ms: self.now.timestamp_millis(),
        })
    }
}

/// Flat JSON values as the interface's typed entries (checked flat beforehand).
fn entries(map: &Map<String, Value>) -> Vec<bindings::Entry> {
    map.iter()
        .filter_map(|(key, value)| {
            let value = match value {
                Value::String(s) => bindings::Value::Text(s.clone()),
                Value::Number(n) => bindings::Value::Number(n.as_f64()?),
                Value::Bool(b) => bindings::Value::Boolean(*b),
                _ => return None,
            };
            Some(bindings::Entry { key: key.clone(), value })
        })
        .collect()
}

/// The host's check of a rule's answer: a positive, in-range price in the product's
/// currency, and an explanation and tags within their limits.
pub fn check_decision(
    decision: bindings::Decision,
    currency: &str,
    limits: &OutputLimits,
) -> Result<RuleDecision, OutputError> {
    let in_currency = |given: &str| {
        if given == currency {
            Ok(())
        } else {
            Err(OutputError::Invalid(format!("the rule priced in {given:?}, the product is priced in {currency}")))
        }
    };
    let in_range = |minor: i64| {
        if (1..=MAX_AMOUNT_MINOR).contains(&minor) {
            Ok(minor)
        } else {
            Err(OutputError::Invalid(format!("the price {minor} is not between 1 and {MAX_AMOUNT_MINOR} minor units")))
        }
    };
    let price_minor = match decision.action {
        bindings::Action::Keep => None,
        bindings::Action::Set(money) => {
            in_currency(&money.currency)?;
            Some(in_range(money.minor)?)
        }
        bindings::Action::SetApprox(approx) => {
            in_currency(&approx.currency)?;
            if !approx.minor.is_finite() {
                return Err(OutputError::Invalid(format!("the price {} is not a finite number", approx.minor)));
            }
            let rounded = approx.minor.round(); // half away from zero
            if !(1.0..=MAX_AMOUNT_MINOR as f64).contains(&rounded) {
                return Err(OutputError::Invalid(format!(
                    "the price {} is not between 1 and {MAX_AMOUNT_MINOR} minor units",
                    approx.minor
                )));
            }
            Some(rounded as i64)
        }
    };
    if decision.explanation.len() > limits.explanation_bytes {
        return Err(OutputError::TooLarge(format!(
            "the explanation has {} bytes, the limit is {}",
            decision.explanation.len(),
            limits.explanation_bytes
        )));
    }
    if decision.tags.len() > limits.max_tags || decision.tags.iter().any(|t| t.is_empty() || t.len() > limits.tag_bytes)
    {
        return Err(OutputError::TooLarge(format!(
            "at most {} tags of 1 to {} bytes each",
            limits.max_tags, limits.tag_bytes
        )));
    }
    Ok(RuleDecision { price_minor, explanation: decision.explanation, tags: decision.tags })
}
