//! The admin routes of fault injection:
//!
//! - `GET /_emulator/faults`: the rules in force with their counters, the totals and the seed;
//! - `POST /_emulator/faults` with a rule ([`super::rules`]): adds it, answers `{"id":"f-1"}`;
//! - `DELETE /_emulator/faults/{id}`: removes one; `DELETE /_emulator/faults`: removes all;
//! - `POST /_emulator/seed` with `{"seed": N}`: reseeds the RNGs of ids and of faults;
//! - `POST /_emulator/reset`: clears faults, sessions, commands and the account's documents.
//!
//! Errors are `{"message": "..."}` saying what to fix, with 400 (bad input) or 404 (no such
//! rule).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::rules::FaultRule;
use crate::model::Emulator;

/// The fault, seed and reset routes.
pub(crate) fn router(emu: Emulator) -> Router {
    Router::new()
        .route("/_emulator/faults", get(list).post(add).delete(clear))
        .route("/_emulator/faults/{id}", delete(remove))
        .route("/_emulator/seed", post(seed))
        .route("/_emulator/reset", post(reset))
        .with_state(emu.clone())
        .merge(super::agents::router(emu))
}

/// A JSON answer.
pub(super) fn answer(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A JSON error saying what to fix.
pub(super) fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, &json!({ "message": message.into() }))
}

/// The body as `T`, or what is wrong with it.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8], example: &str) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|e| format!("invalid JSON body ({e}); expected for example {example}"))
}

async fn list(State(emu): State<Emulator>) -> Response {
    let report = emu.faults().report();
    answer(
        StatusCode::OK,
        &serde_json::to_value(report).unwrap_or_default(),
    )
}

async fn add(State(emu): State<Emulator>, body: Bytes) -> Response {
    let rule: FaultRule = match parse(
        &body,
        r#"{"relay": {"action": {"drop": {"probability": 0.01}}}} or {"api": {"operation": "SendCommand", "error": "ThrottlingException", "rate": 0.5}}"#,
    ) {
        Ok(rule) => rule,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    match emu.add_fault(rule) {
        Ok(id) => answer(StatusCode::OK, &json!({ "id": id })),
        Err(e) => refuse(StatusCode::BAD_REQUEST, e.0),
    }
}

async fn remove(State(emu): State<Emulator>, Path(id): Path<String>) -> Response {
    if emu.remove_fault(&id) {
        answer(StatusCode::OK, &json!({}))
    } else {
        refuse(
            StatusCode::NOT_FOUND,
            format!("no fault rule {id:?}: GET /_emulator/faults lists the ids (f-1, f-2, …)"),
        )
    }
}

async fn clear(State(emu): State<Emulator>) -> Response {
    emu.clear_faults();
    answer(StatusCode::OK, &json!({}))
}

/// `POST /_emulator/seed`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    seed: u64,
}

async fn seed(State(emu): State<Emulator>, body: Bytes) -> Response {
    match parse::<Seed>(&body, r#"{"seed": 42}"#) {
        Ok(Seed { seed }) => {
            emu.reseed(seed);
            answer(StatusCode::OK, &json!({ "seed": seed }))
        }
        Err(message) => refuse(StatusCode::BAD_REQUEST, message),
    }
}

async fn reset(State(emu): State<Emulator>) -> Response {
    emu.reset();
    answer(StatusCode::OK, &json!({}))
}
