//! Who may call which management route: one table of routes and their kind of access, one
//! table of what each caller may do with each kind (LiteLLM's roles), and the object checks for
//! the routes where callers may act on their own things only.

use std::sync::Arc;

use vaultgate_core::{Error, Result};

use super::directory::{Directory, TeamEntry};
use super::model::{Role, TeamRole};
use crate::model::KeyRecord;

/// The authenticated caller of a management route, as the server resolved it.
#[derive(Clone)]
pub enum Caller {
    /// The master key (or an open gateway without one).
    Master,
    /// A virtual key.
    Key(Arc<KeyRecord>),
}

/// The kind of access a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Changes anything: proxy admins only.
    AdminWrite,
    /// Reads anything: proxy admins and admin viewers.
    AdminRead,
    /// Changes a team: proxy admins, and the team's admins for their team.
    TeamWrite,
    /// Reads: admins anything, everyone else their own things (keys, user, teams).
    OwnRead,
    /// Changes keys: admins any, internal users their own (team admins their team's).
    OwnKeyWrite,
}

/// Every management route and the access it needs.
pub const ROUTES: &[(&str, Access)] = &[
    ("/key/generate", Access::OwnKeyWrite),
    ("/key/update", Access::OwnKeyWrite),
    ("/key/delete", Access::OwnKeyWrite),
    ("/key/regenerate", Access::OwnKeyWrite),
    ("/key/block", Access::OwnKeyWrite),
    ("/key/unblock", Access::OwnKeyWrite),
    ("/key/info", Access::OwnRead),
    ("/key/list", Access::OwnRead),
    ("/team/new", Access::AdminWrite),
    ("/team/update", Access::AdminWrite),
    ("/team/delete", Access::AdminWrite),
    ("/team/block", Access::AdminWrite),
    ("/team/unblock", Access::AdminWrite),
    ("/team/info", Access::OwnRead),
    ("/team/list", Access::OwnRead),
    ("/v2/team/list", Access::OwnRead),
    ("/team/member_add", Access::TeamWrite),
    ("/team/member_delete", Access::TeamWrite),
    ("/team/member_update", Access::TeamWrite),
    ("/team/model/add", Access::TeamWrite),
    ("/team/model/delete", Access::TeamWrite),
    ("/user/new", Access::AdminWrite),
    ("/user/update", Access::AdminWrite),
    ("/user/delete", Access::AdminWrite),
    ("/user/info", Access::OwnRead),
    ("/user/list", Access::AdminRead),
    ("/organization/new", Access::AdminWrite),
    ("/organization/update", Access::AdminWrite),
    ("/organization/delete", Access::AdminWrite),
    ("/organization/member_add", Access::AdminWrite),
    ("/organization/member_update", Access::AdminWrite),
    ("/organization/member_delete", Access::AdminWrite),
    ("/organization/info", Access::AdminRead),
    ("/organization/list", Access::AdminRead),
    ("/end_user/new", Access::AdminWrite),
    ("/end_user/update", Access::AdminWrite),
    ("/end_user/delete", Access::AdminWrite),
    ("/end_user/block", Access::AdminWrite),
    ("/end_user/unblock", Access::AdminWrite),
    ("/end_user/info", Access::AdminRead),
    ("/end_user/list", Access::AdminRead),
    ("/budget/new", Access::AdminWrite),
    ("/budget/update", Access::AdminWrite),
    ("/budget/delete", Access::AdminWrite),
    ("/budget/info", Access::AdminRead),
    ("/budget/list", Access::AdminRead),
    ("/spend/logs", Access::OwnRead),
    ("/spend/tags", Access::AdminRead),
    ("/global/spend/logs", Access::OwnRead),
    ("/global/spend/keys", Access::OwnRead),
    ("/global/spend/models", Access::OwnRead),
    ("/global/spend/teams", Access::AdminRead),
    ("/global/spend/tags", Access::AdminRead),
    ("/global/spend/report", Access::AdminRead),
];

/// What a caller of each kind may do with a kind of access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed on the caller's own objects only (the route checks which).
    Own,
    /// 401: only proxy admins (LiteLLM's answer to non-admin roles).
    AdminOnly,
    /// 403: a viewer asked to write.
    ReadOnly,
}

/// The kinds of callers, in the columns of [`MATRIX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Admin,
    AdminViewer,
    InternalUser,
    InternalUserViewer,
    /// A key without a (known) user.
    PlainKey,
}

