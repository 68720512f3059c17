//! What one model request answers to besides its key: the key's team (and the user's membership
//! in it), the team's organization, the key's user and the request's end user, each with its
//! limits, as the directory holds them. Resolved per request from memory only.

use std::sync::Arc;

use vaultgate_core::Error;

use super::directory::{Directory, Scope, TeamEntry, Tracked};
use super::model::{BudgetRecord, Caps, EndUserRecord, MemberRecord, OrgRecord, Role, UserRecord};
use crate::live::Live;
use crate::model::{ALL_PROXY_MODELS, KeyRecord, model_matches, parse_duration};

#[derive(Default)]
pub(crate) struct Chain {
    pub team: Option<Arc<TeamEntry>>,
    pub member: Option<Arc<Tracked<MemberRecord>>>,
    pub member_budget: Option<Arc<BudgetRecord>>,
    pub user: Option<Arc<Tracked<UserRecord>>>,
    pub org: Option<Arc<Tracked<OrgRecord>>>,
    pub org_budget: Option<Arc<BudgetRecord>>,
    pub end_user: Option<Arc<Tracked<EndUserRecord>>>,
    pub end_user_budget: Option<Arc<BudgetRecord>>,
}

/// Who a limit belongs to, for the messages of rejections.
#[derive(Clone, Copy)]
pub(crate) enum Label<'a> {
    Key(&'a str),
    Team(&'a str),
    Org(&'a str),
    User(&'a str),
    Member { user: &'a str, team: &'a str },
    EndUser(&'a str),
}

impl Label<'_> {
    /// LiteLLM's budget message of each object.
    pub fn budget_exceeded(self, spend: f64, max: f64) -> Error {
        let message = match self {
            Label::Key(_) => {
                format!("Budget has been exceeded! Current cost: {spend}, Max budget: {max}")
            }
            Label::Team(id) => format!(
                "Budget has been exceeded! Team={id} Current cost: {spend}, Max budget: {max}"
            ),
            Label::Org(id) => format!(
                "Budget has been exceeded! Organization={id} Current cost: {spend}, Max budget: \
                 {max}"
            ),
            Label::User(id) => {
                format!("ExceededBudget: User={id} over budget. Spend={spend}, Budget={max}")
            }
            Label::Member { user, team } => format!(
                "Budget has been exceeded! User={user} in Team={team} Current cost: {spend}, Max \
                 budget: {max}"
            ),
            Label::EndUser(id) => {
                format!("ExceededBudget: End User={id} over budget. Spend={spend}, Budget={max}")
            }
        };
        Error::BudgetExceeded(message)
    }

    /// `metrics` label of the object's kind.
    pub fn kind(self) -> &'static str {
        match self {
            Label::Key(_) => "key",
            Label::Team(_) => "team",
            Label::Org(_) => "organization",
            Label::User(_) => "user",
            Label::Member { .. } => "team_member",
            Label::EndUser(_) => "end_user",
        }
    }
}

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Key(name) => write!(f, "key {name}"),
            Label::Team(id) => write!(f, "team {id}"),
            Label::Org(id) => write!(f, "organization {id}"),
            Label::User(id) => write!(f, "user {id}"),
            Label::Member { user, team } => write!(f, "user {user} in team {team}"),
            Label::EndUser(id) => write!(f, "end user {id}"),
        }
    }
}

/// The limits of one object, as plain numbers.
#[derive(Clone, Copy, Default)]
pub(crate) struct Limit {
    pub max_budget: Option<f64>,
    pub tpm_limit: Option<u64>,
    pub rpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    /// Length of the budget period in ms.
    pub period_ms: Option<i64>,
}

impl Limit {
    pub fn of(caps: &Caps) -> Self {
        Self {
            max_budget: caps.max_budget,
            tpm_limit: caps.tpm_limit,
            rpm_limit: caps.rpm_limit,
            max_parallel_requests: caps.max_parallel_requests,
            period_ms: caps.budget_duration.as_deref().and_then(parse_duration),
        }
    }

    pub fn of_key(key: &KeyRecord) -> Self {
        Self {
            max_budget: key.max_budget,
            tpm_limit: key.tpm_limit,
            rpm_limit: key.rpm_limit,
            max_parallel_requests: key.max_parallel_requests,
            period_ms: key.budget_duration.as_deref().and_then(parse_duration),
        }
    }
}

/// One object a request answers to: its limits, live state and where its spend goes.
pub(crate) struct Subject<'a> {
    pub label: Label<'a>,
    pub limit: Limit,
    pub live: &'a Arc<Live>,
    /// `None` for the key itself (the spend writer knows keys by id).
    pub scope: Option<&'a Scope>,
}

/// The most objects a request answers to: key, team, organization, user, member, end user.
pub(crate) const MAX_SUBJECTS: usize = 6;

