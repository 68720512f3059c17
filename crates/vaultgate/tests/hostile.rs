//! Hostile clients: idle and slow-header connections are closed, an answer sent before the body
//! is read says `Connection: close`, connections over the cap get a 503 instead of a hang, and
//! the open-file limit is reported at start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const CONFIG: &str = "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, mock_response: hi}\ngeneral_settings: {master_key: sk-hostile-1}\n";
/// Far above the 1 s header timeout the tests set, so a slow machine cannot fail them.
const CLOSE_WITHIN: Duration = Duration::from_secs(20);

fn connect(gateway: &Gateway) -> TcpStream {
    let address = gateway.url.trim_start_matches("http://");
    let tcp = TcpStream::connect(address).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    tcp
}

/// Reads until the server closes the connection (or `CLOSE_WITHIN` passes); what it sent.
fn read_until_closed(
    tcp: &mut TcpStream,
    mut trickle: impl FnMut(&mut TcpStream),
) -> Option<String> {
    let deadline = Instant::now() + CLOSE_WITHIN;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        match tcp.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                trickle(tcp)
            }
            Err(_) => return Some(String::from_utf8_lossy(&received).into_owned()),
        }
    }
    None
}

#[test]
fn idle_and_slow_header_connections_are_closed() {
    let gateway = Gateway::builder(BIN, CONFIG)
        .arg("--header-read-timeout")
        .arg("1")
        .start()
        .unwrap();
    // Idle: never sends a byte.
    let mut idle = connect(&gateway);
    assert!(
        read_until_closed(&mut idle, |_| {}).is_some(),
        "idle connection kept open"
    );

    // Slowloris: a header line that never ends, one byte at a time.
    let mut slow = connect(&gateway);
    slow.write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let closed = read_until_closed(&mut slow, |tcp| {
        let _ = tcp.write_all(b"a");
    });
    assert!(closed.is_some(), "slow header kept open");

    // Idle after a complete request on a keep-alive connection.
    let mut kept = connect(&gateway);
    kept.write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut kept, |_| {}).expect("keep-alive connection kept open");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn connections_over_the_cap_get_a_503_and_a_log_line() {
    let gateway = Gateway::builder(BIN, CONFIG)
        .arg("--max-connections")
        .arg("3")
        .start()
        .unwrap();
    // Three keep-alive connections, each answered once, so each surely holds its slot.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut tcp = connect(&gateway);
            tcp.write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buffer = [0u8; 1024];
            let deadline = Instant::now() + CLOSE_WITHIN;
            while !matches!(tcp.read(&mut buffer), Ok(n) if n > 0) {
                assert!(Instant::now() < deadline, "no answer on a held connection");
            }
            tcp
        })
        .collect();
    let mut extra = connect(&gateway);
    let answer = read_until_closed(&mut extra, |_| {}).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains(r#""type":"service_unavailable""#),
        "{answer}"
    );
    drop(held);
    // The log is read from the gateway's stderr by another thread: give it a moment (bounded).
    let deadline = Instant::now() + CLOSE_WITHIN;
    while !gateway.logs().contains("connection limit reached") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = gateway.logs();
    assert!(logs.contains("connection limit reached"), "{logs}");
    assert!(
        logs.contains("open_file_limit=") && logs.contains("max_connections=3"),
        "{logs}"
    );

    // Once the held connections are gone, new ones are served again.
    let deadline = Instant::now() + CLOSE_WITHIN;
    loop {
        let mut tcp = connect(&gateway);
        tcp.write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let answer = read_until_closed(&mut tcp, |_| {}).unwrap_or_default();
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends a request head whose body never follows; what the gateway answered before closing.
fn answer_without_body(gateway: &Gateway, head: &str) -> String {
    let mut tcp = connect(gateway);
    tcp.write_all(head.as_bytes()).unwrap();
    read_until_closed(&mut tcp, |_| {}).expect("connection kept open after the answer")
}

#[test]
fn an_answer_sent_before_the_body_is_read_says_connection_close() {
    let gateway = Gateway::builder(BIN, CONFIG).start().unwrap();
    // No key: 401 before the body is read.
    let answer = answer_without_body(
        &gateway,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
         content-length: 64\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    // Over the body limit (declared): 413 before the body is read.
    let answer = answer_without_body(
        &gateway,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer sk-hostile-1\r\n\
         content-type: application/json\r\ncontent-length: 999999999\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    // A request whose body was read keeps its connection.
    let mut tcp = connect(&gateway);
    let body = r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#;
    tcp.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer sk-hostile-1\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + CLOSE_WITHIN;
    while !String::from_utf8_lossy(&received).contains("\"hi\"") {
        assert!(Instant::now() < deadline, "no answer");
        if let Ok(n) = tcp.read(&mut buffer) {
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buffer[..n]);
        }
    }
    let answer = String::from_utf8_lossy(&received).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
}

#[test]
fn a_body_trickled_slower_than_the_body_read_timeout_gets_a_408_and_is_closed() {
    let gateway = Gateway::builder(BIN, CONFIG)
        .arg("--body-read-timeout")
        .arg("1")
        .start()
        .unwrap();
    let mut tcp = connect(&gateway);
    tcp.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer sk-hostile-1\r\n\
          content-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"model\":",
    )
    .unwrap();
    // One byte each time the read times out (every 200 ms), far slower than the body needs.
    let answer = read_until_closed(&mut tcp, |tcp| {
        let _ = tcp.write_all(b" ");
    })
    .expect("slow body kept open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#""type":"invalid_request_error""#)
            && answer.contains("body-read-timeout"),
        "{answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
}

#[test]
fn five_thousand_idle_connections_do_not_stop_a_request_and_are_all_closed() {
    const IDLE: usize = 5_000;
    let limit = rlimit::increase_nofile_limit(2 * IDLE as u64).unwrap();
    assert!(
        limit > IDLE as u64 + 100,
        "this test needs an open-file limit above {IDLE} (ulimit -Hn is {limit})"
    );
    let gateway = Gateway::builder(BIN, CONFIG)
        .arg("--header-read-timeout")
        .arg("5")
        .start()
        .unwrap();
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(&gateway)).collect();
    let mut tcp = connect(&gateway);
    tcp.write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut tcp, |_| {}).expect("no answer beside the idle ones");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Every idle connection is closed by the header read timeout.
    for tcp in &idle {
        tcp.set_nonblocking(true).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut open: Vec<&TcpStream> = idle.iter().collect();
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} idle connections kept open",
            open.len()
        );
        std::thread::sleep(Duration::from_millis(200));
        open.retain(|tcp| {
            let mut byte = [0u8; 1];
            let mut tcp: &TcpStream = tcp;
            matches!(tcp.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
    }
}

/// The JSON body of a raw HTTP answer, which must be OpenAI's error shape.
fn openai_error(answer: &str) -> serde_json::Value {
    let (head, body) = answer.split_once("\r\n\r\n").expect(answer);
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\ncontent-type: application/json"),
        "{answer}"
    );
    let body: serde_json::Value = serde_json::from_str(body).expect(answer);
    assert!(body["error"]["message"].is_string(), "{answer}");
    assert!(body["error"]["type"].is_string(), "{answer}");
    body
}

