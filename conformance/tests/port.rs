//! Port forwarding and stdin/stdout sessions of the real `ssm-session` binary (spec §4.2, §7)
//! against a fake service that plays the agent with an agent-role `ReliableStream`, shaped like
//! `shared/spec/traces/plugin-port_{mux,basic,3part}.jsonl`.
//!
//! Every wait is bounded.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as WsMessage, WebSocket};
use ssm_protocol::reliable::{Config, Event, ReliableStream};
use ssm_protocol::{Message, MessageType, PayloadType, Validation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use common::{Client, fake_data_channel, now_ms, ssm_session_at};

const SESSION: &str = "sess-df175a79ae04437fb";
const WAIT: Duration = Duration::from_secs(15);

/// The plugin's HandshakeResponse in plugin-port_mux.jsonl, with our ClientVersion.
const HANDSHAKE_RESPONSE: &str = "{\"ClientVersion\":\"1.2.800.0\",\"ProcessedClientActions\":\
    [{\"ActionType\":\"SessionType\",\"ActionStatus\":1,\"ActionResult\":null,\"Error\":\"\"}],\
    \"Errors\":null}";

const SYN_3: [u8; 8] = [1, 0, 0, 0, 3, 0, 0, 0];
const SYN_5: [u8; 8] = [1, 0, 0, 0, 5, 0, 0, 0];
const FIN_3: [u8; 8] = [1, 1, 0, 0, 3, 0, 0, 0];
const FIN_5: [u8; 8] = [1, 1, 0, 0, 5, 0, 0, 0];

/// The agent end of the data channel.
struct Agent {
    ws: WebSocket,
    stream: ReliableStream,
    /// Input delivered in order and not yet taken.
    delivered: VecDeque<Message>,
    /// Every data-channel message the client sent, in order.
    from_client: Vec<Message>,
    gone: bool,
}

impl Agent {
    async fn accept(sockets: &mut mpsc::UnboundedReceiver<WebSocket>) -> Agent {
        let ws = tokio::time::timeout(WAIT, sockets.recv())
            .await
            .expect("ssm-session dials the StreamUrl")
            .unwrap();
        Agent {
            ws,
            stream: ReliableStream::new(Config::agent(), Instant::now(), now_ms(), 7),
            delivered: VecDeque::new(),
            from_client: Vec::new(),
            gone: false,
        }
    }

    async fn send(&mut self, payload_type: PayloadType, payload: &[u8]) {
        self.stream
            .send(Instant::now(), payload_type, payload.to_vec())
            .unwrap();
        self.flush().await;
    }

    async fn flush(&mut self) {
        while let Some(frame) = self.stream.poll_transmit() {
            let _ = self.ws.send(WsMessage::Binary(frame.into())).await;
        }
    }

    /// One websocket message or resend tick; false at `deadline` or when the client is gone.
    async fn step(&mut self, deadline: tokio::time::Instant) -> bool {
        if self.gone {
            return false;
        }
        let resend = self.stream.poll_timeout();
        let resend = async {
            match resend {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            next = self.ws.recv() => match next {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    self.from_client.push(Message::decode(&bytes, Validation::Structure).unwrap());
                    self.stream.handle_frame(Instant::now(), &bytes, &mut |_| true).unwrap();
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => self.gone = true,
            },
            _ = resend => self.stream.handle_timeout(Instant::now()),
            _ = tokio::time::sleep_until(deadline) => return false,
        }
        self.flush().await;
        while let Some(event) = self.stream.poll_event() {
            if let Event::Stream(message) = event {
                self.delivered.push_back(message);
            }
        }
        !self.gone
    }

    /// The next in-order input message.
    async fn input(&mut self) -> Message {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(message) = self.delivered.pop_front() {
                return message;
            }
            assert!(self.step(deadline).await, "ssm-session sends input");
        }
    }

    /// Runs the stream for `duration` (acks, resends).
    async fn pump(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while self.step(deadline).await {}
    }

    /// The HandshakeRequest for `properties`, the response checked byte for byte, then
    /// HandshakeComplete.
    async fn handshake(&mut self, agent_version: &str, properties: &str, customer_message: &str) {
        let request = format!(
            "{{\"AgentVersion\": \"{agent_version}\", \"RequestedClientActions\": [{{\"ActionType\": \
             \"SessionType\", \"ActionParameters\": {{\"SessionType\": \"Port\", \"Properties\": \
             {properties}}}}}]}}"
        );
        self.send(PayloadType::HandshakeRequest, request.as_bytes())
            .await;
        let response = self.input().await;
        assert_input(
            &response,
            0,
            PayloadType::HandshakeResponse,
            HANDSHAKE_RESPONSE.as_bytes(),
        );
        // §3.2: the HandshakeRequest is acked before the response is sent.
        assert_eq!(self.from_client[0].message_type, MessageType::Acknowledge);
        assert_eq!(
            self.from_client[1].message_type,
            MessageType::InputStreamData
        );
        let complete = format!(
            "{{\"HandshakeTimeToComplete\": 123456789, \"CustomerMessage\": \"{customer_message}\"}}"
        );
        self.send(PayloadType::HandshakeComplete, complete.as_bytes())
            .await;
        self.pump(Duration::from_millis(50)).await;
        assert_eq!(self.stream.unacked(), 0, "HandshakeComplete acked");
    }
}

fn assert_input(message: &Message, seq: i64, payload_type: PayloadType, payload: &[u8]) {
    assert_eq!(message.message_type, MessageType::InputStreamData);
    assert_eq!(message.sequence_number, seq, "{message:?}");
    assert_eq!(message.payload_type, payload_type, "{message:?}");
    assert_eq!(
        message.payload,
        payload,
        "{:?}",
        String::from_utf8_lossy(&message.payload)
    );
}

impl Client {
    fn start(addr: SocketAddr) -> Client {
        let target = "{\"Target\": \"i-0123456789abcdef0\"}";
        Client::spawn(&mut ssm_session_at(addr, SESSION, "tok-0", target), WAIT)
    }

    /// The local port from the `Port <N> opened` line.
    async fn local_port(&self) -> u16 {
        self.wait_stdout(" opened for sessionId").await;
        let out = self.stdout();
        let rest = &out[out.find("Port ").unwrap() + 5..];
        rest[..rest.find(' ').unwrap()].parse().unwrap()
    }

    fn interrupt(&self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    }
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

async fn read_exactly(tcp: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut buf))
        .await
        .expect("bytes arrive")
        .unwrap();
    buf
}

