//! A JSON request payload that the handler reads itself, as raw bytes.
//!
//! poem-openapi's `Json<T>` would parse before the handler runs, answer parse errors in plain
//! text, and re-serialise events (changing their bytes). `RawJson<T>` documents `T`'s schema in
//! the OpenAPI spec but hands the handler the untouched body, which it reads under the size
//! limit, parses leniently and answers with the adapter's JSON errors.

use std::marker::PhantomData;

use poem::{Body, Request, RequestBody, Result};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::error::HttpError;

pub struct RawJson<T> {
    body: Body,
    _schema: PhantomData<fn() -> T>,
}

impl<T> RawJson<T> {
    /// Reads the body, refusing (413) more than `limit` bytes — first from Content-Length, so an
    /// oversized upload is refused before it is read.
    pub async fn read(self, req: &Request, limit: usize) -> Result<bytes::Bytes, HttpError> {
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(HttpError::payload_too_large(limit));
        }
        self.body
            .into_bytes_limit(limit)
            .await
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => HttpError::payload_too_large(limit),
                other => HttpError::bad_request(format!("could not read the body: {other}")),
            })
    }
}

/// A file upload (CSV or JSON lines) read as a stream, never held whole in memory.
pub struct RawUpload {
    pub body: Body,
    pub content_type: Option<String>,
}

impl Payload for RawUpload {
    const CONTENT_TYPE: &'static str = "text/csv";

    fn check_content_type(_content_type: &str) -> bool {
        true
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(poem_openapi::registry::MetaSchema {
            format: Some("binary"),
            ..poem_openapi::registry::MetaSchema::new("string")
        }))
    }
}

impl<'a> ApiExtractor<'a> for RawUpload {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some(
                "CSV with a header row (text/csv) or JSON lines (application/x-ndjson)",
            ),
            content: vec![
                MetaMediaType {
                    content_type: "text/csv",
                    schema: <Self as Payload>::schema_ref(),
                },
                MetaMediaType {
                    content_type: "application/x-ndjson",
                    schema: <Self as Payload>::schema_ref(),
                },
            ],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        Ok(Self {
            body: body.take()?,
            content_type: request.content_type().map(str::to_owned),
        })
    }
}

impl<T: Type> Payload for RawJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    /// Okta always sends JSON; a missing or odd content type is not a reason to drop events.
    fn check_content_type(_content_type: &str) -> bool {
        true
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// Like poem-openapi's payload extractors, but without refusing a missing or non-JSON
/// content type: the body is judged by what it contains.
impl<'a, T: Type> ApiExtractor<'a> for RawJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Self as Payload>::CONTENT_TYPE,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        _request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        Ok(Self {
            body: body.take()?,
            _schema: PhantomData,
        })
    }
}
