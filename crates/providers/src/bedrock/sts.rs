//! The two STS calls that turn a role into temporary credentials: AssumeRole (signed with base
//! credentials) and AssumeRoleWithWebIdentity (with an OIDC token, unsigned). Requests are built
//! and answers parsed here; the caller sends them.

use std::time::SystemTime;

use aws_smithy_types::date_time::{DateTime, Format};
use bytes::Bytes;
use http::HeaderValue;
use vaultgate_core::{Error, Result};

use super::{AwsCredentials, sign_request};
use crate::UpstreamRequest;
use crate::deployment::parse_url;

/// Lifetime asked for (STS's default; the role's maximum may be longer, never shorter than
/// 15 minutes).
pub const DURATION_SECS: u64 = 3600;

/// `https://sts.{region}.amazonaws.com`, the regional endpoint the SDKs use by default.
pub fn default_endpoint(region: &str) -> String {
    format!("https://sts.{region}.amazonaws.com")
}

/// What to assume, and as whom.
#[derive(Debug, Clone, Copy)]
pub struct AssumeRole<'a> {
    pub endpoint: &'a str,
    pub region: &'a str,
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub external_id: Option<&'a str>,
}

/// The signed `AssumeRole` request.
pub fn assume_role_request(
    params: &AssumeRole<'_>,
    base: &AwsCredentials,
    now: SystemTime,
) -> Result<UpstreamRequest> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", params.role_arn)
        .append_pair("RoleSessionName", params.session_name)
        .append_pair("DurationSeconds", &DURATION_SECS.to_string());
    if let Some(external_id) = params.external_id {
        form.append_pair("ExternalId", external_id);
    }
    let mut request = form_request(params.endpoint, form.finish())?;
    sign_request(&mut request, base, params.region, "sts", now)?;
    Ok(request)
}

/// The `AssumeRoleWithWebIdentity` request (the token is the credential; no signature).
pub fn assume_role_with_web_identity_request(
    endpoint: &str,
    role_arn: &str,
    session_name: &str,
    token: &str,
) -> Result<UpstreamRequest> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role_arn)
        .append_pair("RoleSessionName", session_name)
        .append_pair("DurationSeconds", &DURATION_SECS.to_string())
        .append_pair("WebIdentityToken", token)
        .finish();
    form_request(endpoint, body)
}

fn form_request(endpoint: &str, body: String) -> Result<UpstreamRequest> {
    let url = parse_url(&format!("{}/", endpoint.trim_end_matches('/')))
        .ok_or_else(|| Error::Config(format!("STS endpoint '{endpoint}' is not an http(s) URL")))?;
    let mut request = http::Request::post(url)
        .body(Bytes::from(body))
        .map_err(|e| Error::Internal(e.to_string()))?;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    Ok(request)
}

/// The credentials of a successful STS answer, or the error STS gave (`Code: Message`).
pub fn parse_response(status: http::StatusCode, body: &[u8]) -> Result<AwsCredentials> {
    let text = String::from_utf8_lossy(body);
    if !status.is_success() {
        let code = xml_text(&text, "Code").unwrap_or("error");
        let message = xml_text(&text, "Message").unwrap_or_default();
        return Err(Error::Unavailable(format!(
            "STS answered {}: {code}: {message}",
            status.as_u16()
        )));
    }
    let field = |name: &str| {
        xml_text(&text, name).ok_or_else(|| Error::Unavailable(format!("STS answer has no {name}")))
    };
    let expires = DateTime::from_str(field("Expiration")?, Format::DateTime)
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or_else(|| Error::Unavailable("STS answer has a malformed Expiration".into()))?;
    Ok(AwsCredentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        Some(field("SessionToken")?),
        Some(expires),
    ))
}

/// The text of the first `<name>…</name>` element. STS answers are flat, machine-written XML
/// whose values (base64, ids, timestamps) hold no markup, so this is all the XML needed.
fn xml_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>secretexample</SecretAccessKey>
      <SessionToken>tokenexample</SessionToken>
      <Expiration>2030-01-02T03:04:05Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

    #[test]
    fn credentials_and_expiry_are_read() {
        let credentials = parse_response(http::StatusCode::OK, ANSWER.as_bytes()).unwrap();
        assert_eq!(
            credentials.parts(),
            Some(("ASIAEXAMPLE", "secretexample", Some("tokenexample")))
        );
        let expires = credentials.expires().unwrap();
        let secs = expires
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1_893_553_445);
    }

    #[test]
    fn errors_name_the_code() {
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error></ErrorResponse>";
        let error = parse_response(http::StatusCode::FORBIDDEN, body.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "STS answered 403: AccessDenied: not allowed"
        );
    }
}
