//! Declared parameters (`pricing:policy@1.1.0`): a plain struct with `#[derive(Params)]`
//! becomes the rule's declaration, which the service reads at upload, shows merchants and
//! checks every value against, and the struct the policy reads (`params.margin_bps`).
//!
//! ```
//! use pricing_rule_sdk::{Bps, Context, Decision, Minor, Params, export_rule, pricing};
//!
//! #[derive(Params)]
//! struct CostPlus {
//!     /// Margin over cost.
//!     #[param(default = 3000, min = 0, max = 100_000)]
//!     margin_bps: Bps,
//!     /// Price ending to round to, such as 99 for x.99.
//!     #[param(min = 0)]
//!     ending: Option<Minor>,
//! }
//!
//! fn cost_plus(ctx: &Context, params: &CostPlus) -> Decision {
//!     match pricing::price_for_margin(ctx.cost.minor, params.margin_bps.0) {
//!         Some(price) => Decision::set(price, "cost plus"),
//!         None => Decision::keep("out of range"),
//!     }
//! }
//!
//! export_rule!(cost_plus, CostPlus);
//! ```
//!
//! Field types: `i64` (an integer), [`Minor`] (an amount in minor units of the product's
//! currency), [`Bps`] (basis points), `bool`, `String` (text; `#[param(one_of = ["a", "b"])]`
//! makes it one of a list, `max_bytes = N` bounds it, 256 by default), and `Option` of any of
//! them (an optional parameter, `None` when unset). Anything else is a compile error at the
//! field's type:
//!
//! ```compile_fail
//! use pricing_rule_sdk::Params;
//!
//! #[derive(Params)]
//! struct Bad {
//!     ratio: f64, // unsupported parameter type `f64`
//! }
//! ```
//!
//! A field's doc comment is its description; `default`, `min` and `max` are checked by the
//! service at upload (a default out of bounds refuses the rule). A field with no default that
//! is not an `Option` is required: the merchant sets it before the version can be activated.

use crate::Value;

/// An amount in minor units of the product's currency (cents for EUR, yen for JPY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Minor(pub i64);

/// Basis points: 100 is 1 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bps(pub i64);

impl From<i64> for Minor {
    fn from(n: i64) -> Self {
        Minor(n)
    }
}

impl From<i64> for Bps {
    fn from(n: i64) -> Self {
        Bps(n)
    }
}

/// Inclusive bounds of a whole-number parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// What a parameter holds (the interface's `param-kind`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamKind {
    Integer(Bounds),
    Money(Bounds),
    Bps(Bounds),
    Boolean,
    Text(u32),
    OneOf(Vec<String>),
}

/// One declared parameter (the interface's `param-spec`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub kind: ParamKind,
    pub default: Option<Value>,
    pub optional: bool,
    pub description: String,
}

/// A rule's parameters as a struct: implemented by `#[derive(Params)]`.
pub trait Params: Sized {
    /// The declaration, in field order.
    fn schema() -> Vec<ParamSpec>;

    /// Reads the struct from a context's parameters: the declared default for one left out,
    /// an error naming a value of the wrong kind (the service never hands a rule one; a
    /// hand-built test context can).
    fn from_params(params: &[(String, Value)]) -> Result<Self, String>;

    /// [`Params::from_params`] of `ctx.params`.
    fn from_context(ctx: &crate::Context) -> Result<Self, String> {
        Self::from_params(&ctx.params)
    }
}

/// A type a parameter field may have. Sealed in practice: the derive accepts only the types
/// listed in the module's documentation.
pub trait ParamType: Sized {
    /// The kind, given the field's `min`/`max` (whole numbers) or `max_bytes` (text).
    fn kind(bounds: Bounds, max_bytes: Option<u32>) -> ParamKind;
    fn from_value(value: &Value) -> Option<Self>;
    fn to_value(&self) -> Value;
}

/// Whole numbers up to 2^53 cross the interface's `f64` exactly.
const MAX_EXACT_WHOLE: f64 = 9_007_199_254_740_992.0;

