//! Integer fields of request bodies that also take a whole number written with a fraction
//! (`1999.0`, `2e3`): JSON has one kind of number, and the API's schema (JSON Schema 2020-12)
//! counts `1999.0` as an integer, so a client may send either. A fraction that is not zero,
//! a number out of the field's range, or one written with a fraction beyond 2^53 (where a
//! float no longer tells which whole number was written) is still refused. Use with
//! `#[serde(deserialize_with = "...")]` (and `#[serde(default)]` on an optional field).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

/// An `i64` (or `u64`) field.
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    deserializer.deserialize_any(Whole(PhantomData))
}

/// An optional `i64` (or `u64`) field: null or absent is `None`.
pub fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    deserializer.deserialize_option(Optional(PhantomData))
}

/// An optional list of `i64` (or `u64`): null or absent is `None`.
pub fn optional_integers<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    let items: Option<Vec<Item<T>>> = Deserialize::deserialize(deserializer)?;
    Ok(items.map(|items| items.into_iter().map(|Item(value)| value).collect()))
}

/// One integer of a list.
struct Item<T>(T);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        integer(deserializer).map(Item)
    }
}

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<i64> + TryFrom<u64>> Whole<T> {
    fn out_of_range<E: de::Error>(value: impl fmt::Display) -> E {
        E::custom(format_args!("{value} is out of range for {}", std::any::type_name::<T>()))
    }
}

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Visitor<'de> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| Self::out_of_range(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| Self::out_of_range(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if v.fract() != 0.0 || !v.is_finite() {
            return Err(E::invalid_type(de::Unexpected::Float(v), &self));
        }
        // Up to 2^53 every whole number is a float of its own, and serde_json (with its
        // `float_roundtrip` feature) reads the nearest float, so this is the number written
        // (but for 2^53 + 1 with a fraction, whose nearest float is 2^53). Beyond, a float
        // stands for several numbers (an integer too large for i64 is read as one): which one
        // was meant is unknown.
        if v.abs() > EXACT {
            return Err(E::custom(format_args!("{v} is too large to be read exactly; write it without a fraction")));
        }
        self.visit_i64(v as i64)
    }
}

/// 2^53: the floats up to it in magnitude are exact whole numbers, each its own float.
const EXACT: f64 = 9_007_199_254_740_992.0;

struct Optional<T>(PhantomData<T>);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Visitor<'de> for Optional<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        integer(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Both {
        #[serde(deserialize_with = "super::integer")]
        signed: i64,
        #[serde(default, deserialize_with = "super::optional_integer")]
        maybe: Option<u64>,
    }

    fn parse(json: &str) -> Result<Both, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn lists_of_whole_numbers_parse_item_by_item() {
        #[derive(Debug, Deserialize)]
        struct List {
            #[serde(default, deserialize_with = "super::optional_integers")]
            seqs: Option<Vec<i64>>,
        }
        let parse = |json: &str| serde_json::from_str::<List>(json).map(|l| l.seqs).map_err(|e| e.to_string());
        assert_eq!(parse(r#"{"seqs":[1, 2.0, -3e0]}"#).unwrap(), Some(vec![1, 2, -3]));
        assert_eq!(parse(r#"{"seqs":null}"#).unwrap(), None);
        assert_eq!(parse("{}").unwrap(), None);
        assert!(parse(r#"{"seqs":[1.5]}"#).is_err());
        assert!(parse(r#"{"seqs":3}"#).is_err());
    }

    #[test]
    fn whole_numbers_parse_however_they_are_written() {
        for json in
            [r#"{"signed":-1999,"maybe":3}"#, r#"{"signed":-1999.0,"maybe":3.0}"#, r#"{"signed":-1.999e3,"maybe":3e0}"#]
        {
            assert_eq!(parse(json).unwrap(), Both { signed: -1999, maybe: Some(3) }, "{json}");
        }
        assert_eq!(parse(r#"{"signed":0}"#).unwrap(), Both { signed: 0, maybe: None });
        assert_eq!(parse(r#"{"signed":0,"maybe":null}"#).unwrap(), Both { signed: 0, maybe: None });
        assert_eq!(parse(r#"{"signed":-9007199254740991.0}"#).unwrap().signed, -9_007_199_254_740_991);
        assert_eq!(parse(r#"{"signed":9007199254740992.0}"#).unwrap().signed, 9_007_199_254_740_992);
        assert_eq!(parse(r#"{"signed":-9223372036854775808}"#).unwrap().signed, i64::MIN);
    }

    #[test]
    fn fractions_other_types_and_numbers_out_of_range_are_refused() {
        for json in [
            r#"{"signed":1.5}"#,
            r#"{"signed":"1"}"#,
            r#"{"signed":true}"#,
            r#"{"signed":null}"#,
            r#"{"signed":9223372036854775808}"#,
            r#"{"signed":-9223372036854775809}"#,
            r#"{"signed":9.3e18}"#,
            r#"{"signed":9007199254740994.0}"#,
            r#"{"signed":0,"maybe":-1}"#,
            r#"{"signed":0,"maybe":-1.0}"#,
            r#"{"signed":0,"maybe":0.5}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }
}
