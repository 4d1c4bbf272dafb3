//! Session Manager through aws-ssm-bridge 0.6.0, an independent Rust client that no one here
//! wrote (shared/crates.md §1.3), against the real `ssm-emulator` binary and its embedded fleet.
//!
//! The bridge makes its own StartSession call (aws-sdk-ssm inside it, pointed at the emulator
//! through the `SdkConfig` we give it), signs its data-channel upgrade with SigV4, and runs its
//! own reliable stream and smux client. Its default `EndpointPolicy::AwsOnly` accepts only
//! `wss://ssmmessages.<region>.amazonaws.com`, so the tests relax it to `AllowAny`, which takes
//! the emulator's `ws://127.0.0.1:<port>` StreamUrl.
//!
//! Where the bridge departs from the protocol reference (`shared/spec/ssm-protocol.md`) in ways
//! these tests meet, it is noted at the place; none of it needs a workaround here:
//! - it acks every in-order `output_stream_data` *before* handling it, the plugin only
//!   HandshakeRequest/HandshakeComplete (§3.2): harmless to the agent;
//! - its first smux stream id is 1, the plugin's (xtaci/smux's) is 3 (§7.4): agent-sim, like a
//!   real smux server, takes any odd id;
//! - it treats any frame it cannot decode (unknown MessageType, bad digest, HeaderLength ≠ 116)
//!   as fatal and closes the session, where the plugin logs and drops it (§1.4); the emulator
//!   forwards only what agent-sim writes and consumes `agent_session_state`, so it never sees one.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_ssm_bridge::{
    CloseReason, EndpointPolicy, PortForwardConfig, PortForwarder, Session, SessionBuilder,
    SessionManager, ShutdownSignal,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use ssm_e2e::Emulator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A bound on every wait (for output, readiness, the end of a session, a transfer). Not a
/// timed assertion: each step takes well under a second.
const LIMIT: Duration = Duration::from_secs(60);

/// Bytes sent through the tunnel and answered: 4 MiB, about 4,100 data-channel frames each way.
const TRANSFER: usize = 4 << 20;

/// The emulator with an embedded fleet of one agent (`--fleet 1`, overriding the harness's
/// `SSM_EMULATOR_FLEET=0`), and that agent's instance id once it is Online.
fn emulator_with_one_agent() -> (Emulator, String) {
    let emu = Emulator::start_with(&json!({"instances": []}), &["--fleet", "1"]);
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let online: Vec<String> = emu
            .ping_statuses()
            .into_iter()
            .filter(|(_, status)| status == "Online")
            .map(|(id, _)| id)
            .collect();
        if let [id] = online.as_slice() {
            return (emu, id.clone());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the embedded agent is not Online after {LIMIT:?}; log:\n{}",
            emu.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// aws-ssm-bridge's session manager for `emu`: its aws-sdk-ssm client on plain HTTP to the
/// emulator, static dummy credentials (which also sign the data-channel upgrade), one attempt
/// per call.
fn manager(emu: &Emulator) -> SessionManager {
    let config = aws_types::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "ssm-e2e",
        )))
        .endpoint_url(emu.endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .build();
    SessionManager::from_conf(&config)
}

/// A session for `target` with the policy that admits the emulator's `ws://` StreamUrl.
fn builder(target: &str) -> SessionBuilder {
    SessionBuilder::new(target)
        .endpoint_policy(EndpointPolicy::AllowAny)
        .ready_timeout(LIMIT)
}

/// StartSession and the data channel through the bridge, again while the answer is
/// TargetNotConnected (bounded): Online comes from the agent's first report, a moment before
/// its control channel is open, and until then the service (like AWS) refuses sessions.
async fn start(emu: &Emulator, session: impl Fn() -> SessionBuilder) -> Session {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match session().start_with(&manager(emu)).await {
            Ok(started) => return started,
            Err(e)
                if format!("{e:?}").contains("TargetNotConnected")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("StartSession and data channel: {e}\n{}", emu.log()),
        }
    }
}

