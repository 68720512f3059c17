//! From the model a client asked for to the model group that serves it, with LiteLLM's
//! precedence: an exact `model_name`, then a `model_group_alias`, then the most specific
//! wildcard `model_name` (`openai/*`, `team-*`, and last `*`). A wildcard's `*` in
//! `litellm_params.model` takes what the client's `*` matched (`anthropic/*` asked as
//! `anthropic/claude-x` calls `claude-x`).

use std::ops::Deref;
use std::sync::{Arc, RwLock};

use vaultgate_config::{ModelEntry, ModelTarget, model_target, parse_model};
use vaultgate_core::FastMap;

use crate::health::DeploymentState;
use crate::{ModelGroup, Router, Unavailable};

/// Concrete groups of wildcard routes kept for reuse; past this many names (clients choose
/// them), groups are built per request and not kept.
const MATCHED_CACHE_MAX: usize = 1024;

/// A model group found for a request: configured by name, or built from a wildcard route.
pub enum GroupRef<'a> {
    Named(&'a ModelGroup),
    Matched(Arc<ModelGroup>),
}

impl Deref for GroupRef<'_> {
    type Target = ModelGroup;

    fn deref(&self) -> &ModelGroup {
        match self {
            Self::Named(group) => group,
            Self::Matched(group) => group,
        }
    }
}

/// One wildcard `model_name` and the deployments configured under it.
pub(crate) struct Pattern {
    /// The group as configured (upstream names still with `*`), for listings and health.
    pub group: ModelGroup,
    /// The config entries, to build concrete deployments from.
    pub entries: Vec<PatternEntry>,
}

pub(crate) struct PatternEntry {
    /// Index in `model_list`.
    pub index: usize,
    pub entry: ModelEntry,
    /// The deployment id every concrete deployment of this entry keeps.
    pub id: String,
    /// Live statistics shared by every concrete deployment of this entry (one cooldown).
    pub state: Arc<DeploymentState>,
}

impl Pattern {
    fn specificity(&self) -> (usize, usize) {
        let name = &self.group.name;
        (name.len(), name.matches('*').count())
    }
}

/// Sorts wildcard routes most specific first (longer, then more wildcards), as LiteLLM does;
/// equally specific ones keep their config order.
pub(crate) fn sort_patterns(patterns: &mut [Pattern]) {
    patterns.sort_by_key(|p| std::cmp::Reverse(p.specificity()));
}

/// Whether a `model_name` is a wildcard route.
pub(crate) fn is_pattern(model_name: &str) -> bool {
    model_name.contains('*')
}

#[derive(Default)]
pub(crate) struct MatchedCache(RwLock<FastMap<String, Arc<ModelGroup>>>);

impl Router {
    /// The group serving `model`, if any route matches it.
    pub fn resolve(&self, model: &str) -> Option<GroupRef<'_>> {
        if let Some(group) = self.groups.get(model) {
            return Some(GroupRef::Named(group));
        }
        let target = self.aliases.get(model).map_or(model, String::as_str);
        if let Some(group) = self.groups.get(target) {
            return Some(GroupRef::Named(group));
        }
        self.matched(target).map(GroupRef::Matched)
    }

    /// The concrete group of a wildcard route for `model`: cached, else built.
    fn matched(&self, model: &str) -> Option<Arc<ModelGroup>> {
        if self.patterns.is_empty() {
            return None;
        }
        if let Ok(cache) = self.matched.0.read()
            && let Some(group) = cache.get(model)
        {
            return Some(Arc::clone(group));
        }
        let group = Arc::new(self.build_matched(model)?);
        if let Ok(mut cache) = self.matched.0.write()
            && cache.len() < MATCHED_CACHE_MAX
        {
            cache.insert(model.to_owned(), Arc::clone(&group));
        }
        Some(group)
    }

    /// Builds the group for `model` from the most specific matching route. A bare name also
    /// matches as `provider/name` (`gpt-4o` is served by `openai/*`), as LiteLLM infers.
    fn build_matched(&self, model: &str) -> Option<ModelGroup> {
        let inferred = (!model.contains('/'))
            .then(|| parse_model(model).ok())
            .flatten()
            .map(|(provider, _)| format!("{}/{model}", provider.as_str()));
        let (pattern, captures) = self
            .patterns
            .iter()
            .find_map(|p| glob_captures(&p.group.name, model).map(|c| (p, c)))
            .or_else(|| {
                let inferred = inferred.as_deref()?;
                self.patterns
                    .iter()
                    .find_map(|p| glob_captures(&p.group.name, inferred).map(|c| (p, c)))
            })?;
        let mut group = ModelGroup::new(model, Some(pattern.group.name.clone()));
        for template in &pattern.entries {
            let mut concrete = template.entry.clone();
            concrete.model_name = model.to_owned();
            concrete.litellm_params.model =
                substitute(&template.entry.litellm_params.model, &captures, model);
            concrete.model_info.id = Some(template.id.clone());
            let unavailable = |provider: &str, reason: String| {
                Unavailable::new(template.index, &concrete, provider, reason)
            };
            match model_target(&concrete.litellm_params.model) {
                Ok(ModelTarget::Supported { .. }) => {
                    match self.settings.deployment(template.index, &concrete) {
                        Ok(deployment) => {
                            group.push(Arc::new(deployment), Arc::clone(&template.state));
                        }
                        Err(error) => group.unavailable.push(unavailable("", error.to_string())),
                    }
                }
                Ok(ModelTarget::Unsupported { provider, reason }) => {
                    group.unavailable.push(unavailable(&provider, reason));
                }
                Err(reason) => group.unavailable.push(unavailable("", reason)),
            }
        }
        group.num_retries = pattern.group.num_retries;
        Some(group)
    }
}

