//! Where Redis is: LiteLLM's `redis_url`, or `redis_host` + `redis_port` + `redis_password`
//! (+ `redis_db`).

use vaultgate_core::{Error, ExposeSecret, Result, SecretString};

/// A Redis to share limits through. The URL may hold a password, so it is kept secret and
/// shown only as [`RedisSettings::redacted`].
#[derive(Clone)]
pub struct RedisSettings {
    url: SecretString,
    redacted: String,
}

/// The parts of the Redis settings as the config (or the environment) gave them, resolved.
#[derive(Debug, Default, Clone)]
pub struct RedisParts<'a> {
    pub url: Option<&'a str>,
    pub host: Option<&'a str>,
    pub port: Option<&'a str>,
    pub password: Option<&'a str>,
    /// The database number (with a host; a URL says it in its path).
    pub db: Option<&'a str>,
}

/// A set, non-blank value, trimmed.
fn blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl RedisSettings {
    /// `url` wins (as in LiteLLM); else `host` with `port` (default 6379). A `password` is put
    /// into a URL that has none. `None` when neither a URL nor a host is given.
    pub fn from_parts(parts: &RedisParts<'_>) -> Result<Option<Self>> {
        let mut url = match (blank(parts.url), blank(parts.host)) {
            (Some(url), _) => url::Url::parse(url).map_err(|e| {
                Error::Config(format!(
                    "redis_url is not a URL ({e}); expected redis://host:port"
                ))
            })?,
            (None, Some(host)) => {
                let port = match blank(parts.port) {
                    None => 6379,
                    Some(port) => port.parse::<u16>().map_err(|_| {
                        Error::Config(format!("redis_port '{port}' is not a port number"))
                    })?,
                };
                // A host written as a URL keeps its scheme (rediss:// is TLS).
                let (scheme, host) = match host.strip_prefix("rediss://") {
                    Some(host) => ("rediss", host),
                    None => ("redis", host.strip_prefix("redis://").unwrap_or(host)),
                };
                let db = match blank(parts.db) {
                    None => String::new(),
                    Some(db) => {
                        let db = db.parse::<u32>().map_err(|_| {
                            Error::Config(format!("redis_db '{db}' is not a database number"))
                        })?;
                        format!("/{db}")
                    }
                };
                url::Url::parse(&format!("{scheme}://{host}:{port}{db}")).map_err(|e| {
                    Error::Config(format!("redis_host '{host}' is not a host name ({e})"))
                })?
            }
            (None, None) => {
                if blank(parts.port).is_some() || blank(parts.password).is_some() {
                    return Err(Error::Config(
                        "redis_port or redis_password is set without redis_host (or redis_url)"
                            .into(),
                    ));
                }
                return Ok(None);
            }
        };
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(Error::Config(format!(
                "redis_url must start with redis:// or rediss:// (TLS), not {}://",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::Config("redis_url has no host".into()));
        }
        if let Some(password) = blank(parts.password)
            && url.password().is_none()
        {
            url.set_password(Some(password))
                .map_err(|()| Error::Config("redis_url cannot hold a password".into()))?;
        }
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        Ok(Some(Self {
            url: SecretString::from(String::from(url)),
            redacted: String::from(shown),
        }))
    }

    /// The URL with the password as `***`, for logs and readiness.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    pub(crate) fn url(&self) -> &str {
        self.url.expose_secret()
    }

    pub fn is_tls(&self) -> bool {
        self.redacted.starts_with("rediss://")
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisSettings")
            .field(&self.redacted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn parts<'a>(
        url: Option<&'a str>,
        host: Option<&'a str>,
        port: Option<&'a str>,
        password: Option<&'a str>,
    ) -> RedisParts<'a> {
        RedisParts {
            url,
            host,
            port,
            password,
            db: None,
        }
    }

    #[test]
    fn host_port_and_password_make_a_url() {
        let s = RedisSettings::from_parts(&parts(None, Some("cache"), Some("6380"), Some("p@ss")))
            .unwrap()
            .unwrap();
        assert_eq!(s.url(), "redis://:p%40ss@cache:6380");
        assert_eq!(s.redacted(), "redis://:***@cache:6380");
        assert!(!format!("{s:?}").contains("p%40ss"));
        let s = RedisSettings::from_parts(&parts(None, Some("cache"), None, None))
            .unwrap()
            .unwrap();
        assert_eq!(s.url(), "redis://cache:6379");
        let s = RedisSettings::from_parts(&RedisParts {
            db: Some("2"),
            ..parts(None, Some("cache"), None, None)
        })
        .unwrap()
        .unwrap();
        assert_eq!(s.url(), "redis://cache:6379/2");
        let s = RedisSettings::from_parts(&parts(None, Some("rediss://cache"), None, None))
            .unwrap()
            .unwrap();
        assert!(s.is_tls(), "{s:?}");
        assert!(
            RedisSettings::from_parts(&RedisParts {
                db: Some("two"),
                ..parts(None, Some("cache"), None, None)
            })
            .is_err()
        );
    }

    #[test]
    fn the_url_wins_and_takes_the_password_when_it_has_none() {
        let s = RedisSettings::from_parts(&parts(
            Some("rediss://cache.example:6380/2"),
            Some("ignored"),
            None,
            Some("secret"),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(s.url(), "rediss://:secret@cache.example:6380/2");
        assert!(s.is_tls());
        let s = RedisSettings::from_parts(&parts(
            Some("redis://u:own@cache:6379"),
            None,
            None,
            Some("other"),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(s.url(), "redis://u:own@cache:6379");
        assert_eq!(s.redacted(), "redis://u:***@cache:6379");
    }

    #[test]
    fn nothing_set_is_no_redis_and_mistakes_are_errors() {
        assert!(
            RedisSettings::from_parts(&parts(None, Some(" "), None, None))
                .unwrap()
                .is_none()
        );
        for bad in [
            parts(Some("http://cache:6379"), None, None, None),
            parts(Some("cache:6379 x"), None, None, None),
            parts(None, Some("cache"), Some("port"), None),
            parts(None, None, Some("6379"), None),
            parts(None, None, None, Some("secret")),
        ] {
            let error = RedisSettings::from_parts(&bad).unwrap_err().to_string();
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
