//! Choosing one deployment among the healthy candidates of a group (LiteLLM's routing strategies).

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use vaultgate_core::Error;
use vaultgate_providers::Deployment;

use crate::health::DeploymentState;

/// `router_settings.routing_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Random, weighted by `weight`, else `rpm`, else `tpm`, else uniform (LiteLLM's default).
    #[default]
    SimpleShuffle,
    /// Fewest requests in flight.
    LeastBusy,
    /// Lowest recent latency; deployments never measured are tried first.
    LatencyBased,
    /// Strict turns (a vaultgate extension; deterministic, handy for tests and demos).
    RoundRobin,
}

impl FromStr for Strategy {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        match name {
            "simple-shuffle" => Ok(Self::SimpleShuffle),
            "least-busy" => Ok(Self::LeastBusy),
            "latency-based-routing" => Ok(Self::LatencyBased),
            "round-robin" => Ok(Self::RoundRobin),
            other => Err(Error::Config(format!(
                "router_settings.routing_strategy: '{other}' is not supported; supported: \
                 simple-shuffle, least-busy, latency-based-routing, round-robin"
            ))),
        }
    }
}

/// A deployment the strategy may choose, by its index in the group.
pub struct Candidate<'a> {
    pub index: usize,
    pub deployment: &'a Deployment,
    pub state: &'a DeploymentState,
}

impl Strategy {
    /// Picks one of `candidates` (non-empty); returns its group index.
    pub fn pick(
        self,
        candidates: &[Candidate<'_>],
        cursor: &AtomicUsize,
        rng: &mut impl Rng,
    ) -> Option<usize> {
        let chosen = match self {
            Self::SimpleShuffle => weighted(candidates, rng),
            Self::LeastBusy => {
                let fewest = candidates.iter().map(|c| c.state.in_flight()).min()?;
                let idle: Vec<&Candidate<'_>> = candidates
                    .iter()
                    .filter(|c| c.state.in_flight() == fewest)
                    .collect();
                idle.get(rng.random_range(0..idle.len())).copied()
            }
            Self::LatencyBased => {
                let untried: Vec<&Candidate<'_>> = candidates
                    .iter()
                    .filter(|c| c.state.latency().is_none())
                    .collect();
                if untried.is_empty() {
                    candidates.iter().min_by_key(|c| c.state.latency())
                } else {
                    untried.get(rng.random_range(0..untried.len())).copied()
                }
            }
            Self::RoundRobin => {
                let turn = cursor.fetch_add(1, Ordering::Relaxed);
                candidates.get(turn % candidates.len())
            }
        };
        chosen.map(|c| c.index)
    }
}

/// LiteLLM's simple-shuffle: weights from `weight` when any candidate sets it, else `rpm`, else
/// `tpm` (a candidate without the field weighs 0), else a uniform pick.
fn weighted<'c, 'a>(
    candidates: &'c [Candidate<'a>],
    rng: &mut impl Rng,
) -> Option<&'c Candidate<'a>> {
    let fields: [fn(&Deployment) -> Option<f64>; 3] = [
        |d| d.weight,
        |d| d.rpm.map(|v| v as f64),
        |d| d.tpm.map(|v| v as f64),
    ];
    for field in fields {
        if !candidates.iter().any(|c| field(c.deployment).is_some()) {
            continue;
        }
        let weights: Vec<f64> = candidates
            .iter()
            .map(|c| field(c.deployment).unwrap_or(0.0).max(0.0))
            .collect();
        let total: f64 = weights.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            break;
        }
        let mut point = rng.random::<f64>() * total;
        for (candidate, weight) in candidates.iter().zip(&weights) {
            if point < *weight {
                return Some(candidate);
            }
            point -= weight;
        }
        // Rounding left the point past the end: the last candidate with any weight gets it.
        return candidates
            .iter()
            .zip(&weights)
            .rev()
            .find(|(_, w)| **w > 0.0)
            .map(|(c, _)| c);
    }
    candidates.get(rng.random_range(0..candidates.len()))
}