use Decision::{AdminOnly, Allow, Own, ReadOnly};

/// Rows in the order of [`Access`], columns in the order of [`Kind`].
const MATRIX: [[Decision; 5]; 5] = [
    // AdminWrite
    [Allow, ReadOnly, AdminOnly, AdminOnly, AdminOnly],
    // AdminRead
    [Allow, Allow, AdminOnly, AdminOnly, AdminOnly],
    // TeamWrite
    [Allow, ReadOnly, Own, ReadOnly, AdminOnly],
    // OwnRead
    [Allow, Allow, Own, Own, Own],
    // OwnKeyWrite
    [Allow, ReadOnly, Own, ReadOnly, AdminOnly],
];

fn row(access: Access) -> usize {
    match access {
        Access::AdminWrite => 0,
        Access::AdminRead => 1,
        Access::TeamWrite => 2,
        Access::OwnRead => 3,
        Access::OwnKeyWrite => 4,
    }
}

fn column(kind: Kind) -> usize {
    match kind {
        Kind::Admin => 0,
        Kind::AdminViewer => 1,
        Kind::InternalUser => 2,
        Kind::InternalUserViewer => 3,
        Kind::PlainKey => 4,
    }
}

/// The access a route needs (`None`: not a management route).
pub fn access_of(route: &str) -> Option<Access> {
    ROUTES.iter().find(|(r, _)| *r == route).map(|(_, a)| *a)
}

pub fn decide(access: Access, kind: Kind) -> Decision {
    MATRIX[row(access)][column(kind)]
}

/// A caller resolved against the directory: who they are and what they may do on one route.
#[derive(Clone)]
pub struct Actor {
    pub kind: Kind,
    pub key: Option<Arc<KeyRecord>>,
    pub user_id: Option<String>,
    /// Whether the route is limited to the caller's own objects.
    pub own_only: bool,
    pub route: &'static str,
}

impl Actor {
    /// The master key on `route`.
    pub fn master(route: &'static str) -> Self {
        Self {
            kind: Kind::Admin,
            key: None,
            user_id: None,
            own_only: false,
            route,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.kind == Kind::Admin
    }

    /// The caller's role as LiteLLM prints it in messages.
    fn role_name(&self) -> &'static str {
        match self.kind {
            Kind::Admin => "proxy_admin",
            Kind::AdminViewer => "proxy_admin_viewer",
            Kind::InternalUser => "internal_user",
            Kind::InternalUserViewer => "internal_user_viewer",
            Kind::PlainKey => "unknown",
        }
    }

    fn forbidden(&self, what: impl std::fmt::Display) -> Error {
        Error::Forbidden(format!(
            "{what}. route={}, role={}, user_id={}",
            self.route,
            self.role_name(),
            self.user_id.as_deref().unwrap_or("unknown")
        ))
    }

    /// A user's own record (or any, for readers of everything).
    pub fn check_user(&self, user_id: &str) -> Result<()> {
        if !self.own_only || self.user_id.as_deref() == Some(user_id) {
            return Ok(());
        }
        Err(self.forbidden(format_args!(
            "key not allowed to access this user's info. user_id={user_id}"
        )))
    }

    /// Reading a team: its members and the team's own keys may.
    pub(crate) fn check_team_read(&self, team: &TeamEntry) -> Result<()> {
        if !self.own_only {
            return Ok(());
        }
        let own_key = self
            .key
            .as_ref()
            .is_some_and(|k| k.team_id.as_deref() == Some(team.team.record.team_id.as_str()));
        let member = self
            .user_id
            .as_ref()
            .is_some_and(|u| team.members.contains_key(u));
        if own_key || member {
            return Ok(());
        }
        Err(self.forbidden(format_args!(
            "not authorized to access this team={}",
            team.team.record.team_id
        )))
    }

    /// Changing a team: its admins may (on TeamWrite routes).
    pub(crate) fn check_team_admin(&self, team: &TeamEntry) -> Result<()> {
        if !self.own_only || self.is_team_admin(team) {
            return Ok(());
        }
        Err(self.forbidden(format_args!(
            "Call not allowed. User not proxy admin OR team admin. team_id={}",
            team.team.record.team_id
        )))
    }

