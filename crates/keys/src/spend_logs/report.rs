//! LiteLLM's `/global/spend/*` aggregates over the request rows: spend per day of the last 30
//! days, top keys, top models, spend per team, and the spend report grouped by team, customer,
//! key or model. Sums are grouped in SQL; only the grouped rows come back to be shaped.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use super::dates::day_text;
use super::store::{DAY_MS, Group, LogFilter, Sums};
use crate::state::Inner;

/// The `/global/spend/*` routes without dates cover this many days up to now.
const WINDOW_DAYS: i64 = 30;

/// Rows of the last 30 days (from the start of the day 30 days ago), narrowed by `filter`.
fn last_30_days(inner: &Inner, mut filter: LogFilter) -> LogFilter {
    let today = inner.now().div_euclid(DAY_MS);
    filter.from_ms = Some((today - WINDOW_DAYS) * DAY_MS);
    filter
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `/global/spend/logs`: spend per day of the last 30 days (`[{"date", "spend"}]`), per key
/// with `api_key` (`+ "api_key"`), and per key of the caller's own user for internal users
/// (`+ "api_key", "user"`).
pub(crate) async fn daily(inner: &Inner, filter: LogFilter, per_user: bool) -> Result<Value> {
    let per_key = filter.api_key.is_some() || per_user;
    let mut groups = vec![Group::Day];
    if per_key {
        groups.push(Group::ApiKey);
    }
    if per_user {
        groups.push(Group::User);
    }
    let filter = last_30_days(inner, filter);
    let sums = inner.store.request_log_sums(&filter, &groups).await?;
    Ok(Value::Array(
        sums.iter()
            .map(|s| {
                let mut entry = json!({"date": day_text(s.day.unwrap_or(0)), "spend": s.spend});
                if per_key {
                    entry["api_key"] = json!(s.keys.first());
                }
                if per_user {
                    entry["user"] = json!(s.keys.get(1));
                }
                entry
            })
            .collect(),
    ))
}

/// `/global/spend/keys`: the `limit` keys with the most spend in the last 30 days
/// (`[{"api_key", "total_spend", "key_alias", "key_name"}]`).
pub(crate) async fn top_keys(inner: &Inner, filter: LogFilter, limit: usize) -> Result<Value> {
    let filter = last_30_days(inner, filter);
    let mut sums = inner
        .store
        .request_log_sums(&filter, &[Group::ApiKey])
        .await?;
    sort_by_spend(&mut sums);
    sums.truncate(limit);
    let tokens: Vec<String> = sums
        .iter()
        .filter_map(|s| s.keys.first().cloned())
        .collect();
    let names = inner.store.key_names(&tokens).await?;
    Ok(Value::Array(
        sums.iter()
            .map(|s| {
                let token = s.keys.first().cloned().unwrap_or_default();
                let (alias, name) = names.get(&token).cloned().unwrap_or_default();
                json!({"api_key": token, "total_spend": s.spend, "key_alias": alias,
                       "key_name": if name.is_empty() { Value::Null } else { json!(name) }})
            })
            .collect(),
    ))
}

/// `/global/spend/models`: the `limit` models with the most spend in the last 30 days
/// (`[{"model", "total_spend", "total_tokens"}]`).
pub(crate) async fn top_models(inner: &Inner, filter: LogFilter, limit: usize) -> Result<Value> {
    let filter = last_30_days(inner, filter);
    let mut sums = inner
        .store
        .request_log_sums(&filter, &[Group::Model])
        .await?;
    sort_by_spend(&mut sums);
    sums.truncate(limit);
    Ok(Value::Array(
        sums.iter()
            .map(|s| {
                json!({"model": s.keys.first(), "total_spend": s.spend,
                       "total_tokens": s.total_tokens})
            })
            .collect(),
    ))
}

fn sort_by_spend(sums: &mut [Sums]) {
    sums.sort_by(|a, b| b.spend.total_cmp(&a.spend));
}

/// A team's alias as LiteLLM's reports name it (`None` for rows without a team).
fn team_alias(inner: &Inner, team_id: &str) -> Option<String> {
    if team_id.is_empty() {
        return None;
    }
    Some(
        inner
            .directory
            .team(team_id)
            .and_then(|t| t.team.record.team_alias.clone())
            .unwrap_or_else(|| team_id.to_owned()),
    )
}

/// `/global/spend/teams`: spend per team alias and day of the last 30 days, the aliases, and
/// the ten teams that spent most.
pub(crate) async fn teams(inner: &Inner) -> Result<Value> {
    let filter = last_30_days(inner, LogFilter::default());
    let sums = inner
        .store
        .request_log_sums(&filter, &[Group::Day, Group::TeamId])
        .await?;
    let mut by_day: BTreeMap<i64, serde_json::Map<String, Value>> = BTreeMap::new();
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    let mut aliases = BTreeSet::new();
    for s in &sums {
        let team = s.keys.first().map(String::as_str).unwrap_or_default();
        let alias = team_alias(inner, team).unwrap_or_else(|| "Unassigned".into());
        let spend = round2(s.spend);
        let day = by_day.entry(s.day.unwrap_or(0)).or_default();
        let before = day.get(&alias).and_then(Value::as_f64).unwrap_or(0.0);
        day.insert(alias.clone(), json!(before + spend));
        *totals.entry(alias.clone()).or_default() += spend;
        aliases.insert(alias);
    }
    let mut ranked: Vec<(String, f64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(10);
    let daily: Vec<Value> = by_day
        .into_iter()
        .map(|(day, mut spend)| {
            spend.insert("date".into(), json!(day_text(day)));
            Value::Object(spend)
        })
        .collect();
    Ok(json!({
        "daily_spend": daily,
        "teams": aliases.into_iter().collect::<Vec<_>>(),
        "total_spend_per_team": ranked
            .into_iter()
            .map(|(team, spend)| json!({"team_id": team, "total_spend": spend}))
            .collect::<Vec<_>>(),
    }))
}

/// How `/global/spend/report` groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportBy {
    Team,
    Customer,
    ApiKey,
    Model,
}

impl ReportBy {
    pub fn parse(text: Option<&str>) -> Result<Self> {
        match text.unwrap_or("team") {
            "team" => Ok(Self::Team),
            "customer" => Ok(Self::Customer),
            "api_key" => Ok(Self::ApiKey),
            "model" => Ok(Self::Model),
            other => Err(Error::bad_param(
                "group_by",
                format!("group_by must be team, customer, api_key or model, got {other:?}"),
            )),
        }
    }
}

/// `/global/spend/report` in `[start_date, end_date)`: per day and team (or customer), the
/// spend of each model and key; or per key (or model), its cost and tokens split by model (key).
pub(crate) async fn report(inner: &Inner, filter: &LogFilter, by: ReportBy) -> Result<Value> {
    match by {
        ReportBy::Team | ReportBy::Customer => per_day(inner, filter, by).await,
        ReportBy::ApiKey => totals(inner, filter, Group::ApiKey, Group::Model).await,
        ReportBy::Model => totals(inner, filter, Group::Model, Group::ApiKey).await,
    }
}

async fn per_day(inner: &Inner, filter: &LogFilter, by: ReportBy) -> Result<Value> {
    let (group, list_name, member_name) = match by {
        ReportBy::Customer => (Group::EndUser, "customers", "customer"),
        _ => (Group::TeamId, "teams", "team_name"),
    };
    let sums = inner
        .store
        .request_log_sums(filter, &[Group::Day, group, Group::Model, Group::ApiKey])
        .await?;
    // day → member → (spend, [details])
    let mut days: BTreeMap<i64, BTreeMap<String, (f64, Vec<Value>)>> = BTreeMap::new();
    for s in &sums {
        let [member, model, api_key] = s.keys.as_slice() else {
            continue;
        };
        let name = match by {
            ReportBy::Customer => member.clone(),
            _ => team_alias(inner, member).unwrap_or_else(|| "Unassigned Team".into()),
        };
        let entry = days
            .entry(s.day.unwrap_or(0))
            .or_default()
            .entry(name)
            .or_default();
        entry.0 += s.spend;
        entry
            .1
            .push(json!({"model": model, "api_key": api_key, "spend": s.spend,
                            "total_tokens": s.total_tokens}));
    }
    Ok(Value::Array(
        days.into_iter()
            .map(|(day, members)| {
                let list: Vec<Value> = members
                    .into_iter()
                    .map(|(name, (spend, details))| {
                        json!({member_name: name, "total_spend": spend, "metadata": details})
                    })
                    .collect();
                json!({"group_by_day": day_text(day), list_name: list})
            })
            .collect(),
    ))
}

type Total = (f64, i64, i64, Vec<Value>);

async fn totals(
    inner: &Inner,
    filter: &LogFilter,
    outer: Group,
    inner_group: Group,
) -> Result<Value> {
    let sums = inner
        .store
        .request_log_sums(filter, &[outer, inner_group])
        .await?;
    let (outer_name, inner_name, details_name) = match outer {
        Group::Model => ("model", "api_key", "api_key_details"),
        _ => ("api_key", "model", "model_details"),
    };
    // name → (cost, input tokens, output tokens, the parts)
    let mut groups: BTreeMap<String, Total> = BTreeMap::new();
    for s in &sums {
        let [name, part] = s.keys.as_slice() else {
            continue;
        };
        let entry = groups.entry(name.clone()).or_default();
        entry.0 += s.spend;
        entry.1 += s.prompt_tokens;
        entry.2 += s.completion_tokens;
        entry.3.push(json!({inner_name: part, "total_cost": s.spend,
            "total_input_tokens": s.prompt_tokens, "total_output_tokens": s.completion_tokens}));
    }
    let mut list: Vec<(String, Total)> = groups.into_iter().collect();
    list.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    Ok(Value::Array(
        list.into_iter()
            .map(|(name, (cost, input, output, details))| {
                json!({outer_name: name, "total_cost": cost, "total_input_tokens": input,
                       "total_output_tokens": output, details_name: details})
            })
            .collect(),
    ))
}
