//! The load every chaos scenario runs under: a fixed number of clients, each sending chat
//! requests one after the other, recording when each was answered and how, until stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

/// Longest a client waits for one answer: far above every fault the scenarios inject.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A client's pause between two requests, so the load leaves the faulted processes some CPU.
const PAUSE: Duration = Duration::from_millis(10);
/// What a failure keeps of its body.
const BODY_KEPT: usize = 400;

/// One request of the load: when its answer (or failure) came, its status (0: no answer).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub at: Instant,
    pub status: u16,
    /// The body or transport error, for anything but a 200.
    pub detail: String,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status == 200
    }
}

/// Clients in a loop against one gateway; stopped by [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `clients` loops sending `{"model": model, …}` chat requests with `key` to `gateway_url`.
    pub fn chat(gateway_url: &str, key: &str, model: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let url = format!("{gateway_url}/v1/chat/completions");
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let clients = (0..clients)
            .map(|_| {
                let (stop, outcomes) = (Arc::clone(&stop), Arc::clone(&outcomes));
                let (url, key, body) = (url.clone(), key.to_owned(), body.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .timeout(REQUEST_TIMEOUT)
                        .build()
                        .unwrap();
                    while !stop.load(Ordering::SeqCst) {
                        let sent = client.post(&url).bearer_auth(&key).json(&body).send();
                        let (status, detail) = match sent.await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let text = response.text().await;
                                match (status, text) {
                                    (200, Ok(_)) => (200, String::new()),
                                    (status, Ok(text)) => (status, text),
                                    (_, Err(e)) => (0, format!("body cut: {e}")),
                                }
                            }
                            Err(e) => (0, e.to_string()),
                        };
                        let mut detail = detail;
                        detail.truncate(BODY_KEPT);
                        let outcome = Outcome {
                            at: Instant::now(),
                            status,
                            detail,
                        };
                        outcomes.lock().unwrap().push(outcome);
                        tokio::time::sleep(PAUSE).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            outcomes,
            clients,
        }
    }

    /// Requests answered 200 so far.
    pub fn answered(&self) -> usize {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.ok())
            .count()
    }

    /// Waits (bounded) until `more` further requests were answered 200: the load is flowing.
    pub async fn flowing(&self, more: usize) {
        let target = self.answered() + more;
        eventually("the load to be answered", async || {
            self.answered() >= target
        })
        .await;
    }

    /// Stops every client after its current request; everything they saw, in order.
    pub async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.await.unwrap();
        }
        let mut outcomes = std::mem::take(&mut *self.outcomes.lock().unwrap());
        outcomes.sort_by_key(|o| o.at);
        outcomes
    }
}

/// Panics with the failures (and how many there were) unless every request was answered 200.
pub fn assert_all_answered(outcomes: &[Outcome], what: &str) {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .map(|o| format!("{} {}", o.status, o.detail))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} model requests failed {what}; first ones: {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(!outcomes.is_empty(), "no load ran {what}");
}

/// Longest wait for a fault (or its end) to show; never a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `check` until it holds, at most [`PATIENCE`]; panics naming `what` otherwise.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    until(what, async || {
        if check().await {
            Ok(())
        } else {
            Err(String::new())
        }
    })
    .await;
}

/// Polls `check` until it is `Ok`, at most [`PATIENCE`]; panics with `what` and the last error.
pub async fn until(what: &str, mut check: impl AsyncFnMut() -> Result<(), String>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let last = match check().await {
            Ok(()) => return,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "not seen within {PATIENCE:?}: {what} {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
