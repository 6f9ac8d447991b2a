//! A rule's declared parameters (`pricing:policy@1.1.0`): what each is, its bounds and default,
//! and the one check every value a merchant sets goes through.
//!
//! Decisions written down here:
//! - The schema comes from the rule (its `params-schema` export, read once at upload) and is
//!   stored with the version; a rule built for 1.0.0, or one that answers `none`, has no
//!   schema and takes a flat object of strings, numbers and booleans as before.
//! - `PUT /v1/rules/{v}/params` replaces the whole set: every given field is checked against its
//!   declaration (each bad one named), unknown fields are refused, and the declared defaults
//!   are filled in for fields left out, so what is stored, shown and handed to the rule is
//!   always complete and valid. A new version starts with its defaults.
//! - A parameter with no default that is not optional is required: a version missing one
//!   cannot be activated (the activation names it).
//! - Integers, money amounts and basis points are JSON integers (money in minor units of the
//!   product's currency: `1` is one cent in EUR). Text such as `"30%"` for basis points is
//!   refused with the field named, never read as a default.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Invalid;

/// Whole numbers beyond this do not survive the interface's `f64` exactly.
pub const MAX_EXACT_WHOLE: i64 = 1 << 53;
/// Most parameters one rule may declare, and the longest name, description and text.
pub const MAX_PARAMS: usize = 64;
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_DESCRIPTION_BYTES: usize = 200;
pub const MAX_TEXT_BYTES: u32 = 1024;
pub const MAX_CHOICES: usize = 64;

/// Inclusive bounds of a whole-number parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bounds {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}

/// What a parameter holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamKind {
    /// A whole number.
    Integer {
        #[serde(flatten)]
        bounds: Bounds,
    },
    /// An amount in minor units of the product's currency.
    Money {
        #[serde(flatten)]
        bounds: Bounds,
    },
    /// Basis points (100 = 1 %).
    Bps {
        #[serde(flatten)]
        bounds: Bounds,
    },
    Boolean,
    /// Text of at most `max_bytes` bytes.
    Text {
        max_bytes: u32,
    },
    /// One of `values`.
    OneOf {
        values: Vec<String>,
    },
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParamSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: ParamKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The value when none is set: a number, text or boolean, of the parameter's kind.
    #[schema(value_type = Option<serde_json::Value>)]
    pub default: Option<Value>,
    #[serde(default)]
    pub optional: bool,
    pub description: String,
}

impl ParamSpec {
    /// Required: no default, and the rule cannot do without it.
    pub fn required(&self) -> bool {
        self.default.is_none() && !self.optional
    }

    /// Why `value` is not a value of this parameter, if it is not.
    fn refuse(&self, value: &Value) -> Option<String> {
        let whole = |bounds: &Bounds, what: &str, example: &str| -> Option<String> {
            let Some(n) = value.as_i64().filter(|n| n.abs() <= MAX_EXACT_WHOLE) else {
                return Some(format!("{what}: a whole number such as {example}, not {value}"));
            };
            match (bounds.min, bounds.max) {
                (Some(min), _) if n < min => Some(format!("at least {min} (got {n})")),
                (_, Some(max)) if n > max => Some(format!("at most {max} (got {n})")),
                _ => None,
            }
        };
        match &self.kind {
            ParamKind::Integer { bounds } => whole(bounds, "an integer", "7"),
            ParamKind::Money { bounds } => whole(bounds, "an amount in minor units", "1999 for 19.99"),
            ParamKind::Bps { bounds } => whole(bounds, "basis points", "3000 for 30 %"),
            ParamKind::Boolean => (!value.is_boolean()).then(|| format!("true or false, not {value}")),
            ParamKind::Text { max_bytes } => match value.as_str() {
                None => Some(format!("text, not {value}")),
                Some(s) if s.len() > *max_bytes as usize => Some(format!("at most {max_bytes} bytes of text")),
                Some(_) => None,
            },
            ParamKind::OneOf { values } => match value.as_str() {
                Some(s) if values.iter().any(|v| v == s) => None,
                _ => Some(format!("one of {}, not {value}", values.join(", "))),
            },
        }
    }
}

/// The parameters a rule declares, in its order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct ParamsSchema(pub Vec<ParamSpec>);

