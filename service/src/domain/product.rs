//! Products: what a merchant sells, at what cost, at what base price, within which bounds.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::guardrails::{Guardrails, GuardrailsInput, MAX_AMOUNT_MINOR};
use super::invalid::Invalid;
use super::{Currency, Money, Sku};

pub const MAX_ATTRIBUTES: usize = 64;
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
pub const MAX_ATTRIBUTE_TEXT_LEN: usize = 256;

/// Free product attributes (brand, category, season...) that rules can read: a flat object of
/// strings, numbers and booleans, so that it maps onto the rule interface's typed key/values.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Attributes(Map<String, Value>);

impl Attributes {
    pub fn parse(object: Map<String, Value>) -> Result<Self, Invalid> {
        Self::parse_named("attributes", object)
    }

    /// Parses any flat object of this shape (rule parameters too), naming problems after `field`.
    pub fn parse_named(field: &str, object: Map<String, Value>) -> Result<Self, Invalid> {
        Self::check_named(field, &object)?;
        Ok(Self(object))
    }

    /// Checks a flat object of this shape without taking it.
    pub fn check_named(field: &str, object: &Map<String, Value>) -> Result<(), Invalid> {
        let mut invalid = Invalid::new();
        if object.len() > MAX_ATTRIBUTES {
            invalid.push(field, format!("at most {MAX_ATTRIBUTES} entries, got {}", object.len()));
        }
        for (key, value) in object {
            let key_ok = !key.is_empty()
                && key.len() <= MAX_ATTRIBUTE_KEY_LEN
                && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
            if !key_ok {
                invalid.push(
                    format!("{field}.{key}"),
                    format!("keys are 1 to {MAX_ATTRIBUTE_KEY_LEN} of a-z, 0-9, `_`, `.`, `-`"),
                );
            }
            match value {
                Value::String(s) if s.chars().count() > MAX_ATTRIBUTE_TEXT_LEN => invalid.push(
                    format!("{field}.{key}"),
                    format!("text values are at most {MAX_ATTRIBUTE_TEXT_LEN} characters"),
                ),
                Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
                _ => invalid.push(format!("{field}.{key}"), "values are strings, numbers or booleans"),
            }
        }
        invalid.or_ok(|| ())
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The API schema of such an object, from the limits [`Attributes::check_named`] holds it to.
    pub fn schema() -> utoipa::openapi::schema::Object {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let text = ObjectBuilder::new().schema_type(Type::String).max_length(Some(MAX_ATTRIBUTE_TEXT_LEN));
        let values = OneOfBuilder::new()
            .item(text)
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::Boolean));
        let keys = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^[a-z0-9_.-]{{1,{MAX_ATTRIBUTE_KEY_LEN}}}$")));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A flat object of strings, numbers and booleans."))
            .property_names(Some(keys))
            .max_properties(Some(MAX_ATTRIBUTES))
            .additional_properties(Some(AdditionalProperties::RefOr(values.into())))
            .build()
    }
}

/// A product as a merchant describes it, parsed: ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductDraft {
    pub sku: Sku,
    pub cost: Money,
    pub base_price: Money,
    pub guardrails: Guardrails,
    pub attributes: Attributes,
}

impl ProductDraft {
    /// Parses the parts of a product body, reporting every problem at once.
    pub fn parse(
        sku: Sku,
        currency: &str,
        cost_minor: i64,
        base_price_minor: i64,
        guardrails: GuardrailsInput,
        attributes: Map<String, Value>,
    ) -> Result<Self, Invalid> {
        let mut invalid = Invalid::new();
        let currency = Currency::parse(currency).map_err(|e| invalid.push("currency", e.to_string())).ok();
        if !(0..=MAX_AMOUNT_MINOR).contains(&cost_minor) {
            invalid.push("cost_minor", format!("must be between 0 and {MAX_AMOUNT_MINOR} minor units"));
        }
        if !(1..=MAX_AMOUNT_MINOR).contains(&base_price_minor) {
            invalid.push("base_price_minor", format!("must be between 1 and {MAX_AMOUNT_MINOR} minor units"));
        }
        let guardrails = Guardrails::parse(guardrails).map_err(|e| invalid.absorb("guardrails", e)).ok();
        let attributes = Attributes::parse(attributes).map_err(|e| invalid.extend(e)).ok();
        if let (Some(currency), Some(guardrails)) = (currency, &guardrails)
            && invalid.is_empty()
            && let Err(e) = guardrails.check_fixed_price(Money::new(base_price_minor, currency), "base_price_minor")
        {
            invalid.extend(e);
        }
        match (invalid.is_empty(), currency, guardrails, attributes) {
            (true, Some(currency), Some(guardrails), Some(attributes)) => Ok(Self {
                sku,
                cost: Money::new(cost_minor, currency),
                base_price: Money::new(base_price_minor, currency),
                guardrails,
                attributes,
            }),
            _ => Err(invalid),
        }
    }

    pub fn currency(&self) -> Currency {
        self.base_price.currency()
    }
}

/// A stored product.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub sku: Sku,
    pub cost: Money,
    pub base_price: Money,
    pub guardrails: Guardrails,
    pub attributes: Attributes,
    /// Incremented on every change; starts at 1.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Product {
    pub fn currency(&self) -> Currency {
        self.base_price.currency()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn draft(
        currency: &str,
        cost: i64,
        base: i64,
        guardrails: Value,
        attributes: Value,
    ) -> Result<ProductDraft, Invalid> {
        ProductDraft::parse(
            Sku::parse("sku-1").unwrap(),
            currency,
            cost,
            base,
            serde_json::from_value(guardrails).unwrap(),
            attrs(attributes),
        )
    }

    fn fields(r: Result<ProductDraft, Invalid>) -> Vec<String> {
        r.unwrap_err().errors().iter().map(|e| e.field.clone()).collect()
    }

    #[test]
    fn a_valid_product_parses_in_its_currency() {
        let p =
            draft("JPY", 0, 1980, json!({"floor_minor": 1000}), json!({"brand": "acme", "weight": 1.5, "new": true}))
                .unwrap();
        assert_eq!(p.cost.minor(), 0);
        assert_eq!(p.base_price.currency().code(), "JPY");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let r = draft("EURO", -1, 0, json!({"floor_minor": 0}), json!({"Bad Key": 1, "nested": {"a": 1}}));
        assert_eq!(
            fields(r),
            [
                "currency",
                "cost_minor",
                "base_price_minor",
                "guardrails.floor_minor",
                "attributes.Bad Key",
                "attributes.nested"
            ]
        );
    }

    #[test]
    fn a_base_price_outside_the_guardrails_is_refused() {
        let r = draft("EUR", 1200, 1999, json!({"floor_minor": 1300, "ceiling_minor": 1500}), json!({}));
        assert_eq!(fields(r), ["base_price_minor"]);
    }

    #[test]
    fn too_many_or_too_long_attributes_are_refused() {
        let many: Map<String, Value> = (0..=MAX_ATTRIBUTES).map(|i| (format!("k{i}"), json!(i))).collect();
        let r = draft("EUR", 1, 2, json!({}), Value::Object(many));
        assert_eq!(fields(r), ["attributes"]);
        let r = draft("EUR", 1, 2, json!({}), json!({"note": "x".repeat(MAX_ATTRIBUTE_TEXT_LEN + 1)}));
        assert_eq!(fields(r), ["attributes.note"]);
    }
}
