//! Margins over cost and percentage moves, in basis points (10 000 bp = 100 %).

const BPS_PER_WHOLE: i128 = 10_000;

/// `value × (10 000 + bps) / 10 000`, rounded half away from zero; `None` when the result
/// does not fit in an i64. i128 holds every intermediate product of two i64s exactly.
fn scale(value: i64, bps: i64) -> Option<i64> {
    let product = i128::from(value) * (BPS_PER_WHOLE + i128::from(bps));
    let half = if product >= 0 { BPS_PER_WHOLE / 2 } else { -BPS_PER_WHOLE / 2 };
    i64::try_from((product + half) / BPS_PER_WHOLE).ok()
}

/// The price that makes `bps` of margin over `cost` (markup on cost, not gross margin on the
/// price): a cost of 1000 at 2500 bp is 1250.
pub fn price_for_margin(cost: i64, bps: i64) -> Option<i64> {
    scale(cost, bps)
}

/// The margin of `price` over `cost` in basis points (markup on cost), rounded toward zero;
/// `None` when the cost is zero or negative, where a margin means nothing.
pub fn margin_bps(price: i64, cost: i64) -> Option<i64> {
    if cost <= 0 {
        return None;
    }
    let margin = (i128::from(price) - i128::from(cost)) * BPS_PER_WHOLE / i128::from(cost);
    i64::try_from(margin).ok()
}

/// `price` moved by `bps` basis points, rounded half away from zero: -500 is 5 % down, 1000
/// is 10 % up.
pub fn move_bps(price: i64, bps: i64) -> Option<i64> {
    scale(price, bps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_price_for_a_margin_is_cost_plus_that_share_of_cost() {
        assert_eq!(price_for_margin(1000, 2500), Some(1250));
        assert_eq!(price_for_margin(1200, 3000), Some(1560));
        assert_eq!(price_for_margin(999, 3333), Some(1332)); // 1331.9667
        assert_eq!(price_for_margin(1000, 0), Some(1000));
    }

    #[test]
    fn margins_round_half_away_from_zero() {
        assert_eq!(price_for_margin(10, 1500), Some(12)); // 11.5
        assert_eq!(price_for_margin(10, 1499), Some(11)); // 11.499
        assert_eq!(move_bps(-10, 1500), Some(-12), "negative amounts round away from zero too");
    }

    #[test]
    fn the_margin_of_a_price_is_measured_on_cost() {
        assert_eq!(margin_bps(1250, 1000), Some(2500));
        assert_eq!(margin_bps(900, 1000), Some(-1000));
        assert_eq!(margin_bps(1001, 3), Some(3_326_666)); // 332.67 × cost, toward zero
        assert_eq!(margin_bps(100, 0), None);
        assert_eq!(margin_bps(100, -5), None);
    }

    #[test]
    fn moves_are_percentages_in_basis_points() {
        assert_eq!(move_bps(2000, -500), Some(1900));
        assert_eq!(move_bps(1999, 1000), Some(2199)); // 2198.9
        assert_eq!(move_bps(1999, -10_000), Some(0));
    }

    #[test]
    fn results_beyond_an_i64_are_none() {
        assert_eq!(move_bps(i64::MAX, 10_000), None);
        assert_eq!(price_for_margin(i64::MAX / 2, i64::MAX), None);
        assert_eq!(move_bps(i64::MAX, 0), Some(i64::MAX));
    }
}