fn psh(sid: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![1, 2, data.len() as u8, 0, sid, 0, 0, 0];
    frame.extend_from_slice(data);
    frame
}

const MUX_PROPERTIES: &str =
    "{\"portNumber\": \"80\", \"type\": \"LocalPortForwarding\", \"localPortNumber\": \"0\"}";

#[tokio::test]
async fn mux_mode_like_the_plugin_trace() {
    let (addr, mut sockets) = fake_data_channel().await;
    let client = Client::start(addr);
    let mut agent = Agent::accept(&mut sockets).await;
    agent
        .handshake(
            "3.3.1142.0",
            MUX_PROPERTIES,
            "[customer message from the agent]",
        )
        .await;
    let port = client.local_port().await;
    client.wait_stdout("Waiting for connections...\n").await;
    assert_eq!(
        client.stdout(),
        format!(
            "\nStarting session with SessionId: {SESSION}\n[customer message from the agent]\n\
             Port {port} opened for sessionId {SESSION}.\nWaiting for connections...\n"
        )
    );

    let mut tcp1 = connect(port).await;
    assert_input(&agent.input().await, 1, PayloadType::Output, &SYN_3);
    tcp1.write_all(b"ping-from-tcp-client").await.unwrap();
    let expected = psh(3, b"ping-from-tcp-client");
    assert_eq!(&expected[..8], [1, 2, 0x14, 0, 3, 0, 0, 0]);
    assert_input(&agent.input().await, 2, PayloadType::Output, &expected);
    agent
        .send(PayloadType::Output, &psh(3, b"pong-from-agent-side"))
        .await;
    assert_eq!(read_exactly(&mut tcp1, 20).await, b"pong-from-agent-side");

    // A second connection is a second stream; data stays apart in both directions.
    let mut tcp2 = connect(port).await;
    assert_input(&agent.input().await, 3, PayloadType::Output, &SYN_5);
    tcp2.write_all(b"two").await.unwrap();
    assert_input(
        &agent.input().await,
        4,
        PayloadType::Output,
        &psh(5, b"two"),
    );
    tcp1.write_all(b"one").await.unwrap();
    assert_input(
        &agent.input().await,
        5,
        PayloadType::Output,
        &psh(3, b"one"),
    );
    let mut both = psh(5, b"for-two");
    both.extend(psh(3, b"for-one"));
    agent.send(PayloadType::Output, &both).await;
    assert_eq!(read_exactly(&mut tcp2, 7).await, b"for-two");
    assert_eq!(read_exactly(&mut tcp1, 7).await, b"for-one");
    assert_eq!(
        client.stdout().matches("Connection accepted").count(),
        1,
        "{}",
        client.stdout()
    );
    assert!(client.stdout().ends_with(&format!(
        "Waiting for connections...\n\nConnection accepted for session [{SESSION}]\n"
    )));

    // Local close → FIN, no Flag.
    drop(tcp1);
    assert_input(&agent.input().await, 6, PayloadType::Output, &FIN_3);
    // Agent FIN → local connection closed, then our FIN.
    agent.send(PayloadType::Output, &FIN_5).await;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, tcp2.read_to_end(&mut rest))
        .await
        .expect("tcp2 closed")
        .unwrap();
    assert_eq!(n, 0);
    assert_input(&agent.input().await, 7, PayloadType::Output, &FIN_5);

    agent.send(PayloadType::Flag, &[0, 0, 0, 3]).await;
    client
        .wait_stdout("\nConnection to destination port failed, check SSM Agent logs.\n")
        .await;
    agent.pump(Duration::from_millis(50)).await;
    assert_eq!(agent.stream.unacked(), 0);

    client.interrupt();
    assert_input(&agent.input().await, 8, PayloadType::Flag, &[0, 0, 0, 2]);
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0);
    assert!(stdout.ends_with(&format!(
        "Terminate signal received, exiting.\n\n\nExiting session with sessionId: {SESSION}.\n\n"
    )));
}

