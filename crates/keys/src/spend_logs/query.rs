//! `GET /spend/logs` and `GET /spend/tags`: LiteLLM's shapes over the request rows.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use vaultgate_core::Result;

use super::SpendLogRow;
use super::dates::{self, day_text};
use super::store::{Group, LogFilter};
use crate::state::Inner;

/// Rows of one `/spend/logs` page when the caller names no `page_size`, and the most allowed.
pub(crate) const DEFAULT_PAGE_SIZE: u64 = 100;
pub(crate) const MAX_PAGE_SIZE: u64 = 1_000;
/// Longest run of empty days a summary fills in.
const MAX_FILLED_DAYS: i64 = 400;

/// Unix milliseconds as `2024-05-10T22:11:47.474Z` (UTC, always three digits, so the texts of
/// two times compare like the times).
fn time_text(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// A row as LiteLLM's `LiteLLM_SpendLogs` JSON.
pub(crate) fn row_json(row: &SpendLogRow) -> Value {
    let body = |value: &Option<Value>| value.clone().unwrap_or_else(|| json!({}));
    json!({
        "request_id": row.request_id,
        "call_type": row.call_type,
        "api_key": row.api_key,
        "spend": row.spend,
        "total_tokens": row.prompt_tokens.saturating_add(row.completion_tokens),
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "startTime": time_text(row.start_ms),
        "endTime": time_text(row.end_ms),
        "completionStartTime": time_text(row.end_ms),
        "model": row.model,
        "model_id": row.model_id,
        "model_group": row.model_group,
        "custom_llm_provider": row.custom_llm_provider,
        "api_base": row.api_base,
        "user": row.user,
        "metadata": metadata(&row.metadata),
        "cache_hit": if row.cache_hit { "True" } else { "False" },
        "cache_key": "",
        "request_tags": row.request_tags,
        "team_id": empty_is_null(&row.team_id),
        "organization_id": empty_is_null(&row.organization_id),
        "end_user": row.end_user,
        "requester_ip_address": Value::Null,
        "messages": body(&row.messages),
        "response": body(&row.response),
        "session_id": Value::Null,
        "status": row.status,
    })
}

/// A row's metadata text as the object it holds (`{}` when empty or not an object).
fn metadata(text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => Value::Object(Map::new()),
    }
}

fn empty_is_null(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

/// The rows of a filter, newest first: LiteLLM's plain list.
pub(crate) async fn rows(inner: &Inner, filter: &LogFilter, page: u64, size: u64) -> Result<Value> {
    let (rows, _total) = inner.store.request_logs(filter, page, size).await?;
    Ok(Value::Array(rows.iter().map(row_json).collect()))
}

/// `/spend/logs` with a date range: spend per day, with its split by key, user and model
/// (`[{"startTime": day, "spend", "<api_key>": spend, "users": {}, "models": {}}]`); the days
/// after the last one with spend, up to `end_date`, are listed with zero.
pub(crate) async fn daily_summary(inner: &Inner, filter: &LogFilter) -> Result<Value> {
    let sums = inner
        .store
        .request_log_sums(
            filter,
            &[Group::Day, Group::ApiKey, Group::User, Group::Model],
        )
        .await?;
    let mut days: BTreeMap<i64, Map<String, Value>> = BTreeMap::new();
    for sum in &sums {
        let (Some(day), [api_key, user, model]) = (sum.day, sum.keys.as_slice()) else {
            continue;
        };
        let entry = days.entry(day).or_insert_with(|| {
            let mut m = Map::new();
            m.insert("spend".into(), json!(0.0));
            m.insert("users".into(), json!({}));
            m.insert("models".into(), json!({}));
            m
        });
        add(entry, "spend", sum.spend);
        add(entry, api_key, sum.spend);
        if let Some(Value::Object(users)) = entry.get_mut("users") {
            add(users, user, sum.spend);
        }
        if let Some(Value::Object(models)) = entry.get_mut("models") {
            add(models, model, sum.spend);
        }
    }
    let last = days.keys().next_back().copied();
    let mut out: Vec<Value> = days
        .into_iter()
        .map(|(day, mut entry)| {
            entry.insert("startTime".into(), json!(day_text(day)));
            Value::Object(entry)
        })
        .collect();
    if let (Some(last), Some(to)) = (last, filter.to_ms) {
        let end = dates::day_of(to - 1).min(last + MAX_FILLED_DAYS);
        for day in last + 1..=end {
            out.push(json!({"startTime": day_text(day), "spend": 0, "users": {}, "models": {}}));
        }
    }
    Ok(Value::Array(out))
}

fn add(map: &mut Map<String, Value>, name: &str, amount: f64) {
    let now = map.get(name).and_then(Value::as_f64).unwrap_or(0.0);
    map.insert(name.to_owned(), json!(now + amount));
}

/// `/spend/tags`: `[{"individual_request_tag", "log_count", "total_spend"}]`, most spend first.
pub(crate) async fn tags(inner: &Inner, from: Option<i64>, to: Option<i64>) -> Result<Value> {
    let mut totals: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for (tag, _day, count, spend) in inner.store.request_tag_sums(from, to).await? {
        let entry = totals.entry(tag).or_default();
        entry.0 += count;
        entry.1 += spend;
    }
    let mut list: Vec<(String, (i64, f64))> = totals.into_iter().collect();
    list.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    Ok(Value::Array(
        list.into_iter()
            .map(|(tag, (count, spend))| {
                json!({"individual_request_tag": tag, "log_count": count, "total_spend": spend})
            })
            .collect(),
    ))
}

/// `/global/spend/tags` (LiteLLM's UI): `{"spend_per_tag": [{"name", "spend", "log_count"}]}`
/// for the given tags (all with none or `all-tags`).
pub(crate) async fn ui_tags(
    inner: &Inner,
    from: i64,
    to: i64,
    wanted: Option<Vec<String>>,
) -> Result<Value> {
    let Value::Array(all) = tags(inner, Some(from), Some(to)).await? else {
        return Ok(json!({"spend_per_tag": []}));
    };
    let keep = |tag: &str| match &wanted {
        Some(list) if !list.iter().any(|t| t == "all-tags") => list.iter().any(|t| t == tag),
        _ => true,
    };
    let list: Vec<Value> = all
        .iter()
        .filter_map(|entry| {
            let name = entry.get("individual_request_tag")?.as_str()?;
            keep(name).then(|| {
                let spend = entry
                    .get("total_spend")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                json!({
                    "name": name,
                    "spend": (spend * 10_000.0).round() / 10_000.0,
                    "log_count": entry.get("log_count"),
                })
            })
        })
        .collect();
    Ok(json!({"spend_per_tag": list}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_a_fixed_width() {
        assert_eq!(time_text(1_715_299_200_000), "2024-05-10T00:00:00.000Z");
        assert_eq!(time_text(1_715_299_200_470), "2024-05-10T00:00:00.470Z");
    }
}
