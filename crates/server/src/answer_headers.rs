//! The headers of a model answer that say how it was served: ours (`x-vaultgate-*`), the
//! `x-litellm-*` ones LiteLLM clients read, the key's `x-ratelimit-*`, and the provider's own
//! headers as LiteLLM passes them on (`llm_provider-*`). Values naming a deployment are built at
//! start (or once per base URL), small counts come from a static table; a request formats only
//! its cost, its key's spend and the key's remaining limits.

use std::sync::{LazyLock, RwLock};

use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use vaultgate_core::FastMap;
use vaultgate_keys::KeyUse;
use vaultgate_providers::seconds_text;
use vaultgate_router::{Outcome, RequestRouting};

use crate::access::Charged;

const MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
const MODEL_GROUP: HeaderName = HeaderName::from_static("x-litellm-model-group");
const ATTEMPTED_RETRIES: HeaderName = HeaderName::from_static("x-litellm-attempted-retries");
const ATTEMPTED_FALLBACKS: HeaderName = HeaderName::from_static("x-litellm-attempted-fallbacks");
const MAX_RETRIES: HeaderName = HeaderName::from_static("x-litellm-max-retries");
const TIMEOUT: HeaderName = HeaderName::from_static("x-litellm-timeout");
const VAULTGATE_MODEL_ID: HeaderName = HeaderName::from_static("x-vaultgate-model-id");
const VAULTGATE_ATTEMPTS: HeaderName = HeaderName::from_static("x-vaultgate-attempts");
const API_BASE: HeaderName = HeaderName::from_static("x-litellm-model-api-base");
const RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");
const KEY_SPEND: HeaderName = HeaderName::from_static("x-litellm-key-spend");
const KEY_MAX_BUDGET: HeaderName = HeaderName::from_static("x-litellm-key-max-budget");
const KEY_RPM_LIMIT: HeaderName = HeaderName::from_static("x-litellm-key-rpm-limit");
const KEY_TPM_LIMIT: HeaderName = HeaderName::from_static("x-litellm-key-tpm-limit");
const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");

/// OpenAI's rate-limit headers: LiteLLM passes a provider's on under their own names too.
const OPENAI_RATE_LIMITS: [&str; 6] = [
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
];

/// Anthropic's rate-limit headers and the OpenAI names LiteLLM gives them.
static ANTHROPIC_RATE_LIMITS: [(&str, HeaderName); 4] = [
    ("anthropic-ratelimit-requests-limit", LIMIT_REQUESTS),
    ("anthropic-ratelimit-requests-remaining", REMAINING_REQUESTS),
    ("anthropic-ratelimit-tokens-limit", LIMIT_TOKENS),
    ("anthropic-ratelimit-tokens-remaining", REMAINING_TOKENS),
];

/// Prefixed names kept at most (providers send a few dozen distinct ones; a hostile upstream
/// inventing names gets them built per answer instead of growing the table).
const MAX_PREFIXED: usize = 512;
/// Budgets kept formatted at most (keys share a few; past it a budget is formatted per answer).
const MAX_BUDGETS: usize = 4096;

/// `0`…`9` without formatting; larger counts are rare (retries and fallbacks are few).
pub(crate) fn count(n: u32) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match SMALL.get(n as usize) {
        Some(text) => HeaderValue::from_static(text),
        None => HeaderValue::from(n),
    }
}

/// Which deployment answered (or failed last), after how many attempts, retries and fallbacks,
/// under which retry budget and timeout: on answers and errors alike.
pub(crate) fn with_outcome(
    mut response: Response,
    outcome: Option<&Outcome>,
    routing: &RequestRouting,
) -> Response {
    let Some(outcome) = outcome else {
        return response;
    };
    let names = &outcome.deployment.headers;
    let headers = response.headers_mut();
    if let Some(id) = &names.id {
        headers.insert(VAULTGATE_MODEL_ID, id.clone());
        headers.insert(MODEL_ID, id.clone());
    }
    if let Some(group) = &names.group {
        headers.insert(MODEL_GROUP, group.clone());
    }
    headers.insert(VAULTGATE_ATTEMPTS, count(outcome.attempts));
    headers.insert(ATTEMPTED_RETRIES, count(outcome.retries));
    headers.insert(ATTEMPTED_FALLBACKS, count(outcome.fallbacks));
    headers.insert(MAX_RETRIES, count(outcome.max_retries));
    let timeout = match routing.timeout {
        Some(limit) => HeaderValue::from_str(&seconds_text(limit)).ok(),
        None => Some(names.timeout.clone()),
    };
    if let Some(timeout) = timeout {
        headers.insert(TIMEOUT, timeout);
    }
    response
}

