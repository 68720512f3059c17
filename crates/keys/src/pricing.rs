//! Request cost: `model_info` prices from the config first, else a built-in table of common models.

use vaultgate_config::ModelInfo;

/// USD per million tokens (input, output), matched by the longest model-name prefix.
/// Public list prices of 2025-2026; `model_info` in the config overrides them.
const PRICES_PER_MILLION: &[(&str, f64, f64)] = &[
    // OpenAI
    ("gpt-5-nano", 0.05, 0.40),
    ("gpt-5-mini", 0.25, 2.00),
    ("gpt-5", 1.25, 10.00),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4-turbo", 10.00, 30.00),
    ("gpt-4-32k", 60.00, 120.00),
    ("gpt-4", 30.00, 60.00),
    ("gpt-35-turbo", 0.50, 1.50),
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("o1-mini", 1.10, 4.40),
    ("o1-pro", 150.00, 600.00),
    ("o1", 15.00, 60.00),
    ("o3-mini", 1.10, 4.40),
    ("o3-pro", 20.00, 80.00),
    ("o3", 2.00, 8.00),
    ("o4-mini", 1.10, 4.40),
    ("text-embedding-3-small", 0.02, 0.0),
    ("text-embedding-3-large", 0.13, 0.0),
    ("text-embedding-ada-002", 0.10, 0.0),
    // Anthropic
    ("claude-opus-4", 15.00, 75.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-haiku-4", 1.00, 5.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-opus", 15.00, 75.00),
    ("claude-3-sonnet", 3.00, 15.00),
    ("claude-3-haiku", 0.25, 1.25),
];

/// Per-token (input, output) prices in USD for `model`, if known.
pub fn token_prices(model: &str, model_info: Option<&ModelInfo>) -> Option<(f64, f64)> {
    if let Some(info) = model_info
        && (info.input_cost_per_token.is_some() || info.output_cost_per_token.is_some())
    {
        return Some((
            info.input_cost_per_token.unwrap_or(0.0),
            info.output_cost_per_token.unwrap_or(0.0),
        ));
    }
    let lookup = model_info
        .and_then(|i| i.base_model.as_deref())
        .unwrap_or(model);
    builtin(lookup).or_else(|| builtin(model))
}

fn builtin(model: &str) -> Option<(f64, f64)> {
    // `openai/gpt-4o`, `azure/gpt-4o`, `anthropic/claude-...`: the last segment names the model.
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    PRICES_PER_MILLION
        .iter()
        .filter(|(prefix, _, _)| name.starts_with(prefix))
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|(_, input, output)| (input / 1e6, output / 1e6))
}

/// Cost in USD of one request; 0 for an unknown model (logged by the caller).
pub fn cost(
    model: &str,
    model_info: Option<&ModelInfo>,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Option<f64> {
    let (input, output) = token_prices(model, model_info)?;
    #[allow(clippy::cast_precision_loss)]
    let cost = prompt_tokens as f64 * input + completion_tokens as f64 * output;
    Some(cost)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn model_info_wins_over_table() {
        let info = ModelInfo {
            input_cost_per_token: Some(0.001),
            output_cost_per_token: Some(0.002),
            ..ModelInfo::default()
        };
        let c = cost("gpt-4o", Some(&info), 10, 5).unwrap();
        assert!((c - 0.02).abs() < 1e-12);
    }

    #[test]
    fn longest_prefix_and_provider_prefix() {
        let (i, o) = token_prices("gpt-4o-mini-2024-07-18", None).unwrap();
        assert!((i - 0.15e-6).abs() < 1e-15 && (o - 0.6e-6).abs() < 1e-15);
        let (i, _) = token_prices("openai/gpt-4o", None).unwrap();
        assert!((i - 2.5e-6).abs() < 1e-15);
        let (i, _) = token_prices("anthropic/claude-3-5-haiku-20241022", None).unwrap();
        assert!((i - 0.8e-6).abs() < 1e-15);
        let (i, _) = token_prices("gpt-4.1-mini", None).unwrap();
        assert!((i - 0.4e-6).abs() < 1e-15);
        assert!(token_prices("my-local-llama", None).is_none());
        let info = ModelInfo {
            base_model: Some("gpt-4o".into()),
            ..ModelInfo::default()
        };
        assert!(token_prices("azure/my-deployment", Some(&info)).is_some());
    }
}
