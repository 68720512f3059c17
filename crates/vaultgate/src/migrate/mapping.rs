//! LiteLLM's rows to vaultgate's records. Keys keep their `token` (the SHA-256 hex of the raw
//! key, which is what vaultgate stores too), so the raw keys people hold keep working. What a
//! LiteLLM deployment set and vaultgate has no place for is counted in [`Notes`], never dropped
//! silently.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use vaultgate_core::Result;
use vaultgate_keys::import::Snapshot;
use vaultgate_keys::{
    BudgetRecord, Caps, EndUserRecord, KeyRecord, MemberRecord, OrgMemberRecord, OrgRecord, Role,
    TeamRecord, TeamRole, UserRecord, hash_key,
};

use super::notes::{
    BUDGET_EXTRAS, END_USER_EXTRAS, KEY_EXTRAS, Notes, ORG_EXTRAS, TEAM_EXTRAS, USER_EXTRAS,
    note_extras,
};
use super::rows::Row;

/// The rows of each LiteLLM table, as JSON objects.
#[derive(Debug, Default)]
pub struct Tables {
    pub budgets: Vec<Map<String, Value>>,
    pub organizations: Vec<Map<String, Value>>,
    pub organization_members: Vec<Map<String, Value>>,
    pub teams: Vec<Map<String, Value>>,
    pub team_members: Vec<Map<String, Value>>,
    pub users: Vec<Map<String, Value>>,
    pub end_users: Vec<Map<String, Value>>,
    pub keys: Vec<Map<String, Value>>,
}

/// Every table mapped, or the first row that cannot be read.
pub fn snapshot(tables: &Tables) -> Result<(Snapshot, Notes)> {
    let mut notes = Notes::default();
    let mut snapshot = Snapshot::default();
    // The reset time of each shared budget: LiteLLM keeps it on the budget, vaultgate on
    // whoever points to one.
    let mut budget_resets: HashMap<String, Option<i64>> = HashMap::new();
    let mut budgets: HashMap<String, Caps> = HashMap::new();
    for fields in &tables.budgets {
        let row = Row {
            table: "LiteLLM_BudgetTable",
            fields,
        };
        note_extras(&row, "budgets", BUDGET_EXTRAS, &mut notes);
        let record = budget(&row)?;
        budget_resets.insert(record.budget_id.clone(), row.time("budget_reset_at")?);
        budgets.insert(record.budget_id.clone(), record.caps.clone());
        snapshot.budgets.push(record);
    }
    let reset_of = |id: &Option<String>| {
        id.as_ref()
            .and_then(|id| budget_resets.get(id).copied())
            .flatten()
    };
    for fields in &tables.organizations {
        let row = Row {
            table: "LiteLLM_OrganizationTable",
            fields,
        };
        note_extras(&row, "organizations", ORG_EXTRAS, &mut notes);
        let (created_at, updated_at) = times(&row)?;
        let budget_id = row.text("budget_id");
        snapshot.organizations.push(OrgRecord {
            organization_id: row.required("organization_id")?,
            organization_alias: row
                .text("organization_alias")
                .unwrap_or_else(|| row.text("organization_id").unwrap_or_default()),
            budget_reset_at: reset_of(&budget_id),
            budget_id,
            metadata: row.object("metadata"),
            models: row.list("models"),
            spend: row.float("spend").unwrap_or(0.0),
            created_at,
            created_by: row.text("created_by").unwrap_or_default(),
            updated_at,
            updated_by: row.text("updated_by").unwrap_or_default(),
        });
    }
    for fields in &tables.organization_members {
        let row = Row {
            table: "LiteLLM_OrganizationMembership",
            fields,
        };
        let (created_at, updated_at) = times(&row)?;
        snapshot.organization_members.push(OrgMemberRecord {
            organization_id: row.required("organization_id")?,
            user_id: row.required("user_id")?,
            user_role: row
                .text("user_role")
                .unwrap_or_else(|| "internal_user".into()),
            spend: row.float("spend").unwrap_or(0.0),
            budget_id: row.text("budget_id"),
            created_at,
            updated_at,
        });
    }
    let mut users = Vec::new();
    for fields in &tables.users {
        let row = Row {
            table: "LiteLLM_UserTable",
            fields,
        };
        note_extras(&row, "users", USER_EXTRAS, &mut notes);
        users.push(user(&row, &mut notes)?);
    }
    let emails: HashMap<String, String> = users
        .iter()
        .filter_map(|u| Some((u.user_email.clone()?.to_lowercase(), u.user_id.clone())))
        .collect();
    let mut members: BTreeMap<(String, String), MemberRecord> = BTreeMap::new();
    for fields in &tables.teams {
        let row = Row {
            table: "LiteLLM_TeamTable",
            fields,
        };
        note_extras(&row, "teams", TEAM_EXTRAS, &mut notes);
        let team = team(&row)?;
        for (user_id, role) in roles(&row, &emails, &mut notes) {
            members.insert(
                (team.team_id.clone(), user_id.clone()),
                MemberRecord {
                    team_id: team.team_id.clone(),
                    user_id,
                    role,
                    spend: 0.0,
                    budget_id: None,
                    budget_reset_at: None,
                    created_at: team.created_at,
                    updated_at: team.updated_at,
                },
            );
        }
        snapshot.teams.push(team);
    }
    let team_times: HashMap<&str, (i64, i64)> = snapshot
        .teams
        .iter()
        .map(|t| (t.team_id.as_str(), (t.created_at, t.updated_at)))
        .collect();
    for fields in &tables.team_members {
        let row = Row {
            table: "LiteLLM_TeamMembership",
            fields,
        };
        let team_id = row.required("team_id")?;
        let user_id = row.required("user_id")?;
        let (created_at, updated_at) = team_times.get(team_id.as_str()).copied().unwrap_or((0, 0));
        let budget_id = row.text("budget_id");
        let member = members
            .entry((team_id.clone(), user_id.clone()))
            .or_insert_with(|| MemberRecord {
                team_id,
                user_id,
                role: TeamRole::User,
                spend: 0.0,
                budget_id: None,
                budget_reset_at: None,
                created_at,
                updated_at,
            });
        member.spend = row.float("spend").unwrap_or(0.0);
        member.budget_reset_at = reset_of(&budget_id);
        member.budget_id = budget_id;
    }
    snapshot.team_members = members.into_values().collect();
    snapshot.users = users;
    for fields in &tables.end_users {
        let row = Row {
            table: "LiteLLM_EndUserTable",
            fields,
        };
        note_extras(&row, "end users", END_USER_EXTRAS, &mut notes);
        let budget_id = row.text("budget_id");
        snapshot.end_users.push(EndUserRecord {
            user_id: row.required("user_id")?,
            alias: row.text("alias"),
            spend: row.float("spend").unwrap_or(0.0),
            allowed_model_region: row.text("allowed_model_region"),
            default_model: row.text("default_model"),
            budget_reset_at: reset_of(&budget_id),
            budget_id,
            blocked: row.flag("blocked"),
            // LiteLLM does not record when an end user appeared.
            created_at: 0,
            updated_at: 0,
        });
    }
    for fields in &tables.keys {
        let row = Row {
            table: "LiteLLM_VerificationToken",
            fields,
        };
        note_extras(&row, "keys", KEY_EXTRAS, &mut notes);
        if let Some(key) = key(&row, &budgets, &mut notes)? {
            snapshot.keys.push(key);
        }
    }
    Ok((snapshot, notes))
}