/// What an answer cost and where its key stands, beside the deployment that served it.
pub(crate) struct Served {
    /// `x-litellm-model-api-base` (see `Deployment::api_base_header`).
    pub api_base: Option<HeaderValue>,
    /// This request's cost in USD; `None` for streams, whose headers leave before the usage
    /// arrives (LiteLLM sends no cost on them either).
    pub cost: Option<f64>,
    /// The virtual key's spend (this request included where its cost is known) and limits.
    pub key: Option<KeyUse>,
}

impl Served {
    /// A whole answer, charged (`None` when no deployment answered).
    pub fn answered(api_base: Option<HeaderValue>, charged: Option<Charged>) -> Self {
        Self {
            api_base,
            cost: charged.as_ref().map(|c| c.cost),
            key: charged.and_then(|c| c.key),
        }
    }

    /// A stream, whose cost is not known yet: the key's spend is the one before it.
    pub fn streaming(api_base: Option<HeaderValue>, key: Option<KeyUse>) -> Self {
        Self {
            api_base,
            cost: None,
            key,
        }
    }
}

/// Adds the provider's headers (`provider`, the upstream's own) and what [`Served`] says.
/// A key with an rpm or tpm limit reports its own `x-ratelimit-*` (LiteLLM's parallel-request
/// limiter does), replacing the provider's; otherwise the provider's stand.
pub(crate) fn with_served(
    mut response: Response,
    provider: &HeaderMap,
    served: Served,
) -> Response {
    let headers = response.headers_mut();
    pass_on(headers, provider);
    if let Some(base) = served.api_base {
        headers.insert(API_BASE, base);
    }
    if let Some(cost) = served.cost {
        insert_float(headers, RESPONSE_COST, cost);
    }
    let Some(key) = served.key else {
        return response;
    };
    insert_float(headers, KEY_SPEND, key.spend);
    if let Some(value) = key.max_budget.and_then(budget) {
        headers.insert(KEY_MAX_BUDGET, value);
    }
    if let Some(rpm) = key.rpm_limit {
        headers.insert(KEY_RPM_LIMIT, HeaderValue::from(rpm));
    }
    if let Some(tpm) = key.tpm_limit {
        headers.insert(KEY_TPM_LIMIT, HeaderValue::from(tpm));
    }
    if let Some(used) = key.used {
        if let Some(rpm) = key.rpm_limit {
            headers.insert(LIMIT_REQUESTS, HeaderValue::from(rpm));
            let left = rpm.saturating_sub(used.requests);
            headers.insert(REMAINING_REQUESTS, HeaderValue::from(left));
        }
        if let Some(tpm) = key.tpm_limit {
            headers.insert(LIMIT_TOKENS, HeaderValue::from(tpm));
            let left = tpm.saturating_sub(used.tokens);
            headers.insert(REMAINING_TOKENS, HeaderValue::from(left));
        }
    }
    response
}

/// The provider's headers as LiteLLM passes them on: each as `llm_provider-{name}`, and its
/// rate-limit headers under OpenAI's names. Cookies stay behind: they are the gateway's
/// session with the provider, not the client's.
fn pass_on(out: &mut HeaderMap, provider: &HeaderMap) {
    for (name, value) in provider {
        if name == header::SET_COOKIE {
            continue;
        }
        if OPENAI_RATE_LIMITS.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        } else if let Some((_, openai)) = ANTHROPIC_RATE_LIMITS
            .iter()
            .find(|(anthropic, _)| *anthropic == name.as_str())
        {
            out.append(openai.clone(), value.clone());
        }
        if let Some(prefixed) = prefixed(name) {
            out.append(prefixed, value.clone());
        }
    }
}

/// `llm_provider-{name}`, made once per name (a `HeaderName` clone is a reference count).
fn prefixed(name: &HeaderName) -> Option<HeaderName> {
    static NAMES: Memo<HeaderName, HeaderName> = Memo::new();
    NAMES.get_or_make(name, MAX_PREFIXED, || {
        HeaderName::try_from(format!("llm_provider-{}", name.as_str())).ok()
    })
}

/// A key's budget as LiteLLM writes it, made once per budget: keys share a few budgets, and
/// the float's formatting is most of a header's cost.
fn budget(value: f64) -> Option<HeaderValue> {
    static BUDGETS: Memo<u64, HeaderValue> = Memo::new();
    BUDGETS.get_or_make(&value.to_bits(), MAX_BUDGETS, || {
        HeaderValue::try_from(python_float(value)).ok()
    })
}

