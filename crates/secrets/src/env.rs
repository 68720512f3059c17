use std::collections::BTreeMap;
use std::fmt;

use vaultgate_config::{Config, ConfigValue};

/// The environment as vaultgate sees it: `config.environment_variables` over the process
/// environment. We cannot `set_var` (unsafe code is forbidden, and it races with other threads),
/// so every `os.environ/NAME` and every `HCP_VAULT_*` setting is looked up through this.
#[derive(Clone, Default)]
pub struct Env {
    overlay: BTreeMap<String, String>,
    process: bool,
}

impl Env {
    /// The process environment with the config's `environment_variables` on top. An entry
    /// written as `os.environ/OTHER` there is taken from the process environment.
    pub fn from_config(config: &Config) -> Self {
        let overlay = config
            .environment_variables
            .iter()
            .filter_map(|(name, value)| {
                let value = match value {
                    ConfigValue::Literal(text) => Some(text.clone()),
                    ConfigValue::Reference(other) => std::env::var(other).ok(),
                    // Refused by config validation: the environment is read before Vault.
                    ConfigValue::Vault(_) => None,
                };
                value.map(|v| (name.clone(), v))
            })
            .collect();
        Self {
            overlay,
            process: true,
        }
    }

    /// The process environment alone.
    pub fn process() -> Self {
        Self {
            overlay: BTreeMap::new(),
            process: true,
        }
    }

    /// Only the given pairs, without the process environment: hermetic tests.
    pub fn from_map<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            overlay: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            process: false,
        }
    }

    /// Adds or replaces one variable (tests, and callers layering their own defaults).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.overlay.insert(name.into(), value.into());
        self
    }

    /// The value of `name`; an empty value counts as unset (an empty API key is never meant).
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match self.overlay.get(name) {
            Some(value) => Some(value.clone()),
            None if self.process => std::env::var(name).ok(),
            None => None,
        };
        value.filter(|v| !v.is_empty())
    }
}

/// Names only: values may be secrets.
impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("overlay_names", &self.overlay.keys().collect::<Vec<_>>())
            .field("process", &self.process)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_wins_and_empty_is_unset() {
        let env = Env::from_map([("A", "1"), ("EMPTY", "")]);
        assert_eq!(env.get("A").as_deref(), Some("1"));
        assert_eq!(env.get("EMPTY"), None);
        assert_eq!(
            env.get("PATH"),
            None,
            "from_map must not see the process environment"
        );
        let config =
            Config::parse("environment_variables: {MY_VAR: hello, PATH: overlay}").unwrap();
        let env = Env::from_config(&config);
        assert_eq!(env.get("MY_VAR").as_deref(), Some("hello"));
        assert_eq!(env.get("PATH").as_deref(), Some("overlay"));
    }

    #[test]
    fn debug_shows_no_values() {
        let env = Env::from_map([("SECRET_NAME", "very-secret-value")]);
        let text = format!("{env:?}");
        assert!(text.contains("SECRET_NAME"));
        assert!(!text.contains("very-secret-value"));
    }
}
