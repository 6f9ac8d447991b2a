//! The host's half of the compact context encoding (`pricing:policy@1.2.0`,
//! `evaluate-encoded`): contexts written into one buffer, which crosses into the guest in one
//! copy. The format is specified, and decoded, in the rule SDK (`pricing_rule_sdk::encoding`);
//! the test below holds the two halves to each other.

use super::bindings::{CompetitorOffer, Context, Entry, Money, Value};

/// The format written here (the SDK's `encoding::FORMAT`).
const FORMAT: u8 = 1;

/// `contexts` in format 1.
pub fn encode(contexts: &[Context]) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(16 + contexts.len() * 320));
    out.u8(FORMAT);
    out.count(contexts.len());
    for ctx in contexts {
        out.context(ctx);
    }
    out.0
}

struct Writer(Vec<u8>);

impl Writer {
    fn context(&mut self, ctx: &Context) {
        self.string(&ctx.sku);
        self.string(&ctx.currency);
        self.u8(ctx.currency_exponent);
        self.money(&ctx.cost);
        self.money(&ctx.current_price);
        self.money(&ctx.base_price);
        self.count(ctx.competitors.len());
        for offer in &ctx.competitors {
            self.offer(offer);
        }
        let d = &ctx.demand;
        for count in [
            d.views_1d,
            d.views_7d,
            d.add_to_carts_1d,
            d.add_to_carts_7d,
            d.units_sold_1d,
            d.units_sold_7d,
            d.units_sold_30d,
        ] {
            self.bytes(&count.to_le_bytes());
        }
        self.u8(u8::from(d.inventory.is_some()));
        self.bytes(&d.inventory.unwrap_or(0).to_le_bytes());
        self.entries(&ctx.attributes);
        self.entries(&ctx.params);
        self.bytes(&ctx.now_ms.to_le_bytes());
    }

    fn offer(&mut self, offer: &CompetitorOffer) {
        self.string(&offer.competitor);
        self.money(&offer.price);
        self.u8(u8::from(offer.in_stock) | (u8::from(offer.stale) << 1));
        self.bytes(&offer.age_seconds.to_le_bytes());
    }

    fn entries(&mut self, entries: &[Entry]) {
        self.count(entries.len());
        for entry in entries {
            self.string(&entry.key);
            match &entry.value {
                Value::Text(text) => {
                    self.u8(0);
                    self.string(text);
                }
                Value::Number(n) => {
                    self.u8(1);
                    self.bytes(&n.to_bits().to_le_bytes());
                }
                Value::Boolean(b) => {
                    self.u8(2);
                    self.u8(u8::from(*b));
                }
            }
        }
    }

    fn money(&mut self, money: &Money) {
        self.bytes(&money.minor.to_le_bytes());
        self.string(&money.currency);
    }

    fn string(&mut self, text: &str) {
        self.count(text.len());
        self.bytes(text.as_bytes());
    }

    /// A length or count: contexts are checked and bounded long before this (a body limit, a
    /// batch size), so one that does not fit 32 bits is a bug.
    fn count(&mut self, n: usize) {
        let n = u32::try_from(n).expect("a context's lengths fit in 32 bits");
        self.bytes(&n.to_le_bytes());
    }

    fn u8(&mut self, byte: u8) {
        self.0.push(byte);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::super::bindings::Demand;
    use super::*;
    use pricing_rule_sdk::encoding::{Batch, empty_context};

    fn context(sku: &str, offers: usize, inventory: Option<i64>) -> Context {
        let money = |minor, currency: &str| Money { minor, currency: currency.into() };
        Context {
            sku: sku.into(),
            currency: "EUR".into(),
            currency_exponent: 2,
            cost: money(1200, "EUR"),
            current_price: money(1999, "EUR"),
            base_price: money(i64::MAX, "EUR"),
            competitors: (0..offers)
                .map(|i| CompetitorOffer {
                    competitor: format!("rival-{i}-é"),
                    price: money(1500 + i as i64, if i == 1 { "USD" } else { "EUR" }),
                    in_stock: i % 2 == 0,
                    age_seconds: -(i as i64),
                    stale: i % 3 == 0,
                })
                .collect(),
            demand: Demand {
                views_1d: 1,
                views_7d: 2,
                add_to_carts_1d: 3,
                add_to_carts_7d: 4,
                units_sold_1d: 5,
                units_sold_7d: 6,
                units_sold_30d: u64::MAX,
                inventory,
            },
            attributes: vec![
                Entry { key: "brand".into(), value: Value::Text("acme".into()) },
                Entry { key: "weight".into(), value: Value::Number(-0.5) },
            ],
            params: vec![Entry { key: "aggressive".into(), value: Value::Boolean(true) }],
            now_ms: 1_700_000_000_123,
        }
    }

    /// What the SDK must see for `ctx`: every field, in its own types.
    fn as_sdk(ctx: &Context) -> pricing_rule_sdk::Context {
        let money = |m: &Money| pricing_rule_sdk::Money { minor: m.minor, currency: m.currency.clone() };
        let value = |v: &Value| match v {
            Value::Text(s) => pricing_rule_sdk::Value::Text(s.clone()),
            Value::Number(n) => pricing_rule_sdk::Value::Number(*n),
            Value::Boolean(b) => pricing_rule_sdk::Value::Boolean(*b),
        };
        let entries = |e: &[Entry]| e.iter().map(|e| (e.key.clone(), value(&e.value))).collect();
        let d = &ctx.demand;
        pricing_rule_sdk::Context {
            sku: ctx.sku.clone(),
            currency: ctx.currency.clone(),
            currency_exponent: ctx.currency_exponent,
            cost: money(&ctx.cost),
            current_price: money(&ctx.current_price),
            base_price: money(&ctx.base_price),
            competitors: ctx
                .competitors
                .iter()
                .map(|o| pricing_rule_sdk::CompetitorOffer {
                    competitor: o.competitor.clone(),
                    price: money(&o.price),
                    in_stock: o.in_stock,
                    age_seconds: o.age_seconds,
                    stale: o.stale,
                })
                .collect(),
            demand: pricing_rule_sdk::Demand {
                views_1d: d.views_1d,
                views_7d: d.views_7d,
                add_to_carts_1d: d.add_to_carts_1d,
                add_to_carts_7d: d.add_to_carts_7d,
                units_sold_1d: d.units_sold_1d,
                units_sold_7d: d.units_sold_7d,
                units_sold_30d: d.units_sold_30d,
                inventory: d.inventory,
            },
            attributes: entries(&ctx.attributes),
            params: entries(&ctx.params),
            now_ms: ctx.now_ms,
        }
    }

    #[test]
    fn the_sdk_decodes_what_the_host_encodes() {
        // Shrinking and growing lists, inventory present and absent, one context and none.
        for contexts in [
            vec![context("a", 3, Some(7)), context("bb", 0, None), context("ccc", 5, Some(-1))],
            vec![context("only", 1, None)],
            vec![],
        ] {
            let bytes = encode(&contexts);
            let mut batch = Batch::new(&bytes).unwrap();
            assert_eq!(batch.remaining() as usize, contexts.len());
            let mut decoded = empty_context();
            for ctx in &contexts {
                assert!(batch.next_into(&mut decoded).unwrap());
                assert_eq!(decoded, as_sdk(ctx));
            }
            assert!(!batch.next_into(&mut decoded).unwrap(), "nothing after the last context");
        }
    }

    #[test]
    fn the_formats_are_the_same() {
        assert_eq!(FORMAT, pricing_rule_sdk::encoding::FORMAT);
    }
}
