//! Autoescaping for native patterns: every `{{ … }}` is escaped for the language of the pattern
//! (JSON, YAML, Ruby) and for where it stands in the template text (inside a double- or
//! single-quoted string, in a comment, or bare), so a value can never add a key, a resource or
//! a line of code. `| raw` (or `| safe`, `| tojson`) opts out.
//!
//! The quoting context is read from the template source: before compiling, each `{{ expr }}`
//! becomes `{{ (expr)|__nepho_escape("CONTEXT") }}`, found with minijinja's own lexer so that
//! strings, comments and raw blocks are told apart exactly as the engine will.

use minijinja::machinery::{Token, tokenize};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Value as JValue, ValueKind};

/// The language a pattern is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Json,
    Yaml,
    Ruby,
}

impl Language {
    /// The language of a pattern: by its file name, else (CloudFormation `.cf`/`.template`) by
    /// its first character.
    pub fn of(file_name: &str, source: &str) -> Language {
        let lower = file_name.to_ascii_lowercase();
        if lower == "vagrantfile" || lower.ends_with(".rb") {
            return Language::Ruby;
        }
        if lower.ends_with(".json") {
            return Language::Json;
        }
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            return Language::Yaml;
        }
        let first_data = source
            .lines()
            .map(str::trim_start)
            .find(|l| !l.is_empty() && !l.starts_with("{#") && !l.starts_with("{%"));
        match first_data {
            Some(l) if l.starts_with('{') && !l.starts_with("{{") => Language::Json,
            _ => Language::Yaml,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Language::Json => "json",
            Language::Yaml => "yaml",
            Language::Ruby => "ruby",
        }
    }
}

/// Where in the text a `{{ … }}` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    Bare,
    Double,
    Single,
    Comment,
}

impl Quoting {
    fn tag(self) -> &'static str {
        match self {
            Quoting::Bare => "bare",
            Quoting::Double => "dq",
            Quoting::Single => "sq",
            Quoting::Comment => "comment",
        }
    }
}

/// Tracks quoting across template text, line by line (strings in these languages end with the
/// line; a line that ends inside one resets).
struct Scanner {
    language: Language,
    state: Quoting,
    escaped: bool,
    /// The previous character of template text on this line (YAML comments need a space before).
    prev: Option<char>,
}

impl Scanner {
    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            if c == '\n' {
                self.state = Quoting::Bare;
                self.escaped = false;
                self.prev = None;
                continue;
            }
            match self.state {
                Quoting::Comment => {}
                Quoting::Double => {
                    if self.escaped {
                        self.escaped = false;
                    } else if c == '\\' {
                        self.escaped = true;
                    } else if c == '"' {
                        self.state = Quoting::Bare;
                    }
                }
                Quoting::Single => {
                    if self.escaped {
                        self.escaped = false;
                    } else if c == '\\' && self.language == Language::Ruby {
                        self.escaped = true;
                    } else if c == '\'' {
                        // YAML's '' inside single quotes is an escaped quote: closing then
                        // reopening gives the same state.
                        self.state = Quoting::Bare;
                    }
                }
                Quoting::Bare => match c {
                    '"' => self.state = Quoting::Double,
                    '\'' if self.language != Language::Json => {
                        // In YAML a quote only opens a string at the start of a scalar.
                        let opens = self.language == Language::Ruby
                            || self.prev.is_none_or(|p| " \t:,[{-?".contains(p));
                        if opens {
                            self.state = Quoting::Single;
                        }
                    }
                    '#' if self.language == Language::Ruby => self.state = Quoting::Comment,
                    '#' if self.language == Language::Yaml
                        && self.prev.is_none_or(|p| p == ' ' || p == '\t') =>
                    {
                        self.state = Quoting::Comment
                    }
                    _ => {}
                },
            }
            self.prev = Some(c);
        }
    }
}

