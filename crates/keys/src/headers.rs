//! Where clients put their virtual key.

use http::HeaderMap;

/// The key a client sent: `Authorization: Bearer sk-…` (OpenAI SDKs), `api-key` (Azure clients)
/// or `x-api-key` (Anthropic clients), in that order, as LiteLLM accepts them.
pub fn key_from_headers(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        let token = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => value,
        };
        if !token.is_empty() {
            return Some(token);
        }
    }
    ["api-key", "x-api-key"]
        .iter()
        .filter_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .find(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn finds_the_key_where_clients_send_it() {
        let mut headers = HeaderMap::new();
        assert_eq!(key_from_headers(&headers), None);
        headers.insert("x-api-key", "sk-anthropic".parse().unwrap());
        assert_eq!(key_from_headers(&headers), Some("sk-anthropic"));
        headers.insert("api-key", "sk-azure".parse().unwrap());
        assert_eq!(key_from_headers(&headers), Some("sk-azure"));
        headers.insert("authorization", "Bearer  sk-openai ".parse().unwrap());
        assert_eq!(key_from_headers(&headers), Some("sk-openai"));
        headers.insert("authorization", "bearer sk-lower".parse().unwrap());
        assert_eq!(key_from_headers(&headers), Some("sk-lower"));
    }
}
