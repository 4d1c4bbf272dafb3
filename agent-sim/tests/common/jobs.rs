//! The fake service of the control-channel tests (`agent.rs`, `faults.rs`): the API calls, the
//! control channel and its websocket, with every event reported in order. Each agent job reply
//! is acknowledged as the service does, unless [`Fake::ack_replies`] is off; data channels are
//! refused (reported as [`Event::CreateDataChannel`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use ssm_protocol::payload::{AgentJobReplyAck, to_json_bytes};
use ssm_protocol::{Message, MessageType, Validation};
use tokio::sync::mpsc;
use uuid::Uuid;

/// What the fake saw, in order.
#[derive(Debug)]
pub enum Event {
    /// `POST /` with `X-Amz-Target` and the exact body.
    Api { target: String, body: String },
    /// `POST /v1/control-channel/<id>`, the exact body, and the token answered.
    CreateControlChannel {
        path: String,
        body: String,
        token: String,
    },
    /// The websocket upgrade request.
    Upgrade { uri: String, headers: HeaderMap },
    /// The first text frame of a connection.
    Open(String),
    /// A binary frame from the agent (decoded with the plugin's strict checks).
    Frame(Message),
    /// The control socket ended: with a Close frame from the agent, or without one.
    Closed { close_frame: bool },
    /// `POST /v1/data-channel/<session>`, refused.
    CreateDataChannel,
}

/// What the test has the fake send on the control socket.
pub enum ToAgent {
    Frame(Message),
    Close,
}

pub struct Fake {
    events: mpsc::UnboundedSender<Event>,
    socket: Mutex<Option<mpsc::UnboundedSender<ToAgent>>>,
    /// Whether agent job replies are acknowledged (on by default).
    pub ack_replies: AtomicBool,
    counter: AtomicU64,
}

impl Fake {
    /// A fake and the receiver of its events.
    pub fn new() -> (Arc<Fake>, mpsc::UnboundedReceiver<Event>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let fake = Arc::new(Fake {
            events,
            socket: Mutex::new(None),
            ack_replies: AtomicBool::new(true),
            counter: AtomicU64::new(0),
        });
        (fake, receiver)
    }

    fn next_number(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A distinct MessageId for a frame the fake sends.
    pub fn next_id(&self) -> Uuid {
        Uuid::from_u128(u128::from(self.next_number()))
    }

    pub fn to_agent(&self, command: ToAgent) {
        let socket = self.socket.lock().unwrap();
        socket
            .as_ref()
            .expect("the agent has a control socket")
            .send(command)
            .ok();
    }
}

pub fn app(fake: Arc<Fake>) -> Router {
    Router::new()
        .route("/", post(api))
        .route(
            "/v1/control-channel/{id}",
            post(create_control_channel).get(control_socket),
        )
        .route("/v1/data-channel/{id}", post(create_data_channel))
        .with_state(fake)
}

async fn api(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    fake.events.send(Event::Api { target, body }).ok();
    ([("content-type", "application/x-amz-json-1.1")], "{}").into_response()
}

async fn create_control_channel(State(fake): State<Arc<Fake>>, uri: Uri, body: String) -> Response {
    let token = format!("cc-token-{}", fake.next_number());
    fake.events
        .send(Event::CreateControlChannel {
            path: uri.path().to_owned(),
            body,
            token: token.clone(),
        })
        .ok();
    // The recorded answer's shape (agent-startup.jsonl).
    let xml = format!(
        "<CreateControlChannelResponse><MessageSchemaVersion>1.0</MessageSchemaVersion>\
         <TokenValue>{token}</TokenValue></CreateControlChannelResponse>"
    );
    (
        StatusCode::CREATED,
        [("content-type", "application/xml")],
        xml,
    )
        .into_response()
}

async fn create_data_channel(State(fake): State<Arc<Fake>>) -> StatusCode {
    fake.events.send(Event::CreateDataChannel).ok();
    StatusCode::BAD_REQUEST
}

async fn control_socket(
    State(fake): State<Arc<Fake>>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    fake.events
        .send(Event::Upgrade {
            uri: uri.to_string(),
            headers,
        })
        .ok();
    upgrade.on_upgrade(move |socket| serve_socket(fake, socket))
}

async fn serve_socket(fake: Arc<Fake>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    *fake.socket.lock().unwrap() = Some(tx.clone());
    let close_frame = loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(ToAgent::Frame(message)) => {
                    if sink.send(WsMessage::Binary(message.encode().into())).await.is_err() {
                        break false;
                    }
                }
                Some(ToAgent::Close) | None => {
                    let _ = sink.send(WsMessage::Close(None)).await;
                    break false;
                }
            },
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    fake.events.send(Event::Open(text.to_string())).ok();
                }
                Some(Ok(WsMessage::Binary(bytes))) => {
                    let message = Message::decode(&bytes, Validation::Client)
                        .expect("the agent writes well-formed frames");
                    if message.message_type == MessageType::AgentJobReply
                        && fake.ack_replies.load(Ordering::Relaxed)
                    {
                        let reply: Value = serde_json::from_slice(&message.payload).unwrap();
                        let ack = AgentJobReplyAck {
                            job_id: reply["jobId"].as_str().unwrap().to_owned(),
                            acknowledged_message_id: message.message_id.to_string(),
                        };
                        let mut frame = Message::new(
                            MessageType::AgentJobReplyAck,
                            1_795_387_387_688,
                            fake.next_id(),
                        );
                        frame.payload = to_json_bytes(&ack).unwrap();
                        tx.send(ToAgent::Frame(frame)).ok();
                    }
                    fake.events.send(Event::Frame(message)).ok();
                }
                Some(Ok(WsMessage::Close(_))) => break true,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break false,
            },
        }
    };
    fake.events.send(Event::Closed { close_frame }).ok();
}