#[tokio::test]
async fn mux_keepalive_for_old_agents() {
    let (addr, mut sockets) = fake_data_channel().await;
    let _client = Client::start(addr);
    let mut agent = Agent::accept(&mut sockets).await;
    agent.handshake("3.1.1511.0", MUX_PROPERTIES, "").await;
    // The first NOP comes 10 s after the handshake, even with no local connection.
    let started = Instant::now();
    let nop = agent.input().await;
    assert_input(&nop, 1, PayloadType::Output, &[1, 3, 0, 0, 0, 0, 0, 0]);
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_secs(9) && waited < Duration::from_secs(12),
        "{waited:?}"
    );
}

/// Basic mode: the trace plugin-port_basic.jsonl up to SIGINT.
async fn basic_session(agent_version: &str) -> (Client, Agent, TcpStream) {
    let (addr, mut sockets) = fake_data_channel().await;
    let client = Client::start(addr);
    let mut agent = Agent::accept(&mut sockets).await;
    let properties = "{\"portNumber\": \"80\", \"type\": \"LocalPortForwarding\", \
                      \"localPortNumber\": \"0\"}";
    agent.handshake(agent_version, properties, "").await;
    let port = client.local_port().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        client.stdout(),
        format!(
            "\nStarting session with SessionId: {SESSION}\n\
             Port {port} opened for sessionId {SESSION}.\n"
        ),
        "basic mode: no Waiting line"
    );

    // §3.2: output before the local connection is neither acked nor delivered; resent later.
    agent.send(PayloadType::Output, b"early-bytes\n").await;
    agent.pump(Duration::from_millis(600)).await;
    assert_eq!(agent.stream.unacked(), 1, "early output not acked");
    assert!(agent.stream.stats().resent > 0);

    let mut tcp1 = connect(port).await;
    // The agent's resend scheduler delivers it once the connection is there.
    agent.pump(Duration::from_millis(500)).await;
    assert_eq!(agent.stream.unacked(), 0, "resent early output acked");
    assert_eq!(read_exactly(&mut tcp1, 12).await, b"early-bytes\n");
    client
        .wait_stdout(&format!("Connection accepted for session {SESSION}.\n"))
        .await;
    tcp1.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    assert_input(
        &agent.input().await,
        1,
        PayloadType::Output,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert_eq!(agent.stream.unacked(), 0, "resent early output acked");
    agent
        .send(
            PayloadType::Output,
            b"HTTP/1.0 200 OK\r\n\r\nhello from the agent\n",
        )
        .await;
    assert_eq!(
        read_exactly(&mut tcp1, 40).await,
        b"HTTP/1.0 200 OK\r\n\r\nhello from the agent\n"
    );
    // Local close → Flag DisconnectToPort; the next connection works, silently.
    drop(tcp1);
    assert_input(&agent.input().await, 2, PayloadType::Flag, &[0, 0, 0, 1]);
    let mut tcp2 = connect(port).await;
    tcp2.write_all(b"second\n").await.unwrap();
    assert_input(&agent.input().await, 3, PayloadType::Output, b"second\n");
    agent.send(PayloadType::Output, b"reply2\n").await;
    assert_eq!(read_exactly(&mut tcp2, 7).await, b"reply2\n");
    assert_eq!(client.stdout().matches("Connection accepted").count(), 1);
    (client, agent, tcp2)
}

