//! Google's application default credentials (ADC), as google-auth finds them when a
//! deployment names no `vertex_credentials`: the file in `GOOGLE_APPLICATION_CREDENTIALS`,
//! else gcloud's well-known file (`gcloud auth application-default login` writes an
//! `authorized_user` there), else the GCE/GKE metadata server. Also the refresh-token grant of
//! `authorized_user` credentials and the metadata server's token request. No I/O here.

use std::fmt;
use std::path::{Path, PathBuf};

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use vaultgate_core::{Error, Result};

use crate::UpstreamRequest;
use crate::deployment::parse_url;
use crate::vertex::auth::{SCOPE, form_request, token_uri_or_default};

/// The metadata server's name on GCE and GKE.
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
const WELL_KNOWN_FILE: &str = "application_default_credentials.json";

/// gcloud's user credentials (`type: authorized_user`). `Debug` never shows the secrets.
#[derive(Clone, Deserialize)]
pub struct AuthorizedUser {
    pub client_id: String,
    client_secret: SecretString,
    refresh_token: SecretString,
    #[serde(default)]
    pub token_uri: Option<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
}

impl fmt::Debug for AuthorizedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedUser")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("refresh_token", &"***")
            .field("quota_project_id", &self.quota_project_id)
            .finish()
    }
}

impl AuthorizedUser {
    pub(crate) fn from_value(value: Value) -> Result<Self> {
        let user: Self = serde_json::from_value(value).map_err(|e| {
            // serde names the missing field; the message never quotes values.
            Error::Config(format!(
                "vertex_credentials: not gcloud's user credentials (authorized_user): {e}"
            ))
        })?;
        if user.refresh_token.expose_secret().trim().is_empty() {
            return Err(Error::Config(
                "vertex_credentials: the authorized_user credentials have an empty refresh_token"
                    .into(),
            ));
        }
        Ok(user)
    }

    /// Where its tokens are minted.
    pub fn token_uri(&self) -> &str {
        token_uri_or_default(self.token_uri.as_deref())
    }

    /// The refresh-token grant (RFC 6749 §6) POSTed as a form to the token URI.
    pub fn token_request(&self) -> Result<UpstreamRequest> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose_secret())
            .append_pair("refresh_token", self.refresh_token.expose_secret())
            .finish();
        form_request(self.token_uri(), body)
    }
}

/// Where application default credentials come from, decided once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdcSource {
    /// A credentials file (service account or authorized_user), read again at each refresh;
    /// `from` names who pointed at it.
    File { path: PathBuf, from: &'static str },
    /// The metadata server at this `host[:port]`.
    Metadata { host: String },
}

impl fmt::Display for AdcSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, from } => write!(f, "{} ({from})", path.display()),
            Self::Metadata { host } => write!(f, "the metadata server at {host}"),
        }
    }
}

