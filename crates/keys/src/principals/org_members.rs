//! `/organization/member_update` and `/organization/member_delete`: a member's role in an
//! organization, and leaving it (the user and their keys stay). Members are named by `user_id`
//! or `user_email`, as in `/organization/member_add`.

use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use super::access::Actor;
use super::model::{OrgMemberRecord, OrgRecord};
use super::orgs::{ORG_ROLES, org_or_404};
use super::store::{self as rows, Val};
use crate::request::Body;
use crate::state::Inner;
use crate::store::db_err;

/// The organization of the request and the membership it names, or LiteLLM's 400/404.
async fn membership(inner: &Inner, body: &Body) -> Result<(OrgRecord, OrgMemberRecord)> {
    let id = body.required_string("organization_id")?;
    let org = org_or_404(inner, &id).await?;
    let user_id = match (
        body.string("user_id")?.value().cloned(),
        body.string("user_email")?.value().cloned(),
    ) {
        (Some(user_id), _) => Some(user_id),
        (None, Some(email)) => inner.user_by_email(&email).await?.map(|u| u.user_id),
        (None, None) => {
            return Err(Error::bad_param(
                "user_id",
                "Either user_id or user_email needs to be passed in",
            ));
        }
    };
    let members: Vec<OrgMemberRecord> = inner
        .store
        .select(
            Some("organization_id = $1"),
            &[Val::text(&id)],
            "user_id",
            None,
        )
        .await?;
    let member = user_id
        .and_then(|u| members.into_iter().find(|m| m.user_id == u))
        .ok_or_else(|| {
            Error::bad_param("user_id", format!("User not found in organization {id}"))
        })?;
    Ok((org, member))
}

/// `POST /organization/member_update` `{"organization_id", "user_id" | "user_email", "role"}`.
pub(crate) async fn update(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let role = body.required_string("role")?;
    if !ORG_ROLES.contains(&role.as_str()) {
        return Err(Error::bad_param(
            "role",
            format!(
                "role '{}' is not an organization role; use org_admin, internal_user or internal_user_viewer",
                role.chars().take(40).collect::<String>()
            ),
        ));
    }
    let _admin = inner.admin.lock().await;
    let (org, mut member) = membership(inner, &body).await?;
    member.user_role = role;
    member.updated_at = inner.now();
    let mut tx = inner.store.begin().await?;
    rows::update(&mut tx, &member, &[]).await.map_err(db_err)?;
    tx.commit().await?;
    inner.reload_user(&member.user_id).await;
    tracing::info!(organization = %org.organization_id, user = %member.user_id, "organization member updated");
    let email = inner
        .user_record(&member.user_id)
        .await?
        .and_then(|u| u.user_email);
    Ok(member.to_json(email.as_deref()))
}

/// `POST /organization/member_delete` `{"organization_id", "user_id" | "user_email"}`.
pub(crate) async fn delete(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let _admin = inner.admin.lock().await;
    let (org, member) = membership(inner, &body).await?;
    let mut tx = inner.store.begin().await?;
    rows::delete(&mut tx, &member).await.map_err(db_err)?;
    tx.commit().await?;
    inner.reload_user(&member.user_id).await;
    tracing::info!(organization = %org.organization_id, user = %member.user_id, "organization member removed");
    Ok(json!({
        "organization_id": org.organization_id,
        "user_id": member.user_id,
        "deleted": true,
    }))
}
