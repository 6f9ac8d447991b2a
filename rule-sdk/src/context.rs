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

fn find<'a>(entries: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        // Only whole numbers within i64 (parameters arrive as JSON numbers).
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(*n as i64),
        Value::Text(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => Some(*n),
        Value::Text(s) => s.parse().ok(),
        _ => None,
    }
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

impl Context {
    /// A whole-number parameter (a JSON integer, or text holding one).
    pub fn param_i64(&self, key: &str) -> Option<i64> {
        find(&self.params, key).and_then(as_i64)
    }
    pub fn param_f64(&self, key: &str) -> Option<f64> {
        find(&self.params, key).and_then(as_f64)
    }
    pub fn param_str(&self, key: &str) -> Option<&str> {
        find(&self.params, key).and_then(as_str)
    }
    pub fn param_bool(&self, key: &str) -> Option<bool> {
        find(&self.params, key).and_then(as_bool)
    }
    pub fn attribute_i64(&self, key: &str) -> Option<i64> {
        find(&self.attributes, key).and_then(as_i64)
    }
    pub fn attribute_f64(&self, key: &str) -> Option<f64> {
        find(&self.attributes, key).and_then(as_f64)
    }
    pub fn attribute_str(&self, key: &str) -> Option<&str> {
        find(&self.attributes, key).and_then(as_str)
    }
    pub fn attribute_bool(&self, key: &str) -> Option<bool> {
        find(&self.attributes, key).and_then(as_bool)
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
}