/// `created_at` and `updated_at`, each standing in for the other when missing.
fn times(row: &Row<'_>) -> Result<(i64, i64)> {
    let created = row.time("created_at")?;
    let updated = row.time("updated_at")?;
    Ok((
        created.or(updated).unwrap_or(0),
        updated.or(created).unwrap_or(0),
    ))
}

fn caps(row: &Row<'_>) -> Caps {
    Caps {
        max_budget: row.float("max_budget"),
        tpm_limit: row.count("tpm_limit"),
        rpm_limit: row.count("rpm_limit"),
        max_parallel_requests: row.count("max_parallel_requests"),
        budget_duration: row.text("budget_duration"),
    }
}

fn budget(row: &Row<'_>) -> Result<BudgetRecord> {
    let (created_at, updated_at) = times(row)?;
    Ok(BudgetRecord {
        budget_id: row.required("budget_id")?,
        caps: caps(row),
        soft_budget: row.float("soft_budget"),
        model_max_budget: row.object("model_max_budget"),
        created_at,
        created_by: row.text("created_by").unwrap_or_default(),
        updated_at,
        updated_by: row.text("updated_by").unwrap_or_default(),
    })
}

fn user(row: &Row<'_>, notes: &mut Notes) -> Result<UserRecord> {
    let (created_at, updated_at) = times(row)?;
    let role = row.text("user_role");
    let user_role = match role.as_deref() {
        None => Role::InternalUser,
        Some(text) => {
            let role = Role::from_stored(text);
            if role.as_str() != text {
                notes.add(
                    "users",
                    format!(
                        "with role {text}: imported as internal_user (vaultgate's roles are \
                         proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer)"
                    ),
                );
            }
            role
        }
    };
    Ok(UserRecord {
        user_id: row.required("user_id")?,
        user_alias: row.text("user_alias"),
        user_email: row.text("user_email"),
        user_role,
        organization_id: row.text("organization_id"),
        models: row.list("models"),
        metadata: row.object("metadata"),
        caps: caps(row),
        spend: row.float("spend").unwrap_or(0.0),
        budget_reset_at: row.time("budget_reset_at")?,
        created_at,
        updated_at,
    })
}