/// Rewrites a native template so that each `{{ expr }}` is escaped for its context. A template
/// the lexer cannot read is returned unchanged (compiling it reports the error with its line).
pub fn rewrite(source: &str, language: Language) -> String {
    let mut scanner = Scanner {
        language,
        state: Quoting::Bare,
        escaped: false,
        prev: None,
    };
    // (offset after `{{`, offset of `}}`, context)
    let mut splices: Vec<(usize, usize, Quoting)> = Vec::new();
    let mut open: Option<(usize, Quoting)> = None;
    for token in tokenize(source, false, SyntaxConfig::default()) {
        let Ok((token, span)) = token else {
            return source.to_string();
        };
        match token {
            Token::TemplateData(text) => scanner.feed(text),
            Token::VariableStart => open = Some((span.end_offset as usize, scanner.state)),
            Token::VariableEnd => {
                if let Some((start, quoting)) = open.take() {
                    splices.push((start, span.start_offset as usize, quoting));
                }
            }
            _ => {}
        }
    }
    let mut out = String::with_capacity(source.len() + splices.len() * 40);
    let mut at = 0;
    for (start, end, quoting) in splices {
        if start > end || end > source.len() || !source.is_char_boundary(start) {
            return source.to_string();
        }
        out.push_str(&source[at..start]);
        out.push('(');
        out.push_str(&source[start..end]);
        out.push_str(&format!(
            ")|__nepho_escape(\"{}-{}\")",
            language.tag(),
            quoting.tag()
        ));
        at = end;
    }
    out.push_str(&source[at..]);
    out
}

/// `{{ … }}` splices that print a parameter with escaping turned off (`| raw`, `| safe`):
/// (line, the splice's text). `cloudlet:validate` warns about each.
pub fn unescaped_parameter_splices(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut current: Option<(usize, usize, bool, bool)> = None; // start, line, parameters, raw
    let mut after_pipe = false;
    for token in tokenize(source, false, SyntaxConfig::default()) {
        let Ok((token, span)) = token else {
            return found;
        };
        match (&token, current.as_mut()) {
            (Token::VariableStart, _) => {
                current = Some((
                    span.start_offset as usize,
                    span.start_line as usize,
                    false,
                    false,
                ))
            }
            (Token::Ident("parameters"), Some(c)) => c.2 = true,
            (Token::Ident("raw" | "safe"), Some(c)) if after_pipe => c.3 = true,
            (Token::VariableEnd, Some(&mut (start, line, true, true))) => {
                let end = (span.end_offset as usize).min(source.len());
                found.push((line, source.get(start..end).unwrap_or_default().to_string()));
                current = None;
            }
            (Token::VariableEnd, _) => current = None,
            _ => {}
        }
        after_pipe = matches!(token, Token::Pipe);
    }
    found
}

/// The `__nepho_escape` filter: `value` printed for `context` (`LANGUAGE-QUOTING`).
pub fn escape_filter(value: JValue, context: &str) -> Result<JValue, minijinja::Error> {
    if value.is_safe() || value.is_undefined() {
        return Ok(value);
    }
    super::render::check_printable(&value)?;
    let (language, quoting) = context.split_once('-').unwrap_or(("yaml", "bare"));
    let text = match (language, quoting) {
        ("ruby", "bare") => ruby_literal(&value),
        // Bare JSON: numbers, booleans, null, lists and maps as JSON; a string as the inside of
        // a JSON string (so it is only valid between quotes, and cannot close them).
        ("json", "bare") => match value.kind() {
            ValueKind::String => json_content(value.as_str().unwrap_or_default()),
            _ => plain_text(&value, "null"),
        },
        ("yaml", "bare") => yaml_plain(&value),
        ("ruby", "dq") => ruby_dq_content(&plain_text(&value, "")),
        ("ruby", "sq") => plain_text(&value, "")
            .replace('\\', "\\\\")
            .replace('\'', "\\'"),
        ("yaml", "sq") => plain_text(&value, "null")
            .replace('\'', "''")
            .replace(['\n', '\r'], " "),
        (_, "comment") => plain_text(&value, "null").replace(['\n', '\r'], " "),
        // JSON and YAML double-quoted strings share their escapes.
        _ => json_content(&plain_text(&value, "null")),
    };
    Ok(JValue::from_safe_string(text))
}

/// How the native formatter prints a value: strings as they are, the rest as JSON.
fn plain_text(value: &JValue, none: &str) -> String {
    match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        ValueKind::None => none.to_string(),
        ValueKind::Undefined => String::new(),
        // JSON's, YAML's and Ruby's spelling (minijinja prints Python's `True`).
        ValueKind::Bool => if value.is_true() { "true" } else { "false" }.to_string(),
        ValueKind::Number => value.to_string(),
        _ => serde_json::to_string(value).unwrap_or_default(),
    }
}

