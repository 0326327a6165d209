//! Cluster files and patterns through the one positioned YAML layer every crate shares
//! (`nepho-yaml`): YAML 1.2 scalars, duplicate keys and alias bombs refused, errors as
//! `FILE:LINE:COLUMN` with the line under them; a serde error about a key (`unknown key
//! `colour``) points at that key.

use std::path::Path;

use nepho_yaml::{Dialect, Node, Tags, YamlError};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parses `src` (named `file` in errors) and deserializes it.
pub fn from_yaml<T: DeserializeOwned>(src: &str, file: &str) -> Result<T, String> {
    let path = Path::new(file);
    let node =
        nepho_yaml::parse(src, path, Dialect::Yaml12, Tags::CoreOnly).map_err(|e| e.to_string())?;
    let value = node.as_ref().map_or(Value::Null, Node::to_value);
    serde_json::from_value(value).map_err(|e| {
        let message = e.to_string().replace("field", "key");
        let pos = node
            .as_ref()
            .and_then(|n| first_quoted(&message).and_then(|key| n.find_key(key)));
        match pos {
            Some(pos) => YamlError::at(path, Some(src), pos, message).to_string(),
            None => format!("{file}: {message}"),
        }
    })
}

/// The first `quoted` word of a serde message (the key it is about).
fn first_quoted(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[test]
    fn errors_point_at_the_line_and_column() {
        let e = from_yaml::<T>("a: 1\nb: 2\n", "c.yaml").unwrap_err();
        assert!(e.starts_with("c.yaml:2:1: unknown key `b`"), "{e}");
        let e = from_yaml::<T>("a: 1\na: 2\n", "c.yaml").unwrap_err();
        assert!(e.starts_with("c.yaml:2:1:"), "{e}");
        let e = from_yaml::<T>("a: [1\n", "c.yaml").unwrap_err();
        assert!(e.starts_with("c.yaml:"), "{e}");
    }
}
