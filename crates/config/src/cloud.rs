//! Where a Vertex AI or Bedrock deployment runs and how it authenticates: the cloud
//! parameters of `litellm_params`, filled from the environment as LiteLLM does.

use serde::{Deserialize, Serialize};

use crate::ConfigValue;

/// Where a Vertex AI deployment runs and how it authenticates (LiteLLM's names). Every value
/// may be a secret reference (`os.environ/…`, `vault://…`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct VertexParams {
    /// The Google Cloud project (default: the service account's `project_id`).
    pub vertex_project: Option<ConfigValue>,
    /// The region (`us-central1`, LiteLLM's default) or `global`.
    pub vertex_location: Option<ConfigValue>,
    /// A service-account key or gcloud's user credentials (`authorized_user`): its JSON text
    /// (also base64-encoded, as Vault's GCP engine hands it out), the path of its file, or a
    /// ready OAuth access token. Unset: application default credentials.
    pub vertex_credentials: Option<ConfigValue>,
}

impl VertexParams {
    /// LiteLLM's environment defaults: `VERTEXAI_PROJECT`, `VERTEXAI_LOCATION`,
    /// `VERTEXAI_CREDENTIALS`, else `GOOGLE_APPLICATION_CREDENTIALS` (a key file's path), each
    /// as an `os.environ/` reference. `is_set` says whether a variable is.
    pub fn fill_from_env(&mut self, is_set: impl Fn(&str) -> bool) {
        let pick = |names: &[&str]| {
            names
                .iter()
                .find(|name| is_set(name))
                .map(|name| ConfigValue::Reference((*name).to_owned()))
        };
        if self.vertex_project.is_none() {
            self.vertex_project = pick(&["VERTEXAI_PROJECT", "VERTEX_PROJECT"]);
        }
        if self.vertex_location.is_none() {
            self.vertex_location = pick(&["VERTEXAI_LOCATION", "VERTEX_LOCATION"]);
        }
        if self.vertex_credentials.is_none() {
            self.vertex_credentials =
                pick(&["VERTEXAI_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"]);
        }
    }

    /// Each set value with its field name.
    pub fn values(&self) -> [(&'static str, Option<&ConfigValue>); 3] {
        [
            ("vertex_project", self.vertex_project.as_ref()),
            ("vertex_location", self.vertex_location.as_ref()),
            ("vertex_credentials", self.vertex_credentials.as_ref()),
        ]
    }
}

/// How a Bedrock deployment reaches AWS: region, endpoint and credentials (LiteLLM's names).
/// Every value may be a secret reference (`os.environ/…`, `vault://…`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AwsParams {
    pub aws_access_key_id: Option<ConfigValue>,
    pub aws_secret_access_key: Option<ConfigValue>,
    pub aws_session_token: Option<ConfigValue>,
    pub aws_region_name: Option<ConfigValue>,
    /// The ARN of a role to assume with STS before calling Bedrock.
    pub aws_role_name: Option<ConfigValue>,
    pub aws_session_name: Option<ConfigValue>,
    pub aws_external_id: Option<ConfigValue>,
    /// A profile of the shared credentials file (`~/.aws/credentials`).
    pub aws_profile_name: Option<ConfigValue>,
    /// The STS endpoint for `aws_role_name` (default `https://sts.{region}.amazonaws.com`).
    pub aws_sts_endpoint: Option<ConfigValue>,
    /// The Bedrock runtime endpoint (default `https://bedrock-runtime.{region}.amazonaws.com`).
    pub aws_bedrock_runtime_endpoint: Option<ConfigValue>,
}

impl AwsParams {
    /// LiteLLM's environment defaults: the region from `AWS_REGION_NAME`, `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`, the endpoint from `AWS_BEDROCK_RUNTIME_ENDPOINT`, and, when the
    /// entry names neither keys, a role nor a profile, the keys of the default chain's first
    /// link (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). Each becomes an
    /// `os.environ/` reference, resolved like any other. `is_set` says whether a variable is.
    pub fn fill_from_env(&mut self, is_set: impl Fn(&str) -> bool) {
        let reference = |name: &str| Some(ConfigValue::Reference(name.to_owned()));
        if self.aws_region_name.is_none()
            && let Some(name) = ["AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"]
                .into_iter()
                .find(|name| is_set(name))
        {
            self.aws_region_name = reference(name);
        }
        if self.aws_bedrock_runtime_endpoint.is_none() && is_set("AWS_BEDROCK_RUNTIME_ENDPOINT") {
            self.aws_bedrock_runtime_endpoint = reference("AWS_BEDROCK_RUNTIME_ENDPOINT");
        }
        let names_credentials = self.aws_access_key_id.is_some()
            || self.aws_secret_access_key.is_some()
            || self.aws_role_name.is_some()
            || self.aws_profile_name.is_some();
        if !names_credentials && is_set("AWS_ACCESS_KEY_ID") && is_set("AWS_SECRET_ACCESS_KEY") {
            self.aws_access_key_id = reference("AWS_ACCESS_KEY_ID");
            self.aws_secret_access_key = reference("AWS_SECRET_ACCESS_KEY");
            if is_set("AWS_SESSION_TOKEN") {
                self.aws_session_token = reference("AWS_SESSION_TOKEN");
            }
        }
    }

    /// Each set value with its field name, in declaration order.
    pub fn values(&self) -> [(&'static str, Option<&ConfigValue>); 10] {
        [
            ("aws_access_key_id", self.aws_access_key_id.as_ref()),
            ("aws_secret_access_key", self.aws_secret_access_key.as_ref()),
            ("aws_session_token", self.aws_session_token.as_ref()),
            ("aws_region_name", self.aws_region_name.as_ref()),
            ("aws_role_name", self.aws_role_name.as_ref()),
            ("aws_session_name", self.aws_session_name.as_ref()),
            ("aws_external_id", self.aws_external_id.as_ref()),
            ("aws_profile_name", self.aws_profile_name.as_ref()),
            ("aws_sts_endpoint", self.aws_sts_endpoint.as_ref()),
            (
                "aws_bedrock_runtime_endpoint",
                self.aws_bedrock_runtime_endpoint.as_ref(),
            ),
        ]
    }
}