/// Values made once per key and kept, up to a bound (past it they are made each time, so an
/// unusual input cannot grow the table).
struct Memo<K, V>(LazyLock<RwLock<FastMap<K, V>>>);

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Memo<K, V> {
    const fn new() -> Self {
        Self(LazyLock::new(Default::default))
    }

    fn get_or_make(&self, key: &K, bound: usize, make: impl FnOnce() -> Option<V>) -> Option<V> {
        if let Ok(table) = self.0.read()
            && let Some(found) = table.get(key)
        {
            return Some(found.clone());
        }
        let made = make()?;
        if let Ok(mut table) = self.0.write()
            && table.len() < bound
        {
            table.insert(key.clone(), made.clone());
        }
        Some(made)
    }
}

fn insert_float(headers: &mut HeaderMap, name: HeaderName, value: f64) {
    if let Ok(value) = HeaderValue::try_from(python_float(value)) {
        headers.insert(name, value);
    }
}

/// A float as Python's `str()` writes it, as LiteLLM's headers carry it (`0.00015`, `3.5e-05`,
/// `2.0`): the shortest digits that read back as the same number (ryu's), in exponent form
/// below 1e-4 and from 1e16 up. Three per answer: std's formatting, twice each, cost more
/// than the rest of the answer's headers.
pub(crate) fn python_float(value: f64) -> String {
    if !value.is_finite() {
        return match value {
            v if v.is_nan() => "nan",
            v if v > 0.0 => "inf",
            _ => "-inf",
        }
        .to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    let mut buffer = ryu::Buffer::new();
    let (digits, exponent) = Shortest::of(buffer.format_finite(value.abs()));
    let digits = digits.as_str();
    let mut out = String::with_capacity(26);
    if value < 0.0 {
        out.push('-');
    }
    match usize::try_from(exponent) {
        // 1 ≤ |value| < 1e16: the integer digits, padded with zeros, then the fraction or `.0`.
        Ok(point) if exponent < 16 => {
            let whole = point + 1;
            match (digits.get(..whole), digits.get(whole..)) {
                (Some(int), Some(fraction)) if !fraction.is_empty() => {
                    out.push_str(int);
                    out.push('.');
                    out.push_str(fraction);
                }
                _ => {
                    out.push_str(digits);
                    out.extend(std::iter::repeat_n('0', whole.saturating_sub(digits.len())));
                    out.push_str(".0");
                }
            }
        }
        // 1e-4 ≤ |value| < 1.
        Err(_) if exponent >= -4 => {
            out.push_str("0.");
            out.extend(std::iter::repeat_n(
                '0',
                (-exponent - 1).unsigned_abs() as usize,
            ));
            out.push_str(digits);
        }
        _ => {
            let (first, rest) = digits.split_at(1.min(digits.len()));
            out.push_str(first);
            if !rest.is_empty() {
                out.push('.');
                out.push_str(rest);
            }
            out.push('e');
            out.push(if exponent < 0 { '-' } else { '+' });
            let magnitude = exponent.unsigned_abs();
            if magnitude < 10 {
                out.push('0');
            }
            out.push_str(itoa::Buffer::new().format(magnitude));
        }
    }
    out
}

/// A number's shortest significant digits (no leading or trailing zeros) and the decimal
/// exponent of the first, read from ryu's text (`123.456`, `0.00015`, `3.5e-5`, `1e16`).
struct Shortest {
    digits: [u8; 24],
    len: usize,
}

impl Shortest {
    fn of(text: &str) -> (Self, i32) {
        let (mantissa, exponent) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
        let mut shortest = Shortest {
            digits: [0; 24],
            len: 0,
        };
        // Digits before the decimal point, less the leading zeros dropped.
        let mut point: i32 = 0;
        let mut seen_point = false;
        for byte in mantissa.bytes() {
            match byte {
                b'.' => seen_point = true,
                b'0' if shortest.len == 0 && seen_point => point -= 1,
                b'0' if shortest.len == 0 => {}
                b'0'..=b'9' => {
                    if let Some(slot) = shortest.digits.get_mut(shortest.len) {
                        *slot = byte;
                        shortest.len += 1;
                    }
                    if !seen_point {
                        point += 1;
                    }
                }
                _ => {}
            }
        }
        while shortest.len > 1 && shortest.digits.get(shortest.len - 1) == Some(&b'0') {
            shortest.len -= 1;
        }
        (shortest, point - 1 + exponent.parse::<i32>().unwrap_or(0))
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.digits.get(..self.len).unwrap_or_default()).unwrap_or("0")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn floats_are_written_as_python_writes_them() {
        for (value, python) in [
            (0.0, "0.0"),
            (2.0, "2.0"),
            (0.00015, "0.00015"),
            (0.0001, "0.0001"),
            (3.5e-5, "3.5e-05"),
            (1.2345e-7, "1.2345e-07"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (-0.5, "-0.5"),
        ] {
            assert_eq!(python_float(value), python, "{value}");
        }
    }

    /// Python's layout built from std's shortest formatting, as it was done before ryu.
    fn layout_with_std(value: f64) -> String {
        let scientific = format!("{value:e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap();
        let exponent: i32 = exponent.parse().unwrap();
        if (-4..16).contains(&exponent) {
            let plain = value.to_string();
            if plain.contains('.') {
                plain
            } else {
                plain + ".0"
            }
        } else {
            let sign = if exponent < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
        }
    }

    #[test]
    fn floats_match_std_shortest_digits_across_magnitudes() {
        // A fixed pseudo-random walk over mantissas and exponents, and the edges of each form.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut values = vec![
            1e-4,
            9.999999999999999e-5,
            1e16,
            9999999999999998.0,
            1.0,
            10.0,
            0.1,
        ];
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mantissa = (state >> 11) as f64 / (1u64 << 53) as f64;
            let exponent = ((state >> 3) % 60) as i32 - 30;
            values.push(mantissa * 10f64.powi(exponent));
            values.push(-mantissa * 10f64.powi(exponent));
            values.push(((state >> 20) % 100_000) as f64 / 1000.0);
        }
        for value in values.into_iter().filter(|v| *v != 0.0) {
            let ours = python_float(value);
            let std = layout_with_std(value);
            assert_eq!(ours.parse::<f64>().unwrap(), value, "{ours}");
            // Where two shortest forms are equally near (a tie in the last digit), std rounds
            // half up and ryu, like Python, half to even: only that digit may differ.
            let last_digit = ours.find('e').unwrap_or(ours.len()).saturating_sub(1);
            let differing: Vec<usize> = (0..ours.len().max(std.len()))
                .filter(|&i| ours.as_bytes().get(i) != std.as_bytes().get(i))
                .collect();
            assert!(
                differing.is_empty() || differing == [last_digit] && ours.len() == std.len(),
                "{value:e}: {ours} vs std {std}"
            );
        }
    }

    #[test]
    fn provider_headers_pass_on_prefixed_with_rate_limits_under_openai_names() {
        let mut provider = HeaderMap::new();
        provider.insert("x-ratelimit-remaining-requests", "99".parse().unwrap());
        provider.insert("openai-processing-ms", "12".parse().unwrap());
        provider.insert(
            "anthropic-ratelimit-tokens-remaining",
            "500".parse().unwrap(),
        );
        provider.insert("set-cookie", "__cf_bm=secret".parse().unwrap());
        let mut out = HeaderMap::new();
        pass_on(&mut out, &provider);
        let get = |name: &str| out.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("x-ratelimit-remaining-requests").as_deref(), Some("99"));
        assert_eq!(
            get("llm_provider-x-ratelimit-remaining-requests").as_deref(),
            Some("99")
        );
        assert_eq!(
            get("llm_provider-openai-processing-ms").as_deref(),
            Some("12")
        );
        assert_eq!(get("x-ratelimit-remaining-tokens").as_deref(), Some("500"));
        assert_eq!(get("openai-processing-ms"), None);
        assert_eq!(get("llm_provider-set-cookie"), None);
    }

    #[test]
    fn budgets_are_formatted_once_each_and_the_table_stays_bounded() {
        for value in [5.0, 0.5, 1e-5, 1_000_000.0, 5.0, -0.0, 0.0] {
            assert_eq!(budget(value).unwrap(), python_float(value).as_str());
        }
        let memo: Memo<u32, String> = Memo::new();
        let mut made = 0;
        for key in [1, 2, 3, 1, 2, 3] {
            let value = memo.get_or_make(&key, 2, || {
                made += 1;
                Some(key.to_string())
            });
            assert_eq!(value.as_deref(), Some(key.to_string().as_str()));
        }
        // 1 and 2 were kept; 3, past the bound, was made each time.
        assert_eq!(made, 4);
        assert_eq!(memo.0.read().unwrap().len(), 2);
        assert_eq!(memo.get_or_make(&9, 2, || None), None);
    }

    #[test]
    fn counts_are_decimal() {
        for n in [0, 7, 9, 10, 123] {
            assert_eq!(count(n).to_str().unwrap(), n.to_string());
        }
    }
}
