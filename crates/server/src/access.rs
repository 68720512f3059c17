//! What a caller may do with one model request, decided before any upstream call, and the
//! spend it leaves behind afterwards.

use std::sync::Arc;

use serde::Deserialize;
use vaultgate_core::Result;
use vaultgate_keys::{Admission, KeyService};
use vaultgate_providers::{Deployment, Usage};

use crate::auth::Principal;
use crate::sse::UsageSink;
use crate::state::AppState;

/// A granted model request. For a virtual key it holds the admission (a parallel-request slot
/// and a budget reservation) until the answer is complete, then records the usage.
pub struct Access {
    grant: Option<(KeyService, Admission)>,
}

impl AppState {
    /// Checks the key's models, budget and rate limits for `model`.
    pub fn access(&self, principal: &Principal, model: &str) -> Result<Access> {
        let grant = match (principal, &self.keys) {
            (Principal::Virtual(record), Some(keys)) => {
                keys.authorize_model(record, model)?;
                Some((keys.clone(), keys.admit(record, model)?))
            }
            _ => None,
        };
        Ok(Access { grant })
    }
}

impl Access {
    /// Whether the answer's usage is wanted (so streams must ask the upstream for it).
    pub fn tracks_usage(&self) -> bool {
        self.grant.is_some()
    }

    /// Records the usage of a complete (non-streaming) answer body.
    pub fn record_body(self, deployment: &Deployment, body: &[u8]) {
        #[derive(Deserialize)]
        struct Counts {
            #[serde(default)]
            prompt_tokens: u64,
            #[serde(default)]
            completion_tokens: u64,
        }
        #[derive(Deserialize)]
        struct WithUsage {
            usage: Option<Counts>,
        }
        if self.grant.is_none() {
            return;
        }
        let usage = serde_json::from_slice::<WithUsage>(body)
            .ok()
            .and_then(|answer| answer.usage)
            .map(|c| Usage {
                prompt_tokens: c.prompt_tokens,
                completion_tokens: c.completion_tokens,
            });
        self.record(deployment, usage.unwrap_or_default());
    }

    pub fn record(self, deployment: &Deployment, usage: Usage) {
        if let Some((keys, admission)) = self.grant {
            keys.record_usage(
                &admission,
                &deployment.upstream_model,
                usage.prompt_tokens,
                usage.completion_tokens,
                Some(&deployment.model_info),
            );
        }
    }

    /// For a stream: a sink that records the usage when the stream ends. The admission lives
    /// inside it, so the parallel-request slot is held until the client has the last byte.
    pub fn into_sink(self, deployment: Arc<Deployment>) -> Option<UsageSink> {
        self.grant.as_ref()?;
        Some(Box::new(move |usage: Usage| {
            self.record(&deployment, usage)
        }))
    }
}
