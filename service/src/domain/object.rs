//! JSON objects, and only objects, for request bodies and fields whose fields are all optional.
//! serde's derive also reads a struct from an array of its fields in order, so `[null, null]`
//! would be taken for an empty selection or policy, which the API's schema says is not an
//! object. Reading the object first, then the struct from it, refuses every other JSON type.

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A body that must be a JSON object: `web::Json<Object<T>>`.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        T::deserialize(Value::Object(map)).map(Object).map_err(D::Error::custom)
    }
}

/// An optional field that must be an object when present (null or absent is `None`); use with
/// `#[serde(default, deserialize_with = "...")]`.
pub fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Option::<Object<T>>::deserialize(deserializer).map(|o| o.map(|Object(inner)| inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Loose {
        #[serde(default)]
        a: Option<i64>,
        #[serde(default)]
        b: Option<i64>,
    }

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "optional_object")]
        inner: Option<Loose>,
    }

    #[test]
    fn only_objects_are_read() {
        assert!(serde_json::from_str::<Loose>("[null, null]").is_ok(), "what serde's derive allows");
        assert!(serde_json::from_str::<Object<Loose>>("[null, null]").is_err());
        assert!(serde_json::from_str::<Object<Loose>>("3").is_err());
        assert!(serde_json::from_str::<Object<Loose>>(r#"{"c": 1}"#).is_err(), "inner rules still hold");
        assert_eq!(serde_json::from_str::<Object<Loose>>(r#"{"a": 1}"#).unwrap().0, Loose { a: Some(1), b: None });
        assert!(serde_json::from_str::<Holder>(r#"{"inner": [1, 2]}"#).is_err());
        assert!(serde_json::from_str::<Holder>(r#"{"inner": null}"#).unwrap().inner.is_none());
        assert!(serde_json::from_str::<Holder>("{}").unwrap().inner.is_none());
        assert_eq!(
            serde_json::from_str::<Holder>(r#"{"inner": {"b": 2}}"#).unwrap().inner,
            Some(Loose { a: None, b: Some(2) })
        );
    }
}
