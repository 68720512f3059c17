//! The records of the management plane (LiteLLM's team, user, organization, end-user and budget
//! tables) and their LiteLLM-shaped JSON.

use std::fmt;

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use crate::model::format_ms;

/// A proxy-wide role of an internal user (LiteLLM's `LitellmUserRoles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    ProxyAdmin,
    ProxyAdminViewer,
    InternalUser,
    InternalUserViewer,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::ProxyAdmin,
        Role::ProxyAdminViewer,
        Role::InternalUser,
        Role::InternalUserViewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProxyAdmin => "proxy_admin",
            Role::ProxyAdminViewer => "proxy_admin_viewer",
            Role::InternalUser => "internal_user",
            Role::InternalUserViewer => "internal_user_viewer",
        }
    }

    /// Parses a role given by a client: a 400 naming the valid ones otherwise.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text.trim())
            .ok_or_else(|| {
                Error::bad_param(
                    field,
                    format!(
                        "{field} '{}' is not a role; use one of proxy_admin, proxy_admin_viewer, \
                         internal_user, internal_user_viewer",
                        text.chars().take(40).collect::<String>()
                    ),
                )
            })
    }

    /// A stored role; an unknown one counts as `internal_user` (as LiteLLM reads it).
    pub fn from_stored(text: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .unwrap_or(Role::InternalUser)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role in a team (`members_with_roles[].role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamRole {
    Admin,
    User,
}

impl TeamRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Admin => "admin",
            TeamRole::User => "user",
        }
    }

    pub fn parse(field: &str, text: &str) -> Result<Self> {
        match text.trim() {
            "admin" => Ok(TeamRole::Admin),
            "user" => Ok(TeamRole::User),
            other => Err(Error::bad_param(
                field,
                format!(
                    "{field} '{}' is not a team role; use admin or user",
                    other.chars().take(40).collect::<String>()
                ),
            )),
        }
    }

    pub fn from_stored(text: &str) -> Self {
        if text == "admin" {
            TeamRole::Admin
        } else {
            TeamRole::User
        }
    }
}

/// The limits every budgeted object can carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Caps {
    pub max_budget: Option<f64>,
    pub tpm_limit: Option<u64>,
    pub rpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    pub budget_duration: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TeamRecord {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub organization_id: Option<String>,
    pub metadata: Map<String, Value>,
    /// Allowed models; empty means all.
    pub models: Vec<String>,
    pub caps: Caps,
    pub spend: f64,
    pub budget_reset_at: Option<i64>,
    pub blocked: bool,
    pub team_member_budget_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberRecord {
    pub team_id: String,
    pub user_id: String,
    pub role: TeamRole,
    pub spend: f64,
    pub budget_id: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub user_id: String,
    pub user_alias: Option<String>,
    pub user_email: Option<String>,
    pub user_role: Role,
    pub organization_id: Option<String>,
    pub models: Vec<String>,
    pub metadata: Map<String, Value>,
    pub caps: Caps,
    pub spend: f64,
    pub budget_reset_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRecord {
    pub budget_id: String,
    pub caps: Caps,
    pub soft_budget: Option<f64>,
    pub model_max_budget: Map<String, Value>,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrgRecord {
    pub organization_id: String,
    pub organization_alias: String,
    pub budget_id: Option<String>,
    pub metadata: Map<String, Value>,
    pub models: Vec<String>,
    pub spend: f64,
    pub budget_reset_at: Option<i64>,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrgMemberRecord {
    pub organization_id: String,
    pub user_id: String,
    /// `org_admin`, `internal_user` or `internal_user_viewer`.
    pub user_role: String,
    pub spend: f64,
    pub budget_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndUserRecord {
    pub user_id: String,
    pub alias: Option<String>,
    pub spend: f64,
    pub allowed_model_region: Option<String>,
    pub default_model: Option<String>,
    pub budget_id: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub blocked: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(format_ms(ms)))
}

impl Caps {
    /// The limit fields as LiteLLM names them, into `obj`.
    pub fn write_into(&self, obj: &mut Map<String, Value>) {
        obj.insert("max_budget".into(), json!(self.max_budget));
        obj.insert("tpm_limit".into(), json!(self.tpm_limit));
        obj.insert("rpm_limit".into(), json!(self.rpm_limit));
        obj.insert(
            "max_parallel_requests".into(),
            json!(self.max_parallel_requests),
        );
        obj.insert("budget_duration".into(), json!(self.budget_duration));
    }
}

impl TeamRecord {
    /// `LiteLLM_TeamTable`: `members_with_roles` from the memberships and their users' emails;
    /// `team_member_budget_table` when the team has a default member budget.
    pub fn to_json(
        &self,
        members: &[(MemberRecord, Option<String>)],
        member_budget: Option<&BudgetRecord>,
    ) -> Value {
        let members_with_roles: Vec<Value> = members
            .iter()
            .map(|(m, email)| json!({"user_id": m.user_id, "user_email": email, "role": m.role.as_str()}))
            .collect();
        let admins: Vec<&str> = members
            .iter()
            .filter(|(m, _)| m.role == TeamRole::Admin)
            .map(|(m, _)| m.user_id.as_str())
            .collect();
        let all: Vec<&str> = members.iter().map(|(m, _)| m.user_id.as_str()).collect();
        let mut obj = Map::new();
        obj.insert("team_id".into(), json!(self.team_id));
        obj.insert("team_alias".into(), json!(self.team_alias));
        obj.insert("organization_id".into(), json!(self.organization_id));
        obj.insert("admins".into(), json!(admins));
        obj.insert("members".into(), json!(all));
        obj.insert("members_with_roles".into(), json!(members_with_roles));
        obj.insert("metadata".into(), Value::Object(self.metadata.clone()));
        obj.insert("models".into(), json!(self.models));
        self.caps.write_into(&mut obj);
        obj.insert("spend".into(), json!(self.spend));
        obj.insert("budget_reset_at".into(), time(self.budget_reset_at));
        obj.insert("blocked".into(), json!(self.blocked));
        obj.insert(
            "team_member_budget_table".into(),
            member_budget.map_or(Value::Null, BudgetRecord::to_json),
        );
        obj.insert("created_at".into(), time(Some(self.created_at)));
        obj.insert("updated_at".into(), time(Some(self.updated_at)));
        Value::Object(obj)
    }
}

impl MemberRecord {
    /// `LiteLLM_TeamMembership` with its budget.
    pub fn to_json(&self, budget: Option<&BudgetRecord>) -> Value {
        json!({
            "team_id": self.team_id,
            "user_id": self.user_id,
            "role": self.role.as_str(),
            "spend": self.spend,
            "budget_id": self.budget_id,
            "budget_reset_at": time(self.budget_reset_at),
            "litellm_budget_table": budget.map_or(Value::Null, BudgetRecord::to_json),
        })
    }
}

impl UserRecord {
    /// A new internal user without limits.
    pub fn new(user_id: String, user_email: Option<String>, now: i64) -> Self {
        Self {
            user_id,
            user_alias: None,
            user_email,
            user_role: Role::InternalUser,
            organization_id: None,
            models: Vec::new(),
            metadata: Map::new(),
            caps: Caps::default(),
            spend: 0.0,
            budget_reset_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// `LiteLLM_UserTable`; `teams` are the team ids of the user's memberships.
    pub fn to_json(&self, teams: &[String]) -> Value {
        let mut obj = Map::new();
        obj.insert("user_id".into(), json!(self.user_id));
        obj.insert("user_alias".into(), json!(self.user_alias));
        obj.insert("user_email".into(), json!(self.user_email));
        obj.insert("user_role".into(), json!(self.user_role.as_str()));
        obj.insert("organization_id".into(), json!(self.organization_id));
        obj.insert("teams".into(), json!(teams));
        obj.insert("models".into(), json!(self.models));
        obj.insert("metadata".into(), Value::Object(self.metadata.clone()));
        self.caps.write_into(&mut obj);
        obj.insert("spend".into(), json!(self.spend));
        obj.insert("budget_reset_at".into(), time(self.budget_reset_at));
        obj.insert("created_at".into(), time(Some(self.created_at)));
        obj.insert("updated_at".into(), time(Some(self.updated_at)));
        Value::Object(obj)
    }
}

impl BudgetRecord {
    /// `LiteLLM_BudgetTable`.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("budget_id".into(), json!(self.budget_id));
        self.caps.write_into(&mut obj);
        obj.insert("soft_budget".into(), json!(self.soft_budget));
        obj.insert(
            "model_max_budget".into(),
            Value::Object(self.model_max_budget.clone()),
        );
        obj.insert("created_at".into(), time(Some(self.created_at)));
        obj.insert("created_by".into(), json!(self.created_by));
        obj.insert("updated_at".into(), time(Some(self.updated_at)));
        obj.insert("updated_by".into(), json!(self.updated_by));
        Value::Object(obj)
    }
}

impl OrgRecord {
    /// `LiteLLM_OrganizationTable` with its budget, teams and members.
    pub fn to_json(
        &self,
        budget: Option<&BudgetRecord>,
        teams: &[Value],
        members: &[Value],
    ) -> Value {
        json!({
            "organization_id": self.organization_id,
            "organization_alias": self.organization_alias,
            "budget_id": self.budget_id,
            "metadata": self.metadata,
            "models": self.models,
            "spend": self.spend,
            "budget_reset_at": time(self.budget_reset_at),
            "litellm_budget_table": budget.map_or(Value::Null, BudgetRecord::to_json),
            "teams": teams,
            "members": members,
            "created_at": time(Some(self.created_at)),
            "created_by": self.created_by,
            "updated_at": time(Some(self.updated_at)),
            "updated_by": self.updated_by,
        })
    }
}

impl OrgMemberRecord {
    pub fn to_json(&self, user_email: Option<&str>) -> Value {
        json!({
            "organization_id": self.organization_id,
            "user_id": self.user_id,
            "user_email": user_email,
            "user_role": self.user_role,
            "spend": self.spend,
            "budget_id": self.budget_id,
            "created_at": time(Some(self.created_at)),
            "updated_at": time(Some(self.updated_at)),
        })
    }
}

impl EndUserRecord {
    /// `LiteLLM_EndUserTable` with its budget.
    pub fn to_json(&self, budget: Option<&BudgetRecord>) -> Value {
        json!({
            "user_id": self.user_id,
            "alias": self.alias,
            "spend": self.spend,
            "allowed_model_region": self.allowed_model_region,
            "default_model": self.default_model,
            "budget_id": self.budget_id,
            "budget_reset_at": time(self.budget_reset_at),
            "blocked": self.blocked,
            "litellm_budget_table": budget.map_or(Value::Null, BudgetRecord::to_json),
        })
    }
}
