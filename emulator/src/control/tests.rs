//! The websocket handler driven through channels (no sockets): open-frame checks, replacement,
//! acks of replies and task completions, malformed frames, connectivity.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ws::Message as WsMessage;
use futures_util::{Sink, Stream};
use ssm_protocol::payload::{AgentJobReplyAck, AgentTaskAcknowledge};
use ssm_protocol::{Message, MessageType, Validation};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::serve;
use crate::model::{Emulator, Scope};
use crate::{Config, ManualClock};

const ID: &str = "i-0123456789abcdef0";

/// The server's end of a websocket made of two channels.
struct Duplex {
    incoming: mpsc::UnboundedReceiver<Result<WsMessage, Infallible>>,
    outgoing: mpsc::UnboundedSender<WsMessage>,
}

impl Stream for Duplex {
    type Item = Result<WsMessage, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx)
    }
}

impl Sink<WsMessage> for Duplex {
    type Error = ();
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: WsMessage) -> Result<(), ()> {
        self.outgoing.send(item).map_err(|_| ())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }
}

/// The agent's end.
struct Agent {
    to_server: mpsc::UnboundedSender<Result<WsMessage, Infallible>>,
    from_server: mpsc::UnboundedReceiver<WsMessage>,
    task: JoinHandle<()>,
}

impl Agent {
    fn send(&self, message: WsMessage) {
        self.to_server.send(Ok(message)).unwrap();
    }

    fn send_frame(&self, message_type: MessageType, id: Uuid, payload: &str) {
        let mut frame = Message::new(message_type, 1_795_387_417_975, id);
        frame.payload = payload.as_bytes().to_vec();
        self.send(WsMessage::Binary(frame.encode().into()));
    }

