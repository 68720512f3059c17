//! What a LiteLLM deployment set that vaultgate carries over differently or not at all,
//! counted per kind so the operator reads one line per thing, never a silent drop.

use std::collections::BTreeMap;

use super::rows::Row;

/// Things worth telling the operator, each with how many rows it concerns: (what, in the
/// plural) → (what happened, count).
#[derive(Debug, Default)]
pub struct Notes(pub BTreeMap<(&'static str, String), usize>);

impl Notes {
    pub fn add(&mut self, rows: &'static str, note: String) {
        *self.0.entry((rows, note)).or_default() += 1;
    }

    /// `3 keys with …`, `1 key with …`.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|((rows, note), &n)| {
                let rows = if n == 1 {
                    rows.strip_suffix('s').unwrap_or(rows)
                } else {
                    rows
                };
                format!("{n} {rows} {note}")
            })
            .collect()
    }
}

/// LiteLLM columns vaultgate has no place for, per table: (column, what it is).
pub const KEY_EXTRAS: &[(&str, &str)] = &[
    (
        "organization_id",
        "an organization on the key itself (its team's organization still applies)",
    ),
    ("model_max_budget", "per-model budgets"),
    ("budget_limits", "per-model budget limits"),
    ("aliases", "model aliases"),
    ("config", "per-key config"),
    ("permissions", "per-key permissions"),
    ("allowed_routes", "allowed routes"),
    ("allowed_cache_controls", "allowed cache controls"),
    (
        "object_permission_id",
        "MCP / vector store / agent permissions",
    ),
    ("project_id", "a project"),
    ("agent_id", "an agent"),
    ("policies", "guardrail policies"),
    ("access_group_ids", "access groups"),
    ("router_settings", "router settings"),
    ("auto_rotate", "automatic rotation"),
];
pub const TEAM_EXTRAS: &[(&str, &str)] = &[
    ("soft_budget", "a soft budget (alerts)"),
    ("model_max_budget", "per-model budgets"),
    ("budget_limits", "per-model budget limits"),
    ("model_id", "team model aliases"),
    ("router_settings", "router settings"),
    (
        "object_permission_id",
        "MCP / vector store / agent permissions",
    ),
    ("team_member_permissions", "member permissions"),
    ("access_group_ids", "access groups"),
    ("policies", "guardrail policies"),
    ("default_team_member_models", "default member models"),
];
pub const USER_EXTRAS: &[(&str, &str)] = &[
    ("model_max_budget", "per-model budgets"),
    ("sso_user_id", "an SSO identity"),
    ("allowed_cache_controls", "allowed cache controls"),
    (
        "object_permission_id",
        "MCP / vector store / agent permissions",
    ),
    ("policies", "guardrail policies"),
];
pub const ORG_EXTRAS: &[(&str, &str)] = &[(
    "object_permission_id",
    "MCP / vector store / agent permissions",
)];
pub const BUDGET_EXTRAS: &[(&str, &str)] = &[("allowed_models", "allowed models")];
pub const END_USER_EXTRAS: &[(&str, &str)] = &[(
    "object_permission_id",
    "MCP / vector store / agent permissions",
)];

pub fn note_extras(row: &Row<'_>, kind: &'static str, extras: &[(&str, &str)], notes: &mut Notes) {
    for (column, what) in extras {
        if row.is_set(column) {
            notes.add(
                kind,
                format!("with {column} ({what}): not carried over, vaultgate has no equivalent"),
            );
        }
    }
}