/// What each `*` of `pattern` matched in `text` (greedy, left to right), if `text` matches as
/// a whole.
pub(crate) fn glob_captures<'t>(pattern: &str, text: &'t str) -> Option<Vec<&'t str>> {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first()?;
    let tail = text.strip_prefix(first)?;
    let mut captures = Vec::with_capacity(rest.len());
    captures_of(rest, tail, &mut captures).then_some(captures)
}

/// Matches `text` against `*part1*part2…` (the parts after each `*`), pushing the captures.
fn captures_of<'t>(parts: &[&str], text: &'t str, captures: &mut Vec<&'t str>) -> bool {
    let Some((part, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    if rest.is_empty() {
        // The last `*` takes everything up to the final literal.
        return match text.strip_suffix(part) {
            Some(captured) => {
                captures.push(captured);
                true
            }
            None => false,
        };
    }
    // Greedy: the longest capture that still lets the rest match.
    let mut ends: Vec<usize> = text.match_indices(part).map(|(at, _)| at).collect();
    ends.reverse();
    for at in ends {
        captures.push(&text[..at]);
        if captures_of(rest, &text[at + part.len()..], captures) {
            return true;
        }
        captures.truncate(captures.len() - 1);
    }
    false
}

/// Puts the captures in place of the `*`s of `model`, in order. A model with fewer `*`s than
/// there are captures cannot place them all: the client's name is used as the model then
/// (LiteLLM's rule).
fn substitute(model: &str, captures: &[&str], requested: &str) -> String {
    let wildcards = model.matches('*').count();
    if wildcards == 0 {
        return model.to_owned();
    }
    if captures.len() > wildcards {
        return requested.to_owned();
    }
    let mut out = String::with_capacity(model.len() + 32);
    let mut pieces = model.split('*');
    if let Some(first) = pieces.next() {
        out.push_str(first);
    }
    for (index, piece) in pieces.enumerate() {
        out.push_str(captures.get(index).copied().unwrap_or("*"));
        out.push_str(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wildcards_capture_greedily_and_match_whole_names() {
        assert_eq!(glob_captures("*", "gpt-4o"), Some(vec!["gpt-4o"]));
        assert_eq!(
            glob_captures("anthropic/*", "anthropic/claude-x"),
            Some(vec!["claude-x"])
        );
        assert_eq!(glob_captures("anthropic/*", "openai/gpt"), None);
        assert_eq!(glob_captures("team-*", "team-a"), Some(vec!["a"]));
        assert_eq!(glob_captures("team-*", "team-"), Some(vec![""]));
        assert_eq!(
            glob_captures("a/*::static::*", "a/x::static::y::static::z"),
            Some(vec!["x::static::y", "z"])
        );
        assert_eq!(glob_captures("*-mini", "gpt-4o-mini"), Some(vec!["gpt-4o"]));
        assert_eq!(glob_captures("*-mini", "gpt-4o-mini-x"), None);
        assert_eq!(glob_captures("exact", "exact"), Some(vec![]));
    }

    #[test]
    fn captures_fill_the_models_wildcards() {
        assert_eq!(
            substitute("openai/*", &["gpt-4o"], "gpt-4o"),
            "openai/gpt-4o"
        );
        assert_eq!(substitute("openai/gpt-4o", &["x"], "x"), "openai/gpt-4o");
        assert_eq!(
            substitute("openai/fo::*::static::*", &["a", "b"], "r"),
            "openai/fo::a::static::b"
        );
        assert_eq!(substitute("openai/*", &["a", "b"], "a/b"), "a/b");
    }
}
