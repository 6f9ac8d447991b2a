//! Helpers a pricing author needs, all in integer minor units: eligible competitor offers,
//! their cheapest and median price, margins over cost and percentage moves in basis points
//! (1 bp = 0.01 %), and rounding to price endings such as .99 or ¥980. Arithmetic is checked:
//! a result that would overflow is `None`, never a wrapped number.

use crate::{CompetitorOffer, Context};

/// Offers worth reacting to: in the product's currency, in stock, not stale, and (when
/// `max_age_seconds` is given) observed at most that long ago.
pub fn eligible_offers(ctx: &Context, max_age_seconds: Option<i64>) -> impl Iterator<Item = &CompetitorOffer> {
    ctx.competitors.iter().filter(move |o| {
        o.price.currency == ctx.currency
            && o.in_stock
            && !o.stale
            && o.price.minor > 0
            && max_age_seconds.is_none_or(|max| o.age_seconds <= max)
    })
}

/// The cheapest eligible offer (ties: the first seen).
pub fn cheapest_competitor(ctx: &Context, max_age_seconds: Option<i64>) -> Option<&CompetitorOffer> {
    eligible_offers(ctx, max_age_seconds).min_by_key(|o| o.price.minor)
}

/// The median eligible price; with an even count, the mean of the middle two, rounded half
/// away from zero.
pub fn median_competitor_price(ctx: &Context, max_age_seconds: Option<i64>) -> Option<i64> {
    let mut prices: Vec<i64> = eligible_offers(ctx, max_age_seconds).map(|o| o.price.minor).collect();
    if prices.is_empty() {
        return None;
    }
    prices.sort_unstable();
    let mid = prices.len() / 2;
    if prices.len() % 2 == 1 {
        Some(prices[mid])
    } else {
        let sum = i128::from(prices[mid - 1]) + i128::from(prices[mid]);
        i64::try_from((sum + 1) / 2).ok()
    }
}

/// `value * (10_000 + bps) / 10_000`, rounded half away from zero; `None` on overflow.
fn scale(value: i64, bps: i64) -> Option<i64> {
    let factor = 10_000_i128.checked_add(i128::from(bps))?;
    let product = i128::from(value).checked_mul(factor)?;
    let half = if product >= 0 { 5_000 } else { -5_000 };
    i64::try_from((product + half) / 10_000).ok()
}

/// The price that makes `bps` of margin over `cost` (markup): 1000 at 2500 bp is 1250.
pub fn price_for_margin(cost: i64, bps: i64) -> Option<i64> {
    scale(cost, bps)
}

/// The margin of `price` over `cost` in basis points (markup), rounded toward zero; `None`
/// when the cost is zero or negative.
pub fn margin_bps(price: i64, cost: i64) -> Option<i64> {
    if cost <= 0 {
        return None;
    }
    let margin = (i128::from(price) - i128::from(cost)) * 10_000 / i128::from(cost);
    i64::try_from(margin).ok()
}

/// `price` moved by `bps` basis points: -500 is 5 % down, 1000 is 10 % up.
pub fn move_bps(price: i64, bps: i64) -> Option<i64> {
    scale(price, bps)
}

/// The ending's modulus: 99 → 100, 980 → 1000, 5 → 10, 0 → 10.
fn modulus(ending: i64) -> i64 {
    10_i64.pow(ending.max(1).ilog10() + 1)
}

/// The nearest price ending in `ending` minor units (99 gives x.99, 980 gives ¥x980), ties
/// to the lower; never zero or below (it goes up instead). The service's guardrail rounding
/// works the same way.
pub fn round_to_ending(price: i64, ending: i64) -> i64 {
    let m = modulus(ending);
    let below = round_down_to_ending(price, ending);
    let above = if below == price { price } else { below + m };
    if below <= 0 || above - price < price - below { above } else { below }
}

/// The largest price at or below `price` that ends in `ending` (or the smallest such positive
/// price, when none is).
pub fn round_down_to_ending(price: i64, ending: i64) -> i64 {
    let m = modulus(ending);
    let candidate = price - price.rem_euclid(m) + ending;
    let below = if candidate > price { candidate - m } else { candidate };
    if below > 0 { below } else { below + m }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ContextBuilder;

    fn market() -> Context {
        ContextBuilder::new("sku-1", "EUR")
            .competitor("a", 1899, true, 600)
            .competitor("b", 1799, false, 600) // out of stock
            .competitor("c", 1849, true, 90_000) // old
            .stale_competitor("d", 1500, true, 60) // stale
            .competitor_in("e", 1000, "USD", true, 60) // another currency
            .competitor("f", 1949, true, 3_600)
            .build()
    }

    #[test]
    fn the_cheapest_offer_ignores_stale_out_of_stock_old_and_foreign_offers() {
        let ctx = market();
        assert_eq!(cheapest_competitor(&ctx, Some(86_400)).map(|o| o.competitor.as_str()), Some("a"));
        assert_eq!(
            cheapest_competitor(&ctx, None).map(|o| o.price.minor),
            Some(1849),
            "without an age limit, c counts"
        );
        assert_eq!(eligible_offers(&ctx, Some(86_400)).count(), 2);
        assert!(cheapest_competitor(&ContextBuilder::new("x", "EUR").build(), None).is_none());
    }

    #[test]
    fn the_median_takes_the_middle_or_the_mean_of_the_two_middles() {
        let ctx = market();
        assert_eq!(median_competitor_price(&ctx, None), Some(1899)); // 1849, 1899, 1949
        assert_eq!(median_competitor_price(&ctx, Some(86_400)), Some(1924)); // (1899 + 1949) / 2
        assert_eq!(median_competitor_price(&ContextBuilder::new("x", "EUR").build(), None), None);
    }

    #[test]
    fn margins_and_moves_are_exact_and_checked() {
        assert_eq!(price_for_margin(1000, 2500), Some(1250));
        assert_eq!(price_for_margin(999, 3333), Some(1332)); // 1331.9667
        assert_eq!(margin_bps(1250, 1000), Some(2500));
        assert_eq!(margin_bps(900, 1000), Some(-1000));
        assert_eq!(margin_bps(100, 0), None);
        assert_eq!(move_bps(2000, -500), Some(1900));
        assert_eq!(move_bps(1999, 1000), Some(2199)); // 2198.9
        assert_eq!(move_bps(i64::MAX, 10_000), None);
    }

    #[test]
    fn prices_round_to_endings_in_any_currency() {
        assert_eq!(round_to_ending(2000, 99), 1999);
        assert_eq!(round_to_ending(2050, 99), 2099);
        assert_eq!(round_to_ending(2049, 99), 1999, "a tie goes to the lower price");
        assert_eq!(round_down_to_ending(2098, 99), 1999);
        assert_eq!(round_down_to_ending(2099, 99), 2099);
        assert_eq!(round_to_ending(1234, 95), 1195);
        assert_eq!(round_to_ending(2100, 980), 1980, "yen endings");
        assert_eq!(round_down_to_ending(50, 99), 99, "never zero or below");
        assert_eq!(round_to_ending(50, 99), 99);
    }
}
