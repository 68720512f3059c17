//! The built web bundle (`dist/`, committed), embedded in the binary and served under `/ui/`
//! with a strict Content-Security-Policy.

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderValue, StatusCode, header};
use rand::RngCore;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "dist/"]
struct Bundle;

/// Placeholder in `index.html` replaced by each response's style nonce.
const NONCE_PLACEHOLDER: &str = "__CSP_NONCE__";

/// `/ui` (redirects to `/ui/`), `/ui/` (the page) and `/ui/assets/*` (scripts, styles, fonts).
/// Pages are addressed in the URL fragment (`/ui/#/keys`), so there is one HTML document.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/index.html", get(index))
        .route("/ui/assets/{*path}", get(asset))
}

/// The page's policy. Scripts and style sheets come only from this origin; `<style>` elements
/// that the component library inserts at run time carry this response's nonce. No inline
/// script is allowed at all, nothing may frame the page, and it talks only to this origin.
fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; \
         img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

fn security_headers(response: &mut Response, csp: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
}

async fn index() -> Response {
    let Some(file) = Bundle::get("index.html") else {
        return (
            StatusCode::NOT_FOUND,
            "the console bundle has no index.html",
        )
            .into_response();
    };
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    let nonce = STANDARD.encode(bytes);
    let html = String::from_utf8_lossy(&file.data).replace(NONCE_PLACEHOLDER, &nonce);
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response();
    security_headers(&mut response, &content_security_policy(&nonce));
    response
}

async fn asset(Path(path): Path<String>) -> Response {
    let Some(file) = Bundle::get(&format!("assets/{path}")) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type(&path)),
            // File names carry a hash of their content: a new build has new names.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        file.data.into_owned(),
    )
        .into_response();
    security_headers(&mut response, "default-src 'none'");
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "map" => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        routes::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_page_has_a_strict_policy_and_a_fresh_nonce() {
        let first = get("/ui/").await;
        assert_eq!(first.status(), StatusCode::OK);
        let csp = first.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(csp.contains("frame-ancestors 'none'"));
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        let html = first.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert!(html.contains(&format!("content=\"{nonce}\"")));
        assert!(!html.contains(NONCE_PLACEHOLDER));
        // No inline script in the page: every <script> has a src.
        for tag in html.split("<script").skip(1) {
            assert!(tag.split('>').next().unwrap().contains("src="), "{tag}");
        }
        let second = get("/ui/").await;
        let csp2 = second.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert_ne!(csp, csp2);
    }

    #[tokio::test]
    async fn assets_are_served_with_their_type_and_unknown_ones_are_404() {
        let html = get("/ui/")
            .await
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let html = String::from_utf8(html.to_vec()).unwrap();
        let script = html
            .split("src=\"./assets/")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let response = get(&format!("/ui/assets/{script}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            get("/ui/assets/nope.js").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/ui/assets/../Cargo.toml").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(get("/ui").await.status(), StatusCode::PERMANENT_REDIRECT);
    }
}
