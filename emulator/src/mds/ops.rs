//! The MDS operations (spec §9.2 table): request and response shapes in the `ssmmds` model's
//! member names, their constraints, and what each does. Unknown members are ignored, missing
//! required ones are a `ValidationException`, wrong JSON types a `SerializationException`, as
//! on the SSM API.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ssm_protocol::payload::{self, AgentJobAck, SendReplyPayload};
use uuid::Uuid;

use super::{DEFAULT_VISIBILITY, iso8601_millis};
use crate::api::error::ApiError;
use crate::api::ops::{from_body, to_body};
use crate::api::validate::Violations;
use crate::model::{Emulator, Scope};

/// The longest `VisibilityTimeoutInSeconds` honoured (12 h, SQS's limit).
const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// Serves the MDS operation `name` (the target without `EC2WindowsMessageDeliveryService.`) in
/// `scope`: parses, validates and applies it. `host` is the request's `Host`, which
/// GetEndpoint answers with.
pub(crate) async fn apply(
    emu: &Emulator,
    scope: &Scope,
    name: &str,
    host: Option<&str>,
    body: &[u8],
) -> Result<String, ApiError> {
    tracing::debug!(operation = name, region = %scope.region, "mds");
    match name {
        "GetMessages" => {
            let req: GetMessages = from_body(body)?;
            req.validate()?;
            to_body(&req.apply(emu, scope).await)
        }
        "AcknowledgeMessage" => {
            let req: MessageRequest = from_body(body)?;
            let (message_id, instance_id) = req.validate()?;
            acknowledge(emu, scope, &message_id, &instance_id);
            to_body(&Empty {})
        }
        "SendReply" => {
            let req: SendReply = from_body(body)?;
            req.validate()?;
            to_body(&req.apply(emu, scope)?)
        }
        "FailMessage" => {
            let req: FailMessage = from_body(body)?;
            let (message_id, instance_id) = req.message.validate()?;
            fail(emu, scope, &message_id, &instance_id, &req.failure_type);
            to_body(&Empty {})
        }
        "DeleteMessage" => {
            let req: MessageRequest = from_body(body)?;
            let (message_id, instance_id) = req.validate()?;
            emu.with_state(|state| state.mds.remove(scope, &instance_id, &message_id));
            to_body(&Empty {})
        }
        "GetEndpoint" => {
            let req: GetEndpoint = from_body(body)?;
            req.validate()?;
            let endpoint = host.map_or_else(
                || format!("ec2messages.{}.amazonaws.com", scope.region),
                str::to_owned,
            );
            to_body(&GetEndpointResponse { endpoint })
        }
        _ => Err(ApiError::UnknownOperation(format!(
            "Operation {}{name} is not supported by ssm-emulator",
            super::TARGET_PREFIX
        ))),
    }
}

#[derive(Debug, Serialize)]
struct Empty {}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetMessages {
    destination: Option<String>,
    messages_request_id: Option<String>,
    visibility_timeout_in_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetMessagesResponse {
    destination: String,
    messages_request_id: String,
    messages: Vec<Message>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Message {
    created_date: String,
    destination: String,
    message_id: String,
    payload: String,
    payload_digest: String,
    topic: String,
}

impl GetMessages {
    fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(destination) = v.required("destination", &self.destination) {
            v.length("destination", destination, 1, 100);
        }
        if let Some(id) = v.required("messagesRequestId", &self.messages_request_id) {
            v.length("messagesRequestId", id, 36, 36);
        }
        if let Some(seconds) = self.visibility_timeout_in_seconds {
            v.range(
                "visibilityTimeoutInSeconds",
                seconds,
                0,
                MAX_VISIBILITY.as_secs() as i64,
            );
        }
        v.finish()
    }

    /// The long poll: registers the poll (which lets the dispatcher route work here), then
    /// answers with the visible messages as soon as there are any, or empty after the hold.
    async fn apply(self, emu: &Emulator, scope: &Scope) -> GetMessagesResponse {
        let destination = self.destination.unwrap_or_default();
        let visibility = self
            .visibility_timeout_in_seconds
            .map_or(DEFAULT_VISIBILITY, |s| Duration::from_secs(s as u64));
        let now = emu.now();
        let (wake, hold) = emu.with_state(|state| {
            let wake = state.mds.poll_started(scope, &destination, now);
            // The node may just have become reachable: deliver what waited for it.
            crate::run_command::pump(state, scope, now);
            (wake, state.mds.hold())
        });
        let _held = HeldPoll {
            emu: emu.clone(),
            scope: scope.clone(),
            destination: destination.clone(),
        };
        let deadline = tokio::time::Instant::now() + hold;
        let queued = loop {
            // Registered before looking, so that a message queued in between still wakes us.
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let now = emu.now();
            let queued = emu
                .with_state(|state| state.mds.take_visible(scope, &destination, now, visibility));
            if !queued.is_empty() {
                break queued;
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                break Vec::new();
            }
        };
        let messages = queued
            .into_iter()
            .map(|m| Message {
                created_date: iso8601_millis(m.created),
                destination: destination.clone(),
                payload_digest: crate::documents::sha256_hex(&m.payload),
                message_id: m.message_id,
                payload: m.payload,
                topic: m.topic,
            })
            .collect();
        GetMessagesResponse {
            destination,
            messages_request_id: self.messages_request_id.unwrap_or_default(),
            messages,
        }
    }
}

/// Ends a held poll when the request finishes or its client goes away.
struct HeldPoll {
    emu: Emulator,
    scope: Scope,
    destination: String,
}

impl Drop for HeldPoll {
    fn drop(&mut self) {
        let now = self.emu.now();
        self.emu.with_state(|state| {
            state.mds.poll_ended(&self.scope, &self.destination, now);
        });
    }
}

/// The request of AcknowledgeMessage and DeleteMessage, and the MessageId of FailMessage.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MessageRequest {
    message_id: Option<String>,
}