fn team(row: &Row<'_>) -> Result<TeamRecord> {
    let (created_at, updated_at) = times(row)?;
    let mut metadata = row.object("metadata");
    // LiteLLM keeps the default member budget in the metadata; vaultgate in a column.
    let team_member_budget_id = match metadata.remove("team_member_budget_id") {
        Some(Value::String(id)) => Some(id),
        Some(other) => {
            metadata.insert("team_member_budget_id".into(), other);
            None
        }
        None => None,
    };
    Ok(TeamRecord {
        team_id: row.required("team_id")?,
        team_alias: row.text("team_alias"),
        organization_id: row.text("organization_id"),
        metadata,
        models: row.list("models"),
        caps: caps(row),
        spend: row.float("spend").unwrap_or(0.0),
        budget_reset_at: row.time("budget_reset_at")?,
        blocked: row.flag("blocked"),
        team_member_budget_id,
        created_at,
        updated_at,
    })
}

/// A team's members and their roles: `members_with_roles` (a user named only by email is
/// found by it), else the older `admins` / `members` lists.
fn roles(
    row: &Row<'_>,
    emails: &HashMap<String, String>,
    notes: &mut Notes,
) -> Vec<(String, TeamRole)> {
    let mut out = Vec::new();
    let listed = row
        .fields
        .get("members_with_roles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for member in &listed {
        let user_id = member
            .get("user_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                let email = member.get("user_email").and_then(Value::as_str)?;
                emails.get(&email.to_lowercase()).cloned()
            });
        let Some(user_id) = user_id else {
            notes.add(
                "team members",
                "without a user id or a known email: not carried over".to_owned(),
            );
            continue;
        };
        let role = match member.get("role").and_then(Value::as_str) {
            Some("admin") => TeamRole::Admin,
            _ => TeamRole::User,
        };
        out.push((user_id, role));
    }
    if listed.is_empty() {
        out.extend(
            row.list("members")
                .into_iter()
                .map(|id| (id, TeamRole::User)),
        );
        out.extend(
            row.list("admins")
                .into_iter()
                .map(|id| (id, TeamRole::Admin)),
        );
    }
    out
}

