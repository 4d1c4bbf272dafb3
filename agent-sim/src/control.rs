//! The control channel (§9.1): CreateControlChannel, the websocket
//! `/v1/control-channel/<id>?role=subscribe&stream=input`, its open frame, keepalive Pings, and
//! reconnecting when it fails.
//!
//! One task per agent owns the socket. It writes what the agent's [`crate::agent::Outbox`]
//! queues, reads frames (decoded with the agent's receive checks) and hands each to
//! [`Agent::on_control_message`]. When the socket fails it waits a random 0–2.5 s, calls
//! CreateControlChannel again for a new token, re-dials and sends a new open frame; failed
//! attempts back off from 5–10 s, doubling up to 40 min. Running jobs are not touched: their
//! replies wait in the outbox ([`Queue`]). The task ends when its future is dropped (shutdown,
//! or a crash, see [`crate::faults`]): the socket goes without a Close frame, as the real
//! agent's does.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use ssm_protocol::payload::{OpenControlChannelInput, to_json_bytes};
use ssm_protocol::{Message, Validation};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::agent::{Agent, Backoff};
use crate::service::CallError;

/// Application data of the agent's keepalive Pings.
pub(crate) const KEEPALIVE_DATA: &[u8] = b"keepalive";
/// How long after a Pong (or, before the first one, after the first Ping is due) the agent
/// waits for the next one: the real agent's read deadline is 60 s after each Pong, 54 s after
/// the Ping it answers, so 6 s past the next Ping.
pub(crate) const PONG_GRACE: Duration = Duration::from_secs(6);
/// The initial read deadline is 60 s past the first Ping (114 s with the real 54 s keepalive).
pub(crate) const FIRST_PONG_GRACE: Duration = Duration::from_secs(60);

/// Why a connected control channel ended.
enum Ended {
    /// The outbox closed: the agent is gone.
    Shutdown,
    Failed(String),
}

/// The frames waiting for the control channel. It outlives each socket, and each life of the
/// agent: workers that finish while the agent is down queue their replies here.
#[derive(Debug)]
pub(crate) struct Queue {
    outbox: UnboundedReceiver<Message>,
    /// A frame taken from the outbox whose write failed; it goes out first on the next socket.
    carry: Option<Message>,
}

impl Queue {
    pub(crate) fn new(outbox: UnboundedReceiver<Message>) -> Queue {
        Queue {
            outbox,
            carry: None,
        }
    }

    /// Drops every frame queued so far: what a crashed agent process had in memory.
    pub(crate) fn discard(&mut self) -> usize {
        let mut lost = usize::from(self.carry.take().is_some());
        while self.outbox.try_recv().is_ok() {
            lost += 1;
        }
        lost
    }
}

/// Keeps the control channel open, reconnecting whenever it fails, until the future is dropped.
pub(crate) async fn run(agent: &Agent, queue: &mut Queue) {
    let instance = agent.instance.instance_id.clone();
    let mut backoff = Backoff::new(agent.timings);
    loop {
        let socket = match connect(agent).await {
            Ok(socket) => socket,
            Err(error) => {
                let delay = backoff.next(&agent.random);
                tracing::warn!(%instance, "control channel not open: {error}; retrying in {delay:.1?}");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff.reset();
        tracing::info!(%instance, "control channel open");
        agent.faults.connected.store(true, Ordering::Relaxed);
        let ended = serve(agent, socket, queue).await;
        agent.faults.connected.store(false, Ordering::Relaxed);
        match ended {
            Ended::Shutdown => return,
            Ended::Failed(why) => {
                let delay = agent.random.below(agent.timings.reconnect_jitter);
                tracing::info!(%instance, "control channel lost ({why}); reconnecting in {delay:.1?}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Why opening the channel failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("CreateControlChannel failed: {0}")]
    Create(#[from] CallError),
    #[error("{0}")]
    Dial(#[from] crate::net::NetError),
    #[error("cannot send the open frame: {0}")]
    Open(#[from] tokio_tungstenite::tungstenite::Error),
}

/// CreateControlChannel, dial, open frame.
async fn connect(agent: &Agent) -> Result<WebSocketStream<TcpStream>, ConnectError> {
    let instance = &agent.instance;
    let request_id = agent.random.uuid().to_string();
    let token = agent
        .service
        .create_control_channel(&instance.instance_id, &request_id)
        .await?;
    let path = format!(
        "/v1/control-channel/{}?role=subscribe&stream=input",
        instance.instance_id
    );
    let mut socket = agent
        .service
        .connector
        .websocket(&path, &agent.service.upgrade_headers())
        .await?;
    let open = OpenControlChannelInput {
        cookie: None,
        message_schema_version: "1.0".to_owned(),
        request_id: agent.random.uuid().to_string(),
        token_value: token,
        agent_version: instance.agent_version.clone(),
        platform_type: "linux".to_owned(),
    };
    let open = to_json_bytes(&open).expect("strings serialize");
    let open = String::from_utf8(open).expect("serde_json writes UTF-8");
    socket.send(WsMessage::Text(open.into())).await?;
    Ok(socket)
}

async fn serve(agent: &Agent, socket: WebSocketStream<TcpStream>, queue: &mut Queue) -> Ended {
    let instance = &agent.instance.instance_id;
    let keepalive = agent.timings.keepalive;
    let (mut sink, mut stream) = socket.split();
    let mut pings = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    let mut read_deadline = Instant::now() + keepalive + FIRST_PONG_GRACE;

    if let Some(message) = queue.carry.take() {
        let frame = WsMessage::Binary(Bytes::from(message.encode()));
        if let Err(error) = sink.send(frame).await {
            queue.carry = Some(message);
            return Ended::Failed(error.to_string());
        }
    }
    loop {
        tokio::select! {
            queued = queue.outbox.recv() => {
                // The agent holds the sender, so the queue only closes when the agent is gone.
                let Some(message) = queued else { return Ended::Shutdown };
                let frame = WsMessage::Binary(Bytes::from(message.encode()));
                if let Err(error) = sink.send(frame).await {
                    queue.carry = Some(message);
                    return Ended::Failed(error.to_string());
                }
            }
            _ = pings.tick() => {
                let ping = WsMessage::Ping(Bytes::from_static(KEEPALIVE_DATA));
                if let Err(error) = sink.send(ping).await {
                    return Ended::Failed(error.to_string());
                }
            }
            () = tokio::time::sleep_until(read_deadline) => {
                return Ended::Failed("no Pong before the read deadline".to_owned());
            }
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    match Message::decode(&bytes, Validation::Agent) {
                        Ok(message) => agent.on_control_message(&message),
                        Err(error) => tracing::warn!(%instance, "control frame dropped: {error}"),
                    }
                }
                Some(Ok(WsMessage::Pong(_))) => {
                    read_deadline = Instant::now() + keepalive + PONG_GRACE;
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    return Ended::Failed(format!("server closed the socket ({frame:?})"));
                }
                // Pings are answered by tungstenite; text frames mean nothing to the agent.
                Some(Ok(_)) => {}
                Some(Err(error)) => return Ended::Failed(error.to_string()),
                None => return Ended::Failed("connection closed".to_owned()),
            },
        }
    }
}