impl MessageRequest {
    /// Checks the MessageId and returns it with the instance it was sent to.
    fn validate(&self) -> Result<(String, String), ApiError> {
        let mut v = Violations::new();
        let message_id = v.required("messageId", &self.message_id).cloned();
        v.finish()?;
        let message_id = message_id.unwrap_or_default();
        let instance_id = instance_of_message(&message_id)?;
        Ok((message_id, instance_id))
    }
}

/// The instance of a MessageId `aws.ssm.<id>.<instanceId>`.
fn instance_of_message(message_id: &str) -> Result<String, ApiError> {
    message_id
        .strip_prefix("aws.ssm.")
        .and_then(|rest| rest.rsplit_once('.'))
        .filter(|(id, instance)| !id.is_empty() && !instance.is_empty())
        .map(|(_, instance)| instance.to_owned())
        .ok_or_else(|| {
            ApiError::Validation(format!(
                "Value '{message_id}' at 'messageId' failed to satisfy constraint: \
                 Member must be a MessageId of the form aws.ssm.<commandId>.<instanceId>"
            ))
        })
}

/// AcknowledgeMessage: the message leaves the queue and counts as an `agent_job_ack` 200.
fn acknowledge(emu: &Emulator, scope: &Scope, message_id: &str, instance_id: &str) {
    emu.with_state(|state| state.mds.remove(scope, instance_id, message_id));
    let ack = AgentJobAck {
        job_id: message_id.to_owned(),
        status_code: "200".to_owned(),
        error_message: "Successful".to_owned(),
        ..AgentJobAck::default()
    };
    crate::run_command::on_job_ack(emu, scope, instance_id, &ack);
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FailMessage {
    #[serde(flatten)]
    message: MessageRequest,
    failure_type: Option<String>,
}

/// FailMessage: the agent could not handle the message (`InternalHandlerException`,
/// `NoHandlerExists`); applied as a refused `agent_job_ack`, so the invocation ends `Failed`
/// (`Undeliverable`).
fn fail(
    emu: &Emulator,
    scope: &Scope,
    message_id: &str,
    instance_id: &str,
    failure_type: &Option<String>,
) {
    emu.with_state(|state| state.mds.remove(scope, instance_id, message_id));
    let failure = failure_type
        .as_deref()
        .unwrap_or("InternalHandlerException");
    let ack = AgentJobAck {
        job_id: message_id.to_owned(),
        status_code: failure.to_owned(),
        error_message: failure.to_owned(),
        ..AgentJobAck::default()
    };
    crate::run_command::on_job_ack(emu, scope, instance_id, &ack);
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendReply {
    message_id: Option<String>,
    payload: Option<String>,
    reply_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendReplyResponse {
    message_id: String,
    reply_id: String,
    reply_status: &'static str,
    description: String,
}

impl SendReply {
    fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        v.required("messageId", &self.message_id);
        if let Some(payload) = v.required("payload", &self.payload) {
            v.length("payload", payload, 1, usize::MAX);
        }
        if let Some(id) = v.required("replyId", &self.reply_id) {
            v.length("replyId", id, 1, 36);
        }
        v.finish()
    }

    /// Applies the reply through the path `agent_job_reply` takes, once per ReplyId.
    fn apply(self, emu: &Emulator, scope: &Scope) -> Result<SendReplyResponse, ApiError> {
        let message_id = self.message_id.unwrap_or_default();
        let reply_id = self.reply_id.unwrap_or_default();
        let instance_id = instance_of_message(&message_id)?;
        let content: SendReplyPayload =
            payload::from_json_bytes(self.payload.unwrap_or_default().as_bytes()).map_err(|e| {
                ApiError::Validation(format!(
                    "Value at 'payload' failed to satisfy constraint: \
                         Member must be a SendReplyPayload JSON document ({e})"
                ))
            })?;
        // The agent retries a SendReply with the same ReplyId; apply each once.
        let first = Uuid::parse_str(&reply_id).map_or(true, |id| {
            emu.with_state(|state| state.control.first_sight_of_reply(scope, &instance_id, id))
        });
        if first {
            crate::run_command::apply_reply(emu, scope, &instance_id, &message_id, &content);
        }
        Ok(SendReplyResponse {
            message_id,
            reply_id,
            reply_status: "Created",
            description: String::new(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetEndpoint {
    destination: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetEndpointResponse {
    endpoint: String,
}

impl GetEndpoint {
    fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(destination) = v.required("destination", &self.destination) {
            v.length("destination", destination, 1, 100);
        }
        v.finish()
    }
}
