//! JSON of clintune's own plain-data types (configurations, training
//! state, indexes) where it feeds a content hash, a manifest or a
//! checkpoint. Those types hold strings, numbers, lists and string-keyed
//! maps, which serde_json always serializes; a type that one day does not
//! is a bug, and it must stop the program by name rather than hash or save
//! an empty string in its place.

use serde::Serialize;
use serde_json::Value;

/// `value` as a JSON value; `what` names it if it cannot be.
pub fn to_value<T: Serialize + ?Sized>(what: &str, value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| unserializable(what, &e))
}

/// `value` as compact JSON bytes.
pub fn to_vec<T: Serialize + ?Sized>(what: &str, value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| unserializable(what, &e))
}

/// `value` as indented JSON text with a final newline, as files are written.
pub fn to_pretty<T: Serialize + ?Sized>(what: &str, value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|e| unserializable(what, &e));
    text.push('\n');
    text
}

fn unserializable(what: &str, e: &serde_json::Error) -> ! {
    panic!("bug: {what} cannot be written as JSON ({e}); please report it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn plain_data_serializes() {
        let v = to_value("a map", &BTreeMap::from([("a", 1)]));
        assert_eq!(v["a"], 1);
        assert_eq!(to_pretty("a list", &[1, 2]), "[\n  1,\n  2\n]\n");
        assert_eq!(to_vec("a string", "x"), b"\"x\"");
    }

    #[test]
    #[should_panic(expected = "bug: a keyed state cannot be written as JSON")]
    fn a_type_json_cannot_hold_stops_by_name() {
        // Keys that are not strings: JSON objects cannot have them.
        let state = BTreeMap::from([((1, 2), "x")]);
        to_vec("a keyed state", &state);
    }
}
