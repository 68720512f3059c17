//! The Bedrock side of the mock: verifies the SigV4 signature of every `/model/…` request
//! (recomputed here from the spec, independently of the gateway's signing crate, with the keys
//! it knows or asks moto for) and answers Converse / ConverseStream, the stream in AWS
//! event-stream frames encoded here by hand.

use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::response::Response;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// AWS credentials the mock accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Where the mock learns which AWS keys are valid.
#[derive(Debug, Clone)]
pub enum AwsKeys {
    /// These keys only.
    Static(Vec<AwsKey>),
    /// The keys a moto server holds now (IAM access keys, STS sessions), read from its
    /// `/moto-api/data.json` at every request: a key deleted in moto is refused at once.
    Moto(String),
}

/// The content type of ConverseStream answers.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// How far a request's `x-amz-date` may be from the mock's clock (AWS allows 15 minutes).
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// What a verified signature said.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key_id: String,
    pub region: String,
}

/// Verifies the request's SigV4 `authorization`; `Err` says why it is refused.
pub async fn verify(
    keys: &AwsKeys,
    method: &str,
    raw_path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = header("authorization").ok_or("no authorization header")?;
    let rest = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or("malformed authorization")?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => return Err(format!("unknown authorization part {key}")),
        }
    }
    let (credential, signed_headers, signature) = (
        credential.ok_or("no Credential")?,
        signed_headers.ok_or("no SignedHeaders")?,
        signature.ok_or("no Signature")?,
    );
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(format!("malformed credential scope {credential}"));
    };
    let amz_date = header("x-amz-date").ok_or("no x-amz-date")?;
    if !amz_date.starts_with(date) {
        return Err("x-amz-date and the credential scope disagree".into());
    }
    check_skew(amz_date)?;
    let signed: Vec<&str> = signed_headers.split(';').collect();
    for required in ["host", "x-amz-date"] {
        if !signed.contains(&required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let key = find_key(keys, access_key_id).await?;
    match (&key.session_token, header("x-amz-security-token")) {
        (Some(expected), Some(sent)) if expected == sent => {
            if !signed.contains(&"x-amz-security-token") {
                return Err("x-amz-security-token is not signed".into());
            }
        }
        (Some(_), _) => return Err("missing or wrong x-amz-security-token".into()),
        (None, Some(_)) => return Err("a session token for long-term keys".into()),
        (None, None) => {}
    }

    let (path, query) = raw_path_and_query
        .split_once('?')
        .unwrap_or((raw_path_and_query, ""));
    let mut canonical = String::new();
    canonical.push_str(method);
    canonical.push('\n');
    canonical.push_str(&canonical_uri(path));
    canonical.push('\n');
    canonical.push_str(&canonical_query(query));
    canonical.push('\n');
    for name in &signed {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    canonical.push('\n');
    canonical.push_str(signed_headers);
    canonical.push('\n');
    canonical.push_str(&hex::encode(Sha256::digest(body)));

    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut signing_key = hmac(
        format!("AWS4{}", key.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        signing_key = hmac(&signing_key, part.as_bytes());
    }
    let expected = hex::encode(hmac(&signing_key, string_to_sign.as_bytes()));
    if expected != signature {
        return Err(
            "the request signature we calculated does not match the signature you provided".into(),
        );
    }
    if service != "bedrock" {
        return Err(format!("signed for service {service}, not bedrock"));
    }
    Ok(Verified {
        access_key_id: access_key_id.to_owned(),
        region: region.to_owned(),
    })
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Every path segment URI-encoded once more, as SigV4 wants for all services but S3.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(k), uri_encode(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn uri_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `20250102T030405Z` within [`MAX_SKEW`] of now.
fn check_skew(amz_date: &str) -> Result<(), String> {
    let parse = |range: std::ops::Range<usize>| -> Result<i64, String> {
        amz_date
            .get(range)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed x-amz-date {amz_date}"))
    };
    let (y, mo, d) = (parse(0..4)?, parse(4..6)?, parse(6..8)?);
    let (h, mi, s) = (parse(9..11)?, parse(11..13)?, parse(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let signed_at = days * 86_400 + h * 3600 + mi * 60 + s;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if (now - signed_at).unsigned_abs() > MAX_SKEW.as_secs() {
        return Err("signature expired: x-amz-date is too far from now".into());
    }
    Ok(())
}

async fn find_key(keys: &AwsKeys, access_key_id: &str) -> Result<AwsKey, String> {
    let unknown = || "the security token included in the request is invalid".to_owned();
    match keys {
        AwsKeys::Static(keys) => keys
            .iter()
            .find(|k| k.access_key_id == access_key_id)
            .cloned()
            .ok_or_else(unknown),
        AwsKeys::Moto(url) => {
            let data: Value = reqwest::get(format!("{url}/moto-api/data.json"))
                .await
                .map_err(|e| format!("moto unreachable: {e}"))?
                .json()
                .await
                .map_err(|e| format!("moto answered no JSON: {e}"))?;
            moto_key(&data, access_key_id).ok_or_else(unknown)
        }
    }
}

/// An active IAM access key, or an STS session (with its token), as moto holds them.
fn moto_key(data: &Value, access_key_id: &str) -> Option<AwsKey> {
    let list = |pointer: &str| {
        data.pointer(pointer)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let is_id = |v: &&Value| str_of(v, "access_key_id").as_deref() == Some(access_key_id);
    if let Some(session) = list("/sts/AssumedRole").iter().find(is_id) {
        return Some(AwsKey {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: str_of(session, "secret_access_key")?,
            session_token: str_of(session, "session_token"),
        });
    }
    if let Some(session) = list("/sts/Token").iter().find(is_id) {
        return Some(AwsKey {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: str_of(session, "secret_access_key")?,
            session_token: str_of(session, "session_token"),
        });
    }
    let key = list("/iam/AccessKey").into_iter().find(|k| is_id(&k))?;
    (str_of(&key, "status").as_deref() == Some("Active")).then(|| AwsKey {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: str_of(&key, "secret_access_key").unwrap_or_default(),
        session_token: None,
    })
}

/// AWS's answer to a request it cannot authenticate.
pub fn refused(why: &str) -> Response {
    let mut response = Response::new(Body::from(json!({ "message": why }).to_string()));
    *response.status_mut() = http::StatusCode::FORBIDDEN;
    let headers = response.headers_mut();
    headers.insert(
        "x-amzn-errortype",
        http::HeaderValue::from_static("UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/"),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) const USAGE: (u64, u64) = (5, 7);

/// The Converse answer.
pub fn default_answer(answer: &str) -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": USAGE.0, "outputTokens": USAGE.1, "totalTokens": USAGE.0 + USAGE.1},
        "metrics": {"latencyMs": 12},
    })
}

/// The ConverseStream events of `answer`, each `{event type: payload}`.
pub fn default_stream(answer: &str) -> Vec<String> {
    let mut events = vec![json!({"messageStart": {"role": "assistant"}})];
    events.extend(answer.split_inclusive(' ').map(
        |word| json!({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": word}}}),
    ));
    events.push(json!({"contentBlockStop": {"contentBlockIndex": 0}}));
    events.push(json!({"messageStop": {"stopReason": "end_turn"}}));
    events.push(json!({"metadata": {
        "usage": {"inputTokens": USAGE.0, "outputTokens": USAGE.1, "totalTokens": USAGE.0 + USAGE.1},
        "metrics": {"latencyMs": 12},
    }}));
    events.into_iter().map(|e| e.to_string()).collect()
}

/// One event-stream frame of a scripted `{name: payload}`: an event, or an exception when the
/// name ends in `Exception` (`{"throttlingException": {"message": …}}`).
pub fn frame(event: &str) -> Bytes {
    let parsed: Value = serde_json::from_str(event).unwrap_or(Value::Null);
    let (name, payload) = parsed
        .as_object()
        .and_then(|o| o.iter().next())
        .map(|(k, v)| (k.clone(), v.to_string()))
        .unwrap_or_else(|| ("unknown".into(), "{}".into()));
    let headers: Vec<(&str, &str)> = if name.ends_with("Exception") {
        vec![
            (":message-type", "exception"),
            (":exception-type", &name),
            (":content-type", "application/json"),
        ]
    } else {
        vec![
            (":message-type", "event"),
            (":event-type", &name),
            (":content-type", "application/json"),
        ]
    };
    encode_frame(&headers, payload.as_bytes())
}

/// The AWS event-stream wire format: total and header lengths, prelude CRC, string headers
/// (type 7), payload, message CRC (CRC-32, big-endian).
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut encoded_headers = Vec::new();
    for (name, value) in headers {
        encoded_headers.push(name.len() as u8);
        encoded_headers.extend_from_slice(name.as_bytes());
        encoded_headers.push(7);
        encoded_headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        encoded_headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + encoded_headers.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(encoded_headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&encoded_headers);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    Bytes::from(out)
}