#[tokio::test]
async fn basic_mode_for_agent_3_0_196_0_and_sigint() {
    let (client, mut agent, _tcp2) = basic_session("3.0.196.0").await;
    client.interrupt();
    assert_input(&agent.input().await, 4, PayloadType::Flag, &[0, 0, 0, 2]);
    assert_input(&agent.input().await, 5, PayloadType::Flag, &[0, 0, 0, 1]);
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0);
    assert!(stdout.ends_with(&format!(
        "Connection accepted for session {SESSION}.\nTerminate signal received, exiting.\n\n\n\
         Exiting session with sessionId: {SESSION}.\n\n"
    )));
}

#[tokio::test]
async fn basic_mode_for_a_3_part_agent_version() {
    let (client, mut agent, _tcp2) = basic_session("3.3.1142").await;
    // plugin-port_3part.jsonl ends with channel_closed.
    let mut closed = Message::new(MessageType::ChannelClosed, now_ms(), uuid_like());
    closed.payload = serde_json::to_vec(&serde_json::json!({
        "MessageId": uuid_like().to_string(), "CreatedDate": now_ms().to_string(),
        "DestinationId": "i-0123456789abcdef0", "SessionId": SESSION,
        "MessageType": "channel_closed", "SchemaVersion": 1, "Output": ""
    }))
    .unwrap();
    agent
        .ws
        .send(WsMessage::Binary(closed.encode().into()))
        .await
        .unwrap();
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0);
    assert!(stdout.ends_with(&format!(
        "Connection accepted for session {SESSION}.\n\n\nExiting session with sessionId: {SESSION}.\n\n"
    )));
}

fn uuid_like() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xfa4e_0000_0000_4000_8000_0000_0000_0001)
}

