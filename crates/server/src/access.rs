//! What a caller may do with one model request, decided before any upstream call, and the
//! spend it leaves behind afterwards.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use vaultgate_core::{Error, Result};
use vaultgate_keys::{Admission, KeyService, KeyUse};
use vaultgate_providers::{ChatBody, Deployment, Usage};
use vaultgate_router::ModelGroup;

use crate::auth::Principal;
use crate::charge;
use crate::spend_log::{Ending, LogDraft};
use crate::sse::{StreamEnd, UsageSink};
use crate::state::AppState;

/// A granted model request. For a virtual key it holds the admission (a parallel-request slot
/// and a budget reservation) until the answer is complete, then records the usage; every
/// request's spend-log row and LiteLLM series follow its outcome.
pub struct Access {
    grant: Option<(KeyService, Admission)>,
    log: Option<LogDraft>,
    /// When the upstream calls began (right after admission).
    upstream_started: Instant,
}

/// What a finished answer cost (USD) and where its virtual key stands after it, for the
/// answer's headers.
pub struct Charged {
    pub cost: f64,
    pub key: Option<KeyUse>,
}

impl AppState {
    /// Whether the caller may use `model`, asked by that name, or by the name of the `group`
    /// serving it (the name is an alias of it), or by the wildcard route it comes from (a key
    /// listing `*-mini` may use what that route serves). Checked before whether the model
    /// exists, as LiteLLM does.
    pub fn authorize(
        &self,
        principal: &Principal,
        model: &str,
        group: Option<&ModelGroup>,
    ) -> Result<()> {
        let (Principal::Virtual(record), Some(keys)) = (principal, &self.keys) else {
            return Ok(());
        };
        let denied = match keys.authorize_model(record, model) {
            Err(denied) => denied,
            ok => return ok,
        };
        let others = group
            .into_iter()
            .flat_map(|g| [Some(g.name.as_str()), g.pattern.as_deref()])
            .flatten()
            .filter(|name| *name != model);
        for name in others {
            if keys.authorize_model(record, name).is_ok() {
                return Ok(());
            }
        }
        Err(denied)
    }

    /// Checks the budgets and rate limits of the key and of everything it answers to (team,
    /// organization, user, team member, the request's `end_user`) for `model` (already
    /// authorized).
    pub async fn access(
        &self,
        principal: &Principal,
        model: &str,
        end_user: Option<&str>,
    ) -> Result<Access> {
        let grant = match (principal, &self.keys) {
            (Principal::Virtual(record), Some(keys)) => {
                Some((keys.clone(), keys.admit(record, model, end_user).await?))
            }
            _ => None,
        };
        Ok(Access {
            grant,
            log: None,
            upstream_started: Instant::now(),
        })
    }
}

impl Access {
    /// Adds the request's spend-log draft.
    pub(crate) fn with_log(mut self, log: LogDraft) -> Self {
        self.log = Some(log);
        self
    }

    /// Whether the answer's usage is wanted (so streams must ask the upstream for it). Only
    /// virtual keys change what is sent upstream; other streams are logged with the estimate.
    pub fn tracks_usage(&self) -> bool {
        self.grant.is_some()
    }

    /// Where the virtual key stands now (before this request's cost: for a stream's headers).
    pub fn key_use(&self) -> Option<KeyUse> {
        self.grant
            .as_ref()
            .map(|(keys, admission)| keys.key_use(admission))
    }

    /// Records the usage of a complete (non-streaming) answer; the body is kept for the spend
    /// log.
    pub fn record_answer(self, deployment: &Deployment, usage: Usage, body: &[u8]) -> Charged {
        self.record_with(deployment, usage, Some(body))
    }

    fn record(self, deployment: &Deployment, usage: Usage) -> Charged {
        self.record_with(deployment, usage, None)
    }

    fn record_with(
        self,
        deployment: &Deployment,
        usage: Usage,
        response: Option<&[u8]>,
    ) -> Charged {
        let Access {
            grant,
            log,
            upstream_started,
        } = self;
        let cost = match &grant {
            Some((keys, admission)) => keys.record_usage(
                admission,
                &deployment.upstream_model,
                usage.prompt_tokens,
                usage.completion_tokens,
                Some(&deployment.model_info),
            ),
            None => vaultgate_keys::cost(
                &deployment.upstream_model,
                Some(&deployment.model_info),
                usage.prompt_tokens,
                usage.completion_tokens,
            )
            .unwrap_or(0.0),
        };
        let key = grant
            .as_ref()
            .map(|(keys, admission)| keys.key_use(admission));
        if let Some(log) = log {
            log.finish(Ending {
                deployment: Some(deployment),
                usage,
                cost,
                error: None,
                response,
                upstream_started: Some(upstream_started),
                admission: grant.as_ref().map(|(_, admission)| admission),
            });
        }
        Charged { cost, key }
    }