    fn is_team_admin(&self, team: &TeamEntry) -> bool {
        self.user_id
            .as_ref()
            .and_then(|u| team.members.get(u))
            .is_some_and(|m| m.record.role == TeamRole::Admin)
    }

    /// Reading or changing a key: one's own key, a key of one's user, or of a team one admins.
    pub(crate) fn check_key(&self, key: &KeyRecord, directory: &Directory) -> Result<()> {
        if !self.own_only {
            return Ok(());
        }
        let itself = self.key.as_ref().is_some_and(|k| k.key_id == key.key_id);
        let users = self.user_id.is_some() && key.user_id == self.user_id;
        let team_admin = key
            .team_id
            .as_deref()
            .and_then(|t| directory.team(t))
            .is_some_and(|t| self.is_team_admin(&t));
        if itself || users || team_admin {
            return Ok(());
        }
        Err(self.forbidden(format_args!(
            "not allowed to access key {}: it belongs to another user",
            key.key_name
        )))
    }

    /// A new key of a non-admin: for themselves, in a team they are a member of.
    pub(crate) fn check_new_key(
        &self,
        user_id: Option<&str>,
        team_id: Option<&str>,
        directory: &Directory,
    ) -> Result<()> {
        if !self.own_only {
            return Ok(());
        }
        if user_id.is_some() && user_id != self.user_id.as_deref() {
            return Err(self.forbidden("users may create keys only for themselves"));
        }
        if let Some(team_id) = team_id {
            let member = directory.team(team_id).is_some_and(|t| {
                self.user_id
                    .as_ref()
                    .is_some_and(|u| t.members.contains_key(u))
            });
            if !member {
                return Err(self.forbidden(format_args!("not a member of team={team_id}")));
            }
        }
        Ok(())
    }
}

impl Directory {
    /// Resolves `caller` for `route` through the permission tables: the actor, or the 401/403
    /// LiteLLM gives a role without that permission.
    pub fn actor(&self, caller: &Caller, route: &'static str) -> Result<Actor> {
        let access = access_of(route)
            .ok_or_else(|| Error::Internal(format!("route {route} has no access rule")))?;
        let (kind, key, user_id) = match caller {
            Caller::Master => (Kind::Admin, None, None),
            Caller::Key(key) => {
                let kind = match self.role_of(key) {
                    Some(Role::ProxyAdmin) => Kind::Admin,
                    Some(Role::ProxyAdminViewer) => Kind::AdminViewer,
                    Some(Role::InternalUser) => Kind::InternalUser,
                    Some(Role::InternalUserViewer) => Kind::InternalUserViewer,
                    None => Kind::PlainKey,
                };
                let user_id = match kind {
                    Kind::PlainKey => None,
                    _ => key.user_id.clone(),
                };
                (kind, Some(key.clone()), user_id)
            }
        };
        let actor = Actor {
            kind,
            key,
            user_id,
            own_only: false,
            route,
        };
        match decide(access, kind) {
            Allow => Ok(actor),
            Own => Ok(Actor {
                own_only: true,
                ..actor
            }),
            ReadOnly => Err(Error::Forbidden(format!(
                "user not allowed to access this route, role= {}. Trying to access: {route}",
                actor.role_name()
            ))),
            AdminOnly => Err(Error::Unauthorized(format!(
                "Authentication Error, Only proxy admin can be used to generate, delete, update \
                 info for new keys/users/teams. Route={route}. Your role={}. Your user_id={}",
                actor.role_name(),
                actor.user_id.as_deref().unwrap_or("unknown")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_one_rule() {
        for (i, (route, _)) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[i + 1..].iter().all(|(r, _)| r != route),
                "{route} listed twice"
            );
        }
    }

    #[test]
    fn viewers_never_write_and_only_admins_change_the_plane() {
        for (route, access) in ROUTES {
            let viewer = decide(*access, Kind::AdminViewer);
            let writes = !matches!(access, Access::AdminRead | Access::OwnRead);
            assert_eq!(viewer == Decision::ReadOnly, writes, "{route}");
            assert_eq!(decide(*access, Kind::Admin), Decision::Allow, "{route}");
            if *access == Access::AdminWrite {
                for kind in [Kind::InternalUser, Kind::InternalUserViewer, Kind::PlainKey] {
                    assert_eq!(decide(*access, kind), Decision::AdminOnly, "{route}");
                }
            }
        }
    }
}
