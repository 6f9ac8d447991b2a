//! Which competitor offers a policy should react to, and their cheapest and median prices.

use crate::{CompetitorOffer, Context};

/// Offers worth reacting to: in the product's currency, in stock, not marked stale by the
/// service, with a positive price, and (when `max_age_seconds` is given) observed at most that
/// many seconds ago.
pub fn eligible_offers(ctx: &Context, max_age_seconds: Option<i64>) -> impl Iterator<Item = &CompetitorOffer> {
    ctx.competitors.iter().filter(move |offer| {
        offer.price.currency == ctx.currency
            && offer.in_stock
            && !offer.stale
            && offer.price.minor > 0
            && max_age_seconds.is_none_or(|max| offer.age_seconds <= max)
    })
}

/// The cheapest eligible offer (on a tie, the first in the context).
pub fn cheapest_competitor(ctx: &Context, max_age_seconds: Option<i64>) -> Option<&CompetitorOffer> {
    eligible_offers(ctx, max_age_seconds).min_by_key(|offer| offer.price.minor)
}

/// The `n`th cheapest eligible offer, counting from 1 (1 is [`cheapest_competitor`]); offers at
/// the same price keep their order in the context. `None` when fewer than `n` are eligible (or
/// `n` is 0). For a rule that wants to be, say, the third cheapest in stock.
pub fn nth_cheapest_competitor(ctx: &Context, n: usize, max_age_seconds: Option<i64>) -> Option<&CompetitorOffer> {
    let mut offers: Vec<&CompetitorOffer> = eligible_offers(ctx, max_age_seconds).collect();
    // A stable sort: ties stay in the context's order.
    offers.sort_by_key(|offer| offer.price.minor);
    offers.get(n.checked_sub(1)?).copied()
}

/// The median eligible price; with an even count, the mean of the two middle prices rounded
/// half away from zero.
pub fn median_competitor_price(ctx: &Context, max_age_seconds: Option<i64>) -> Option<i64> {
    let mut prices: Vec<i64> = eligible_offers(ctx, max_age_seconds).map(|offer| offer.price.minor).collect();
    prices.sort_unstable();
    let middle = prices.len() / 2;
    match prices.len() {
        0 => None,
        n if n % 2 == 1 => Some(prices[middle]),
        // Eligible prices are positive, so the sum cannot be negative; i128 keeps it exact.
        _ => i64::try_from((i128::from(prices[middle - 1]) + i128::from(prices[middle]) + 1) / 2).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ContextBuilder;

    /// One eligible offer among every kind the helpers must ignore.
    fn market() -> Context {
        ContextBuilder::new("sku-1", "EUR")
            .competitor("a", 1899, true, 600)
            .competitor("b", 1799, false, 600) // out of stock
            .competitor("c", 1849, true, 90_000) // 25 hours old
            .stale_competitor("d", 1500, true, 60)
            .competitor_in("e", 1000, "USD", true, 60) // another currency
            .competitor("f", 0, true, 60) // no real price
            .competitor("g", 1949, true, 3_600)
            .build()
    }

    #[test]
    fn the_nth_cheapest_counts_eligible_offers_only() {
        let ctx = market();
        let nth = |n| nth_cheapest_competitor(&ctx, n, None).map(|o| o.competitor.as_str());
        // Eligible without an age limit: a 1899, c 1849, g 1949.
        assert_eq!([nth(0), nth(1), nth(2), nth(3), nth(4)], [None, Some("c"), Some("a"), Some("g"), None]);
        assert_eq!(nth_cheapest_competitor(&ctx, 1, Some(86_400)).unwrap().competitor, "a");
    }

    #[test]
    fn the_cheapest_offer_ignores_stale_out_of_stock_old_and_foreign_offers() {
        let ctx = market();
        let cheapest = cheapest_competitor(&ctx, Some(86_400)).unwrap();
        assert_eq!((cheapest.competitor.as_str(), cheapest.price.minor), ("a", 1899));
        assert_eq!(eligible_offers(&ctx, Some(86_400)).count(), 2);
    }

    #[test]
    fn without_an_age_limit_old_offers_count() {
        assert_eq!(cheapest_competitor(&market(), None).map(|offer| offer.price.minor), Some(1849));
    }

    #[test]
    fn an_empty_market_has_no_cheapest_or_median_price() {
        let ctx = ContextBuilder::new("sku-1", "EUR").competitor("b", 1799, false, 600).build();
        assert!(cheapest_competitor(&ctx, None).is_none());
        assert_eq!(median_competitor_price(&ctx, None), None);
    }

    #[test]
    fn a_tie_for_cheapest_goes_to_the_first_offer() {
        let ctx = ContextBuilder::new("sku-1", "EUR").competitor("x", 1500, true, 60).competitor("y", 1500, true, 60);
        assert_eq!(cheapest_competitor(&ctx.build(), None).map(|offer| offer.competitor.as_str()), Some("x"));
    }

    #[test]
    fn the_median_takes_the_middle_price_or_the_mean_of_the_two_middle_ones() {
        let ctx = market();
        assert_eq!(median_competitor_price(&ctx, None), Some(1899)); // 1849, 1899, 1949
        assert_eq!(median_competitor_price(&ctx, Some(86_400)), Some(1924)); // (1899 + 1949) / 2
        let odd_sum =
            ContextBuilder::new("sku-1", "EUR").competitor("x", 1000, true, 60).competitor("y", 1001, true, 60);
        assert_eq!(median_competitor_price(&odd_sum.build(), None), Some(1001), "1000.5 rounds up");
    }
}
