//! One instance at a time runs the background jobs: the one holding a session advisory lock on
//! a connection of its own. The others try to take the lock every second, so when the leader
//! dies (its connection closes with it) another one takes over within about a second. The
//! leader checks its connection as often; a broken one ends its leadership at once.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, Result};

use super::Cluster;

const POLL: Duration = Duration::from_secs(1);
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The second key of the advisory lock (the first one names the schema).
const JOBS_LOCK: i32 = 1;

pub(super) async fn run(cluster: Arc<Cluster>, url: String, stop: CancellationToken) {
    let mut connection: Option<PgConnection> = None;
    let mut failures = 0u32;
    loop {
        match step(&cluster, &url, &mut connection).await {
            Ok(()) => failures = 0,
            Err(e) => {
                connection = None;
                cluster.set_leader(false);
                failures += 1;
                if failures == 1 || failures.is_multiple_of(60) {
                    tracing::warn!(error = %e, "cannot reach the database to share the background jobs; retrying");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(POLL) => {}
        }
    }
    // Closing the connection frees the lock for the other instances at once.
    if let Some(connection) = connection {
        let _ = tokio::time::timeout(CALL_TIMEOUT, connection.close()).await;
    }
    cluster.set_leader(false);
}

async fn step(cluster: &Cluster, url: &str, connection: &mut Option<PgConnection>) -> Result<()> {
    let db = |e: sqlx::Error| Error::Database(e.to_string());
    let timed_out = |_| Error::Database("the database did not answer in time".into());
    if connection.is_none() {
        let opened = tokio::time::timeout(CALL_TIMEOUT, PgConnection::connect(url))
            .await
            .map_err(timed_out)?
            .map_err(db)?;
        *connection = Some(opened);
    }
    let Some(conn) = connection.as_mut() else {
        return Ok(());
    };
    if cluster.runs_jobs() {
        // The lock lives as long as this session: check that it does.
        tokio::time::timeout(CALL_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *conn))
            .await
            .map_err(timed_out)?
            .map_err(db)?;
        return Ok(());
    }
    let taken: bool = tokio::time::timeout(
        CALL_TIMEOUT,
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(cluster.lock_space)
            .bind(JOBS_LOCK)
            .fetch_one(&mut *conn),
    )
    .await
    .map_err(timed_out)?
    .map_err(db)?;
    if taken {
        cluster.set_leader(true);
    }
    Ok(())
}
