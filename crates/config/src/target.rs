//! What a deployment's `litellm_params.model` means to vaultgate: a provider it speaks, or one
//! LiteLLM knows and vaultgate does not (yet). A config LiteLLM starts on must start here too, so
//! the second kind is not a config error: that deployment is listed as unavailable and every
//! other model serves.

use crate::model::{Provider, parse_model};

/// The upstream of one deployment, as far as vaultgate can serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelTarget {
    /// A provider vaultgate speaks, and the model name the upstream expects.
    Supported { provider: Provider, name: String },
    /// A provider (or form) vaultgate cannot call: the deployment is unavailable.
    Unsupported {
        /// The provider prefix as written (`sagemaker`), for messages and `/health`.
        provider: String,
        /// Why, in one sentence.
        reason: String,
    },
}

impl ModelTarget {
    pub fn is_supported(&self) -> bool {
        matches!(self, Self::Supported { .. })
    }
}

/// Classifies `model`. Only an empty model is an error: whatever the provider table does not
/// cover (an unknown prefix, a prefix with no model name after it) becomes
/// [`ModelTarget::Unsupported`], whichever providers the table holds at the time.
pub fn model_target(model: &str) -> Result<ModelTarget, String> {
    let model = model.trim();
    if model.is_empty() {
        return Err("is empty".into());
    }
    match parse_model(model) {
        Ok((provider, name)) => Ok(ModelTarget::Supported { provider, name }),
        Err(reason) => {
            let provider = model.split_once('/').map_or(model, |(prefix, _)| prefix);
            Ok(ModelTarget::Unsupported {
                provider: provider.to_owned(),
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn unknown_prefixes_and_empty_names_are_unsupported_not_errors() {
        let ModelTarget::Unsupported { provider, reason } =
            model_target("sagemaker-not-a-provider/llama").unwrap()
        else {
            panic!("an unknown prefix is unsupported");
        };
        assert_eq!(provider, "sagemaker-not-a-provider");
        assert!(reason.contains("sagemaker-not-a-provider/"), "{reason}");
        assert!(!model_target("azure/").unwrap().is_supported());
        assert_eq!(
            model_target("openai/gpt-4o").unwrap(),
            ModelTarget::Supported {
                provider: Provider::OpenAi,
                name: "gpt-4o".into()
            }
        );
        assert!(model_target("  ").is_err());
    }
}
