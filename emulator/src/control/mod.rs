//! The agent's control channel (spec §9.1): `POST /v1/control-channel/{instanceId}`
//! (CreateControlChannel) and the websocket on the same path.
//!
//! - CreateControlChannel answers HTTP 201 with an XML `TokenValue`. Every call issues a new
//!   token (the agent calls it again before each reconnect).
//! - The websocket's first text frame is the agent's open frame; its `TokenValue` must be one
//!   issued for that instance, or the socket is closed. A newer connection for the same
//!   instance replaces the older one, which is then closed. While the socket is up the node is
//!   connected ([`Emulator::set_connected`]).
//! - Frames from the agent are decoded with [`Validation::Agent`]; malformed ones are logged and
//!   dropped. `agent_job_ack` and `agent_job_reply` go to Run Command (every reply is acked with
//!   `agent_job_reply_ack`, and applied once per MessageId, since the agent resends unacked
//!   replies with the same MessageId); `agent_task_complete` is acked with
//!   `agent_task_acknowledge`; `agent_telemetry`, `agent_update_result` and unknown types are
//!   tolerated.
//! - [`Emulator::send_to_agent`] queues a frame for an instance's channel: Run Command's
//!   `agent_job` today, a session's `interactive_shell` and `channel_closed` later.
//!
//! The websocket handler, [`serve`], is written over any `Sink` + `Stream` of websocket
//! messages, so that unit tests drive it with channels (axum's testing-websockets example).

pub(crate) mod registry;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use ssm_protocol::payload::{
    self, AgentJobAck, AgentJobReply, AgentJobReplyAck, AgentTaskAcknowledge, AgentTaskComplete,
    OpenControlChannelInput, TOPIC_AGENT_TASK_COMPLETE,
};
use ssm_protocol::{Message, MessageType, Validation};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::model::{Emulator, Scope, State as EmuState};

pub(crate) use registry::Registry;

/// The path of both CreateControlChannel and the control-channel websocket.
const PATH: &str = "/v1/control-channel/{instance_id}";

/// Close code for an open frame that is missing, malformed or carries an unknown token.
const CLOSE_POLICY: u16 = 1008;

/// The control-channel routes.
pub(crate) fn router(emu: Emulator) -> Router {
    Router::new()
        .route(PATH, post(create_control_channel).get(upgrade))
        .with_state(emu)
}

/// Why a frame could not be queued for an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance {0} has no open control channel")]
pub struct NotConnected(pub String);

impl Emulator {
    /// Queues a frame of `message_type` carrying `payload` on the control channel of
    /// `instance_id`, with a fresh MessageId and the emulator clock's CreatedDate. Returns the
    /// MessageId.
    ///
    /// This is how the service side talks to an agent: Run Command's `agent_job`, and for
    /// sessions `interactive_shell` and `channel_closed`.
    pub fn send_to_agent(
        &self,
        scope: &Scope,
        instance_id: &str,
        message_type: MessageType,
        payload: Vec<u8>,
    ) -> Result<Uuid, NotConnected> {
        let now = self.now();
        self.with_state(|state| state.send_to_agent(scope, instance_id, now, message_type, payload))
            .ok_or_else(|| NotConnected(instance_id.to_owned()))
    }

    /// Whether `instance_id` has a live control channel in `scope`.
    pub fn control_channel_open(&self, scope: &Scope, instance_id: &str) -> bool {
        self.with_state(|state| state.control.is_connected(scope, instance_id))
    }

    /// Issues a CreateControlChannel token for `instance_id` in `scope`.
    pub fn issue_control_token(&self, scope: &Scope, instance_id: &str) -> String {
        self.with_state(|state| {
            let token = format!("cc-token-{}", state.uuid().simple());
            state.control.issue(scope, instance_id, token.clone());
            token
        })
    }
}

impl EmuState {
    /// [`Emulator::send_to_agent`] under the lock, for code that changes the state and sends in
    /// one step (Run Command's dispatcher). `None` if the instance is not connected.
    pub(crate) fn send_to_agent(
        &mut self,
        scope: &Scope,
        instance_id: &str,
        now: SystemTime,
        message_type: MessageType,
        payload: Vec<u8>,
    ) -> Option<Uuid> {
        if !self.control.is_connected(scope, instance_id) {
            return None;
        }
        let (frame, id) = self.frame(now, message_type, payload);
        self.control
            .send(scope, instance_id, frame.encode())
            .then_some(id)
    }