    /// The request failed after admission (every attempt, or the stream before its start).
    pub fn fail(self, deployment: Option<&Deployment>, error: &Error) {
        if let Some(log) = self.log {
            log.finish(Ending {
                deployment,
                upstream_started: Some(self.upstream_started),
                ..Ending::refused(error)
            });
        }
    }

    /// For a stream: a sink that charges it when it ends, however it ends. The admission
    /// lives inside it, so the parallel-request slot is held until the client has the last
    /// byte or goes away. The provider's final count is charged when it arrived; otherwise an
    /// estimate (see [`crate::charge`]) from the request, kept for it, and the text delivered.
    pub fn into_sink(self, deployment: Arc<Deployment>, request: ChatBody) -> Option<UsageSink> {
        if self.grant.is_none() && self.log.is_none() {
            return None;
        }
        Some(Box::new(move |end: StreamEnd| {
            let usage = match end.usage {
                Some(usage) if end.usage_final => usage,
                partial => {
                    metrics::counter!("vaultgate_stream_usage_estimated_total").increment(1);
                    let partial = partial.unwrap_or_default();
                    Usage {
                        prompt_tokens: match partial.prompt_tokens {
                            0 => charge::prompt_tokens(&request),
                            counted => counted,
                        },
                        completion_tokens: partial.completion_tokens.max(end.delivered.tokens()),
                    }
                }
            };
            self.record(&deployment, usage);
        }))
    }
}

#[derive(Deserialize)]
struct Counts {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<Counts> for Usage {
    fn from(counts: Counts) -> Self {
        Usage {
            prompt_tokens: counts.prompt_tokens,
            completion_tokens: counts.completion_tokens,
        }
    }
}

/// The `usage` of an OpenAI-shaped answer. OpenAI-compatible servers put it last, so the last
/// `"usage":` member is read on its own first (an unescaped `"usage"` followed by `:` can only be
/// a member name); the whole answer is parsed only when that fails.
/// The token counts of a whole OpenAI answer (none counted when it has no `usage`).
pub(crate) fn openai_usage(body: &[u8]) -> Usage {
    usage_of(body).unwrap_or_default()
}

fn usage_of(body: &[u8]) -> Option<Usage> {
    const NAME: &[u8] = b"\"usage\"";
    let tail = body
        .windows(NAME.len())
        .rposition(|window| window == NAME)
        .and_then(|at| {
            let rest = &body[at + NAME.len()..];
            let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
            (rest[colon] == b':').then(|| &rest[colon + 1..])
        });
    if let Some(value) = tail {
        let mut values = serde_json::Deserializer::from_slice(value).into_iter::<Counts>();
        if let Some(Ok(counts)) = values.next() {
            return Some(counts.into());
        }
    }
    #[derive(Deserialize)]
    struct WithUsage {
        usage: Option<Counts>,
    }
    serde_json::from_slice::<WithUsage>(body)
        .ok()?
        .usage
        .map(Usage::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn usage_is_read_from_the_answer() {
        let usage = |text: &str| usage_of(text.as_bytes());
        let expected = Some(Usage {
            prompt_tokens: 3,
            completion_tokens: 5,
        });
        assert_eq!(
            usage(
                r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#
            ),
            expected
        );
        assert_eq!(
            usage(
                r#"{"usage" : {"completion_tokens":5,"prompt_tokens":3},"choices":[{"message":{"content":"\"usage\": {}"}}]}"#
            ),
            expected
        );
        // A content that mentions usage is not the member.
        assert_eq!(
            usage(
                r#"{"usage":{"prompt_tokens":3,"completion_tokens":5},"choices":[{"message":{"content":"usage"}}]}"#
            ),
            expected
        );
        assert_eq!(usage(r#"{"choices":[]}"#), None);
        assert_eq!(usage("not json"), None);
    }
}
