//! Who is calling: the master key, or nobody when no master key is configured.
//! Virtual keys plug in here (`Principal::Virtual`) without touching the routes.

use http::HeaderMap;
use subtle::ConstantTimeEq;
use vaultgate_core::{Error, Result};

use crate::state::AppState;

/// The authenticated caller of one request.
pub enum Principal {
    /// The master key: every model, every admin route.
    Master,
    /// No master key is configured: the gateway is open (warned about at start).
    Open,
}

/// The key a client presented, from `Authorization: Bearer`, `api-key` (Azure clients) or
/// `x-api-key` (Anthropic clients), as LiteLLM accepts them.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        });
    bearer
        .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

impl AppState {
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal> {
        let Some(master_ref) = &self.master_key else {
            return Ok(Principal::Open);
        };
        let Some(presented) = presented_key(headers) else {
            return Err(Error::Unauthorized(
                "Authentication Error, No api key passed in.".into(),
            ));
        };
        let secrets = self.secrets.snapshot();
        let master = secrets.value(master_ref).unwrap_or_default();
        if !master.is_empty() && bool::from(presented.as_bytes().ct_eq(master.as_bytes())) {
            return Ok(Principal::Master);
        }
        Err(invalid_key())
    }

    /// Admin routes (key management) take the master key only.
    pub fn require_master(&self, headers: &HeaderMap) -> Result<()> {
        match self.authenticate(headers)? {
            Principal::Master | Principal::Open => Ok(()),
        }
    }
}

pub fn invalid_key() -> Error {
    Error::Unauthorized("Authentication Error, Invalid proxy server token passed.".into())
}