/// The status DescribeSessions gives session `id` in the History, once it is listed there
/// (bounded poll: the emulator records the end as the agent reports it).
async fn history_status(emu: &Emulator, id: &str) -> String {
    let ssm = emu.sdk();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let listed = ssm
            .describe_sessions()
            .state(aws_sdk_ssm::types::SessionState::History)
            .send()
            .await
            .expect("DescribeSessions");
        if let Some(session) = listed
            .sessions()
            .iter()
            .find(|s| s.session_id() == Some(id))
        {
            return session
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session {id} not in the History after {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A shell through the bridge: the agent-sim shell evaluates `echo bridge-$((6*7))` (the
/// output holds `bridge-42`, which the typed text does not), and `exit` ends the session from
/// the instance's side: the emulator's `channel_closed` closes the bridge's session as
/// `AgentClosed`, and the History lists it Terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_through_aws_ssm_bridge_evaluates_input_and_ends_on_exit() {
    let (emu, target) = emulator_with_one_agent();
    let session = start(&emu, || builder(&target)).await;
    // Subscribed before anything can arrive that we wait for: output is not replayed.
    let mut output = session.output();
    // A shell has no handshake: ready is the first output (the prompt).
    session
        .wait_ready()
        .await
        .expect("the shell's first output");

    session
        .send(&b"echo bridge-$((6*7))\n"[..])
        .await
        .expect("send the command");
    let mut seen = Vec::new();
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(chunk) = output.recv().await {
            seen.extend_from_slice(&chunk);
            if String::from_utf8_lossy(&seen).contains("bridge-42") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "no bridge-42 in the shell's output: {:?}\nclose reason: {:?}",
        String::from_utf8_lossy(&seen),
        session.close_reason()
    );

    session.send(&b"exit\n"[..]).await.expect("send exit");
    tokio::time::timeout(LIMIT, session.closed())
        .await
        .unwrap_or_else(|_| panic!("the session did not end after exit\n{}", emu.log()));
    assert!(
        matches!(
            session.close_reason(),
            Some(CloseReason::AgentClosed { .. })
        ),
        "{:?}",
        session.close_reason()
    );
    assert_eq!(history_status(&emu, session.id()).await, "Terminated");
}

/// A TCP server on loopback for one connection: it answers every byte with its complement
/// (`!b`) as it arrives, and once it has read `expect` bytes reports their SHA-256.
///
/// Not a plain echo: if the agent ran basic mode instead of smux, a plain echo would send the
/// bridge's own smux frames back and the test would pass anyway; complemented bytes are no
/// smux, so only a real smux server in between gives the bridge back valid frames.
async fn complementing_server(expect: usize) -> (u16, oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local address").port();
    let (report, reported) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut digest = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = 0;
        while received < expect {
            let n = match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            digest.update(&buf[..n]);
            received += n;
            let answer: Vec<u8> = buf[..n].iter().map(|b| !b).collect();
            if socket.write_all(&answer).await.is_err() {
                return;
            }
        }
        let _ = report.send(hex(&digest.finalize()));
        // Held open until the tunnel closes it.
        let _ = socket.read(&mut buf).await;
    });
    (port, reported)
}

/// `n` bytes that are not all alike (so a misplaced chunk changes the digest).
fn pattern(n: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// AWS-StartPortForwardingSession through the bridge's own port forwarder (smux v1 mux mode:
/// agent-sim runs the smux server for ClientVersion ≥ 1.1.70, the bridge sends 1.2.764.0) to a
/// TCP server the test runs: the [`TRANSFER`] bytes written to the forwarded local port reach
/// the server with the SHA-256 they were sent with, and the server's answer (their complement)
/// comes back with the SHA-256 it was sent with, so both directions carried every byte in
/// order. `terminate` closes the data channel and calls TerminateSession; the History lists it
/// Terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forwarding_through_aws_ssm_bridge_round_trips_bytes_intact() {
    let (emu, target) = emulator_with_one_agent();
    let (server_port, server_digest) = complementing_server(TRANSFER).await;
    let session = Arc::new(start(&emu, || builder(&target).port_forward(server_port)).await);
    let forwarder = PortForwarder::bind(PortForwardConfig::default())
        .await
        .expect("bind the local port");
    let local = forwarder.local_addr();
    let shutdown = ShutdownSignal::new();
    let forwarding = tokio::spawn(forwarder.forward(Arc::clone(&session), shutdown.clone()));

    let sent = pattern(TRANSFER);
    let socket = TcpStream::connect(local)
        .await
        .expect("connect to the tunnel");
    let (mut from_tunnel, mut to_tunnel) = socket.into_split();
    let writer = {
        let sent = sent.clone();
        // Written while the answer is read, or both sides' buffers fill and stall.
        tokio::spawn(async move { to_tunnel.write_all(&sent).await.map(|()| to_tunnel) })
    };
    let mut received = vec![0u8; TRANSFER];
    tokio::time::timeout(LIMIT, from_tunnel.read_exact(&mut received))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the answer did not come back within {LIMIT:?}; session: {:?}",
                session.close_reason()
            )
        })
        .expect("read the answer");
    let _to_tunnel = writer
        .await
        .expect("writer task")
        .expect("write to the tunnel");
    let digest = tokio::time::timeout(LIMIT, server_digest)
        .await
        .expect("the server read every byte")
        .expect("the server reports");
    assert_eq!(digest, sha256(&sent), "the bytes the server read differ");
    let answer: Vec<u8> = sent.iter().map(|b| !b).collect();
    assert_eq!(
        sha256(&received),
        sha256(&answer),
        "the bytes that came back differ"
    );

    shutdown.shutdown();
    forwarding
        .await
        .expect("forwarder task")
        .expect("forwarder ends cleanly");
    session.terminate().await.expect("terminate");
    assert_eq!(history_status(&emu, session.id()).await, "Terminated");
}