impl Directory {
    /// The objects of `key` (and of the request's `end_user`) known to this directory.
    pub fn chain(&self, key: &KeyRecord, end_user: Option<&str>) -> Chain {
        let mut chain = Chain::default();
        if let Some(team_id) = &key.team_id {
            chain.team = self.team(team_id);
        }
        if let Some(user_id) = &key.user_id {
            chain.user = self.user(user_id);
            if let Some(team) = &chain.team {
                chain.member = team.members.get(user_id).cloned();
                let budget_id = chain
                    .member
                    .as_ref()
                    .and_then(|m| m.record.budget_id.as_deref())
                    .or(team.team.record.team_member_budget_id.as_deref());
                chain.member_budget = budget_id.and_then(|id| self.budget(id));
            }
        }
        if let Some(org_id) = chain
            .team
            .as_ref()
            .and_then(|t| t.team.record.organization_id.as_deref())
        {
            chain.org = self.org(org_id);
            chain.org_budget = chain
                .org
                .as_ref()
                .and_then(|o| o.record.budget_id.as_deref())
                .and_then(|id| self.budget(id));
        }
        if let Some(id) = end_user {
            chain.end_user = self.end_user(id);
            chain.end_user_budget = chain
                .end_user
                .as_ref()
                .and_then(|e| e.record.budget_id.as_deref())
                .and_then(|id| self.budget(id));
        }
        chain
    }

    /// The role of the user a key belongs to (`None`: a key without a known user).
    pub fn role_of(&self, key: &KeyRecord) -> Option<Role> {
        key.user_id
            .as_deref()
            .and_then(|id| self.user(id))
            .map(|u| u.record.user_role)
    }
}

fn budget_limit(budget: Option<&Arc<BudgetRecord>>) -> Limit {
    budget.map(|b| Limit::of(&b.caps)).unwrap_or_default()
}

impl Chain {
    /// Every object of the request with its limits, in the order limits are checked (and live
    /// states locked): key, team, organization, user, team member, end user.
    pub fn subjects<'a>(
        &'a self,
        key: &'a KeyRecord,
        key_live: &'a Arc<Live>,
    ) -> [Option<Subject<'a>>; MAX_SUBJECTS] {
        let team = self.team.as_ref().map(|t| Subject {
            label: Label::Team(&t.team.record.team_id),
            limit: Limit::of(&t.team.record.caps),
            live: &t.team.live,
            scope: Some(&t.team.scope),
        });
        let org = self.org.as_ref().map(|o| Subject {
            label: Label::Org(&o.record.organization_id),
            limit: budget_limit(self.org_budget.as_ref()),
            live: &o.live,
            scope: Some(&o.scope),
        });
        let user = self.user.as_ref().map(|u| Subject {
            label: Label::User(&u.record.user_id),
            limit: Limit::of(&u.record.caps),
            live: &u.live,
            scope: Some(&u.scope),
        });
        let member = self.member.as_ref().map(|m| Subject {
            label: Label::Member {
                user: &m.record.user_id,
                team: &m.record.team_id,
            },
            limit: budget_limit(self.member_budget.as_ref()),
            live: &m.live,
            scope: Some(&m.scope),
        });
        let end_user = self.end_user.as_ref().map(|e| Subject {
            label: Label::EndUser(&e.record.user_id),
            limit: budget_limit(self.end_user_budget.as_ref()),
            live: &e.live,
            scope: Some(&e.scope),
        });
        [
            Some(Subject {
                label: Label::Key(&key.key_name),
                limit: Limit::of_key(key),
                live: key_live,
                scope: None,
            }),
            team,
            org,
            user,
            member,
            end_user,
        ]
    }

    /// 401 when the key's team is blocked (LiteLLM's wording).
    pub fn check_team_blocked(&self) -> Result<(), Error> {
        match &self.team {
            Some(team) if team.team.record.blocked => Err(Error::Unauthorized(format!(
                "Authentication Error, Team={} is blocked. Update via `/team/unblock` if you're \
                 an admin.",
                team.team.record.team_id
            ))),
            _ => Ok(()),
        }
    }

    /// 401 when the request's end user is blocked.
    pub fn check_end_user_blocked(&self) -> Result<(), Error> {
        match &self.end_user {
            Some(end_user) if end_user.record.blocked => Err(Error::Unauthorized(format!(
                "Authentication Error, End User={} is blocked. Update via `/end_user/unblock` if \
                 you're an admin.",
                end_user.record.user_id
            ))),
            _ => Ok(()),
        }
    }

    /// The team's models (a team key), else the user's (a personal key): LiteLLM's 401 when
    /// `model` is not among them. Empty lists allow every model.
    pub fn check_model(&self, model: &str) -> Result<(), Error> {
        if let Some(team) = &self.team {
            let models = &team.team.record.models;
            if !list_allows(models, model) {
                return Err(Error::ModelAccessDenied {
                    kind: "team_model_access_denied",
                    message: format!(
                        "Team not allowed to access model. Team={}, Model={model}. Allowed team \
                         models = [{}]",
                        team.team.record.team_id,
                        python_list(models)
                    ),
                });
            }
        } else if let Some(user) = &self.user {
            let models = &user.record.models;
            if !list_allows(models, model) {
                return Err(Error::ModelAccessDenied {
                    kind: "user_model_access_denied",
                    message: format!(
                        "User not allowed to access model. User={}, Model={model}. Allowed user \
                         models = [{}]",
                        user.record.user_id,
                        python_list(models)
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether the team's (or the personal key's user's) models allow `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.check_model(model).is_ok()
    }
}

/// An allow-list: empty, `all-proxy-models`, `*`, or an entry matching `model`.
pub(crate) fn list_allows(models: &[String], model: &str) -> bool {
    models.is_empty()
        || models
            .iter()
            .any(|m| m == ALL_PROXY_MODELS || m == "*" || model_matches(m, model))
}

/// Python's list repr of strings, as LiteLLM prints lists in messages.
pub(crate) fn python_list(items: &[String]) -> String {
    items
        .iter()
        .map(|m| format!("'{m}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
