//! Spend-log rows through the key service: batched writes (more rows than one statement
//! holds), paging, and the retention pass deleting only rows older than the period.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use vaultgate_keys::{KeyService, ManualClock, SpendLogRow};

use crate::common::{Db, TestDb, send, test_options};

const DAY_MS: i64 = 86_400_000;

#[tokio::test]
async fn spend_log_batches_and_retention_sqlite() {
    batches_and_retention(Db::Sqlite).await;
}

#[tokio::test]
async fn spend_log_batches_and_retention_postgres() {
    batches_and_retention(Db::Postgres).await;
}

fn row(id: usize, start_ms: i64, tags: &[&str]) -> SpendLogRow {
    SpendLogRow {
        request_id: format!("req-{id}"),
        call_type: "acompletion".into(),
        api_key: "ab".repeat(32),
        spend: 0.5,
        prompt_tokens: 3,
        completion_tokens: 4,
        start_ms,
        end_ms: start_ms + 10,
        model: "m".into(),
        model_group: "g".into(),
        request_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        status: "success".into(),
        ..SpendLogRow::default()
    }
}

async fn batches_and_retention(db: Db) {
    let db = TestDb::new(db).await;
    let clock = Arc::new(ManualClock::starting_now());
    let now = vaultgate_keys::Clock::now_ms(clock.as_ref());
    let mut options = test_options(&db.url, clock.clone(), None);
    options.spend_logs.retention = Some(Duration::from_millis(7 * DAY_MS as u64));
    let service = KeyService::open(options).await.unwrap();
    let router = vaultgate_keys::routes(service.clone())
        .layer(axum::Extension(vaultgate_keys::Caller::Master));

    for i in 0..240 {
        service.log_request(row(i, now - 1_000 - i as i64, &["fresh"]));
    }
    for i in 240..250 {
        service.log_request(row(i, now - 8 * DAY_MS, &["old"]));
    }
    service.flush_spend_logs().await.unwrap();

    let (status, page, _) = send(&router, "GET", "/spend/logs?page_size=1000", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page.as_array().unwrap().len(), 250);
    assert_eq!(page[0]["request_id"], "req-0", "newest first");
    assert_eq!(page[0]["total_tokens"], 7);
    let (_, page, _) = send(&router, "GET", "/spend/logs?page_size=100&page=3", None).await;
    assert_eq!(page.as_array().unwrap().len(), 50);

    assert_eq!(service.purge_spend_logs().await.unwrap(), 10);
    assert_eq!(service.purge_spend_logs().await.unwrap(), 0);
    let (_, page, _) = send(&router, "GET", "/spend/logs?page_size=1000", None).await;
    assert_eq!(page.as_array().unwrap().len(), 240);
    let (_, tags, _) = send(&router, "GET", "/spend/tags", None).await;
    assert_eq!(
        tags.as_array().unwrap().len(),
        1,
        "the old rows' tags went too: {tags}"
    );
    assert_eq!(tags[0]["individual_request_tag"], "fresh");
    assert_eq!(tags[0]["log_count"], 240);

    service.shutdown().await;
    db.cleanup().await;
}