#[tokio::test]
async fn stdin_stdout_mode_for_ssh() {
    let (addr, mut sockets) = fake_data_channel().await;
    let mut client = Client::start(addr);
    let mut agent = Agent::accept(&mut sockets).await;
    agent
        .handshake("3.3.1142.0", "{\"portNumber\": \"22\"}", "")
        .await;
    client.type_in(b"SSH-2.0-OpenSSH_9.2\r\n");
    assert_input(
        &agent.input().await,
        1,
        PayloadType::Output,
        b"SSH-2.0-OpenSSH_9.2\r\n",
    );
    agent
        .send(PayloadType::Output, b"SSH-2.0-server\r\n\x00\xff")
        .await;
    client.wait_stdout("SSH-2.0-server\r\n").await;
    agent.pump(Duration::from_millis(50)).await;
    assert_eq!(agent.stream.unacked(), 0);
    client.close_stdin();
    let (status, stdout) = client.exit_bytes().await;
    assert_eq!(status, 0);
    assert_eq!(
        stdout,
        [
            format!("\nStarting session with SessionId: {SESSION}\n").as_bytes(),
            b"SSH-2.0-server\r\n\x00\xff"
        ]
        .concat()
    );
}

#[tokio::test]
async fn unknown_session_type_and_kms_are_refused() {
    let (addr, mut sockets) = fake_data_channel().await;
    let client = Client::start(addr);
    let mut agent = Agent::accept(&mut sockets).await;
    let request = "{\"AgentVersion\":\"3.3.1142.0\",\"RequestedClientActions\":[\
        {\"ActionType\":\"SessionType\",\"ActionParameters\":{\"SessionType\":\"Bogus\",\"Properties\":null}},\
        {\"ActionType\":\"KMSEncryption\",\"ActionParameters\":{\"KMSKeyId\":\"k\",\"Challenge\":\"c\"}}]}";
    agent
        .send(PayloadType::HandshakeRequest, request.as_bytes())
        .await;
    let response = agent.input().await;
    assert_eq!(response.payload_type, PayloadType::HandshakeResponse);
    let json: serde_json::Value = serde_json::from_slice(&response.payload).unwrap();
    let actions = &json["ProcessedClientActions"];
    assert_eq!(actions[0]["ActionStatus"], 2);
    assert_eq!(
        actions[0]["Error"],
        "Failed to process action SessionType: Unknown session type Bogus"
    );
    assert_eq!(actions[1]["ActionType"], "KMSEncryption");
    assert_eq!(actions[1]["ActionStatus"], 2);
    assert!(actions[1]["Error"].as_str().unwrap().contains("offline"));
    assert_eq!(json["Errors"], serde_json::Value::Null);
    agent
        .send(
            PayloadType::HandshakeComplete,
            b"{\"HandshakeTimeToComplete\":1,\"CustomerMessage\":\"\"}",
        )
        .await;
    let (status, stdout) = client.exit().await;
    assert_eq!(status, 0);
    assert!(stdout.ends_with("Cannot perform start session: unable to determine SessionType\n"));
}

#[tokio::test]
async fn unix_socket_listener() {
    let dir = std::env::temp_dir().join(format!("ssm-session-port-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("local.sock");
    let _ = std::fs::remove_file(&path);
    let (addr, mut sockets) = fake_data_channel().await;
    let client = Client::start(addr);
    let mut agent = Agent::accept(&mut sockets).await;
    let properties = serde_json::json!({
        "portNumber": "80", "type": "LocalPortForwarding", "localPortNumber": "",
        "localConnectionType": "unix", "localUnixSocket": path.to_str().unwrap(),
    });
    agent
        .handshake("3.3.1142.0", &properties.to_string(), "")
        .await;
    client
        .wait_stdout(&format!(
            "Unix socket {} opened for sessionId {SESSION}.\nWaiting for connections...\n",
            path.display()
        ))
        .await;
    let mut local = tokio::net::UnixStream::connect(&path).await.unwrap();
    assert_input(&agent.input().await, 1, PayloadType::Output, &SYN_3);
    local.write_all(b"over-unix").await.unwrap();
    assert_input(
        &agent.input().await,
        2,
        PayloadType::Output,
        &psh(3, b"over-unix"),
    );
    agent.send(PayloadType::Output, &psh(3, b"back")).await;
    let mut buf = [0u8; 4];
    tokio::time::timeout(WAIT, local.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"back");
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}
