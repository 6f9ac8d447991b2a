//! Amounts and basis points as text for explanations, in integer arithmetic only: `format!` of
//! a float pulls the float formatting machinery into the module (about 25 KB of a 40 KB rule).

/// `minor` units of a currency with `exponent` decimal places (the context's
/// `currency_exponent`), e.g. `format_money(-123456, 2)` is `"-1234.56"` and
/// `format_money(980, 0)` is `"980"`.
pub fn format_money(minor: i64, exponent: u8) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let value = minor.unsigned_abs();
    match 10u64.checked_pow(u32::from(exponent)) {
        Some(unit) if exponent > 0 => {
            format!("{sign}{}.{:0width$}", value / unit, value % unit, width = usize::from(exponent))
        }
        // No decimals, or more than a u64 can hold (no real currency): the minor units as they are.
        _ => format!("{sign}{value}"),
    }
}

/// Basis points as a percentage without trailing zeros: 1050 is `"10.5%"`, 1000 `"10%"`, -5
/// `"-0.05%"`.
pub fn format_bps(bps: i64) -> String {
    let sign = if bps < 0 { "-" } else { "" };
    let value = bps.unsigned_abs();
    let (whole, rest) = (value / 100, value % 100);
    match rest {
        0 => format!("{sign}{whole}%"),
        r if r % 10 == 0 => format!("{sign}{whole}.{}%", r / 10),
        r => format!("{sign}{whole}.{r:02}%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_keep_their_minor_units() {
        assert_eq!(format_money(123_456, 2), "1234.56");
        assert_eq!(format_money(-123_456, 2), "-1234.56");
        assert_eq!(format_money(5, 2), "0.05");
        assert_eq!(format_money(980, 0), "980");
        assert_eq!(format_money(1_000, 3), "1.000");
        assert_eq!(format_money(i64::MIN, 2), "-92233720368547758.08");
    }

    #[test]
    fn percentages_drop_trailing_zeros() {
        assert_eq!(format_bps(1050), "10.5%");
        assert_eq!(format_bps(1000), "10%");
        assert_eq!(format_bps(1234), "12.34%");
        assert_eq!(format_bps(-5), "-0.05%");
        assert_eq!(format_bps(0), "0%");
    }
}
