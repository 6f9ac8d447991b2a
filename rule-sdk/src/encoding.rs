//! The compact context encoding of `evaluate-encoded` (`pricing:policy@1.2.0`): how a batch of
//! contexts crosses into the guest as one `list<u8>`, and the decoder the SDK runs on it.
//!
//! Why: lowering a `list<context>` makes the host call the guest's allocator once for every
//! string and list of every context (a sku, four currencies, each competitor's name, each
//! parameter's key, ...), and those calls were most of a cheap rule's cost. One buffer is one
//! allocation and one copy, and the SDK decodes each context into the same [`Context`] value,
//! reusing its strings' and vectors' room, so a batch allocates almost nothing per context.
//!
//! # Format 1
//!
//! Integers are little-endian and of fixed width; a string is its byte length (`u32`) and its
//! UTF-8 bytes; a count is a `u32`.
//!
//! ```text
//! batch    = format:u8 (1)  count  context*count
//! context  = sku:string  currency:string  exponent:u8
//!            cost:money  current:money  base:money
//!            count  offer*count  demand
//!            count  entry*count (attributes)  count  entry*count (params)
//!            now_ms:i64
//! money    = minor:i64  currency:string
//! offer    = competitor:string  price:money  flags:u8 (bit 0 in stock, bit 1 stale)  age_seconds:i64
//! demand   = views_1d views_7d add_to_carts_1d add_to_carts_7d
//!            units_sold_1d units_sold_7d units_sold_30d (u64 each)
//!            has_inventory:u8 (0 or 1)  inventory:i64 (0 when absent)
//! entry    = key:string  tag:u8  (0: text:string | 1: number:f64 bits | 2: boolean:u8)
//! ```
//!
//! The decoder checks everything (lengths within the buffer, UTF-8, tags, flags, nothing left
//! over): a buffer it refuses is the host's fault, and the rule traps with the reason.

use crate::{CompetitorOffer, Context, Demand, Money, Value};

/// The format this SDK writes and reads.
pub const FORMAT: u8 = 1;

/// Why a buffer is not a batch of format 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the context batch cannot be decoded: {}", self.0)
    }
}

/// A batch being read, one context at a time.
pub struct Batch<'a> {
    bytes: &'a [u8],
    at: usize,
    remaining: u32,
}

