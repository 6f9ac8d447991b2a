//! A native test harness: build contexts in a line or two, run a policy on them with plain
//! `cargo test`, and read what it logged.

use crate::{CompetitorOffer, Context, Demand, Money, Value};

/// 2026-01-01T00:00:00Z, the default `now` of a built context.
pub const DEFAULT_NOW_MS: i64 = 1_767_225_600_000;

/// Decimal places of common zero- and three-decimal currencies; two for the rest.
fn exponent_of(currency: &str) -> u8 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV"
        | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Builds a [`Context`]. Defaults: cost 0, current and base price 1000, no competitors, no
/// demand, no attributes or parameters, `now` = [`DEFAULT_NOW_MS`].
pub struct ContextBuilder {
    ctx: Context,
}

impl ContextBuilder {
    pub fn new(sku: &str, currency: &str) -> Self {
        let money = |minor| Money { minor, currency: currency.to_owned() };
        Self {
            ctx: Context {
                sku: sku.to_owned(),
                currency: currency.to_owned(),
                currency_exponent: exponent_of(currency),
                cost: money(0),
                current_price: money(1000),
                base_price: money(1000),
                competitors: Vec::new(),
                demand: Demand::default(),
                attributes: Vec::new(),
                params: Vec::new(),
                now_ms: DEFAULT_NOW_MS,
            },
        }
    }

    fn money(&self, minor: i64) -> Money {
        Money { minor, currency: self.ctx.currency.clone() }
    }

    pub fn cost(mut self, minor: i64) -> Self {
        self.ctx.cost = self.money(minor);
        self
    }

    pub fn current_price(mut self, minor: i64) -> Self {
        self.ctx.current_price = self.money(minor);
        self
    }

    pub fn base_price(mut self, minor: i64) -> Self {
        self.ctx.base_price = self.money(minor);
        self
    }

    /// A fresh offer in the product's currency.
    pub fn competitor(self, name: &str, price_minor: i64, in_stock: bool, age_seconds: i64) -> Self {
        let currency = self.ctx.currency.clone();
        self.offer(name, price_minor, &currency, in_stock, age_seconds, false)
    }

    /// An offer the service marked stale.
    pub fn stale_competitor(self, name: &str, price_minor: i64, in_stock: bool, age_seconds: i64) -> Self {
        let currency = self.ctx.currency.clone();
        self.offer(name, price_minor, &currency, in_stock, age_seconds, true)
    }

    /// An offer in another currency.
    pub fn competitor_in(self, name: &str, price_minor: i64, currency: &str, in_stock: bool, age_seconds: i64) -> Self {
        self.offer(name, price_minor, currency, in_stock, age_seconds, false)
    }

    fn offer(mut self, name: &str, minor: i64, currency: &str, in_stock: bool, age_seconds: i64, stale: bool) -> Self {
        self.ctx.competitors.push(CompetitorOffer {
            competitor: name.to_owned(),
            price: Money { minor, currency: currency.to_owned() },
            in_stock,
            age_seconds,
            stale,
        });
        self
    }

    /// Sets demand figures: `.demand(|d| d.units_sold_7d = 70)`.
    pub fn demand(mut self, set: impl FnOnce(&mut Demand)) -> Self {
        set(&mut self.ctx.demand);
        self
    }

    pub fn inventory(mut self, units: i64) -> Self {
        self.ctx.demand.inventory = Some(units);
        self
    }

    pub fn attribute(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.ctx.attributes.push((key.to_owned(), value.into()));
        self
    }

    pub fn param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.ctx.params.push((key.to_owned(), value.into()));
        self
    }

    pub fn now_ms(mut self, now_ms: i64) -> Self {
        self.ctx.now_ms = now_ms;
        self
    }

    pub fn build(self) -> Context {
        self.ctx
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
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

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

/// The lines logged on this thread since the last call.
#[cfg(not(target_arch = "wasm32"))]
pub fn take_log() -> Vec<String> {
    crate::log::native::take()
}

/// Runs a policy as the service would (one context) and returns its decision and log.
#[cfg(not(target_arch = "wasm32"))]
pub fn run(policy: fn(&Context) -> crate::Decision, ctx: &Context) -> (crate::Decision, Vec<String>) {
    take_log();
    let decision = policy(ctx);
    (decision, take_log())
}
