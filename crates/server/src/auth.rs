//! Who is calling: the master key, a virtual key, or anybody when no master key is configured.

use std::sync::Arc;

use http::HeaderMap;
use subtle::ConstantTimeEq;
use vaultgate_core::{Error, Result};
use vaultgate_keys::{KeyRecord, key_from_headers};

use crate::state::AppState;

/// The authenticated caller of one request.
#[derive(Clone)]
pub enum Principal {
    /// The master key: every model, every admin route.
    Master,
    /// A virtual key, with its models, budget and limits.
    Virtual(Arc<KeyRecord>),
    /// No master key is configured: the gateway is open (warned about at start).
    Open,
}

impl AppState {
    /// Resolves the caller. Virtual keys come from the key service's in-memory cache; only a
    /// key never seen before reaches the database.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal> {
        let Some(master_ref) = &self.master_key else {
            return Ok(Principal::Open);
        };
        let Some(presented) = key_from_headers(headers) else {
            return Err(Error::Unauthorized(
                "Authentication Error, No api key passed in.".into(),
            ));
        };
        let is_master = {
            let secrets = self.secrets.snapshot();
            let master = secrets.value(master_ref).unwrap_or_default();
            !master.is_empty() && bool::from(presented.as_bytes().ct_eq(master.as_bytes()))
        };
        if is_master {
            return Ok(Principal::Master);
        }
        match &self.keys {
            Some(keys) => keys.authenticate(presented).await.map(Principal::Virtual),
            None => Err(invalid_key()),
        }
    }

    /// Admin routes outside the key service (`/admin/*`) take the master key only.
    pub async fn require_master(&self, headers: &HeaderMap) -> Result<()> {
        match self.authenticate(headers).await? {
            Principal::Master | Principal::Open => Ok(()),
            Principal::Virtual(_) => Err(Error::Unauthorized(
                "Authentication Error, only the master key may manage keys.".into(),
            )),
        }
    }
}

pub fn invalid_key() -> Error {
    Error::Unauthorized("Authentication Error, Invalid proxy server token passed.".into())
}
