//! Integer request fields as JSON Schema counts them: `25` and `25.0` are
//! the same integer (the OpenAPI document says `type: integer`, and a
//! JavaScript or Python client may well send the second), while serde's own
//! integer types refuse any number written with a fraction part. Used as
//! `#[serde(deserialize_with = "crate::integer::option")]` on request
//! fields; the generated schema stays `integer`.
//!
//! Refused, with serde's "invalid value … expected …" sentence (which the
//! server turns into a 400 naming the field): a fraction (`25.5`), a value
//! outside the field's type (`-1` for a `u32`, `1e30`), anything not a number.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// An integer type a request field may have.
pub trait Integer: Sized {
    const MIN: i128;
    const MAX: i128;
    /// `value` is within `MIN..=MAX`.
    fn from_i128(value: i128) -> Option<Self>;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Integer for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
            fn from_i128(value: i128) -> Option<Self> {
                <$t>::try_from(value).ok()
            }
        }
    )*};
}
integer!(i32, i64, u32, u64);

/// An optional integer field: `null` or absent is `None`.
pub fn option<'de, D: Deserializer<'de>, T: Integer>(deserializer: D) -> Result<Option<T>, D::Error> {
    deserializer.deserialize_option(OptionVisitor(PhantomData))
}

/// A required integer field.
pub fn required<'de, D: Deserializer<'de>, T: Integer>(deserializer: D) -> Result<T, D::Error> {
    deserializer.deserialize_any(IntegerVisitor(PhantomData))
}

struct IntegerVisitor<T>(PhantomData<T>);

impl<T: Integer> IntegerVisitor<T> {
    fn within<E: de::Error>(&self, value: i128, unexpected: Unexpected<'_>) -> Result<T, E> {
        T::from_i128(value).ok_or_else(|| E::invalid_value(unexpected, self))
    }
}

impl<T: Integer> Visitor<'_> for IntegerVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer from {} to {}", T::MIN, T::MAX)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        self.within(i128::from(value), Unexpected::Signed(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        self.within(i128::from(value), Unexpected::Unsigned(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        // Only a whole number is an integer; `as` saturates, so a float too
        // large for i128 lands outside every field's range and is refused.
        if value.is_finite() && value.fract() == 0.0 {
            let whole = value as i128;
            self.within(whole, Unexpected::Float(value))
        } else {
            Err(E::invalid_value(Unexpected::Float(value), &self))
        }
    }
}

struct OptionVisitor<T>(PhantomData<T>);

impl<'de, T: Integer> Visitor<'de> for OptionVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "null or an integer from {} to {}", T::MIN, T::MAX)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        required(deserializer).map(Some)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test: a failed step should panic
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Fields {
        #[serde(default, deserialize_with = "super::option")]
        small: Option<u32>,
        #[serde(default, deserialize_with = "super::option")]
        signed: Option<i32>,
        #[serde(default, deserialize_with = "super::required")]
        big: i64,
    }

    fn parse(json: &str) -> Result<Fields, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_integers_however_they_are_spelled() {
        let fields = parse(r#"{"small": 25.0, "signed": -3.0, "big": 1e3}"#).unwrap();
        assert_eq!(fields, Fields { small: Some(25), signed: Some(-3), big: 1000 });
        let fields = parse(r#"{"small": 25, "signed": -0.0, "big": -9007199254740992}"#).unwrap();
        assert_eq!(fields, Fields { small: Some(25), signed: Some(0), big: -9_007_199_254_740_992 });
        assert_eq!(parse(r#"{"small": null, "big": 0}"#).unwrap(), Fields { small: None, signed: None, big: 0 });
    }

    #[test]
    fn fractions_out_of_range_and_other_types_are_refused_with_the_range() {
        for (json, says) in [
            (r#"{"small": 25.5, "big": 0}"#, "floating point `25.5`, expected an integer from 0 to 4294967295"),
            (r#"{"small": -1, "big": 0}"#, "integer `-1`, expected an integer from 0 to 4294967295"),
            (r#"{"small": 4294967296.0, "big": 0}"#, "floating point `4294967296.0`"),
            (r#"{"signed": 1e30, "big": 0}"#, "expected an integer from -2147483648 to 2147483647"),
            (r#"{"big": 9223372036854775808.0}"#, "expected an integer from -9223372036854775808"),
            (r#"{"big": 18446744073709551615}"#, "integer `18446744073709551615`"),
            (r#"{"big": "1"}"#, "invalid type: string \"1\""),
            (r#"{"small": true, "big": 0}"#, "invalid type: boolean `true`"),
        ] {
            let error = parse(json).unwrap_err();
            assert!(error.contains(says), "{json}: {error}");
        }
    }
}