/// google-auth's order: `GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's file
/// (`$CLOUDSDK_CONFIG/…`, else `~/.config/gcloud/…`) if it exists, then the metadata server
/// (`GCE_METADATA_HOST`, else `metadata.google.internal`). `env` reads a variable (empty counts
/// as unset), `exists` whether a file is there.
pub fn application_default(
    env: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> AdcSource {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS") {
        return AdcSource::File {
            path: path.into(),
            from: "GOOGLE_APPLICATION_CREDENTIALS",
        };
    }
    let gcloud = env("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".config").join("gcloud")));
    if let Some(path) = gcloud.map(|dir| dir.join(WELL_KNOWN_FILE))
        && exists(&path)
    {
        return AdcSource::File {
            path,
            from: "gcloud's application default credentials",
        };
    }
    let host = env("GCE_METADATA_HOST")
        .or_else(|| env("GCE_METADATA_ROOT"))
        .unwrap_or_else(|| DEFAULT_METADATA_HOST.to_owned());
    AdcSource::Metadata { host }
}

/// The metadata server's token of the instance's default service account, for Vertex's scope.
pub fn metadata_token_request(host: &str) -> Result<UpstreamRequest> {
    let scope: String = url::form_urlencoded::byte_serialize(SCOPE.as_bytes()).collect();
    metadata_get(
        host,
        &format!("instance/service-accounts/default/token?scopes={scope}"),
    )
}

/// The metadata server's project id (a plain-text answer).
pub fn metadata_project_request(host: &str) -> Result<UpstreamRequest> {
    metadata_get(host, "project/project-id")
}

fn metadata_get(host: &str, path: &str) -> Result<UpstreamRequest> {
    let host = host.trim().trim_end_matches('/');
    let host = host.strip_prefix("http://").unwrap_or(host);
    let uri = parse_url(&format!("http://{host}/computeMetadata/v1/{path}")).ok_or_else(|| {
        Error::Config(format!(
            "GCE_METADATA_HOST {host:?} is not a host name (host or host:port)"
        ))
    })?;
    let mut request = http::Request::get(uri)
        .body(bytes::Bytes::new())
        .map_err(|e| Error::Internal(e.to_string()))?;
    request
        .headers_mut()
        .insert("metadata-flavor", HeaderValue::from_static("Google"));
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vertex::auth::GoogleKey;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_chain_is_walked_in_google_auths_order() {
        let anything = |_: &Path| true;
        let nothing = |_: &Path| false;
        let all = [
            ("GOOGLE_APPLICATION_CREDENTIALS", "/keys/sa.json"),
            ("CLOUDSDK_CONFIG", "/cfg"),
            ("HOME", "/home/u"),
            ("GCE_METADATA_HOST", "127.0.0.1:9"),
        ];
        assert_eq!(
            application_default(env(&all), anything),
            AdcSource::File {
                path: "/keys/sa.json".into(),
                from: "GOOGLE_APPLICATION_CREDENTIALS"
            }
        );
        let AdcSource::File { path, .. } = application_default(env(&all[1..]), anything) else {
            panic!("not gcloud's file")
        };
        assert_eq!(path, Path::new("/cfg/application_default_credentials.json"));
        let AdcSource::File { path, .. } = application_default(env(&all[2..]), anything) else {
            panic!("not the home file")
        };
        assert_eq!(
            path,
            Path::new("/home/u/.config/gcloud/application_default_credentials.json")
        );
        // No file there: the metadata server, ours or Google's.
        assert_eq!(
            application_default(env(&all[1..]), nothing),
            AdcSource::Metadata {
                host: "127.0.0.1:9".into()
            }
        );
        let empty = [("GOOGLE_APPLICATION_CREDENTIALS", ""), ("HOME", "/h")];
        assert_eq!(
            application_default(env(&empty), nothing),
            AdcSource::Metadata {
                host: DEFAULT_METADATA_HOST.into()
            }
        );
    }

    #[test]
    fn the_refresh_grant_and_the_metadata_request_are_built() {
        let user = GoogleKey::from_json(
            r#"{"type": "authorized_user", "client_id": "id.apps", "client_secret": "s&1", "refresh_token": "1//r=t"}"#,
        )
        .unwrap();
        let request = user.token_request(std::time::SystemTime::now()).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri().to_string(),
            "https://oauth2.googleapis.com/token"
        );
        let form: Vec<(String, String)> = url::form_urlencoded::parse(request.body())
            .into_owned()
            .collect();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("grant_type"), Some("refresh_token"));
        assert_eq!(get("client_secret"), Some("s&1"));
        assert_eq!(get("refresh_token"), Some("1//r=t"));
        assert_eq!(user.project(), None);

        let request = metadata_token_request("127.0.0.1:8089").unwrap();
        assert_eq!(
            request.uri().to_string(),
            "http://127.0.0.1:8089/computeMetadata/v1/instance/service-accounts/default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform"
        );
        assert_eq!(request.headers()["metadata-flavor"], "Google");
        let request = metadata_project_request("http://metadata.google.internal/").unwrap();
        assert_eq!(
            request.uri().to_string(),
            "http://metadata.google.internal/computeMetadata/v1/project/project-id"
        );
        assert!(metadata_token_request("bad host/x y").is_err());
    }
}
