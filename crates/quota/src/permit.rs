//! An admitted request's hold on its scopes.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::redis::Writer;
use crate::{Ask, Scope};

/// One scope an admitted request counts in.
pub(crate) struct Held {
    pub scope: Scope,
    /// Whether its tokens count against a tpm limit.
    pub tpm: bool,
    /// Whether it leases a shared parallel slot (released in Redis when the permit drops).
    pub slot: bool,
}

impl Held {
    pub fn new(ask: &Ask<'_>, slot: bool) -> Self {
        Self {
            scope: ask.scope.clone(),
            tpm: ask.limits.tpm.is_some(),
            slot,
        }
    }
}

/// The leases an admission holds in Redis.
pub(crate) struct SharedLease {
    pub writer: Arc<Writer>,
    /// The lease's number on this instance (its members in Redis are `{instance}:{lease}`).
    pub lease: u64,
}

/// An admitted request. Holds a parallel slot in each scope until dropped, so keep it until the
/// answer is complete; a request that fails or whose client goes away drops it too.
pub struct Permit {
    held: SmallVec<[Held; 2]>,
    shared: Option<SharedLease>,
}

impl Permit {
    pub(crate) fn local(held: SmallVec<[Held; 2]>) -> Self {
        Self { held, shared: None }
    }

    pub(crate) fn shared(held: SmallVec<[Held; 2]>, shared: SharedLease) -> Self {
        Self {
            held,
            shared: Some(shared),
        }
    }

    /// Counts the tokens the request used in each scope's tokens-per-minute window (locally at
    /// once; in Redis by the background writer, on Redis's clock).
    pub fn record_tokens(&self, tokens: u64, now_ms: i64) {
        if tokens == 0 {
            return;
        }
        for held in &self.held {
            held.scope.local().add_tokens(now_ms, tokens);
        }
        if let Some(shared) = &self.shared {
            let scopes: SmallVec<[Scope; 2]> = self
                .held
                .iter()
                .filter(|h| h.tpm)
                .map(|h| h.scope.clone())
                .collect();
            if !scopes.is_empty() {
                shared.writer.tokens(scopes, tokens);
            }
        }
    }

    /// Whether the admission was decided by the shared counters.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        for held in &self.held {
            let mut counts = held.scope.local();
            counts.in_flight = counts.in_flight.saturating_sub(1);
        }
        if let Some(shared) = &self.shared {
            let slots: SmallVec<[Scope; 2]> = self
                .held
                .drain(..)
                .filter(|h| h.slot)
                .map(|h| h.scope)
                .collect();
            if !slots.is_empty() {
                shared.writer.release(slots, shared.lease);
            }
        }
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("scopes", &self.held.len())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}
