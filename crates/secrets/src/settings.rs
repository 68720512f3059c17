use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use vaultgate_core::{Error, Result};

use crate::env::Env;

/// Default Kubernetes service-account token file.
pub const DEFAULT_K8S_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How vaultgate logs in to Vault. Chosen by [`VaultSettings::from_env`] in LiteLLM's priority
/// (AppRole, then TLS cert, then token) with Kubernetes last.
#[derive(Clone)]
pub enum VaultAuth {
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretString,
    },
    /// mTLS login at `auth/{mount}/login`; the identity is [`VaultSettings::client_cert`]/`client_key`.
    Cert {
        mount: String,
        role: Option<String>,
    },
    Token {
        token: SecretString,
    },
    /// Service-account JWT read from `jwt_path` at every login (it is rotated by the kubelet).
    Kubernetes {
        mount: String,
        role: String,
        jwt_path: PathBuf,
    },
}

impl VaultAuth {
    /// The method name shown in `check` and logs.
    pub fn method(&self) -> &'static str {
        match self {
            Self::AppRole { .. } => "approle",
            Self::Cert { .. } => "cert",
            Self::Token { .. } => "token",
            Self::Kubernetes { .. } => "kubernetes",
        }
    }
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AppRole { mount, role_id, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", role_id)
                .field("secret_id", &"***")
                .finish(),
            Self::Cert { mount, role } => f
                .debug_struct("Cert")
                .field("mount", mount)
                .field("role", role)
                .finish(),
            Self::Token { .. } => f.debug_struct("Token").field("token", &"***").finish(),
            Self::Kubernetes {
                mount,
                role,
                jwt_path,
            } => f
                .debug_struct("Kubernetes")
                .field("mount", mount)
                .field("role", role)
                .field("jwt_path", jwt_path)
                .finish(),
        }
    }
}

/// Everything needed to reach one Vault, read once at start from the environment (COMPAT §1).
/// `Debug` shows no secret (the token and AppRole secret id are [`SecretString`]s).
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// Without a trailing `/`.
    pub addr: String,
    /// Sent as `X-Vault-Namespace` on login (and on the token's own lookup/renew) calls only.
    pub login_namespace: Option<String>,
    /// Put in the URL path of secret calls, never in a header.
    pub secret_namespace: Option<String>,
    pub mount: String,
    pub path_prefix: Option<String>,
    pub auth: VaultAuth,
    /// PEM client certificate and key presented on every TLS connection when both are set.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// PEM CA bundle that replaces the system roots (as the Vault CLI does).
    pub ca_cert: Option<PathBuf>,
    pub skip_verify: bool,
    /// Per HTTP request.
    pub timeout: Duration,
    /// Extra attempts after the first for retryable failures.
    pub max_retries: u32,
    pub refresh_interval: Duration,
}

/// The names read for a setting, most specific first: `HCP_VAULT_X`, `BAO_X`, `VAULT_X`.
fn lookup(env: &Env, suffix: &str) -> Option<(String, String)> {
    ["HCP_VAULT_", "BAO_", "VAULT_"].iter().find_map(|prefix| {
        let name = format!("{prefix}{suffix}");
        env.get(&name).map(|value| (name, value))
    })
}

fn value(env: &Env, suffix: &str) -> Option<String> {
    lookup(env, suffix)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Trimmed of spaces and `/`; empty is none.
pub(crate) fn trim_part(text: &str) -> Option<String> {
    let trimmed = text.trim().trim_matches('/').trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// `30`, `30s`, `1500ms`, `5m`, `1h` → a duration; a bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number.trim().parse().ok()?;
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "f" | "false" | "no" | "n" | "off" | "" => Some(false),
        _ => None,
    }
}

fn bad(name: &str, message: &str) -> Error {
    Error::Config(format!("{name}: {message}"))
}

impl VaultSettings {
    /// Reads the settings. `Ok(None)` when no way to log in is configured (no AppRole, client
    /// certificate, token or Kubernetes role): the caller decides whether Vault is required.
    /// Every `HCP_VAULT_X` also accepts `BAO_X` and `VAULT_X`; the HCP name wins.
    pub fn from_env(env: &Env) -> Result<Option<Self>> {
        let addr = value(env, "ADDR").unwrap_or_else(|| "http://127.0.0.1:8200".to_owned());
        let addr = addr.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&addr)
            .map_err(|e| bad("HCP_VAULT_ADDR", &format!("'{addr}' is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(
                "HCP_VAULT_ADDR",
                &format!("'{addr}' must start with http:// or https://"),
            ));
        }

        let namespace = value(env, "NAMESPACE").and_then(|ns| trim_part(&ns));
        let login_namespace = value(env, "LOGIN_NAMESPACE")
            .and_then(|ns| trim_part(&ns))
            .or(namespace.clone());
        let secret_namespace = value(env, "SECRET_NAMESPACE")
            .and_then(|ns| trim_part(&ns))
            .or(namespace);
        let mount = value(env, "MOUNT_NAME")
            .and_then(|m| trim_part(&m))
            .unwrap_or_else(|| "secret".to_owned());
        let path_prefix = value(env, "PATH_PREFIX").and_then(|p| trim_part(&p));

