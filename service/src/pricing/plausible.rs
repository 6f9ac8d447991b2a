//! Whether a competitor's price makes sense beside the product's: within `ratio` times the
//! product's base price, up or down. A feed that sends `17` meaning 17.00 EUR, or an error that
//! lists everything at one cent, is off by a factor of 100; real competitors rarely sit more
//! than 4x away (the default). An implausible observation is stored, flagged in the answer to
//! the feed, and kept out of rule contexts until the merchant confirms it
//! (`POST /v1/signals/competitor-prices/confirm`) or widens the ratio (`PUT /v1/settings`).
//! The base price is the reference because the merchant sets it: the price in force moves with
//! the very signals being checked.

/// The ratio a merchant starts with.
pub const DEFAULT_MAX_COMPETITOR_RATIO: i64 = 4;
/// The widest ratio a merchant may set (0 turns the check off).
pub const MAX_COMPETITOR_RATIO: i64 = 1_000;

/// Whether `price` lies within `ratio` times `base` either way (always, with `ratio` 0).
pub fn plausible(price_minor: i64, base_minor: i64, ratio: i64) -> bool {
    if ratio <= 0 {
        return true;
    }
    let (price, base, ratio) = (i128::from(price_minor), i128::from(base_minor), i128::from(ratio));
    price * ratio >= base && price <= base * ratio
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_factor_of_a_hundred_is_implausible_and_a_quarter_off_is_not() {
        assert!(!plausible(17, 1999, 4), "17 meant as 17.00");
        assert!(!plausible(1, 1999, 4), "one cent");
        assert!(!plausible(8_000, 1999, 4));
        assert!(plausible(1_500, 1999, 4));
        assert!(plausible(500, 1999, 4) && !plausible(499, 1999, 4), "the edge is exact");
        assert!(plausible(7_996, 1999, 4) && !plausible(7_997, 1999, 4));
        assert!(plausible(1, 1999, 0), "0 turns the check off");
        assert!(plausible(i64::MAX, i64::MAX, 1_000), "no overflow");
    }
}