impl<'a> Batch<'a> {
    /// Reads the batch's header.
    pub fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut batch = Batch { bytes, at: 0, remaining: 0 };
        let format = batch.u8()?;
        if format != FORMAT {
            return Err(DecodeError(format!("format {format}; this rule reads format {FORMAT}")));
        }
        batch.remaining = batch.u32()?;
        Ok(batch)
    }

    /// The contexts not read yet.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Reads the next context into `ctx`, reusing its strings and vectors; `Ok(false)` after
    /// the last (when the whole buffer must have been read).
    pub fn next_into(&mut self, ctx: &mut Context) -> Result<bool, DecodeError> {
        if self.remaining == 0 {
            return match self.bytes.len() - self.at {
                0 => Ok(false),
                extra => Err(DecodeError(format!("{extra} bytes after the last context"))),
            };
        }
        self.remaining -= 1;
        self.string_into(&mut ctx.sku)?;
        self.string_into(&mut ctx.currency)?;
        ctx.currency_exponent = self.u8()?;
        self.money_into(&mut ctx.cost)?;
        self.money_into(&mut ctx.current_price)?;
        self.money_into(&mut ctx.base_price)?;
        let offers = self.count()?;
        ctx.competitors.truncate(offers);
        for i in 0..offers {
            if i == ctx.competitors.len() {
                ctx.competitors.push(empty_offer());
            }
            self.offer_into(&mut ctx.competitors[i])?;
        }
        self.demand_into(&mut ctx.demand)?;
        self.entries_into(&mut ctx.attributes)?;
        self.entries_into(&mut ctx.params)?;
        ctx.now_ms = self.i64()?;
        Ok(true)
    }

    fn offer_into(&mut self, offer: &mut CompetitorOffer) -> Result<(), DecodeError> {
        self.string_into(&mut offer.competitor)?;
        self.money_into(&mut offer.price)?;
        let flags = self.u8()?;
        if flags > 0b11 {
            return Err(DecodeError(format!("offer flags {flags:#b}")));
        }
        offer.in_stock = flags & 1 != 0;
        offer.stale = flags & 2 != 0;
        offer.age_seconds = self.i64()?;
        Ok(())
    }

    fn demand_into(&mut self, demand: &mut Demand) -> Result<(), DecodeError> {
        for field in [
            &mut demand.views_1d,
            &mut demand.views_7d,
            &mut demand.add_to_carts_1d,
            &mut demand.add_to_carts_7d,
            &mut demand.units_sold_1d,
            &mut demand.units_sold_7d,
            &mut demand.units_sold_30d,
        ] {
            *field = self.u64()?;
        }
        let present = self.flag()?;
        let inventory = self.i64()?;
        demand.inventory = present.then_some(inventory);
        Ok(())
    }

    fn entries_into(&mut self, entries: &mut Vec<(String, Value)>) -> Result<(), DecodeError> {
        let count = self.count()?;
        entries.truncate(count);
        for i in 0..count {
            if i == entries.len() {
                entries.push((String::new(), Value::Boolean(false)));
            }
            let (key, value) = &mut entries[i];
            self.string_into(key)?;
            match self.u8()? {
                0 => {
                    if !matches!(value, Value::Text(_)) {
                        *value = Value::Text(String::new());
                    }
                    let Value::Text(text) = value else { unreachable!("set just above") };
                    self.string_into(text)?;
                }
                1 => *value = Value::Number(f64::from_bits(self.u64()?)),
                2 => *value = Value::Boolean(self.flag()?),
                tag => return Err(DecodeError(format!("value tag {tag}"))),
            }
        }
        Ok(())
    }

    fn money_into(&mut self, money: &mut Money) -> Result<(), DecodeError> {
        money.minor = self.i64()?;
        self.string_into(&mut money.currency)
    }

    fn string_into(&mut self, out: &mut String) -> Result<(), DecodeError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError(format!("a string is not UTF-8: {e}")))?;
        out.clear();
        out.push_str(text);
        Ok(())
    }

    /// A count of items that each take at least one byte, so a huge count fails at once.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let count = self.u32()? as usize;
        if count > self.bytes.len() - self.at {
            return Err(DecodeError(format!("a count of {count} with {} bytes left", self.bytes.len() - self.at)));
        }
        Ok(count)
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError(format!("a flag of {other}"))),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(len).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(DecodeError(format!("{len} bytes wanted at offset {}, {} there", self.at, self.bytes.len())));
        };
        let bytes = &self.bytes[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_le_bytes)
    }
}

/// A context with nothing in it, for [`Batch::next_into`] to fill.
pub fn empty_context() -> Context {
    let money = || Money { minor: 0, currency: String::new() };
    Context {
        sku: String::new(),
        currency: String::new(),
        currency_exponent: 0,
        cost: money(),
        current_price: money(),
        base_price: money(),
        competitors: Vec::new(),
        demand: Demand::default(),
        attributes: Vec::new(),
        params: Vec::new(),
        now_ms: 0,
    }
}

