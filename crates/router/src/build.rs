//! The routing table from `config.yaml`: groups, wildcard routes, aliases, fallbacks and the
//! router's policies.

use std::sync::Arc;
use std::time::Duration;

use vaultgate_config::{Config, ModelEntry, ModelTarget, model_target};
use vaultgate_core::{Error, FastMap, Result};
use vaultgate_providers::Deployment;

use crate::fallbacks::{ANY_MODEL, FallbackTables};
use crate::health::{CooldownPolicy, DeploymentState};
use crate::resolve::{MatchedCache, Pattern, PatternEntry, is_pattern, sort_patterns};
use crate::select::Strategy;
use crate::{ModelGroup, Router, Unavailable};

/// What every deployment is built with (also the concrete ones of wildcard routes, built later).
pub(crate) struct BuildSettings {
    default_timeout: Option<f64>,
    stream_timeout: Option<f64>,
}

impl BuildSettings {
    pub fn deployment(&self, index: usize, entry: &ModelEntry) -> Result<Deployment> {
        Deployment::from_config(index, entry, self.default_timeout, self.stream_timeout)
    }
}

impl Router {
    pub fn from_config(config: &Config) -> Result<Self> {
        let settings = &config.router_settings;
        let build = BuildSettings {
            default_timeout: settings.timeout.or(config.litellm_settings.request_timeout),
            stream_timeout: settings.stream_timeout,
        };
        let mut groups: FastMap<String, ModelGroup> = FastMap::default();
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut order = Vec::new();
        for (index, entry) in config.model_list.iter().enumerate() {
            let name = &entry.model_name;
            let group = if is_pattern(name) {
                let at = match patterns.iter().position(|p| p.group.name == *name) {
                    Some(at) => at,
                    None => {
                        order.push(name.clone());
                        patterns.push(Pattern {
                            group: ModelGroup::new(name, Some(name.clone())),
                            entries: Vec::new(),
                        });
                        patterns.len() - 1
                    }
                };
                &mut patterns[at].group
            } else {
                groups.entry(name.clone()).or_insert_with(|| {
                    order.push(name.clone());
                    ModelGroup::new(name, None)
                })
            };
            let state = Arc::new(DeploymentState::default());
            let target = model_target(&entry.litellm_params.model).map_err(|message| {
                Error::Config(format!(
                    "model_list[{index}] ({name}).litellm_params.model: {message}"
                ))
            })?;
            let id = match target {
                ModelTarget::Supported { .. } => {
                    let deployment = build.deployment(index, entry)?;
                    let id = deployment.id.clone();
                    group.push(Arc::new(deployment), Arc::clone(&state));
                    id
                }
                ModelTarget::Unsupported { provider, reason } => {
                    let unavailable = Unavailable::new(index, entry, &provider, reason);
                    tracing::warn!(model = %name, deployment = %unavailable.id,
                        model_param = %unavailable.model, provider = %provider,
                        "deployment unavailable (requests for it get 501): {}", unavailable.reason);
                    let id = unavailable.id.clone();
                    group.unavailable.push(unavailable);
                    id
                }
            };
            if let Some(pattern) = patterns.iter_mut().find(|p| p.group.name == *name) {
                pattern.entries.push(PatternEntry {
                    index,
                    entry: entry.clone(),
                    id,
                    state,
                });
            }
        }
        let configured_retries = settings.num_retries.or(config.litellm_settings.num_retries);
        for group in groups
            .values_mut()
            .chain(patterns.iter_mut().map(|p| &mut p.group))
        {
            // Router and LiteLLM settings win; else the most any deployment asks for.
            group.num_retries = configured_retries.unwrap_or_else(|| {
                group
                    .deployments
                    .iter()
                    .filter_map(|d| d.max_retries)
                    .max()
                    .unwrap_or(0)
            });
        }
        sort_patterns(&mut patterns);
        let mut router = Self {
            groups,
            patterns,
            matched: MatchedCache::default(),
            aliases: FastMap::default(),
            order,
            settings: build,
            strategy: strategy(settings.routing_strategy.as_deref())?,
            cooldown: CooldownPolicy {
                allowed_fails: settings
                    .allowed_fails
                    .unwrap_or(CooldownPolicy::default().allowed_fails),
                cooldown_time: seconds("cooldown_time", settings.cooldown_time)?
                    .unwrap_or(CooldownPolicy::default().cooldown_time),
            },
            min_retry_wait: seconds("retry_after", settings.retry_after)?.unwrap_or_default(),
            fallbacks: FallbackTables::from_config(config),
            drop_params: config.litellm_settings.drop_params,
        };
        router.add_aliases(config);
        router.warn_about_fallbacks();
        Ok(router)
    }

    /// `model_group_alias`: each alias names a group (or a wildcard route's match); visible
    /// ones are listed by `GET /v1/models`.
    fn add_aliases(&mut self, config: &Config) {
        for (alias, target) in &config.router_settings.model_group_alias {
            if self.groups.contains_key(alias) {
                tracing::warn!(alias = %alias, "router_settings.model_group_alias: a model group has this name; the group wins");
                continue;
            }
            self.aliases
                .insert(alias.clone(), target.group().to_owned());
            if self.resolve(alias).is_none() {
                tracing::warn!(alias = %alias, target = %target.group(),
                    "router_settings.model_group_alias: no model group of that name; requests for the alias get 400");
            }
            if !target.hidden() {
                self.order.push(alias.clone());
            }
        }
    }

    fn warn_about_fallbacks(&self) {
        for (kind, from, targets) in self.fallbacks.entries() {
            if from != ANY_MODEL && self.resolve(from).is_none() && !is_pattern(from) {
                tracing::warn!(model = %from, "{kind}: no model group of that name");
            }
            for target in targets.iter().filter(|t| self.resolve(t).is_none()) {
                tracing::warn!(model = %target, "{kind}: fallback to a model group that does not exist; it will be skipped");
            }
        }
    }
}

fn strategy(name: Option<&str>) -> Result<Strategy> {
    match name {
        // LiteLLM strategies we do not implement: a LiteLLM config must still start.
        Some(name @ ("usage-based-routing" | "usage-based-routing-v2" | "cost-based-routing")) => {
            tracing::warn!(
                strategy = name,
                "router_settings.routing_strategy is not implemented; using simple-shuffle"
            );
            Ok(Strategy::default())
        }
        Some(name) => name.parse(),
        None => Ok(Strategy::default()),
    }
}

fn seconds(setting: &str, value: Option<f64>) -> Result<Option<Duration>> {
    // `try_from`: a finite number past `Duration`'s range (1e20) would panic.
    value
        .map(|seconds| {
            Duration::try_from_secs_f64(seconds).map_err(|_| {
                Error::Config(format!(
                    "router_settings.{setting} must be a non-negative number"
                ))
            })
        })
        .transpose()
}
