//! The SSM JSON 1.1 API (spec §10): `POST /` with `X-Amz-Target: AmazonSSM.<Operation>`.
//! The same route serves MDS (`EC2WindowsMessageDeliveryService.<Op>`, spec §9.2), which
//! `handle` passes to `crate::mds` by its target prefix.
//!
//! - [`ops`]: one module per operation and the closed [`ops::Operation`] enum;
//! - [`error`]: [`error::ApiError`], the one error type, rendered as `{"__type","message"}`;
//! - `validate`: model constraints reported the AWS way;
//! - `pagination`: opaque `NextToken`s.
//!
//! Architecture invariant: this is the only module that knows AWS JSON. It uses hand-written
//! serde mirror types and never depends on aws-sdk-ssm.

pub(crate) mod error;
pub(crate) mod ops;
mod pagination;
pub(crate) mod validate;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tracing::Instrument;

use crate::model::Emulator;
use ops::Operation;

/// `Content-Type` of every API body, request and response.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The request id header. HTTP header names are case-insensitive; AWS spells it
/// `x-amzn-RequestId`.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// The API routes, with the request-id middleware around everything (including axum's own
/// rejections and the fallback).
pub(crate) fn router(emu: Emulator) -> Router {
    Router::new()
        .route("/", post(handle))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(emu.clone(), request_id))
        .with_state(emu)
}

/// `POST /`: dispatch on `X-Amz-Target` to an operation and apply it.
async fn handle(
    State(emu): State<Emulator>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let region = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(region_of_authorization)
        .unwrap_or(emu.default_region());
    let scope = emu.scope(region);
    if let Some(name) = target.and_then(|t| t.strip_prefix(crate::mds::TARGET_PREFIX)) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let result = crate::mds::handle(&emu, &scope, name, host, &body).await;
        return respond(result);
    }
    let caller = ops::Caller {
        access_key: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(access_key_of_authorization)
            .map(str::to_owned),
        host: headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        scheme: crate::tls::Scheme::of(&extensions),
    };
    if let Some(name) = target.and_then(|t| t.strip_prefix(ops::TARGET_PREFIX))
        && let Err(e) = crate::faults::api::before_operation(&emu, name, &body).await
    {
        return respond(Err(e));
    }
    let result = Operation::parse(target, &body).and_then(|op| {
        tracing::debug!(operation = op.name(), region = %scope.region, "apply");
        op.apply(&emu, &scope, &caller)
    });
    respond(result)
}

/// Whether the SSM API serves an operation called `name` (e.g. `SendCommand`).
pub(crate) fn is_operation(name: &str) -> bool {
    let target = format!("{}{name}", ops::TARGET_PREFIX);
    !matches!(
        Operation::parse(Some(&target), b"{}"),
        Err(error::ApiError::UnknownOperation(_))
    )
}

/// A response body or an error, as an HTTP response.
fn respond(result: Result<String, error::ApiError>) -> Response {
    match result {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Anything but `POST /`.
async fn fallback() -> Response {
    (
        StatusCode::NOT_FOUND,
        "ssm-emulator: no such endpoint; the SSM API is POST / with X-Amz-Target: AmazonSSM.<Operation>\n",
    )
        .into_response()
}

/// Gives every response an `x-amzn-RequestId` (a UUID from the seeded RNG) and logs the
/// request under a span carrying it.
async fn request_id(State(emu): State<Emulator>, request: Request, next: Next) -> Response {
    let id = emu.next_request_id();
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let span = tracing::debug_span!("request", request_id = %id, target = %target);
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "response"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The region of a SigV4 `Authorization` header's credential scope:
/// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ssm/aws4_request, SignedHeaders=…`.
pub(crate) fn region_of_authorization(value: &str) -> Option<&str> {
    let (_, credential) = value.split_once("Credential=")?;
    let credential = credential.split([',', ' ']).next()?;
    let region = credential.split('/').nth(2)?;
    (!region.is_empty()).then_some(region)
}

/// The access key id of a SigV4 `Authorization` header (`Credential=AKID/…`).
pub(crate) fn access_key_of_authorization(value: &str) -> Option<&str> {
    let (_, credential) = value.split_once("Credential=")?;
    let key = credential.split('/').next()?;
    (!key.is_empty() && !key.contains([',', ' '])).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_credential_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/eu-west-1/ssm/aws4_request, \
                    SignedHeaders=content-length;content-type;host, Signature=abc";
        assert_eq!(region_of_authorization(auth), Some("eu-west-1"));
        assert_eq!(region_of_authorization("Bearer x"), None);
        assert_eq!(access_key_of_authorization(auth), Some("AKIDTEST"));
        assert_eq!(access_key_of_authorization("Bearer x"), None);
        assert_eq!(
            region_of_authorization("AWS4-HMAC-SHA256 Credential=AKID/20240101"),
            None
        );
    }
}
