//! The open-file limit: raised to its hard maximum at start, and the connection cap kept below
//! it, so that a flood of idle connections cannot leave the gateway without a descriptor for the
//! upstream, Vault or the database.

/// Descriptors kept for everything that is not a client connection (listener, Vault, database,
/// logs, upstream pools beyond one per client).
const RESERVED: u64 = 64;

/// The connection cap: `requested`, or half of what the open-file limit leaves after
/// [`RESERVED`] (each proxied request holds a client and an upstream descriptor). Logs both.
pub fn connection_limit(requested: Option<usize>) -> usize {
    let (soft, hard) = raise_open_file_limit();
    let derived = usize::try_from(soft.saturating_sub(RESERVED) / 2)
        .unwrap_or(usize::MAX)
        .max(1);
    let limit = match requested {
        Some(requested) if requested > derived => {
            tracing::warn!(
                requested,
                open_file_limit = soft,
                "--max-connections is above what the open-file limit allows; using {derived}"
            );
            derived
        }
        Some(requested) => requested.max(1),
        None => derived,
    };
    tracing::info!(
        open_file_limit = soft,
        open_file_hard_limit = hard,
        max_connections = limit,
        "connection limit"
    );
    limit
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (soft, hard) in force.
fn raise_open_file_limit() -> (u64, u64) {
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return (1024, 1024);
    };
    if soft < hard {
        match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the open-file limit");
                return (hard, hard);
            }
            Err(error) => tracing::warn!(%error, soft, hard, "cannot raise the open-file limit"),
        }
    }
    (soft, hard)
}
