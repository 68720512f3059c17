//! The fallback tables: which model groups serve a request when its own group gave up.

use vaultgate_config::{Config, Fallbacks};
use vaultgate_core::FastMap;

use crate::classify::FailureKind;
use crate::request::RequestRouting;

/// The key of a fallback list that applies to every model group without its own (LiteLLM's).
pub(crate) const ANY_MODEL: &str = "*";

/// The three fallback tables, keyed by model group (or pattern, or `*`).
#[derive(Debug, Default)]
pub(crate) struct FallbackTables {
    general: FastMap<String, Vec<String>>,
    context_window: FastMap<String, Vec<String>>,
    content_policy: FastMap<String, Vec<String>>,
}

impl FallbackTables {
    /// `router_settings` wins over `litellm_settings` (LiteLLM reads both); `default_fallbacks`
    /// is the `*` entry of the general table unless that table has its own.
    pub fn from_config(config: &Config) -> Self {
        let router = &config.router_settings;
        let litellm = &config.litellm_settings;
        let pick = |a: &Fallbacks, b: &Fallbacks| table(if a.is_empty() { b } else { a });
        let mut general = pick(&router.fallbacks, &litellm.fallbacks);
        let defaults = if router.default_fallbacks.is_empty() {
            &litellm.default_fallbacks
        } else {
            &router.default_fallbacks
        };
        if !defaults.is_empty() {
            general
                .entry(ANY_MODEL.to_owned())
                .or_insert_with(|| defaults.clone());
        }
        Self {
            general,
            context_window: pick(
                &router.context_window_fallbacks,
                &litellm.context_window_fallbacks,
            ),
            content_policy: pick(
                &router.content_policy_fallbacks,
                &litellm.content_policy_fallbacks,
            ),
        }
    }

    /// Every (setting, from, targets) entry, for start-up checks.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &String, &Vec<String>)> {
        [
            ("fallbacks", &self.general),
            ("context_window_fallbacks", &self.context_window),
            ("content_policy_fallbacks", &self.content_policy),
        ]
        .into_iter()
        .flat_map(|(kind, table)| table.iter().map(move |(from, to)| (kind, from, to)))
    }

    /// The fallback groups for an error of `kind` from the group `names` (the requested name,
    /// then the pattern it matched, if any), in order. The client's lists replace the
    /// configured ones for the requested group.
    pub fn targets<'a>(
        &'a self,
        names: &[&str],
        kind: FailureKind,
        request: &'a RequestRouting,
    ) -> &'a [String] {
        if !kind.falls_back() || request.disable_fallbacks {
            return &[];
        }
        let lookup = |table: &'a FastMap<String, Vec<String>>| {
            names
                .iter()
                .find_map(|name| table.get(*name))
                .or_else(|| table.get(ANY_MODEL))
                .map(Vec::as_slice)
        };
        let specific = match kind {
            FailureKind::ContextWindow => request
                .context_window_fallbacks
                .as_deref()
                .or_else(|| lookup(&self.context_window)),
            FailureKind::ContentPolicy => request
                .content_policy_fallbacks
                .as_deref()
                .or_else(|| lookup(&self.content_policy)),
            _ => None,
        };
        specific
            .or(request.fallbacks.as_deref())
            .or_else(|| lookup(&self.general))
            .unwrap_or_default()
    }
}

fn table(lists: &Fallbacks) -> FastMap<String, Vec<String>> {
    let mut out: FastMap<String, Vec<String>> = FastMap::default();
    for entry in lists {
        for (model, targets) in entry {
            out.entry(model.clone())
                .or_default()
                .extend(targets.iter().cloned());
        }
    }
    out
}
