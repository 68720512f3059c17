//! Console sessions: a signed, short-lived cookie that stands for a key the user signed in with.
//!
//! Why a cookie and not a bearer token in memory: the session value is `HttpOnly`, so no script
//! (not even an injected one) can read or send it elsewhere; it survives a page reload; and with
//! `SameSite=Strict` plus a CSRF token that only same-origin JavaScript can fetch, no other site
//! can make the browser act with it. The session is stateless (an HMAC over its claims), so it
//! works on every replica behind a load balancer. The HMAC key is derived from the master key:
//! rotating the master key ends every session.
//!
//! A session never holds the key itself: the master key's session names `master`, a virtual
//! key's session names the key's SHA-256 (and is checked against the key store on every use,
//! so blocking or deleting the key ends its sessions at once).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "vaultgate_session";
/// Header that carries the CSRF token on every state-changing request of a session.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts (a working day); sign in again afterwards.
pub const SESSION_TTL_SECS: i64 = 8 * 3600;
/// The format version, part of the signed text: a new format never accepts an old cookie.
const VERSION: &str = "v1";

/// What the holder of a session may do in the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and changes everything (the master key).
    Admin,
    /// Reads everything, changes nothing.
    Viewer,
    /// Reads what is theirs (own keys and spend); the admin API decides what that is.
    InternalUser,
}

impl Role {
    /// Whether this role may call a gateway-wide admin route (`/admin/*`: models, Vault, every
    /// key's spend) with `method`. Reads are `GET`/`HEAD`; every other method changes something
    /// and takes the admin role. Internal users see only their own things, which these routes
    /// are not: they get the key-management routes, which filter by owner.
    pub fn may(self, method: &Method) -> bool {
        match self {
            Self::Admin => true,
            Self::Viewer => is_read(method),
            Self::InternalUser => false,
        }
    }
}

/// Whether `method` only reads (and so needs no CSRF token).
pub fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "token", rename_all = "snake_case")]
pub enum Subject {
    Master,
    /// A virtual key, by its SHA-256 hex (never the raw key).
    Key(String),
}

/// The signed content of a session cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Subject,
    pub role: Role,
    /// Unix seconds.
    pub iat: i64,
    pub exp: i64,
    /// Random id of this session: the CSRF token is derived from it.
    pub sid: String,
}

impl Claims {
    pub fn new(sub: Subject, role: Role, now_secs: i64) -> Self {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        Self {
            sub,
            role,
            iat: now_secs,
            exp: now_secs.saturating_add(SESSION_TTL_SECS),
            sid: URL_SAFE_NO_PAD.encode(id),
        }
    }
}

/// Signs and checks sessions with a key derived from the master key.
pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    /// The signer for the current master key.
    pub fn new(master_key: &str) -> Self {
        let mut mac = mac(&Sha256::digest(master_key.as_bytes()).into());
        mac.update(b"vaultgate console session key v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn tag(&self, text: &[u8]) -> [u8; 32] {
        let mut mac = mac(&self.key);
        mac.update(text);
        mac.finalize().into_bytes().into()
    }

    /// The cookie value: `v1.<claims>.<signature>`, base64url.
    pub fn issue(&self, claims: &Claims) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signed = format!("{VERSION}.{body}");
        let tag = URL_SAFE_NO_PAD.encode(self.tag(signed.as_bytes()));
        format!("{signed}.{tag}")
    }

    /// The claims of a cookie value that this signer issued and that has not expired.
    pub fn verify(&self, value: &str, now_secs: i64) -> Option<Claims> {
        let (signed, tag) = value.rsplit_once('.')?;
        let (version, body) = signed.split_once('.')?;
        if version != VERSION {
            return None;
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let expected = self.tag(signed.as_bytes());
        if !bool::from(expected.as_slice().ct_eq(&tag)) {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (claims.exp > now_secs && claims.iat <= now_secs.saturating_add(60)).then_some(claims)
    }

    /// The CSRF token of a session: only a page of this origin can learn it (from
    /// `GET /ui/api/session`), and every state-changing request must echo it.
    pub fn csrf_token(&self, claims: &Claims) -> String {
        URL_SAFE_NO_PAD.encode(self.tag(format!("csrf.{}", claims.sid).as_bytes()))
    }

    /// Whether the request's CSRF header matches the session.
    pub fn csrf_ok(&self, claims: &Claims, headers: &HeaderMap) -> bool {
        let Some(sent) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        bool::from(self.csrf_token(claims).as_bytes().ct_eq(sent.as_bytes()))
    }
}

/// HMAC-SHA256 with a 32-byte key (zero-padded to the block size, as HMAC itself pads it).
fn mac(key: &[u8; 32]) -> HmacSha256 {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    <HmacSha256 as KeyInit>::new(&block.into())
}

/// The session cookie's value in a request, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
}

/// `Set-Cookie` for a new session. `secure` when the page was reached over HTTPS.
pub fn set_cookie(value: &str, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_SECS}{secure}"
    ))
    .ok()
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("vaultgate_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether the request reached us over HTTPS (directly or through a TLS-terminating proxy).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_session_verifies_until_it_expires() {
        let signer = Signer::new("sk-master");
        let claims = Claims::new(Subject::Master, Role::Admin, NOW);
        let cookie = signer.issue(&claims);
        assert_eq!(signer.verify(&cookie, NOW + 10), Some(claims.clone()));
        assert_eq!(signer.verify(&cookie, NOW + SESSION_TTL_SECS), None);
        // Issued in the future (clock skew beyond a minute): refused.
        assert_eq!(signer.verify(&cookie, NOW - 3600), None);
    }

    #[test]
    fn another_master_key_or_a_changed_cookie_is_refused() {
        let signer = Signer::new("sk-master");
        let claims = Claims::new(Subject::Key("ab".repeat(32)), Role::Viewer, NOW);
        let cookie = signer.issue(&claims);
        assert_eq!(Signer::new("sk-other").verify(&cookie, NOW), None);
        // A viewer who rewrites its role to admin breaks the signature.
        let (_, body, tag) = {
            let mut parts = cookie.split('.');
            (parts.next(), parts.next().unwrap(), parts.next().unwrap())
        };
        let mut forged: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        forged.role = Role::Admin;
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(signer.verify(&format!("v1.{forged_body}.{tag}"), NOW), None);
        assert_eq!(signer.verify(&format!("v2.{body}.{tag}"), NOW), None);
        assert_eq!(signer.verify("garbage", NOW), None);
        assert_eq!(signer.verify("", NOW), None);
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let signer = Signer::new("sk-master");
        let one = Claims::new(Subject::Master, Role::Admin, NOW);
        let two = Claims::new(Subject::Master, Role::Admin, NOW);
        let mut headers = HeaderMap::new();
        assert!(!signer.csrf_ok(&one, &headers));
        headers.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&signer.csrf_token(&one)).unwrap(),
        );
        assert!(signer.csrf_ok(&one, &headers));
        assert!(!signer.csrf_ok(&two, &headers));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_static("a=1; vaultgate_session=v1.x.y; b=2"),
        );
        assert_eq!(cookie_value(&headers), Some("v1.x.y"));
        let cookie = set_cookie("v1.x.y", true).unwrap();
        let text = cookie.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict"));
        assert!(text.ends_with("; Secure"));
    }

    #[test]
    fn only_admins_change_things() {
        assert!(Role::Admin.may(&Method::POST));
        assert!(Role::Viewer.may(&Method::GET));
        assert!(!Role::Viewer.may(&Method::POST));
        assert!(!Role::InternalUser.may(&Method::DELETE));
        assert!(!Role::InternalUser.may(&Method::GET));
    }
}
