//! Stock-keeping unit codes as merchants use them, limited to what is safe in a URL path.

use std::fmt;

pub const SKU_MAX_LEN: usize = 64;

/// [`Sku::parse`] as a regular expression, for the API's schema: what matches parses.
pub const SKU_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$";

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

/// The API schema of a SKU (`components/schemas/Sku`).
impl utoipa::PartialSchema for Sku {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(SKU_PATTERN))
            .min_length(Some(1))
            .max_length(Some(SKU_MAX_LEN))
            .description(Some(
                "1 to 64 ASCII letters, digits, `-`, `_`, `.`, `:`, starting with a letter or digit; case matters.",
            ))
            .examples(["tshirt-red-m"])
            .into()
    }
}

impl utoipa::ToSchema for Sku {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every string the schema's pattern admits is a SKU (the other direction is the
        /// refusals below: each kind of bad SKU falls outside the pattern too).
        #[test]
        fn what_the_pattern_admits_parses(text in proptest::string::string_regex(&SKU_PATTERN[1..SKU_PATTERN.len() - 1]).unwrap()) {
            prop_assert!(Sku::parse(&text).is_ok(), "{text:?}");
        }
    }

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
