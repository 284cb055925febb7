//! JSON written as Python's `json.dumps` writes it, for chat templates'
//! `tojson` filter: transformers defines that filter as `json.dumps` with
//! `ensure_ascii=False`, where minijinja's own escapes HTML characters and
//! separates items differently, so tool definitions in a prompt would differ.

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// The `tojson` filter: `value | tojson` or `value | tojson(indent=N)`.
pub fn tojson_filter(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    dumps(&value, indent, sort_keys.unwrap_or(false), 0, &mut out)?;
    Ok(Value::from(out))
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent,
/// sort_keys=sort_keys)`: `", "` and `": "` between items on one line, `","`
/// at line ends when indented; maps keep their order.
pub fn dumps(
    value: &Value,
    indent: Option<usize>,
    sort_keys: bool,
    depth: usize,
    out: &mut String,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            sequence(out, ('[', ']'), indent, depth, items.len(), |i, out| {
                dumps(&items[i], indent, sort_keys, depth + 1, out)
            })
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter()?.collect();
            if sort_keys {
                keys.sort();
            }
            sequence(out, ('{', '}'), indent, depth, keys.len(), |i, out| {
                string(&keys[i].to_string(), out);
                out.push_str(": ");
                dumps(
                    &value.get_item(&keys[i])?,
                    indent,
                    sort_keys,
                    depth + 1,
                    out,
                )
            })
        }
        ValueKind::String => {
            string(value.as_str().unwrap_or_default(), out);
            Ok(())
        }
        ValueKind::Undefined | ValueKind::None => {
            out.push_str("null");
            Ok(())
        }
        ValueKind::Bool => {
            out.push_str(if value.is_true() { "true" } else { "false" });
            Ok(())
        }
        ValueKind::Number => {
            out.push_str(&value.to_string());
            Ok(())
        }
        other => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: a {other} cannot be written as JSON"),
        )),
    }
}

/// Writes `n` items between `brackets`, one a line when indenting.
fn sequence(
    out: &mut String,
    brackets: (char, char),
    indent: Option<usize>,
    depth: usize,
    n: usize,
    mut item: impl FnMut(usize, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    let newline = |out: &mut String, level: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * level));
        }
    };
    out.push(brackets.0);
    for i in 0..n {
        if i > 0 {
            out.push_str(if indent.is_some() { "," } else { ", " });
        }
        newline(out, depth + 1);
        item(i, out)?;
    }
    if n > 0 {
        newline(out, depth);
    }
    out.push(brackets.1);
    Ok(())
}

/// A string as Python quotes it with `ensure_ascii=False`: only `"`, `\`
/// and control characters are escaped.
fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, value: serde_json::Value) -> Result<String, Error> {
        let mut env = minijinja::Environment::new();
        env.add_filter("tojson", tojson_filter);
        env.render_str(
            src,
            minijinja::context! { t => minijinja::value::Serde(value) },
        )
    }

    // Expected strings are what CPython 3.11's json.dumps(..., ensure_ascii=False)
    // printed for the same values, keys in the order given.
    #[test]
    fn writes_like_python_json_dumps() {
        let v = json!({"args": [1, 2.5, true, null], "e": {}, "l": [], "name": "dose <5 mg>", "é": "µg\n\"q\""});
        assert_eq!(
            render("{{ t | tojson }}", v).unwrap(),
            r#"{"args": [1, 2.5, true, null], "e": {}, "l": [], "name": "dose <5 mg>", "é": "µg\n\"q\""}"#
        );
        assert_eq!(
            render("{{ t | tojson(indent=2) }}", json!({"a": [1, {"b": null}]})).unwrap(),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ]\n}"
        );
    }

    #[test]
    fn unknown_arguments_are_errors() {
        assert!(render("{{ t | tojson(colour=1) }}", json!(1)).is_err());
        assert_eq!(
            render("{{ t | tojson(sort_keys=true) }}", json!({"b": 1, "a": 2})).unwrap(),
            r#"{"a": 2, "b": 1}"#
        );
    }
}
