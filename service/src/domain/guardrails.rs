//! Guardrails: the bounds a merchant puts around any price a rule may set.
//!
//! The host applies them after the rule (the pricing issue); here they are parsed and checked
//! for consistency, so that a stored set of guardrails is always one that can be satisfied.
//! Decisions written down here:
//! - `floor_minor` and `min_margin_bps` may both be given; the effective floor is the higher.
//! - `map_minor` (minimum advertised price) is a floor the law or a brand imposes; it must not
//!   exceed the ceiling either.
//! - `max_step_bps` bounds one change relative to the current price (1 bp to 100 000 bp).
//! - Rounding goes to the nearest allowed price, ties to the lower one (the customer's side).

use serde::{Deserialize, Serialize};

use super::invalid::Invalid;
use super::money::Money;

/// The largest amount accepted anywhere in minor units (10^15): far above any real price,
/// and far enough below i64::MAX that basis-point arithmetic cannot overflow.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;
pub const MAX_MARGIN_BPS: i64 = 1_000_000;
pub const MAX_STEP_BPS: i64 = 100_000;
pub const MAX_MIN_INTERVAL_SECS: i64 = 31 * 24 * 3600;
const MAX_ENDING_MINOR: i64 = 999_999;
const MAX_STEP_MINOR: i64 = 1_000_000;

/// How a guarded price is rounded to a price ending the merchant wants to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rounding {
    /// Prices end in these minor units: `99` gives 19.99, 20.99; `990` gives JPY 1990.
    Ending {
        #[serde(deserialize_with = "crate::domain::whole::integer")]
        ending_minor: i64,
    },
    /// Prices are multiples of this step: `5` gives CHF 0.05 steps.
    Multiple {
        #[serde(deserialize_with = "crate::domain::whole::integer")]
        step_minor: i64,
    },
}

