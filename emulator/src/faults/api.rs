//! API faults: the check every SSM API request (`AmazonSSM.*`) passes before its operation is
//! parsed and applied. It adds the latency of the matching rules, then answers with the error
//! of the first rule that fires, if any.

use std::time::Duration;

use super::rules::ApiFaultError;
use crate::api::error::ApiError;
use crate::model::Emulator;

/// The message AWS sends with `ThrottlingException` (spec §10).
const THROTTLING_MESSAGE: &str = "Rate exceeded";

/// Applies the API rules to a request of `operation` (the part of `X-Amz-Target` after
/// `AmazonSSM.`) with `body`: waits the added latency, then `Err` with the injected error, or
/// `Ok` to let the request through.
pub(crate) async fn before_operation(
    emu: &Emulator,
    operation: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    if !emu.faults().any_api_rules() {
        return Ok(());
    }
    let decision = emu
        .faults()
        .lock()
        .on_api_call(operation, || command_id(body));
    if decision.latency > Duration::ZERO {
        tracing::debug!(
            operation,
            latency_ms = decision.latency.as_millis() as u64,
            "fault: latency"
        );
        tokio::time::sleep(decision.latency).await;
    }
    match decision.error {
        None => Ok(()),
        Some(error) => {
            tracing::debug!(operation, ?error, "fault: API error");
            Err(match error {
                ApiFaultError::ThrottlingException => {
                    ApiError::Throttling(THROTTLING_MESSAGE.to_owned())
                }
                ApiFaultError::InternalServerError => {
                    ApiError::InternalServerError("Internal Server Error".to_owned())
                }
                // The real service's message, empty like the emulator's own (no member declared).
                ApiFaultError::InvocationDoesNotExist => {
                    ApiError::InvocationDoesNotExist(String::new())
                }
            })
        }
    }
}

/// The request's `CommandId`, if the body is JSON with one.
fn command_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithCommandId {
        #[serde(rename = "CommandId")]
        command_id: String,
    }
    serde_json::from_slice::<WithCommandId>(body)
        .ok()
        .map(|b| b.command_id)
}
