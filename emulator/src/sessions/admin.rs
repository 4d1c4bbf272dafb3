//! The session service's `/_emulator` routes (the emulator's own control API, not AWS's):
//!
//! - `GET /_emulator/clock`: the emulator's time, `{"now", "epochSeconds", "offsetSeconds"}`.
//! - `POST /_emulator/clock` with `{"advanceSeconds": N}`: moves the emulator's clock forward
//!   by N seconds (time travel; it never goes back), then ends the sessions that are now idle
//!   or too long at once, without waiting for the sweeper. Answers like GET, plus
//!   `expiredSessions`. Bad input: HTTP 400 `{"__type": "ValidationException", "message"}`.
//! - `GET /_emulator/sessions/{id}`: the session's audit record (`audit::SessionRecord`).
//! - `GET /_emulator/s3/{bucket}/{*key}` and `GET /_emulator/cloudwatch/{group}/{stream}`:
//!   the transcript of the session the logging preferences put there (`audit`): what
//!   DescribeSessions' `OutputUrl` points at.
//!
//! The transcript itself stays at `GET /_emulator/sessions/{id}/transcript` (`channel`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::api::error::ApiError;
use crate::clock::{epoch_seconds, iso8601_seconds};
use crate::model::Emulator;
use crate::tls::Scheme;

/// The most one `POST /_emulator/clock` may move the clock: ten years, far beyond any
/// preference (a day at most) and far from where `SystemTime` arithmetic could overflow.
pub const MAX_CLOCK_ADVANCE_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The routes above.
pub(crate) fn router(emu: Emulator) -> Router {
    Router::new()
        .route("/_emulator/clock", get(clock).post(advance_clock))
        .route("/_emulator/sessions/{session_id}", get(session_record))
        .route("/_emulator/s3/{bucket}/{*key}", get(s3_object))
        .route("/_emulator/cloudwatch/{group}/{stream}", get(log_stream))
        .with_state(emu)
}

/// `http(s)://<Host>` of a request, for the URLs in the answers.
fn base_url(parts: &Parts) -> String {
    let scheme = match Scheme::of(&parts.extensions) {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

fn clock_json(emu: &Emulator, offset_secs: u64) -> Value {
    let now = emu.now();
    json!({
        "now": iso8601_seconds(now),
        "epochSeconds": epoch_seconds(now),
        "offsetSeconds": offset_secs,
    })
}

async fn clock(State(emu): State<Emulator>) -> Response {
    // Advancing by nothing is how the offset is read.
    let offset = emu.advance_clock(std::time::Duration::ZERO);
    axum::Json(clock_json(&emu, offset.as_secs())).into_response()
}

async fn advance_clock(State(emu): State<Emulator>, body: Bytes) -> Response {
    let seconds = match advance_seconds(&body) {
        Ok(seconds) => seconds,
        Err(message) => return ApiError::Validation(message).into_response(),
    };
    let offset = emu.advance_clock(std::time::Duration::from_secs(seconds));
    tracing::info!(seconds, offset = offset.as_secs(), "clock moved forward");
    let expired = emu.sweep_sessions();
    let mut answer = clock_json(&emu, offset.as_secs());
    answer["expiredSessions"] = json!(expired);
    axum::Json(answer).into_response()
}

/// `advanceSeconds` of a `POST /_emulator/clock` body.
fn advance_seconds(body: &[u8]) -> Result<u64, String> {
    let usage = "The body must be {\"advanceSeconds\": N}, N a whole number of seconds from 0 to";
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("{usage} {MAX_CLOCK_ADVANCE_SECONDS} ({e})."))?;
    let seconds = value
        .get("advanceSeconds")
        .and_then(Value::as_u64)
        .filter(|s| *s <= MAX_CLOCK_ADVANCE_SECONDS);
    seconds.ok_or_else(|| format!("{usage} {MAX_CLOCK_ADVANCE_SECONDS}; got {value}."))
}

async fn session_record(
    State(emu): State<Emulator>,
    Path(session_id): Path<String>,
    parts: Parts,
) -> Response {
    let base = base_url(&parts);
    match emu.with_state(|s| s.sessions.get(&session_id).map(|s| s.record(&base))) {
        Some(record) => axum::Json(record).into_response(),
        None => not_found(&format!("no session {session_id}")),
    }
}

async fn s3_object(
    State(emu): State<Emulator>,
    Path((bucket, key)): Path<(String, String)>,
) -> Response {
    let key = key.trim_start_matches('/');
    let relay = emu.with_state(|s| {
        s.sessions
            .all()
            .find(|s| s.s3_key().is_some_and(|(b, k)| b == bucket && k == key))
            .map(|s| s.relay.clone())
    });
    match relay {
        Some(relay) => transcript(relay.transcript()),
        None => not_found(&format!("no session log at s3://{bucket}/{key}")),
    }
}

async fn log_stream(
    State(emu): State<Emulator>,
    Path((group, stream)): Path<(String, String)>,
) -> Response {
    let relay = emu.with_state(|s| {
        s.sessions
            .get(&stream)
            .filter(|s| s.log_group() == Some(group.as_str()))
            .map(|s| s.relay.clone())
    });
    match relay {
        Some(relay) => transcript(relay.transcript()),
        None => not_found(&format!("no log stream {stream} in log group {group}")),
    }
}

fn transcript(bytes: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response()
}

fn not_found(message: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"__type": "ResourceNotFoundException", "message": message})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_seconds_takes_a_whole_non_negative_number_in_range() {
        assert_eq!(advance_seconds(br#"{"advanceSeconds": 61}"#), Ok(61));
        assert_eq!(advance_seconds(br#"{"advanceSeconds": 0}"#), Ok(0));
        for bad in [
            &br#"{"advanceSeconds": -1}"#[..],
            br#"{"advanceSeconds": 1.5}"#,
            br#"{"advanceSeconds": "60"}"#,
            br#"{"seconds": 60}"#,
            b"not json",
            br#"{"advanceSeconds": 999999999999}"#,
        ] {
            let message = advance_seconds(bad).unwrap_err();
            assert!(message.contains("advanceSeconds"), "{message}");
        }
    }
}
