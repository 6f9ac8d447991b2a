//! Money: an integer amount of a currency's minor unit. Never a float.
//!
//! Arithmetic is checked: an overflow or a mix of currencies is an error, never a wrapped or
//! silently converted number. Percentages are basis points (1 bp = 0.01 %), computed in i128
//! and rounded half away from zero, so a 10 % markup of 1999 cents is exactly 2199 cents.

use std::cmp::Ordering;
use std::fmt;

use super::currency::Currency;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("cannot combine {left} and {right} amounts")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("the amount overflows a 64-bit count of minor units")]
    Overflow,
    #[error("`{0}` is not a decimal amount")]
    NotADecimal(String),
    #[error("`{amount}` has more decimal places than {currency} allows ({exponent})")]
    TooPrecise { amount: String, currency: Currency, exponent: u8 },
}

/// An amount in a currency's minor unit (cents for EUR, yen for JPY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn is_positive(&self) -> bool {
        self.minor > 0
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency })
        }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self.minor.checked_add(other.minor).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self.minor.checked_sub(other.minor).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// `self * bps / 10_000`, rounded half away from zero.
    pub fn checked_mul_bps(self, bps: i64) -> Result<Money, MoneyError> {
        let product = i128::from(self.minor) * i128::from(bps);
        let half = if product >= 0 { 5_000 } else { -5_000 };
        let scaled = (product + half) / 10_000;
        let minor = i64::try_from(scaled).map_err(|_| MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// Compares two amounts of the same currency; `None` across currencies.
    pub fn compare(&self, other: &Money) -> Option<Ordering> {
        (self.currency == other.currency).then(|| self.minor.cmp(&other.minor))
    }

    /// Parses a decimal amount such as `19.99` or `-0.5` exactly, in the given currency.
    /// More decimals than the currency has (`19.999` EUR, `5.5` JPY) are refused, not rounded.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let not_decimal = || MoneyError::NotADecimal(text.to_owned());
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(not_decimal());
        }
        if unsigned.contains('.') && fraction.is_empty() {
            return Err(not_decimal());
        }
        let exponent = currency.exponent();
        if fraction.len() > usize::from(exponent) {
            return Err(MoneyError::TooPrecise { amount: text.to_owned(), currency, exponent });
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyError::Overflow)?;
        let padded = format!("{fraction:0<width$}", width = usize::from(exponent));
        let fraction: i64 = if padded.is_empty() { 0 } else { padded.parse().map_err(|_| not_decimal())? };
        let magnitude = whole
            .checked_mul(currency.minor_per_major())
            .and_then(|m| m.checked_add(fraction))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(if negative { -magnitude } else { magnitude }, currency))
    }
}

impl fmt::Display for Money {
    /// `19.99 EUR`, `1999 JPY`, `-0.05 EUR`: the amount in major units, exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = usize::from(self.currency.exponent());
        let sign = if self.minor < 0 { "-" } else { "" };
        let magnitude = self.minor.unsigned_abs();
        if exponent == 0 {
            return write!(f, "{sign}{magnitude} {}", self.currency);
        }
        let per_major = self.currency.minor_per_major().unsigned_abs();
        let (whole, fraction) = (magnitude / per_major, magnitude % per_major);
        write!(f, "{sign}{whole}.{fraction:0exponent$} {}", self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    fn jpy(minor: i64) -> Money {
        Money::new(minor, Currency::parse("JPY").unwrap())
    }

    #[test]
    fn adding_and_subtracting_in_one_currency_is_exact() {
        assert_eq!(eur(1999).checked_add(eur(1)).unwrap(), eur(2000));
        assert_eq!(eur(0).checked_sub(eur(5)).unwrap(), eur(-5));
        assert_eq!(eur(0).checked_add(eur(0)).unwrap(), eur(0));
    }

    #[test]
    fn mixing_currencies_is_an_error() {
        assert!(matches!(eur(1).checked_add(jpy(1)), Err(MoneyError::CurrencyMismatch { .. })));
        assert_eq!(eur(1).compare(&jpy(1)), None);
        assert_eq!(eur(1).compare(&eur(2)), Some(Ordering::Less));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert_eq!(eur(i64::MAX).checked_add(eur(1)), Err(MoneyError::Overflow));
        assert_eq!(eur(i64::MIN).checked_sub(eur(1)), Err(MoneyError::Overflow));
        assert_eq!(eur(i64::MAX).checked_mul_bps(20_000), Err(MoneyError::Overflow));
        // The intermediate product overflows i64 but the result does not.
        assert_eq!(eur(i64::MAX).checked_mul_bps(10_000).unwrap(), eur(i64::MAX));
    }

    #[test]
    fn basis_points_round_half_away_from_zero() {
        assert_eq!(eur(1999).checked_mul_bps(11_000).unwrap(), eur(2199)); // 2198.9
        assert_eq!(eur(5).checked_mul_bps(5_000).unwrap(), eur(3)); // 2.5
        assert_eq!(eur(-5).checked_mul_bps(5_000).unwrap(), eur(-3)); // -2.5
        assert_eq!(eur(1000).checked_mul_bps(0).unwrap(), eur(0));
    }

    #[test]
    fn decimal_amounts_parse_exactly_per_currency() {
        let eur_c = Currency::parse("EUR").unwrap();
        let jpy_c = Currency::parse("JPY").unwrap();
        let kwd_c = Currency::parse("KWD").unwrap();
        assert_eq!(Money::parse_decimal("19.99", eur_c).unwrap(), eur(1999));
        assert_eq!(Money::parse_decimal("19.9", eur_c).unwrap(), eur(1990));
        assert_eq!(Money::parse_decimal("19", eur_c).unwrap(), eur(1999 - 99));
        assert_eq!(Money::parse_decimal("0", eur_c).unwrap(), eur(0));
        assert_eq!(Money::parse_decimal("-0.05", eur_c).unwrap(), eur(-5));
        assert_eq!(Money::parse_decimal("1999", jpy_c).unwrap(), jpy(1999));
        assert_eq!(Money::parse_decimal("1.005", kwd_c).unwrap().minor(), 1005);
    }

    #[test]
    fn decimal_amounts_that_are_too_precise_or_malformed_are_refused() {
        let eur_c = Currency::parse("EUR").unwrap();
        let jpy_c = Currency::parse("JPY").unwrap();
        assert!(matches!(Money::parse_decimal("19.999", eur_c), Err(MoneyError::TooPrecise { .. })));
        assert!(matches!(Money::parse_decimal("5.5", jpy_c), Err(MoneyError::TooPrecise { .. })));
        for bad in ["", "-", "1.", ".5", "1,5", "1e3", "NaN", "inf", " 1", "+1", "1.2.3"] {
            assert!(Money::parse_decimal(bad, eur_c).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(Money::parse_decimal("92233720368547758.08", eur_c), Err(MoneyError::Overflow));
    }

    #[test]
    fn money_displays_in_major_units() {
        assert_eq!(eur(1999).to_string(), "19.99 EUR");
        assert_eq!(eur(5).to_string(), "0.05 EUR");
        assert_eq!(eur(-5).to_string(), "-0.05 EUR");
        assert_eq!(jpy(1999).to_string(), "1999 JPY");
        assert_eq!(eur(i64::MIN).to_string(), "-92233720368547758.08 EUR");
    }
}