impl ParamsSchema {
    /// Checks a declaration read from a rule: names, bounds, choices and defaults that make
    /// sense. The reason names the first problem.
    pub fn check(specs: Vec<ParamSpec>) -> Result<Self, String> {
        if specs.len() > MAX_PARAMS {
            return Err(format!("{} parameters declared; at most {MAX_PARAMS}", specs.len()));
        }
        let mut names = HashSet::new();
        for spec in &specs {
            let name = &spec.name;
            let well_formed = !name.is_empty()
                && name.len() <= MAX_NAME_BYTES
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !well_formed {
                return Err(format!("parameter name `{name}` is not a lower-case identifier of at most 64 bytes"));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("parameter `{name}` is declared twice"));
            }
            if spec.description.len() > MAX_DESCRIPTION_BYTES {
                return Err(format!("the description of `{name}` is over {MAX_DESCRIPTION_BYTES} bytes"));
            }
            match &spec.kind {
                ParamKind::Integer { bounds } | ParamKind::Money { bounds } | ParamKind::Bps { bounds } => {
                    if let (Some(min), Some(max)) = (bounds.min, bounds.max)
                        && min > max
                    {
                        return Err(format!("`{name}` has a minimum {min} over its maximum {max}"));
                    }
                }
                ParamKind::Text { max_bytes } if *max_bytes == 0 || *max_bytes > MAX_TEXT_BYTES => {
                    return Err(format!("`{name}` allows {max_bytes} bytes of text; 1 to {MAX_TEXT_BYTES}"));
                }
                ParamKind::OneOf { values } if values.is_empty() || values.len() > MAX_CHOICES => {
                    return Err(format!("`{name}` offers {} choices; 1 to {MAX_CHOICES}", values.len()));
                }
                _ => {}
            }
            if let Some(default) = &spec.default
                && let Some(why) = spec.refuse(default)
            {
                return Err(format!("the default of `{name}` is not one of its values: {why}"));
            }
        }
        Ok(Self(specs))
    }

    pub fn specs(&self) -> &[ParamSpec] {
        &self.0
    }

    /// The declared defaults: a new version's parameters.
    pub fn defaults(&self) -> Map<String, Value> {
        self.0.iter().filter_map(|spec| Some((spec.name.clone(), spec.default.clone()?))).collect()
    }

    /// Checks a merchant's parameters (the whole set) and fills in the defaults of those left
    /// out. Every problem is named by its field.
    pub fn validate(&self, given: &Map<String, Value>) -> Result<Map<String, Value>, Invalid> {
        let mut invalid = Invalid::new();
        for key in given.keys() {
            if !self.0.iter().any(|spec| &spec.name == key) {
                let known: Vec<&str> = self.0.iter().map(|spec| spec.name.as_str()).collect();
                let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
                invalid.push(key.clone(), format!("not a parameter of this rule (its parameters: {known})"));
            }
        }
        let mut complete = Map::new();
        for spec in &self.0 {
            match given.get(&spec.name) {
                // An explicit null means "not set": the default, or absent when optional.
                Some(Value::Null) | None => match &spec.default {
                    Some(default) => {
                        complete.insert(spec.name.clone(), default.clone());
                    }
                    None if spec.optional => {}
                    None => invalid.push(spec.name.clone(), "required: this rule declares no default for it"),
                },
                Some(value) => match spec.refuse(value) {
                    Some(why) => invalid.push(spec.name.clone(), why),
                    None => {
                        complete.insert(spec.name.clone(), value.clone());
                    }
                },
            }
        }
        invalid.or_ok(|| complete)
    }

    /// The required parameters `params` lacks (a version that cannot be activated yet).
    pub fn missing(&self, params: &Map<String, Value>) -> Vec<&str> {
        self.0
            .iter()
            .filter(|spec| spec.required() && params.get(&spec.name).is_none_or(Value::is_null))
            .map(|spec| spec.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str, kind: ParamKind, default: Option<Value>) -> ParamSpec {
        ParamSpec { name: name.into(), kind, default, optional: false, description: String::new() }
    }

    fn cost_plus() -> ParamsSchema {
        let bps = ParamKind::Bps { bounds: Bounds { min: Some(0), max: Some(100_000) } };
        let mut ending = spec("ending", ParamKind::Money { bounds: Bounds { min: Some(0), max: None } }, None);
        ending.optional = true;
        ParamsSchema::check(vec![spec("margin_bps", bps, Some(json!(3000))), ending]).unwrap()
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn fills_in_defaults_and_keeps_what_passes() {
        let schema = cost_plus();
        assert_eq!(schema.validate(&Map::new()).unwrap(), object(json!({"margin_bps": 3000})));
        assert_eq!(
            schema.validate(&object(json!({"margin_bps": 2500, "ending": 99}))).unwrap(),
            object(json!({"margin_bps": 2500, "ending": 99}))
        );
    }

    #[test]
    fn names_every_bad_field() {
        let schema = cost_plus();
        let invalid =
            schema.validate(&object(json!({"margin_bps": "30%", "ending": -1, "min_margin_bps": 3}))).unwrap_err();
        let fields: Vec<&str> = invalid.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["min_margin_bps", "margin_bps", "ending"]);
        assert!(invalid.errors()[1].message.contains("basis points"), "{invalid}");
        let fraction = schema.validate(&object(json!({"margin_bps": 30.5}))).unwrap_err();
        assert_eq!(fraction.errors()[0].field, "margin_bps");
    }

    #[test]
    fn a_required_parameter_must_be_set() {
        let schema =
            ParamsSchema::check(vec![spec("start_ms", ParamKind::Integer { bounds: Bounds::default() }, None)])
                .unwrap();
        assert_eq!(schema.missing(&Map::new()), ["start_ms"]);
        assert_eq!(schema.validate(&Map::new()).unwrap_err().errors()[0].field, "start_ms");
        assert!(schema.missing(&object(json!({"start_ms": 1}))).is_empty());
    }

    #[test]
    fn refuses_declarations_that_make_no_sense() {
        let int = |min, max| ParamKind::Integer { bounds: Bounds { min, max } };
        assert!(ParamsSchema::check(vec![spec("Bad-Name", int(None, None), None)]).is_err());
        assert!(ParamsSchema::check(vec![spec("a", int(None, None), None), spec("a", int(None, None), None)]).is_err());
        assert!(ParamsSchema::check(vec![spec("a", int(Some(5), Some(1)), None)]).is_err());
        assert!(ParamsSchema::check(vec![spec("a", int(Some(0), Some(9)), Some(json!(10)))]).is_err());
        assert!(ParamsSchema::check(vec![spec("a", ParamKind::OneOf { values: vec![] }, None)]).is_err());
        let choice = ParamKind::OneOf { values: vec!["x99".into(), "x95".into()] };
        let schema = ParamsSchema::check(vec![spec("style", choice, Some(json!("x99")))]).unwrap();
        assert!(schema.validate(&object(json!({"style": "x90"}))).is_err());
    }
}
