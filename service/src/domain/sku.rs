//! Stock-keeping unit codes as merchants use them, limited to what is safe in a URL path.

use std::fmt;

pub const SKU_MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    #[error("a SKU cannot be empty")]
    Empty,
    #[error("a SKU is at most {SKU_MAX_LEN} characters, this one has {0}")]
    TooLong(usize),
    #[error("a SKU may hold only ASCII letters, digits and `-`, `_`, `.`, `:`; found {0:?}")]
    BadCharacter(char),
    #[error("a SKU must start with a letter or a digit")]
    BadStart,
}

/// A SKU: 1 to 64 ASCII letters, digits, `-`, `_`, `.` or `:`, starting with a letter or
/// digit. Case is kept and significant (`ab-1` and `AB-1` are two products).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    pub fn parse(text: &str) -> Result<Self, SkuError> {
        let first = text.chars().next().ok_or(SkuError::Empty)?;
        if text.len() > SKU_MAX_LEN {
            return Err(SkuError::TooLong(text.chars().count()));
        }
        if let Some(bad) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))) {
            return Err(SkuError::BadCharacter(bad));
        }
        if !first.is_ascii_alphanumeric() {
            return Err(SkuError::BadStart);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sku({})", self.0)
    }
}

impl serde::Serialize for Sku {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_skus_parse_and_keep_their_case() {
        for good in ["A", "tshirt-red-XL", "ean:4006381333931", "v1.2_b", "9"] {
            assert_eq!(Sku::parse(good).unwrap().as_str(), good);
        }
        assert_ne!(Sku::parse("ab").unwrap(), Sku::parse("AB").unwrap());
    }

    #[test]
    fn the_length_limit_is_inclusive() {
        assert!(Sku::parse(&"a".repeat(SKU_MAX_LEN)).is_ok());
        assert_eq!(Sku::parse(&"a".repeat(SKU_MAX_LEN + 1)), Err(SkuError::TooLong(65)));
        assert_eq!(Sku::parse(""), Err(SkuError::Empty));
    }

    #[test]
    fn characters_outside_the_set_are_refused() {
        assert_eq!(Sku::parse("a/b"), Err(SkuError::BadCharacter('/')));
        assert_eq!(Sku::parse("a b"), Err(SkuError::BadCharacter(' ')));
        assert_eq!(Sku::parse("café"), Err(SkuError::BadCharacter('é')));
        assert_eq!(Sku::parse("-a"), Err(SkuError::BadStart));
        assert_eq!(Sku::parse(".."), Err(SkuError::BadStart));
    }
}