    /// A frame with a fresh MessageId from the seeded RNG.
    fn frame(
        &mut self,
        now: SystemTime,
        message_type: MessageType,
        payload: Vec<u8>,
    ) -> (Message, Uuid) {
        let id = self.uuid();
        let mut frame = Message::new(message_type, epoch_millis(now), id);
        frame.payload = payload;
        (frame, id)
    }
}

/// CreateDate of the frames we write: milliseconds since the epoch, never 0 (both real
/// readers drop a frame with 0).
fn epoch_millis(t: SystemTime) -> u64 {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ms.max(1)
}

/// `POST /v1/control-channel/{instanceId}`: a new token, as XML with HTTP 201.
async fn create_control_channel(
    State(emu): State<Emulator>,
    Path(instance_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    #[allow(dead_code)]
    struct Request {
        message_schema_version: Option<String>,
        request_id: Option<String>,
    }
    if serde_json::from_slice::<Request>(&body).is_err() {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/xml")],
            "<ValidationException><Message>The request body is not valid JSON</Message></ValidationException>",
        )
            .into_response();
    }
    let region = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::api::region_of_authorization)
        .unwrap_or(emu.default_region())
        .to_owned();
    let scope = emu.scope(&region);
    let token = emu.issue_control_token(&scope, &instance_id);
    tracing::debug!(instance_id, region, "CreateControlChannel");
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/xml")],
        format!(
            "<CreateControlChannelResponse><MessageSchemaVersion>1.0</MessageSchemaVersion>\
             <TokenValue>{token}</TokenValue></CreateControlChannelResponse>"
        ),
    )
        .into_response()
}

/// `GET /v1/control-channel/{instanceId}?role=subscribe&stream=input`: the websocket.
async fn upgrade(
    State(emu): State<Emulator>,
    Path(instance_id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| serve(emu, instance_id, socket))
}