fn empty_offer() -> CompetitorOffer {
    CompetitorOffer {
        competitor: String::new(),
        price: Money { minor: 0, currency: String::new() },
        in_stock: false,
        age_seconds: 0,
        stale: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Format 1 written by hand, to check the decoder against the specification above.
    #[derive(Default)]
    struct Writer(Vec<u8>);

    impl Writer {
        fn u8(&mut self, v: u8) -> &mut Self {
            self.0.push(v);
            self
        }
        fn u32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn i64(&mut self, v: i64) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn string(&mut self, s: &str) -> &mut Self {
            self.u32(s.len() as u32);
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn money(&mut self, minor: i64, currency: &str) -> &mut Self {
            self.i64(minor).string(currency)
        }
        fn context(&mut self, sku: &str, offers: &[(&str, i64)], params: &[(&str, f64)]) -> &mut Self {
            self.string(sku).string("EUR").u8(2).money(1200, "EUR").money(1999, "EUR").money(1999, "EUR");
            self.u32(offers.len() as u32);
            for (name, price) in offers {
                self.string(name).money(*price, "EUR").u8(1).i64(600);
            }
            for day in 1..=7 {
                self.i64(day);
            }
            self.u8(1).i64(40);
            self.u32(1).string("brand").u8(0).string("acme");
            self.u32(params.len() as u32);
            for (key, value) in params {
                self.string(key).u8(1).0.extend_from_slice(&value.to_bits().to_le_bytes());
            }
            self.i64(1_700_000_000_000)
        }
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Context>, DecodeError> {
        let mut batch = Batch::new(bytes)?;
        let mut ctx = empty_context();
        let mut out = Vec::new();
        while batch.next_into(&mut ctx)? {
            out.push(ctx.clone());
        }
        Ok(out)
    }

    #[test]
    fn decodes_each_context_into_a_reused_value() {
        let mut w = Writer::default();
        w.u8(FORMAT).u32(3);
        w.context("a", &[("x", 1899), ("y", 1799)], &[("margin_bps", 2500.0)]);
        w.context("bb", &[("z", 1500)], &[]);
        w.context("ccc", &[("x", 1), ("y", 2), ("z", 3)], &[("p", 1.5), ("q", -2.0)]);
        let decoded = decode_all(&w.0).unwrap();
        assert_eq!(decoded.len(), 3);
        // Fewer offers and parameters than the context before: nothing of it is left over.
        assert_eq!(decoded[1].sku, "bb");
        assert_eq!(decoded[1].competitors.len(), 1);
        assert_eq!(decoded[1].competitors[0].competitor, "z");
        assert!(decoded[1].params.is_empty());
        assert_eq!(decoded[2].competitors.iter().map(|o| o.price.minor).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(decoded[2].params[1], ("q".to_owned(), Value::Number(-2.0)));
        let first = &decoded[0];
        assert_eq!((first.cost.minor, first.current_price.minor, first.currency_exponent), (1200, 1999, 2));
        assert!(first.competitors[0].in_stock && !first.competitors[0].stale);
        assert_eq!((first.demand.views_1d, first.demand.units_sold_30d, first.demand.inventory), (1, 7, Some(40)));
        assert_eq!(first.attributes, [("brand".to_owned(), Value::Text("acme".into()))]);
        assert_eq!(first.now_ms, 1_700_000_000_000);
    }

    #[test]
    fn refuses_what_is_not_format_1() {
        let mut good = Writer::default();
        good.u8(FORMAT).u32(1).context("a", &[("x", 1)], &[]);
        assert_eq!(decode_all(&good.0).unwrap().len(), 1);

        let mut other_format = good.0.clone();
        other_format[0] = 2;
        assert!(decode_all(&other_format).unwrap_err().0.contains("format 2"));
        for cut in [1, 6, good.0.len() / 2, good.0.len() - 1] {
            assert!(decode_all(&good.0[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = good.0.clone();
        extra.push(0);
        assert!(decode_all(&extra).unwrap_err().0.contains("after the last"));
        let mut not_utf8 = good.0.clone();
        not_utf8[9] = 0xff; // the sku's one byte, after format, count and its length
        assert!(decode_all(&not_utf8).unwrap_err().0.contains("UTF-8"));
        let mut huge_count = Writer::default();
        huge_count.u8(FORMAT).u32(1).string("a").string("EUR").u8(2);
        huge_count.money(1, "EUR").money(1, "EUR").money(1, "EUR").u32(u32::MAX);
        assert!(decode_all(&huge_count.0).unwrap_err().0.contains("count"));
    }
}