fn whole(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) if n.fract() == 0.0 && n.abs() <= MAX_EXACT_WHOLE => Some(*n as i64),
        _ => None,
    }
}

impl ParamType for i64 {
    fn kind(bounds: Bounds, _: Option<u32>) -> ParamKind {
        ParamKind::Integer(bounds)
    }
    fn from_value(value: &Value) -> Option<Self> {
        whole(value)
    }
    fn to_value(&self) -> Value {
        Value::from(*self)
    }
}

impl ParamType for Minor {
    fn kind(bounds: Bounds, _: Option<u32>) -> ParamKind {
        ParamKind::Money(bounds)
    }
    fn from_value(value: &Value) -> Option<Self> {
        whole(value).map(Minor)
    }
    fn to_value(&self) -> Value {
        Value::from(self.0)
    }
}

impl ParamType for Bps {
    fn kind(bounds: Bounds, _: Option<u32>) -> ParamKind {
        ParamKind::Bps(bounds)
    }
    fn from_value(value: &Value) -> Option<Self> {
        whole(value).map(Bps)
    }
    fn to_value(&self) -> Value {
        Value::from(self.0)
    }
}

impl ParamType for bool {
    fn kind(_: Bounds, _: Option<u32>) -> ParamKind {
        ParamKind::Boolean
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Boolean(*self)
    }
}

/// Text of at most 256 bytes unless the field says `max_bytes`.
pub const DEFAULT_TEXT_BYTES: u32 = 256;

impl ParamType for String {
    fn kind(_: Bounds, max_bytes: Option<u32>) -> ParamKind {
        ParamKind::Text(max_bytes.unwrap_or(DEFAULT_TEXT_BYTES))
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

/// What the derive calls for one field: its value, its default, or why neither.
#[doc(hidden)]
pub fn read_field<T: ParamType>(
    params: &[(String, Value)],
    name: &str,
    default: Option<T>,
) -> Result<Option<T>, String> {
    match params.iter().find(|(key, _)| key == name) {
        Some((_, value)) => T::from_value(value)
            .map(Some)
            // Not the value itself: formatting an f64 would add some 25 KB to every rule.
            .ok_or_else(|| format!("parameter `{name}` does not hold a value of its declared kind")),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ContextBuilder;

    #[derive(crate::Params, Debug, PartialEq)]
    struct Example {
        /// Margin over cost.
        #[param(default = 3000, min = 0, max = 100_000)]
        margin_bps: Bps,
        /// Rounding ending.
        ending: Option<Minor>,
        #[param(default = "x99", one_of = ["x99", "x95"])]
        style: String,
        #[param(default = false)]
        aggressive: bool,
        days: i64,
    }

    #[test]
    fn the_schema_follows_the_fields() {
        let schema = Example::schema();
        let names: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["margin_bps", "ending", "style", "aggressive", "days"]);
        assert_eq!(schema[0].kind, ParamKind::Bps(Bounds { min: Some(0), max: Some(100_000) }));
        assert_eq!(schema[0].default, Some(Value::Number(3000.0)));
        assert_eq!(schema[0].description, "Margin over cost.");
        assert!(schema[1].optional && schema[1].default.is_none());
        assert_eq!(schema[2].kind, ParamKind::OneOf(vec!["x99".into(), "x95".into()]));
        assert!(!schema[4].optional && schema[4].default.is_none(), "days is required");
    }

    #[test]
    fn reads_values_and_defaults() {
        let ctx = ContextBuilder::new("sku", "EUR").param("days", 7).param("ending", 99).build();
        let params = Example::from_context(&ctx).unwrap();
        assert_eq!(
            params,
            Example { margin_bps: Bps(3000), ending: Some(Minor(99)), style: "x99".into(), aggressive: false, days: 7 }
        );
        let missing = Example::from_context(&ContextBuilder::new("sku", "EUR").build()).unwrap_err();
        assert!(missing.contains("days"), "{missing}");
        let wrong = ContextBuilder::new("sku", "EUR").param("days", 7).param("margin_bps", "30%").build();
        assert!(Example::from_context(&wrong).unwrap_err().contains("margin_bps"));
    }
}