        let client_cert = value(env, "CLIENT_CERT").map(PathBuf::from);
        let client_key = value(env, "CLIENT_KEY").map(PathBuf::from);
        if client_cert.is_some() != client_key.is_some() {
            return Err(Error::Config(
                "HCP_VAULT_CLIENT_CERT and HCP_VAULT_CLIENT_KEY must be set together".into(),
            ));
        }
        let ca_cert = value(env, "CACERT").map(PathBuf::from);

        let skip_verify = match lookup(env, "SKIP_VERIFY") {
            Some((name, text)) => {
                parse_bool(&text).ok_or_else(|| bad(&name, "expected true or false"))?
            }
            None => false,
        };
        let timeout = match lookup(env, "CLIENT_TIMEOUT") {
            Some((name, text)) => parse_duration(&text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| bad(&name, "expected a positive duration such as 30 or 30s"))?,
            None => Duration::from_secs(60),
        };
        let max_retries = match lookup(env, "MAX_RETRIES") {
            Some((name, text)) => text
                .trim()
                .parse::<u32>()
                .map(|n| n.min(10))
                .map_err(|_| bad(&name, "expected a whole number"))?,
            None => 2,
        };
        let refresh_interval = match lookup(env, "REFRESH_INTERVAL") {
            Some((name, text)) => parse_duration(&text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| bad(&name, "expected a positive number of seconds"))?,
            None => Duration::from_secs(86_400),
        };

        let role_id = value(env, "APPROLE_ROLE_ID");
        let secret_id = value(env, "APPROLE_SECRET_ID");
        let token = value(env, "TOKEN");
        let k8s_role = value(env, "K8S_ROLE");
        let auth = if role_id.is_some() || secret_id.is_some() {
            let (Some(role_id), Some(secret_id)) = (role_id, secret_id) else {
                return Err(Error::Config(
                    "HCP_VAULT_APPROLE_ROLE_ID and HCP_VAULT_APPROLE_SECRET_ID must be set together"
                        .into(),
                ));
            };
            VaultAuth::AppRole {
                mount: value(env, "APPROLE_MOUNT_PATH")
                    .and_then(|m| trim_part(&m))
                    .unwrap_or_else(|| "approle".into()),
                role_id,
                secret_id: SecretString::from(secret_id),
            }
        } else if client_cert.is_some() {
            VaultAuth::Cert {
                mount: value(env, "CERT_MOUNT_PATH")
                    .and_then(|m| trim_part(&m))
                    .unwrap_or_else(|| "cert".into()),
                role: value(env, "CERT_ROLE"),
            }
        } else if let Some(token) = token {
            VaultAuth::Token {
                token: SecretString::from(token),
            }
        } else if let Some(role) = k8s_role {
            VaultAuth::Kubernetes {
                mount: value(env, "K8S_MOUNT_PATH")
                    .and_then(|m| trim_part(&m))
                    .unwrap_or_else(|| "kubernetes".into()),
                role,
                jwt_path: value(env, "K8S_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_K8S_TOKEN_PATH)),
            }
        } else {
            return Ok(None);
        };

        if skip_verify {
            tracing::warn!(
                addr = %addr,
                "TLS certificate verification for Vault is DISABLED (VAULT_SKIP_VERIFY): \
                 anyone on the network path can read the Vault token and secrets; never use this in production"
            );
        }

        Ok(Some(Self {
            addr,
            login_namespace,
            secret_namespace,
            mount,
            path_prefix,
            auth,
            client_cert,
            client_key,
            ca_cert,
            skip_verify,
            timeout,
            max_retries,
            refresh_interval,
        }))
    }

    /// The variable names that would configure a login, for "Vault needs…" messages.
    pub fn auth_variables_hint() -> &'static str {
        "HCP_VAULT_APPROLE_ROLE_ID + HCP_VAULT_APPROLE_SECRET_ID, HCP_VAULT_CLIENT_CERT + \
         HCP_VAULT_CLIENT_KEY, HCP_VAULT_TOKEN (or VAULT_TOKEN / BAO_TOKEN), or HCP_VAULT_K8S_ROLE"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_and_none_without_auth() {
        assert!(
            VaultSettings::from_env(&Env::from_map([("HCP_VAULT_ADDR", "http://x:1")]))
                .unwrap()
                .is_none()
        );
        let s = VaultSettings::from_env(&Env::from_map([("VAULT_TOKEN", "t")]))
            .unwrap()
            .unwrap();
        assert_eq!(s.addr, "http://127.0.0.1:8200");
        assert_eq!(s.mount, "secret");
        assert_eq!(s.refresh_interval, Duration::from_secs(86_400));
        assert_eq!(s.max_retries, 2);
        assert!(
            s.login_namespace.is_none() && s.secret_namespace.is_none() && s.path_prefix.is_none()
        );
        assert!(matches!(s.auth, VaultAuth::Token { .. }));
    }

