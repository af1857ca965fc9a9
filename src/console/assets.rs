//! Static files (`console/assets/`: htmx at a pinned version, one CSS and one small JS file),
//! embedded with poem's `embed` feature. Pages link them with `?v=<content hash>` and the
//! answer is cached for a year (`immutable`); a new build changes the hash, so no stale file
//! is ever used. poem's endpoint answers `If-None-Match` with 304 from the ETag.

use poem::endpoint::EmbeddedFilesEndpoint;
use poem::http::{header, HeaderValue};
use poem::{Endpoint, EndpointExt, IntoResponse, Response};
use rust_embed::RustEmbed;
use serde::Serialize;

#[derive(RustEmbed)]
#[folder = "console/assets/"]
pub struct Assets;

/// htmx, pinned: the file name carries the version (`npm pack htmx.org@2.0.4`, `dist/htmx.min.js`).
pub const HTMX: &str = "htmx-2.0.4.min.js";

/// The asset URLs a page links, each with a content hash.
#[derive(Debug, Clone, Serialize)]
pub struct AssetUrls {
    pub htmx: String,
    pub js: String,
    pub css: String,
}

fn versioned(base: &str, name: &str) -> String {
    let hash = Assets::get(name)
        .map(|f| hex::encode(&f.metadata.sha256_hash()[..6]))
        .unwrap_or_default();
    format!("{base}/assets/{name}?v={hash}")
}

pub fn urls(base: &str) -> AssetUrls {
    AssetUrls {
        htmx: versioned(base, HTMX),
        js: versioned(base, "console.js"),
        css: versioned(base, "console.css"),
    }
}

/// Serves the embedded files with long-lived caching.
pub fn endpoint() -> impl Endpoint<Output = Response> {
    EmbeddedFilesEndpoint::<Assets>::new()
        .map_to_response()
        .around(|ep, req| async move {
            let mut resp = match ep.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => e.into_response(),
            };
            if resp.status().is_success() {
                resp.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                );
            }
            Ok(resp)
        })
}

/// Every asset with its size and gzip-compressed size, for the budget benchmark.
pub fn sizes() -> Vec<(String, usize)> {
    Assets::iter()
        .filter_map(|name| Assets::get(&name).map(|f| (name.to_string(), f.data.len())))
        .collect()
}