#[test]
fn framing_errors_and_oversized_management_bodies_are_answered_in_openai_shape() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "model_list: []\ngeneral_settings: {{master_key: sk-hostile-1, max_request_size_mb: 4, \
         database_url: 'sqlite://{}/keys.db'}}\n",
        dir.path().display()
    );
    let gateway = Gateway::builder(BIN, &config)
        .dir(dir.path())
        .start()
        .unwrap();
    let ask = |request: &[u8]| {
        let mut tcp = connect(&gateway);
        tcp.write_all(request).unwrap();
        read_until_closed(&mut tcp, |_| {}).expect("connection kept open")
    };
    let answer = ask(b"GARBAGE\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(openai_error(&answer)["error"]["code"], "400");

    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let answer = ask(format!("GET /v1/models HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(openai_error(&answer)["error"]["code"], "431");

    // Over max_request_size_mb (4 MB) on a key route: the limit is that one, in OpenAI's shape.
    let answer = ask(
        b"POST /key/generate HTTP/1.1\r\nHost: x\r\nauthorization: Bearer sk-hostile-1\r\n\
        content-type: application/json\r\ncontent-length: 5000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let error = openai_error(&answer);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4194304"),
        "{answer}"
    );
    // 3 MB is under it (axum's own 2 MB limit no longer applies).
    let body = format!(
        r#"{{"key_alias":"big","metadata":{{"note":"{}"}}}}"#,
        "n".repeat(3_000_000)
    );
    let answer = ask(
        format!(
            "POST /key/generate HTTP/1.1\r\nHost: x\r\nauthorization: Bearer sk-hostile-1\r\n\
             content-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{}",
        &answer[..answer.len().min(600)]
    );
}
