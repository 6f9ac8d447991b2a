//! Rounding to price endings: 99 gives x.99 in a two-decimal currency, 95 gives x.95, 980
//! gives ¥x980 in a zero-decimal one. An ending of n digits fixes the last n digits of the
//! price in minor units, so 99 means "ends in 99" and 0 means "a multiple of 10".
//!
//! Both functions are defined like the service's own guardrail rounding (ties go down, never
//! zero or below), so a policy that rounds the same way is not rounded again differently.

/// The largest ending the service accepts in a guardrail; the SDK uses the same range.
const MAX_ENDING: i64 = 999_999;

/// 10^(number of digits of `ending`): 99 → 100, 980 → 1000, 5 → 10, 0 → 10.
fn modulus(ending: i64) -> i64 {
    10_i64.pow(ending.max(1).ilog10() + 1)
}

/// The smallest positive price that ends in `ending`: 99 for 99, 10 for 0.
fn first_positive(ending: i64) -> i64 {
    if ending > 0 { ending } else { modulus(ending) }
}

/// The largest price at or below a positive `price` that ends in `ending` (possibly zero or
/// below), and the modulus between two such prices. Cannot overflow: it only subtracts.
fn at_or_below(price: i64, ending: i64) -> (i64, i64) {
    let modulus = modulus(ending);
    let remainder = price % modulus;
    let base = price - remainder;
    (if ending <= remainder { base + ending } else { base - modulus + ending }, modulus)
}

/// The nearest price to `price` that ends in `ending`; a tie goes to the lower price, and a
/// result of zero or below goes up to the first positive price with that ending instead.
/// `None` only for an ending outside 0..=999 999.
pub fn round_to_ending(price: i64, ending: i64) -> Option<i64> {
    if !(0..=MAX_ENDING).contains(&ending) {
        return None;
    }
    if price <= 0 {
        return Some(first_positive(ending));
    }
    let (below, modulus) = at_or_below(price, ending);
    if below <= 0 {
        return Some(first_positive(ending));
    }
    // Near i64::MAX the price above may not exist; the one below is then the nearest there is.
    Some(match below.checked_add(modulus) {
        Some(above) if above - price < price - below => above,
        _ => below,
    })
}

/// The largest price at or below `price` that ends in `ending` (for a markdown that must not
/// round up), or the first positive one when none is above zero. `None` only for an ending
/// outside 0..=999 999.
pub fn round_down_to_ending(price: i64, ending: i64) -> Option<i64> {
    if !(0..=MAX_ENDING).contains(&ending) {
        return None;
    }
    let below = if price > 0 { at_or_below(price, ending).0 } else { 0 };
    Some(if below > 0 { below } else { first_positive(ending) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_the_nearest_ninety_nine_ending() {
        assert_eq!(round_to_ending(2000, 99), Some(1999));
        assert_eq!(round_to_ending(2050, 99), Some(2099));
        assert_eq!(round_to_ending(1999, 99), Some(1999));
        assert_eq!(round_to_ending(1234, 95), Some(1195));
    }

    #[test]
    fn a_tie_goes_to_the_lower_price() {
        assert_eq!(round_to_ending(2049, 99), Some(1999)); // 50 down or 50 up
    }

    #[test]
    fn rounds_down_without_ever_going_up_past_the_price() {
        assert_eq!(round_down_to_ending(2098, 99), Some(1999));
        assert_eq!(round_down_to_ending(2099, 99), Some(2099));
        assert_eq!(round_down_to_ending(8000, 99), Some(7999));
    }

    #[test]
    fn works_with_yen_endings_in_a_zero_decimal_currency() {
        assert_eq!(round_to_ending(2100, 980), Some(1980));
        assert_eq!(round_to_ending(2500, 980), Some(2980)); // 520 down, 480 up
        assert_eq!(round_down_to_ending(2500, 980), Some(1980));
        assert_eq!(round_to_ending(1234, 0), Some(1230), "0 means a multiple of ten");
    }

    #[test]
    fn never_rounds_to_zero_or_below() {
        assert_eq!(round_to_ending(50, 99), Some(99));
        assert_eq!(round_down_to_ending(50, 99), Some(99));
        assert_eq!(round_to_ending(3, 0), Some(10));
        assert_eq!(round_to_ending(-500, 95), Some(95));
        assert_eq!(round_down_to_ending(i64::MIN, 980), Some(980));
    }

    #[test]
    fn refuses_endings_the_service_would_refuse() {
        assert_eq!(round_to_ending(2000, -1), None);
        assert_eq!(round_to_ending(2000, 1_000_000), None);
        assert_eq!(round_down_to_ending(2000, -1), None);
    }

    #[test]
    fn stays_within_an_i64_at_the_top_of_the_range() {
        // i64::MAX is 9 223 372 036 854 775 807: the x99 above it does not exist.
        assert_eq!(round_to_ending(i64::MAX, 99), Some(i64::MAX - 8));
        assert_eq!(round_to_ending(i64::MAX - 10, 99), Some(i64::MAX - 8)); // 2 up, 98 down
        assert_eq!(round_down_to_ending(i64::MAX - 10, 99), Some(i64::MAX - 108));
    }
}
