//! Identifiers of merchants and API keys: UUIDs (v7, so they sort by creation time).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// The only spelling of an id that [`MerchantId::parse`] and [`KeyId::parse`] accept: a UUID,
/// hyphenated, in lower case. For the API's schema.
pub const ID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid id")]
pub struct IdError(pub String);

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The 32-hex-digit form used inside API key tokens.
            pub fn simple(&self) -> String {
                self.0.simple().to_string()
            }

            pub fn parse_simple(text: &str) -> Result<Self, IdError> {
                let id = Uuid::try_parse(text).map_err(|_| IdError(text.to_owned()))?;
                if id.simple().to_string() != text {
                    return Err(IdError(text.to_owned()));
                }
                Ok(Self(id))
            }

            pub fn parse(text: &str) -> Result<Self, IdError> {
                // Only the canonical hyphenated lower-case form: one id, one spelling.
                let id = Uuid::try_parse(text).map_err(|_| IdError(text.to_owned()))?;
                if id.hyphenated().to_string() != text {
                    return Err(IdError(text.to_owned()));
                }
                Ok(Self(id))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

fn id_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uuid".to_owned())))
        .pattern(Some(ID_PATTERN))
        .description(Some("A UUID, hyphenated, in lower case."))
        .into()
}

uuid_id!(
    /// A merchant (tenant). Every product, rule, price and decision belongs to exactly one.
    MerchantId
);
uuid_id!(
    /// An API key's public identifier; the secret half is never stored.
    KeyId
);
uuid_id!(
    /// A merchant's webhook endpoint.
    WebhookId
);
uuid_id!(
    /// A catalogue job (an import).
    JobId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_through_their_text() {
        let id = MerchantId::generate();
        assert_eq!(MerchantId::parse(&id.to_string()).unwrap(), id);
    }

    proptest::proptest! {
        #[test]
        fn what_the_pattern_admits_parses(text in proptest::string::string_regex(&ID_PATTERN[1..ID_PATTERN.len() - 1]).unwrap()) {
            proptest::prop_assert!(MerchantId::parse(&text).is_ok() && KeyId::parse(&text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn non_canonical_or_malformed_ids_are_refused() {
        let id = KeyId::generate().to_string();
        assert!(KeyId::parse(&id.to_uppercase()).is_err());
        assert!(KeyId::parse(&id.replace('-', "")).is_err());
        assert!(KeyId::parse("not-an-id").is_err());
        assert!(KeyId::parse("").is_err());
    }
}