/// The API schema of [`Rounding`], written out because a derived one would let other fields
/// through: each mode is an object of exactly its two fields, with the bounds `check` holds.
impl utoipa::PartialSchema for Rounding {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let mode = |name: &str, field: &str, min: i64, max: i64, description: &str| {
            ObjectBuilder::new()
                .description(Some(description))
                .property("mode", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([name])))
                .required("mode")
                .property(
                    field,
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
                        .minimum(Some(min))
                        .maximum(Some(max)),
                )
                .required(field)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .description(Some("How a guarded price is rounded to a price ending the merchant wants to show."))
            .item(mode(
                "ending",
                "ending_minor",
                0,
                MAX_ENDING_MINOR,
                "Prices end in these minor units: `99` gives 19.99, 20.99; `990` gives JPY 1990.",
            ))
            .item(mode(
                "multiple",
                "step_minor",
                1,
                MAX_STEP_MINOR,
                "Prices are multiples of this step: `5` gives CHF 0.05 steps.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Rounding {}

impl Rounding {
    fn check(&self, field: &str, invalid: &mut Invalid) {
        match *self {
            Rounding::Ending { ending_minor } if !(0..=MAX_ENDING_MINOR).contains(&ending_minor) => {
                invalid.push(format!("{field}.ending_minor"), "must be between 0 and 999999")
            }
            Rounding::Multiple { step_minor } if !(1..=MAX_STEP_MINOR).contains(&step_minor) => {
                invalid.push(format!("{field}.step_minor"), "must be between 1 and 1000000")
            }
            _ => {}
        }
    }

    /// The distance between two neighbouring allowed prices: 100 for an ending of 99, 1000 for
    /// 980, the step itself for multiples.
    pub fn period(&self) -> i64 {
        match *self {
            Rounding::Ending { ending_minor } => 10_i64.pow(ending_minor.max(1).ilog10() + 1),
            Rounding::Multiple { step_minor } => step_minor,
        }
    }

    /// The nearest price to `minor` that this rounding allows, ties to the lower; never below
    /// one minor unit's worth of rounding step (it goes up instead of reaching zero).
    pub fn apply(&self, minor: i64) -> i64 {
        let (below, above) = match *self {
            Rounding::Ending { ending_minor } => {
                let modulus = self.period();
                let candidate = minor - minor.rem_euclid(modulus) + ending_minor;
                if candidate > minor { (candidate - modulus, candidate) } else { (candidate, candidate + modulus) }
            }
            Rounding::Multiple { step_minor } => {
                let below = minor - minor.rem_euclid(step_minor);
                let above = if below == minor { minor } else { below + step_minor };
                (below, above)
            }
        };
        if below <= 0 || above - minor < minor - below { above } else { below }
    }
}

/// What a client sends; turned into [`Guardrails`] by [`Guardrails::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
///
/// The schema's bounds are the constants above (a unit test of the API's document holds them
/// to it); that the floor and MAP do not exceed the ceiling is checked by [`Guardrails::parse`].
pub struct GuardrailsInput {
    /// The lowest price, in minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub floor_minor: Option<i64>,
    /// The lowest margin over cost, in basis points.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub min_margin_bps: Option<i64>,
    /// The highest price, in minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub ceiling_minor: Option<i64>,
    /// The minimum advertised price, in minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub map_minor: Option<i64>,
    /// The largest change at once, in basis points of the current price.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub max_step_bps: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounding: Option<Rounding>,
    /// The least time between two changes, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    #[schema(minimum = 0, maximum = 2_678_400)]
    pub min_interval_secs: Option<i64>,
}

/// A consistent set of guardrails, in the product's currency. Every field is optional; an
/// absent one does not constrain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guardrails(GuardrailsInput);

impl Guardrails {
    pub fn none() -> Self {
        Self(GuardrailsInput::default())
    }

    pub fn parse(input: GuardrailsInput) -> Result<Self, Invalid> {
        let mut invalid = Invalid::new();
        let amount = |name: &str, value: Option<i64>, invalid: &mut Invalid| {
            if let Some(v) = value.filter(|v| !(1..=MAX_AMOUNT_MINOR).contains(v)) {
                invalid.push(name, format!("must be between 1 and {MAX_AMOUNT_MINOR} minor units, got {v}"));
            }
        };
        amount("floor_minor", input.floor_minor, &mut invalid);
        amount("ceiling_minor", input.ceiling_minor, &mut invalid);
        amount("map_minor", input.map_minor, &mut invalid);
        let ranged = |name: &str, value: Option<i64>, min: i64, max: i64, invalid: &mut Invalid| {
            if let Some(v) = value.filter(|v| !(min..=max).contains(v)) {
                invalid.push(name, format!("must be between {min} and {max}, got {v}"));
            }
        };
        ranged("min_margin_bps", input.min_margin_bps, 0, MAX_MARGIN_BPS, &mut invalid);
        ranged("max_step_bps", input.max_step_bps, 1, MAX_STEP_BPS, &mut invalid);
        ranged("min_interval_secs", input.min_interval_secs, 0, MAX_MIN_INTERVAL_SECS, &mut invalid);
        if let Some(rounding) = &input.rounding {
            rounding.check("rounding", &mut invalid);
        }
        // Relations between bounds are only meaningful once each bound is valid on its own.
        if let Some(ceiling) = input.ceiling_minor.filter(|_| invalid.is_empty()) {
            if input.floor_minor.is_some_and(|floor| floor > ceiling) {
                invalid.push("floor_minor", "the floor is above the ceiling");
            }
            if input.map_minor.is_some_and(|map| map > ceiling) {
                invalid.push("map_minor", "the minimum advertised price is above the ceiling");
            }
        }
        invalid.or_ok(|| Self(input))
    }

    pub fn floor_minor(&self) -> Option<i64> {
        self.0.floor_minor
    }
    pub fn min_margin_bps(&self) -> Option<i64> {
        self.0.min_margin_bps
    }
    pub fn ceiling_minor(&self) -> Option<i64> {
        self.0.ceiling_minor
    }
    pub fn map_minor(&self) -> Option<i64> {
        self.0.map_minor
    }
    pub fn max_step_bps(&self) -> Option<i64> {
        self.0.max_step_bps
    }
    pub fn rounding(&self) -> Option<Rounding> {
        self.0.rounding
    }
    pub fn min_interval_secs(&self) -> Option<i64> {
        self.0.min_interval_secs
    }

    /// The absolute bounds (floor, MAP, ceiling) that a fixed price must respect. The margin
    /// floor is left out: it moves with the cost, and a cost change must not make a product's
    /// base price unstorable.
    pub fn check_fixed_price(&self, price: Money, field: &str) -> Result<(), Invalid> {
        let mut invalid = Invalid::new();
        let p = price.minor();
        if let Some(floor) = self.0.floor_minor.filter(|f| p < *f) {
            invalid.push(field, format!("{price} is below the floor of {floor} minor units"));
        }
        if let Some(map) = self.0.map_minor.filter(|m| p < *m) {
            invalid.push(field, format!("{price} is below the minimum advertised price of {map} minor units"));
        }
        if let Some(ceiling) = self.0.ceiling_minor.filter(|c| p > *c) {
            invalid.push(field, format!("{price} is above the ceiling of {ceiling} minor units"));
        }
        invalid.or_ok(|| ())
    }

    /// The wire and storage form.
    pub fn as_input(&self) -> &GuardrailsInput {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Guardrails, Invalid> {
        Guardrails::parse(serde_json::from_str(json).unwrap())
    }

    fn fields(invalid: Invalid) -> Vec<String> {
        invalid.errors().iter().map(|e| e.field.clone()).collect()
    }

    #[test]
    fn a_full_consistent_set_parses() {
        let g = parse(
            r#"{"floor_minor":1300,"min_margin_bps":1500,"ceiling_minor":2999,"map_minor":1500,
                "max_step_bps":1000,"rounding":{"mode":"ending","ending_minor":99},"min_interval_secs":3600}"#,
        )
        .unwrap();
        assert_eq!(g.floor_minor(), Some(1300));
        assert_eq!(g.rounding(), Some(Rounding::Ending { ending_minor: 99 }));
        assert_eq!(parse("{}").unwrap(), Guardrails::none());
    }

    #[test]
    fn a_floor_above_the_ceiling_is_refused() {
        let err = parse(r#"{"floor_minor":3000,"ceiling_minor":2999}"#).unwrap_err();
        assert_eq!(fields(err), ["floor_minor"]);
        // Equal bounds pin the price, which is allowed.
        assert!(parse(r#"{"floor_minor":2999,"ceiling_minor":2999}"#).is_ok());
    }

    #[test]
    fn a_map_above_the_ceiling_is_refused() {
        let err = parse(r#"{"map_minor":3000,"ceiling_minor":2999}"#).unwrap_err();
        assert_eq!(fields(err), ["map_minor"]);
    }

    #[test]
    fn zero_negative_and_huge_values_are_refused_all_at_once() {
        let err = parse(
            r#"{"floor_minor":0,"ceiling_minor":-5,"map_minor":1000000000000000001,
                "max_step_bps":0,"min_margin_bps":-1,"min_interval_secs":-1}"#,
        )
        .unwrap_err();
        assert_eq!(
            fields(err),
            ["floor_minor", "ceiling_minor", "map_minor", "min_margin_bps", "max_step_bps", "min_interval_secs"]
        );
    }

    #[test]
    fn bad_rounding_is_refused_and_unknown_fields_do_not_parse() {
        let err = parse(r#"{"rounding":{"mode":"multiple","step_minor":0}}"#).unwrap_err();
        assert_eq!(fields(err), ["rounding.step_minor"]);
        assert!(serde_json::from_str::<GuardrailsInput>(r#"{"flor_minor":1}"#).is_err());
        assert!(serde_json::from_str::<GuardrailsInput>(r#"{"rounding":{"mode":"up"}}"#).is_err());
    }

    #[test]
    fn rounding_to_an_ending_picks_the_nearest_ending_ties_down() {
        let r = Rounding::Ending { ending_minor: 99 };
        assert_eq!(r.apply(2000), 1999);
        assert_eq!(r.apply(2049), 1999); // 50 down vs 50 up: the lower
        assert_eq!(r.apply(2050), 2099);
        assert_eq!(r.apply(1999), 1999);
        assert_eq!(r.apply(50), 99); // never rounds to zero or below
        let yen = Rounding::Ending { ending_minor: 980 };
        assert_eq!(yen.apply(2100), 1980);
        let zero = Rounding::Ending { ending_minor: 0 };
        assert_eq!(zero.apply(1234), 1230);
        assert_eq!(zero.apply(3), 10);
    }

    #[test]
    fn rounding_to_a_multiple_picks_the_nearest_multiple_ties_down() {
        let r = Rounding::Multiple { step_minor: 5 };
        assert_eq!(r.apply(1232), 1230);
        assert_eq!(r.apply(1233), 1235);
        assert_eq!(r.apply(1235), 1235);
        assert_eq!(r.apply(2), 5);
        assert_eq!(Rounding::Multiple { step_minor: 10 }.apply(15), 10);
    }

    #[test]
    fn a_fixed_price_outside_the_bounds_is_named() {
        let g = parse(r#"{"floor_minor":1300,"ceiling_minor":2999,"map_minor":1500}"#).unwrap();
        let eur = crate::domain::Currency::parse("EUR").unwrap();
        assert!(g.check_fixed_price(Money::new(1999, eur), "base_price_minor").is_ok());
        let err = g.check_fixed_price(Money::new(1400, eur), "base_price_minor").unwrap_err();
        assert_eq!(err.errors().len(), 1, "below MAP only: {err}");
        assert!(g.check_fixed_price(Money::new(3000, eur), "base_price_minor").is_err());
    }
}
