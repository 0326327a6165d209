//! Secret parameter values. A `Secret` has no `Display` and a `Debug` that hides it, so it can
//! only reach a pattern or a provider through `expose`; stored secrets travel as their own merge
//! layer, typed, never through `--set` text.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// One secret value.
#[derive(Clone, PartialEq)]
pub struct Secret(Value);

impl Secret {
    pub fn new(value: Value) -> Secret {
        Secret(value)
    }

    /// The value itself: only for handing to a pattern, a provider or the 0600 secrets file.
    pub fn expose(&self) -> &Value {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", nepho_provider_api::REDACTED)
    }
}

/// The secret values a formation was last built with, by parameter name.
#[derive(Debug, Clone, Default)]
pub struct StoredSecrets(BTreeMap<String, Secret>);

impl StoredSecrets {
    pub fn insert(&mut self, name: String, secret: Secret) {
        self.0.insert(name, secret);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Secret)> {
        self.0.iter()
    }
}

impl FromIterator<(String, Secret)> for StoredSecrets {
    fn from_iter<I: IntoIterator<Item = (String, Secret)>>(iter: I) -> StoredSecrets {
        StoredSecrets(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let mut stored = StoredSecrets::default();
        stored.insert("pw".into(), Secret::new(Value::String("hunter2".into())));
        let shown = format!("{stored:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("pw"), "{shown}");
    }
}
