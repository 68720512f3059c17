//! An admitted request's hold on its scopes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use smallvec::SmallVec;

use crate::redis::Writer;
use crate::{Ask, Scope, ScopeKind};

/// One scope an admitted request counts in.
pub(crate) struct Held {
    pub scope: Scope,
    /// Whether its tokens count against a tpm limit.
    pub tpm: bool,
    /// Whether it leases a shared parallel slot (released in Redis when the permit drops).
    pub slot: bool,
    /// The shared counts as the admission saw them (none when counted in this process).
    pub seen: Option<WindowUse>,
}

impl Held {
    pub fn new(ask: &Ask<'_>, slot: bool) -> Self {
        Self {
            scope: ask.scope.clone(),
            tpm: ask.limits.tpm.is_some(),
            slot,
            seen: None,
        }
    }
}

/// Requests and tokens counted in a scope's current minute window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowUse {
    pub requests: u64,
    pub tokens: u64,
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
    /// Tokens recorded through this permit (added to the shared counts it was admitted with).
    tokens: AtomicU64,
}

impl Permit {
    pub(crate) fn local(held: SmallVec<[Held; 2]>) -> Self {
        Self {
            held,
            shared: None,
            tokens: AtomicU64::new(0),
        }
    }

    pub(crate) fn shared(held: SmallVec<[Held; 2]>, shared: SharedLease) -> Self {
        Self {
            held,
            shared: Some(shared),
            tokens: AtomicU64::new(0),
        }
    }

    /// What the first scope of `kind` has used of its current minute, this request included:
    /// the shared counts the admission saw (plus the tokens recorded since), else this
    /// instance's. `None` when the request does not count in such a scope.
    pub fn used(&self, kind: ScopeKind, now_ms: i64) -> Option<WindowUse> {
        let held = self.held.iter().find(|h| h.scope.kind() == kind)?;
        Some(match held.seen {
            Some(seen) => WindowUse {
                requests: seen.requests,
                tokens: seen
                    .tokens
                    .saturating_add(self.tokens.load(Ordering::Relaxed)),
            },
            None => {
                let mut counts = held.scope.local();
                WindowUse {
                    requests: *counts.rpm.at(now_ms),
                    tokens: *counts.tpm.at(now_ms),
                }
            }
        })
    }

    /// Counts the tokens the request used in each scope's tokens-per-minute window (locally at
    /// once; in Redis by the background writer, on Redis's clock).
    pub fn record_tokens(&self, tokens: u64, now_ms: i64) {
        if tokens == 0 {
            return;
        }
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
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