    async fn recv_frame(&mut self) -> Message {
        match self.from_server.recv().await {
            Some(WsMessage::Binary(bytes)) => Message::decode(&bytes, Validation::Agent).unwrap(),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

fn emulator() -> (Emulator, Scope) {
    let mut config = Config::local(7);
    config.instances =
        crate::config::parse_instances(&format!(r#"{{"instances":[{{"id":"{ID}"}}]}}"#), "t")
            .unwrap();
    let emu = Emulator::new(config, Arc::new(ManualClock::at_epoch_secs(1_700_000_000)));
    let scope = emu.scope("us-east-1");
    (emu, scope)
}

fn connect(emu: &Emulator) -> Agent {
    let (to_server, incoming) = mpsc::unbounded_channel();
    let (outgoing, from_server) = mpsc::unbounded_channel();
    let task = tokio::spawn(serve(
        emu.clone(),
        ID.to_owned(),
        Duplex { incoming, outgoing },
    ));
    Agent {
        to_server,
        from_server,
        task,
    }
}

/// The open frame exactly as the real agent writes it (agent-startup.jsonl), with `token`.
fn open_frame(token: &str) -> WsMessage {
    WsMessage::Text(
        format!(
            "{{\"Cookie\":null,\"MessageSchemaVersion\":\"1.0\",\"RequestId\":\
             \"219af1cf-1949-4c2d-a554-c21031acb7cd\",\"TokenValue\":\"{token}\",\
             \"AgentVersion\":\"3.3.1142.0\",\"PlatformType\":\"linux\"}}"
        )
        .into(),
    )
}

async fn open(emu: &Emulator, scope: &Scope) -> Agent {
    let token = emu.issue_control_token(scope, ID);
    let agent = connect(emu);
    agent.send(open_frame(&token));
    // The handler registers the connection right after reading the open frame.
    while !emu.control_channel_open(scope, ID) {
        tokio::task::yield_now().await;
    }
    agent
}

#[tokio::test]
async fn unknown_token_is_closed_with_policy_violation() {
    let (emu, scope) = emulator();
    emu.issue_control_token(&scope, ID);
    let mut agent = connect(&emu);
    agent.send(open_frame("cc-token-made-up"));
    match agent.from_server.recv().await {
        Some(WsMessage::Close(Some(frame))) => assert_eq!(frame.code, 1008),
        other => panic!("expected a close frame, got {other:?}"),
    }
    agent.task.await.unwrap();
    assert!(!emu.control_channel_open(&scope, ID));
}

#[tokio::test]
async fn token_of_another_instance_is_refused() {
    let (emu, scope) = emulator();
    let token = emu.issue_control_token(&scope, "i-0fedcba9876543210");
    let mut agent = connect(&emu);
    agent.send(open_frame(&token));
    assert!(matches!(
        agent.from_server.recv().await,
        Some(WsMessage::Close(_))
    ));
}

#[tokio::test]
async fn open_channel_marks_the_node_connected_until_it_closes() {
    let (emu, scope) = emulator();
    let agent = open(&emu, &scope).await;
    assert!(emu.instance(&scope, ID).unwrap().connected);
    agent.send(WsMessage::Close(None));
    agent.task.await.unwrap();
    assert!(!emu.instance(&scope, ID).unwrap().connected);
    assert!(!emu.control_channel_open(&scope, ID));
}

#[tokio::test]
async fn send_to_agent_writes_a_canonical_frame() {
    let (emu, scope) = emulator();
    let mut agent = open(&emu, &scope).await;
    let id = emu
        .send_to_agent(&scope, ID, MessageType::AgentJob, b"{}".to_vec())
        .unwrap();
    let frame = agent.recv_frame().await;
    assert_eq!(frame.message_type, MessageType::AgentJob);
    assert_eq!(frame.message_id, id);
    assert_eq!(frame.created_date, 1_700_000_000_000);
    assert_eq!(frame.payload, b"{}");
    assert!(
        emu.send_to_agent(
            &scope,
            "i-0fedcba9876543210",
            MessageType::AgentJob,
            Vec::new()
        )
        .is_err()
    );
}

#[tokio::test]
async fn every_reply_is_acked_even_a_resent_one() {
    let (emu, scope) = emulator();
    let mut agent = open(&emu, &scope).await;
    let reply_id = Uuid::parse_str("3a5622cb-16d3-4b5d-b33e-4b44926fcd53").unwrap();
    let job = "aws.ssm.33333333-4444-5555-6666-777777777777.i-0123456789abcdef0";
    let reply = format!(
        "{{\"schemaVersion\":1,\"jobId\":\"{job}\",\"content\":\"{{}}\",\"topic\":\"aws.ssm.sendCommand\"}}"
    );
    for _ in 0..2 {
        agent.send_frame(MessageType::AgentJobReply, reply_id, &reply);
        let ack = agent.recv_frame().await;
        assert_eq!(ack.message_type, MessageType::AgentJobReplyAck);
        let ack: AgentJobReplyAck = serde_json::from_slice(&ack.payload).unwrap();
        assert_eq!(ack.job_id, job);
        assert_eq!(ack.acknowledged_message_id, reply_id.to_string());
    }
    assert!(!emu.with_state(|s| s.control.first_sight_of_reply(&scope, ID, reply_id)));
}

#[tokio::test]
async fn task_complete_is_acknowledged_by_message_id() {
    let (emu, scope) = emulator();
    let mut agent = open(&emu, &scope).await;
    let id = Uuid::from_u128(0x1234);
    agent.send_frame(
        MessageType::AgentTaskComplete,
        id,
        "{\"SchemaVersion\":1,\"TaskId\":\"sess-1\",\"Topic\":\"agent_task_complete\",\
         \"FinalTaskStatus\":\"Success\",\"IsRoutingFailure\":false,\"AwsAccountId\":\"\",\
         \"InstanceId\":\"i-0123456789abcdef0\",\"Output\":\"\",\"S3Bucket\":\"\",\
         \"S3UrlSuffix\":\"\",\"CwlGroup\":\"\",\"CwlStream\":\"\",\"RetryNumber\":1}",
    );
    let ack = agent.recv_frame().await;
    assert_eq!(ack.message_type, MessageType::AgentTaskAcknowledge);
    let ack: AgentTaskAcknowledge = serde_json::from_slice(&ack.payload).unwrap();
    assert_eq!(
        ack,
        AgentTaskAcknowledge {
            schema_version: 1,
            message_id: id.to_string(),
            task_id: "sess-1".into(),
            topic: "agent_task_complete".into(),
        }
    );
}

#[tokio::test]
async fn malformed_and_unknown_frames_are_dropped_and_the_channel_stays_up() {
    let (emu, scope) = emulator();
    let mut agent = open(&emu, &scope).await;
    agent.send(WsMessage::Binary(vec![0u8; 10].into()));
    agent.send(WsMessage::Binary(vec![0u8; 130].into()));
    agent.send_frame(MessageType::AgentTelemetry, Uuid::from_u128(1), "{}");
    agent.send_frame(MessageType::AgentUpdateResult, Uuid::from_u128(2), "{}");
    agent.send_frame(
        "agent_something_new".parse().unwrap(),
        Uuid::from_u128(3),
        "x",
    );
    agent.send_frame(MessageType::AgentJobReply, Uuid::from_u128(4), "not json");
    agent.send(WsMessage::Ping(b"keepalive".to_vec().into()));
    // Still served: a task completion is acked.
    agent.send_frame(
        MessageType::AgentTaskComplete,
        Uuid::from_u128(5),
        "{\"TaskId\":\"s\"}",
    );
    let ack = agent.recv_frame().await;
    assert_eq!(ack.message_type, MessageType::AgentTaskAcknowledge);
    assert!(emu.control_channel_open(&scope, ID));
}

#[tokio::test]
async fn a_new_connection_replaces_the_old_one() {
    let (emu, scope) = emulator();
    let mut first = open(&emu, &scope).await;
    let token = emu.issue_control_token(&scope, ID);
    let mut second = connect(&emu);
    second.send(open_frame(&token));
    // The first connection is closed by the server once the second registers.
    assert!(matches!(
        first.from_server.recv().await,
        Some(WsMessage::Close(_))
    ));
    first.task.await.unwrap();
    assert!(
        emu.instance(&scope, ID).unwrap().connected,
        "second still up"
    );
    emu.send_to_agent(&scope, ID, MessageType::AgentJob, b"{}".to_vec())
        .unwrap();
    assert_eq!(second.recv_frame().await.payload, b"{}");
    second.send(WsMessage::Close(None));
    second.task.await.unwrap();
    assert!(!emu.instance(&scope, ID).unwrap().connected);
}