/// Runs one control-channel connection until either side ends it.
///
/// `socket` is any websocket: axum's in the server, channels in unit tests. Pings are answered
/// by the websocket layer underneath.
pub(crate) async fn serve<S, E>(emu: Emulator, instance_id: String, mut socket: S)
where
    S: Stream<Item = Result<WsMessage, E>> + Sink<WsMessage> + Unpin,
    E: fmt::Display,
{
    let Some(scope) = accept_open_frame(&emu, &instance_id, &mut socket).await else {
        let _ = socket
            .send(WsMessage::Close(Some(CloseFrame {
                code: CLOSE_POLICY,
                reason: "invalid open frame or token".into(),
            })))
            .await;
        return;
    };
    let (outbox, mut queued) = mpsc::unbounded_channel();
    let connection = attach(&emu, &scope, &instance_id, outbox);
    tracing::info!(instance_id, region = %scope.region, "control channel open");
    loop {
        tokio::select! {
            frame = queued.recv() => match frame {
                Some(frame) => {
                    if socket.send(WsMessage::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
                // A newer connection for the same instance took over.
                None => {
                    let _ = socket.send(WsMessage::Close(None)).await;
                    break;
                }
            },
            incoming = socket.next() => match incoming {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    for reply in on_agent_frame(&emu, &scope, &instance_id, &bytes) {
                        if socket.send(WsMessage::Binary(reply.into())).await.is_err() {
                            break;
                        }
                    }
                }
                // The agent writes binary frames, but reads text ones the same way; be as
                // lenient with it.
                Some(Ok(WsMessage::Text(text))) => {
                    for reply in on_agent_frame(&emu, &scope, &instance_id, text.as_bytes()) {
                        if socket.send(WsMessage::Binary(reply.into())).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Ok(WsMessage::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(instance_id, error = %e, "control channel read error");
                    break;
                }
            },
        }
    }
    detach(&emu, &scope, &instance_id, connection);
    tracing::info!(instance_id, region = %scope.region, "control channel closed");
}

/// Reads the open frame and checks its token. Returns the scope the token was issued in.
async fn accept_open_frame<S, E>(emu: &Emulator, instance_id: &str, socket: &mut S) -> Option<Scope>
where
    S: Stream<Item = Result<WsMessage, E>> + Unpin,
    E: fmt::Display,
{
    let bytes: Vec<u8> = match socket.next().await? {
        Ok(WsMessage::Text(text)) => text.as_bytes().to_vec(),
        Ok(WsMessage::Binary(bytes)) => bytes.to_vec(),
        Ok(other) => {
            tracing::debug!(instance_id, ?other, "control channel: no open frame");
            return None;
        }
        Err(e) => {
            tracing::debug!(instance_id, error = %e, "control channel: read error before open");
            return None;
        }
    };
    let open: OpenControlChannelInput = match payload::from_json_bytes(&bytes) {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(instance_id, error = %e, "control channel: malformed open frame");
            return None;
        }
    };
    let scope = emu.with_state(|state| state.control.check_token(instance_id, &open.token_value));
    if scope.is_none() {
        tracing::warn!(instance_id, "control channel: unknown token");
    }
    scope
}

/// Registers the connection, marks the node connected, and lets Run Command deliver what
/// waited for this node.
fn attach(emu: &Emulator, scope: &Scope, instance_id: &str, outbox: registry::Outbox) -> u64 {
    let id = emu.with_state(|state| state.control.connect(scope, instance_id, outbox));
    if !emu.set_connected(scope, instance_id, true) {
        tracing::warn!(
            instance_id,
            "control channel of an instance that never reported (UpdateInstanceInformation)"
        );
    }
    crate::run_command::on_connectivity_change(emu, scope);
    id
}

/// Unregisters the connection if it is still the current one and marks the node disconnected.
fn detach(emu: &Emulator, scope: &Scope, instance_id: &str, connection: u64) {
    let current = emu.with_state(|state| state.control.disconnect(scope, instance_id, connection));
    if current {
        emu.set_connected(scope, instance_id, false);
        crate::run_command::on_connectivity_change(emu, scope);
    }
}

/// Handles one frame from an agent and returns the encoded frames to answer with.
pub(crate) fn on_agent_frame(
    emu: &Emulator,
    scope: &Scope,
    instance_id: &str,
    bytes: &[u8],
) -> Vec<Vec<u8>> {
    let message = match Message::decode(bytes, Validation::Agent) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(instance_id, error = %e, "control channel: dropping malformed frame");
            return Vec::new();
        }
    };
    let now = emu.now();
    match message.message_type {
        MessageType::AgentJobAck => {
            match payload::from_json_bytes::<AgentJobAck>(&message.payload) {
                Ok(ack) => crate::run_command::on_job_ack(emu, scope, instance_id, &ack),
                Err(e) => tracing::warn!(instance_id, error = %e, "malformed agent_job_ack"),
            }
            Vec::new()
        }
        MessageType::AgentJobReply => {
            let reply = match payload::from_json_bytes::<AgentJobReply>(&message.payload) {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::warn!(instance_id, error = %e, "malformed agent_job_reply");
                    return Vec::new();
                }
            };
            let first = emu.with_state(|state| {
                state
                    .control
                    .first_sight_of_reply(scope, instance_id, message.message_id)
            });
            if first {
                crate::run_command::on_job_reply(emu, scope, instance_id, &reply);
            } else {
                tracing::debug!(instance_id, message_id = %message.message_id, "duplicate agent_job_reply");
            }
            let ack = AgentJobReplyAck {
                job_id: reply.job_id,
                acknowledged_message_id: message.message_id.to_string(),
            };
            answer(emu, now, MessageType::AgentJobReplyAck, &ack)
        }
        MessageType::AgentTaskComplete => {
            let complete = match payload::from_json_bytes::<AgentTaskComplete>(&message.payload) {
                Ok(complete) => complete,
                Err(e) => {
                    tracing::warn!(instance_id, error = %e, "malformed agent_task_complete");
                    return Vec::new();
                }
            };
            // A session ends here (spec §6.6): Terminated or Failed, `channel_closed` to the
            // client. Acked whatever it names (a failed session sends two; ack each).
            crate::sessions::on_task_complete(emu, instance_id, &complete);
            tracing::debug!(
                instance_id,
                task_id = complete.task_id,
                status = complete.final_task_status.as_str(),
                "agent_task_complete"
            );
            let ack = AgentTaskAcknowledge {
                schema_version: ssm_protocol::limits::SCHEMA_VERSION,
                message_id: message.message_id.to_string(),
                task_id: complete.task_id,
                topic: TOPIC_AGENT_TASK_COMPLETE.to_owned(),
            };
            answer(emu, now, MessageType::AgentTaskAcknowledge, &ack)
        }
        other => {
            tracing::debug!(instance_id, message_type = %other, "control channel: ignoring");
            Vec::new()
        }
    }
}

/// One encoded frame carrying `payload`.
fn answer<T: Serialize>(
    emu: &Emulator,
    now: SystemTime,
    message_type: MessageType,
    payload: &T,
) -> Vec<Vec<u8>> {
    match payload::to_json_bytes(payload) {
        Ok(bytes) => {
            let (frame, _) = emu.with_state(|state| state.frame(now, message_type, bytes));
            vec![frame.encode()]
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a control-channel payload");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