    #[test]
    fn hcp_wins_over_bao_over_vault_and_parts_are_trimmed() {
        let env = Env::from_map([
            ("HCP_VAULT_ADDR", "https://hcp:8200/"),
            ("BAO_ADDR", "https://bao:8200"),
            ("VAULT_ADDR", "https://vault:8200"),
            ("BAO_TOKEN", "bao-token"),
            ("VAULT_TOKEN", "vault-token"),
            ("HCP_VAULT_NAMESPACE", " /admin/ "),
            ("HCP_VAULT_SECRET_NAMESPACE", "admin/team"),
            ("HCP_VAULT_MOUNT_NAME", "/kv/"),
            ("HCP_VAULT_PATH_PREFIX", "/gateway/prod/"),
            ("HCP_VAULT_REFRESH_INTERVAL", "5"),
            ("VAULT_CLIENT_TIMEOUT", "1500ms"),
            ("VAULT_MAX_RETRIES", "0"),
        ]);
        let s = VaultSettings::from_env(&env).unwrap().unwrap();
        assert_eq!(s.addr, "https://hcp:8200");
        let VaultAuth::Token { token } = &s.auth else {
            panic!("token auth")
        };
        assert_eq!(token.expose_secret(), "bao-token");
        assert_eq!(s.login_namespace.as_deref(), Some("admin"));
        assert_eq!(s.secret_namespace.as_deref(), Some("admin/team"));
        assert_eq!(s.mount, "kv");
        assert_eq!(s.path_prefix.as_deref(), Some("gateway/prod"));
        assert_eq!(s.refresh_interval, Duration::from_secs(5));
        assert_eq!(s.timeout, Duration::from_millis(1500));
        assert_eq!(s.max_retries, 0);
    }

    #[test]
    fn auth_priority_approle_cert_token_kubernetes() {
        let all = [
            ("HCP_VAULT_APPROLE_ROLE_ID", "r"),
            ("HCP_VAULT_APPROLE_SECRET_ID", "s"),
            ("HCP_VAULT_CLIENT_CERT", "/c.pem"),
            ("HCP_VAULT_CLIENT_KEY", "/k.pem"),
            ("HCP_VAULT_TOKEN", "t"),
            ("HCP_VAULT_K8S_ROLE", "gw"),
        ];
        let method = |skip: usize| {
            let env = Env::from_map(all.iter().skip(skip).copied());
            VaultSettings::from_env(&env)
                .unwrap()
                .unwrap()
                .auth
                .method()
        };
        assert_eq!(method(0), "approle");
        assert_eq!(method(2), "cert");
        assert_eq!(method(4), "token");
        assert_eq!(method(5), "kubernetes");
        let s = VaultSettings::from_env(&Env::from_map([("HCP_VAULT_K8S_ROLE", "gw")]))
            .unwrap()
            .unwrap();
        let VaultAuth::Kubernetes {
            mount, jwt_path, ..
        } = s.auth
        else {
            panic!()
        };
        assert_eq!(mount, "kubernetes");
        assert_eq!(jwt_path, PathBuf::from(DEFAULT_K8S_TOKEN_PATH));
    }

    #[test]
    fn bad_values_are_config_errors() {
        for pairs in [
            vec![
                ("HCP_VAULT_TOKEN", "t"),
                ("HCP_VAULT_REFRESH_INTERVAL", "soon"),
            ],
            vec![
                ("HCP_VAULT_TOKEN", "t"),
                ("HCP_VAULT_REFRESH_INTERVAL", "0"),
            ],
            vec![("HCP_VAULT_TOKEN", "t"), ("VAULT_SKIP_VERIFY", "maybe")],
            vec![("HCP_VAULT_TOKEN", "t"), ("HCP_VAULT_ADDR", "vault:8200")],
            vec![("HCP_VAULT_CLIENT_CERT", "/c.pem")],
            vec![("HCP_VAULT_APPROLE_ROLE_ID", "r")],
        ] {
            let result = VaultSettings::from_env(&Env::from_map(pairs.clone()));
            assert!(matches!(result, Err(Error::Config(_))), "{pairs:?}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let env = Env::from_map([
            ("HCP_VAULT_APPROLE_ROLE_ID", "role"),
            ("HCP_VAULT_APPROLE_SECRET_ID", "the-secret-id-value"),
        ]);
        let s = VaultSettings::from_env(&env).unwrap().unwrap();
        assert!(!format!("{s:?}").contains("the-secret-id-value"));
        let env = Env::from_map([("HCP_VAULT_TOKEN", "hvs.token-value")]);
        let s = VaultSettings::from_env(&env).unwrap().unwrap();
        assert!(!format!("{s:?}").contains("hvs.token-value"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("-1"), None);
    }
}
