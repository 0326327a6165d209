//! A small YAML loader: YAML (saphyr-parser events) into a `serde_json::Value`, so cluster files
//! and patterns deserialize through serde with `deny_unknown_fields` (clear errors naming keys).

use saphyr_parser::{Event, Parser, ScalarStyle, StrInput};
use serde_json::{Map, Number, Value};

/// Parses one YAML document; `what` names the source in errors ("cluster file /etc/...").
pub fn load(src: &str, what: &str) -> Result<Value, String> {
    let mut parser = Parser::new_from_str(src);
    let mut root = Value::Null;
    loop {
        match next(&mut parser, what)? {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                if let Some(v) = node(&mut parser, what)? {
                    root = v;
                }
            }
            _ => {}
        }
    }
    Ok(root)
}

fn next<'a>(parser: &mut Parser<'a, StrInput<'a>>, what: &str) -> Result<Event<'a>, String> {
    match parser.next_event() {
        Some(Ok((event, _))) => Ok(event),
        Some(Err(e)) => Err(format!(
            "{what}: line {}, column {}: {}",
            e.marker().line(),
            e.marker().col() + 1,
            e.info()
        )),
        None => Err(format!("{what}: unexpected end of YAML")),
    }
}

/// One node, or None at the end of the enclosing collection/document.
fn node<'a>(parser: &mut Parser<'a, StrInput<'a>>, what: &str) -> Result<Option<Value>, String> {
    match next(parser, what)? {
        Event::Scalar(text, style, _, _) => Ok(Some(if style == ScalarStyle::Plain {
            plain(&text)
        } else {
            Value::String(text.into_owned())
        })),
        Event::SequenceStart(_, _) => {
            let mut items = Vec::new();
            while let Some(v) = node(parser, what)? {
                items.push(v);
            }
            Ok(Some(Value::Array(items)))
        }
        Event::MappingStart(_, _) => {
            let mut map = Map::new();
            while let Some(k) = node(parser, what)? {
                let key = match k {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let value = node(parser, what)?
                    .ok_or_else(|| format!("{what}: key `{key}` has no value"))?;
                if map.insert(key.clone(), value).is_some() {
                    return Err(format!("{what}: key `{key}` appears twice"));
                }
            }
            Ok(Some(Value::Object(map)))
        }
        Event::Alias(_) => Err(format!("{what}: YAML aliases are not supported here")),
        _ => Ok(None),
    }
}

fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if text.contains('.')
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_maps_lists_and_scalars() {
        let v = load(
            "a: 1\nb: [x, 'y', true]\nc: {d: null, e: 1.5}\nf: '2'\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": ["x", "y", true], "c": {"d": null, "e": 1.5}, "f": "2"})
        );
        assert!(load("a: 1\na: 2\n", "t").unwrap_err().contains("twice"));
    }
}
