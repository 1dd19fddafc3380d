//! The web UI: its files, embedded in the binary from `server/ui/` by rust-embed, served at
//! `/` beside the API.
//!
//! The UI is plain ES modules with no build step (`ui/app.js` and the modules it imports),
//! and npm libraries vendored as their published, built files under `ui/vendor/`, listed
//! with their sha256 sums in `ui/vendor/manifest.json` (`scripts/vendor-ui` refreshes and
//! checks them). rust-embed reads the files from `server/ui/` at run time in debug builds and
//! embeds them in release builds.
//!
//! The client routes with the History API, so its pages have their own URLs: a GET of a
//! path in one of its sections (`/`, `/experiments...`, `/submit`, `/runs...`, `/compare`,
//! `/recurring`) answers `index.html`, whatever follows, and the client draws the page;
//! nothing else is answered here, so `/api/` never is. Every UI response carries a
//! Content-Security-Policy that allows scripts, styles and connections to this origin only
//! (no inline script, no eval), so a string that slipped into the page as markup could
//! still run nothing.
//!
//! Caching: a vendored file's path names its version, so it is cached for a year as
//! immutable; the UI's own files are revalidated by their ETag (their sha256), so a new
//! binary's UI is seen at once and an unchanged file costs a 304.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// The policy of every UI response. `style-src` allows this origin's style sheets only; the
/// chart library sets element styles through the DOM, which a policy does not restrict.
pub(crate) const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The first path segments the client routes (`app.js`); a GET under any of them is the page.
const SECTIONS: [&str; 5] = ["experiments", "submit", "runs", "compare", "recurring"];

#[derive(rust_embed::RustEmbed)]
#[folder = "ui/"]
struct Assets;

pub(crate) fn routes() -> Router<AppState> {
    // Routes, not a fallback: the binary merges these with the gRPC services' router, which
    // has its own.
    let mut router = Router::new()
        .route("/assets/{*path}", get(asset))
        .route("/", get(page));
    for section in SECTIONS {
        router = router
            .route(&format!("/{section}"), get(page))
            .route(&format!("/{section}/{{*rest}}"), get(page));
    }
    router
}

/// A file of the UI, by its path under `server/ui/`.
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // `vendor/NAME-VERSION/FILE`: a new version is a new path.
    let versioned = path
        .strip_prefix("vendor/")
        .is_some_and(|rest| rest.contains('/'));
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    serve(&path, &headers, cache)
}

/// The page, `index.html`, for every path of the client's.
async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers, "no-cache")
}

/// The embedded file at `path` with its content type, ETag and the policy; 304 when the
/// client has it, 404 when there is none.
fn serve(path: &str, request: &HeaderMap, cache: &'static str) -> Response {
    let Some(file) = Assets::get(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!(
        "\"{}\"",
        sextant_pipeline::cache::hex(&file.metadata.sha256_hash())
    );
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, value);
    }
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|offered| offered.split(',').any(|tag| tag.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if let Ok(value) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(CONTENT_TYPE, value);
    }
    (headers, Body::from(file.data)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_file_is_embedded_with_the_sum_its_manifest_gives() {
        let manifest = Assets::get("vendor/manifest.json").expect("the manifest is embedded");
        let manifest: serde_json::Value = serde_json::from_slice(&manifest.data).unwrap();
        let packages = manifest["packages"].as_array().unwrap();
        assert!(!packages.is_empty());
        for package in packages {
            for file in package["files"].as_array().unwrap() {
                let path = file["path"].as_str().unwrap();
                let embedded = Assets::get(&format!("vendor/{path}"))
                    .unwrap_or_else(|| panic!("vendor/{path} is not embedded"));
                assert_eq!(
                    sextant_pipeline::cache::hex(&embedded.metadata.sha256_hash()),
                    file["sha256"].as_str().unwrap(),
                    "{path}"
                );
            }
        }
    }
}
