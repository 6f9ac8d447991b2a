//! What a policy sees: the product, its prices and costs, competitors' offers, demand, the
//! product's attributes, the merchant's parameters for this rule, and `now`.
//!
//! Money is integer minor units (cents for EUR, yen for JPY) of `Context::currency`.

/// An amount in minor units of a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub minor: i64,
    pub currency: String,
}

/// One competitor's latest observed offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompetitorOffer {
    pub competitor: String,
    pub price: Money,
    pub in_stock: bool,
    /// Seconds between the observation and `now`.
    pub age_seconds: i64,
    /// Older than the merchant's staleness window.
    pub stale: bool,
}

/// Demand over trailing windows ending at `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    pub views_1d: u64,
    pub views_7d: u64,
    pub add_to_carts_1d: u64,
    pub add_to_carts_7d: u64,
    pub units_sold_1d: u64,
    pub units_sold_7d: u64,
    pub units_sold_30d: u64,
    /// Units in stock, when the merchant reports inventory.
    pub inventory: Option<i64>,
}

/// A product attribute or a rule parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(f64),
    Boolean(bool),
}

/// Everything a policy may base its decision on.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub sku: String,
    /// ISO 4217 code of the product; every amount here is in it unless it says otherwise.
    pub currency: String,
    /// Decimal places of the currency's minor unit (2 for EUR, 0 for JPY).
    pub currency_exponent: u8,
    pub cost: Money,
    pub current_price: Money,
    pub base_price: Money,
    pub competitors: Vec<CompetitorOffer>,
    pub demand: Demand,
    pub attributes: Vec<(String, Value)>,
    pub params: Vec<(String, Value)>,
    /// Milliseconds since the Unix epoch, UTC. A policy has no clock of its own.
    pub now_ms: i64,
}

/// Whole numbers up to 2^53 survive the trip through JSON's f64 exactly; larger ones may not.
const MAX_EXACT_WHOLE: f64 = 9_007_199_254_740_992.0;

fn find<'a>(entries: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) if n.fract() == 0.0 && n.abs() <= MAX_EXACT_WHOLE => Some(*n as i64),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_f64(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => *n,
        Value::Text(s) => s.trim().parse().ok()?,
        Value::Boolean(_) => return None,
    };
    // "NaN" and "inf" parse as f64 but are no parameter a policy can use.
    number.is_finite().then_some(number)
}

fn as_str(value: &Value) -> Option<&str> {
    match value {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Boolean(b) => Some(*b),
        _ => None,
    }
}

/// Typed reads of parameters and attributes. Each is `None` when the key is absent or holds a
/// value of another kind, so a policy writes `ctx.param_i64("margin_bps").unwrap_or(3000)`.
impl Context {
    /// A whole-number parameter: a JSON integer, or text holding one.
    pub fn param_i64(&self, key: &str) -> Option<i64> {
        find(&self.params, key).and_then(as_i64)
    }

    /// A finite numeric parameter: a JSON number, or text holding one.
    pub fn param_f64(&self, key: &str) -> Option<f64> {
        find(&self.params, key).and_then(as_f64)
    }

    /// A text parameter.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        find(&self.params, key).and_then(as_str)
    }

    /// A boolean parameter.
    pub fn param_bool(&self, key: &str) -> Option<bool> {
        find(&self.params, key).and_then(as_bool)
    }

    /// A whole-number product attribute, read like [`Context::param_i64`].
    pub fn attribute_i64(&self, key: &str) -> Option<i64> {
        find(&self.attributes, key).and_then(as_i64)
    }

    /// A finite numeric product attribute, read like [`Context::param_f64`].
    pub fn attribute_f64(&self, key: &str) -> Option<f64> {
        find(&self.attributes, key).and_then(as_f64)
    }

    /// A text product attribute.
    pub fn attribute_str(&self, key: &str) -> Option<&str> {
        find(&self.attributes, key).and_then(as_str)
    }

    /// A boolean product attribute.
    pub fn attribute_bool(&self, key: &str) -> Option<bool> {
        find(&self.attributes, key).and_then(as_bool)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        // Parameters arrive as JSON numbers: whole numbers up to 2^53 are exact.
        Value::Number(n as f64)
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Number(f64::from(n))
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::ContextBuilder;

    #[test]
    fn parameters_are_read_by_type() {
        let ctx = ContextBuilder::new("sku-1", "EUR")
            .param("margin_bps", 2500)
            .param("ratio", 0.25)
            .param("ending", "99")
            .param("aggressive", true)
            .build();
        assert_eq!(ctx.param_i64("margin_bps"), Some(2500));
        assert_eq!(ctx.param_i64("ending"), Some(99), "text holding a whole number");
        assert_eq!(ctx.param_i64("ratio"), None, "not a whole number");
        assert_eq!(ctx.param_f64("ratio"), Some(0.25));
        assert_eq!(ctx.param_str("ending"), Some("99"));
        assert_eq!(ctx.param_bool("aggressive"), Some(true));
        assert_eq!(ctx.param_i64("missing"), None);
    }

    #[test]
    fn a_value_of_another_type_reads_as_absent() {
        let ctx = ContextBuilder::new("sku-1", "EUR").param("margin_bps", "lots").param("flag", 1).build();
        assert_eq!(ctx.param_i64("margin_bps"), None);
        assert_eq!(ctx.param_f64("margin_bps"), None);
        assert_eq!(ctx.param_bool("flag"), None, "1 is not a boolean");
        assert_eq!(ctx.param_str("flag"), None, "a number is not text");
        let ctx = ContextBuilder::new("sku-1", "EUR").param("ratio", "NaN").build();
        assert_eq!(ctx.param_f64("ratio"), None, "not a finite number");
    }

    #[test]
    fn numbers_too_large_to_be_exact_are_not_whole_numbers() {
        let ctx = ContextBuilder::new("sku-1", "EUR").param("huge", 1e300).param("big", 9_000_000_000_000_i64).build();
        assert_eq!(ctx.param_i64("huge"), None);
        assert_eq!(ctx.param_i64("big"), Some(9_000_000_000_000));
    }

    #[test]
    fn attributes_are_read_like_parameters() {
        let ctx = ContextBuilder::new("sku-1", "EUR")
            .attribute("brand", "Acme")
            .attribute("pack_size", 6)
            .attribute("weight_kg", 1.5)
            .attribute("clearance", false)
            .build();
        assert_eq!(ctx.attribute_str("brand"), Some("Acme"));
        assert_eq!(ctx.attribute_i64("pack_size"), Some(6));
        assert_eq!(ctx.attribute_f64("weight_kg"), Some(1.5));
        assert_eq!(ctx.attribute_bool("clearance"), Some(false));
        assert_eq!(ctx.param_str("brand"), None, "attributes and parameters are separate");
    }
}