fn key(
    row: &Row<'_>,
    budgets: &HashMap<String, Caps>,
    notes: &mut Notes,
) -> Result<Option<KeyRecord>> {
    let stored = row.required("token")?;
    let token = if stored.len() == 64 && stored.chars().all(|c| c.is_ascii_hexdigit()) {
        stored.to_ascii_lowercase()
    } else if stored.starts_with("sk-") {
        // Stored unhashed by a very old LiteLLM: the hash is what vaultgate keeps.
        notes.add(
            "keys",
            "stored unhashed by an old LiteLLM: imported by their hash".into(),
        );
        hash_key(&stored)
    } else {
        notes.add(
            "keys",
            "whose token is not a SHA-256 hex digest: skipped".into(),
        );
        return Ok(None);
    };
    let (created_at, updated_at) = times(row)?;
    let mut caps = caps(row);
    // LiteLLM applies a key's shared budget where the key sets no limit of its own.
    if let Some(budget) = row.text("budget_id").and_then(|id| budgets.get(&id)) {
        notes.add(
            "keys",
            "with a shared budget (budget_id): its limits are copied onto the key".into(),
        );
        caps.max_budget = caps.max_budget.or(budget.max_budget);
        caps.tpm_limit = caps.tpm_limit.or(budget.tpm_limit);
        caps.rpm_limit = caps.rpm_limit.or(budget.rpm_limit);
        caps.max_parallel_requests = caps.max_parallel_requests.or(budget.max_parallel_requests);
        caps.budget_duration = caps.budget_duration.or(budget.budget_duration.clone());
    }
    let metadata = row.object("metadata");
    let tags = metadata
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(KeyRecord {
        // The first token is the key's stable id: a second run finds the key by it.
        key_id: token.clone(),
        key_name: row.text("key_name").unwrap_or_else(|| "sk-...".into()),
        token,
        key_alias: row.text("key_alias"),
        models: row.list("models"),
        max_budget: caps.max_budget,
        budget_duration: caps.budget_duration,
        budget_reset_at: row.time("budget_reset_at")?,
        spend: row.float("spend").unwrap_or(0.0),
        metadata,
        tpm_limit: caps.tpm_limit,
        rpm_limit: caps.rpm_limit,
        max_parallel_requests: caps.max_parallel_requests,
        user_id: row.text("user_id"),
        team_id: row.text("team_id"),
        tags,
        blocked: row.flag("blocked"),
        expires: row.time("expires")?,
        created_at,
        updated_at,
        // LiteLLM keeps only the hash: there is no raw key to put in Vault.
        vault_secret_name: None,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn rows(values: Value) -> Vec<Map<String, Value>> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_object().cloned().unwrap())
            .collect()
    }

    #[test]
    fn every_table_maps() {
        let raw = "sk-test-1234567890abcdefghijkl";
        let tables = Tables {
            budgets: rows(
                json!([{"budget_id": "b1", "max_budget": 5.0, "rpm_limit": 7,
                "budget_duration": "30d", "budget_reset_at": "2030-01-01T00:00:00",
                "created_at": "2024-01-01T00:00:00", "created_by": "admin",
                "updated_at": "2024-01-02T00:00:00", "updated_by": "admin",
                "allowed_models": ["gpt-4o"]}]),
            ),
            organizations: rows(
                json!([{"organization_id": "o1", "organization_alias": "Org",
                "budget_id": "b1", "models": [], "spend": 1.5, "metadata": {},
                "created_at": "2024-01-01T00:00:00", "updated_at": null}]),
            ),
            teams: rows(
                json!([{"team_id": "t1", "team_alias": "Team", "models": ["gpt-4o"],
                "metadata": {"team_member_budget_id": "b1", "x": 1}, "spend": 2.0,
                "blocked": true, "members_with_roles": [
                    {"user_id": "u1", "role": "admin"},
                    {"user_id": null, "user_email": "U2@example.com", "role": "user"},
                    {"user_email": "nobody@example.com", "role": "user"}],
                "soft_budget": 3.0,
                "created_at": "2024-01-01T00:00:00", "updated_at": "2024-01-01T00:00:00"}]),
            ),
            team_members: rows(json!([{"team_id": "t1", "user_id": "u2", "spend": 0.25,
                "budget_id": "b1"}])),
            users: rows(
                json!([{"user_id": "u1", "user_role": "proxy_admin", "models": []},
                {"user_id": "u2", "user_email": "u2@example.com", "user_role": "customer"}]),
            ),
            end_users: rows(json!([{"user_id": "e1", "budget_id": "b1", "spend": 0.5,
                "blocked": false}])),
            keys: rows(json!([
                {"token": hash_key(raw).to_uppercase(), "key_name": "sk-...ijkl",
                 "models": ["gpt-4o"], "spend": 0.75, "metadata": {"tags": ["a", 1]},
                 "budget_id": "b1", "tpm_limit": 100, "blocked": null,
                 "expires": "2031-01-01T00:00:00.500", "aliases": {"m": "n"}},
                {"token": raw},
                {"token": "not-a-hash"}])),
            organization_members: rows(json!([{"organization_id": "o1", "user_id": "u1",
                "user_role": null, "spend": null}])),
        };
        let (s, notes) = snapshot(&tables).unwrap();
        assert_eq!(
            s.organizations[0].budget_reset_at,
            s.end_users[0].budget_reset_at
        );
        assert!(s.organizations[0].budget_reset_at.is_some());
        assert_eq!(s.organizations[0].updated_at, s.organizations[0].created_at);
        let team = &s.teams[0];
        assert_eq!(team.team_member_budget_id.as_deref(), Some("b1"));
        assert!(!team.metadata.contains_key("team_member_budget_id") && team.blocked);
        let members: Vec<_> = s
            .team_members
            .iter()
            .map(|m| (m.user_id.as_str(), m.role, m.spend, m.budget_id.as_deref()))
            .collect();
        assert_eq!(
            members,
            [
                ("u1", TeamRole::Admin, 0.0, None),
                ("u2", TeamRole::User, 0.25, Some("b1"))
            ]
        );
        assert_eq!(s.users[0].user_role, Role::ProxyAdmin);
        assert_eq!(s.users[1].user_role, Role::InternalUser);
        assert_eq!(s.organization_members[0].user_role, "internal_user");
        assert_eq!(s.keys.len(), 2);
        let key = &s.keys[0];
        assert_eq!(key.token, hash_key(raw));
        assert_eq!(key.key_id, key.token);
        assert_eq!(key.tags, ["a"]);
        assert_eq!(
            (key.max_budget, key.rpm_limit, key.tpm_limit),
            (Some(5.0), Some(7), Some(100))
        );
        assert_eq!(key.expires, Some(1_924_992_000_500));
        assert!(!key.blocked && key.vault_secret_name.is_none());
        assert_eq!(s.keys[1].token, hash_key(raw));
        let notes = notes.lines();
        for expected in [
            "aliases",
            "soft_budget",
            "allowed_models",
            "unhashed",
            "not a SHA-256",
            "1 user with role customer",
            "without a user id",
            "1 key with a shared budget",
        ] {
            assert!(
                notes.iter().any(|n| n.contains(expected)),
                "{expected}: {notes:?}"
            );
        }
    }
}