/// The inside of a JSON (or YAML double-quoted) string.
fn json_content(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

/// A value at a bare YAML position: numbers, booleans and null as themselves, lists and maps as
/// JSON (YAML's flow style), strings as they are when YAML reads them back as the same plain
/// text, else double-quoted.
fn yaml_plain(value: &JValue) -> String {
    match value.kind() {
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            if yaml_plain_safe(s) {
                s.to_string()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        _ => plain_text(value, "null"),
    }
}

/// Can `s` stand unquoted in any YAML position (block, flow, or inside a longer plain scalar)
/// without changing the document's structure?
fn yaml_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return true;
    };
    if !(first.is_alphanumeric() || "/._$(~".contains(first)) {
        return false;
    }
    if s.ends_with([' ', ':']) || s.contains(": ") || s.contains(" #") {
        return false;
    }
    s.chars()
        .all(|c| c.is_alphanumeric() || " _./@+=~()$-:%^*!&;".contains(c))
}

/// The inside of a Ruby double-quoted string (no interpolation).
fn ruby_dq_content(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '#' => out.push_str("\\#"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// A value as a Ruby literal: strings double-quoted (no interpolation), numbers, true/false,
/// nil, arrays and hashes.
fn ruby_literal(value: &JValue) -> String {
    match value.kind() {
        ValueKind::String => format!(
            "\"{}\"",
            ruby_dq_content(value.as_str().unwrap_or_default())
        ),
        ValueKind::None | ValueKind::Undefined => "nil".into(),
        ValueKind::Bool | ValueKind::Number => plain_text(value, "nil"),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = value
                .try_iter()
                .map(|it| it.map(|v| ruby_literal(&v)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = super::render::map_entries(value)
                .iter()
                .map(|(k, v)| format!("{} => {}", ruby_literal(k), ruby_literal(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        _ => format!("\"{}\"", ruby_dq_content(&value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contexts(src: &str, language: Language) -> Vec<String> {
        let out = rewrite(src, language);
        out.match_indices("__nepho_escape(\"")
            .map(|(i, _)| {
                let rest = &out[i + 16..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .collect()
    }

    #[test]
    fn contexts_follow_quotes_and_comments() {
        assert_eq!(
            contexts(
                "a: \"{{ x }}\"\nb: {{ y }}\nc: '{{ z }}' # {{ w }}\n",
                Language::Yaml
            ),
            ["yaml-dq", "yaml-bare", "yaml-sq", "yaml-comment"]
        );
        assert_eq!(
            contexts(
                "x = \"{{ a }}\" # {{ b }}\ny = {{ c }}\nz = '{{ d }}'\n",
                Language::Ruby
            ),
            ["ruby-dq", "ruby-comment", "ruby-bare", "ruby-sq"]
        );
        assert_eq!(
            contexts("{\"a\": \"x {{ a }}\", \"b\": {{ b }}}", Language::Json),
            ["json-dq", "json-bare"]
        );
        // An apostrophe inside a plain YAML scalar does not open a string.
        assert_eq!(contexts("d: it's {{ a }}\n", Language::Yaml), ["yaml-bare"]);
    }

    #[test]
    fn values_cannot_break_out() {
        let hostile = JValue::from("x\"; File.write(\"pwned\", \"x\"); \"#{`id`}\nevil: 1");
        let e = |ctx: &str| {
            escape_filter(hostile.clone(), ctx)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        };
        // Every quote that would end the string is escaped.
        let unescaped_quote = |s: &str, q: char| {
            let mut escaped = false;
            s.chars().any(|c| {
                let hit = c == q && !escaped;
                escaped = c == '\\' && !escaped;
                hit
            })
        };
        assert!(!unescaped_quote(&e("ruby-dq"), '"'));
        assert!(e("ruby-dq").contains("\\#{"));
        assert!(e("ruby-bare").starts_with('"'));
        assert!(!unescaped_quote(
            &e("ruby-bare")[1..e("ruby-bare").len() - 1],
            '"'
        ));
        assert!(!e("json-dq").contains('\n'));
        assert!(!unescaped_quote(&e("json-dq"), '"'));
        assert!(!unescaped_quote(&e("yaml-dq"), '"'));
        assert!(e("yaml-bare").starts_with('"'));
        assert!(!e("yaml-comment").contains('\n'));
        assert_eq!(
            escape_filter(JValue::from("t2.micro"), "yaml-bare")
                .unwrap()
                .as_str(),
            Some("t2.micro")
        );
        assert_eq!(
            escape_filter(JValue::from(512), "ruby-bare")
                .unwrap()
                .as_str(),
            Some("512")
        );
        for ctx in ["ruby-bare", "yaml-bare", "json-bare", "json-dq"] {
            assert_eq!(
                escape_filter(JValue::from(true), ctx).unwrap().as_str(),
                Some("true"),
                "{ctx}"
            );
        }
    }
}
