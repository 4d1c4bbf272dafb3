//! Port forwarding as the Session Manager tutorials do it (spec §7): `aws ssm start-session
//! --document-name AWS-StartPortForwardingSession…` through the AWS CLI v1 with `ssm-session` as
//! `session-manager-plugin`, against the real emulator and a separate `ssm-agent-sim`, to an
//! HTTP server the test runs on the "instance" (this machine's loopback).
//!
//! The tests download through the tunnel with plain HTTP/1.0 GETs and compare SHA-256 digests
//! of what arrived with what the server sent, check the plugin's lines, and end the session as a
//! user does: Ctrl-C (SIGINT to the CLI's process group).

use std::os::unix::process::CommandExt;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use ssm_e2e::process::ChildProcess;
use ssm_e2e::session::{self, HttpServer, Plugin};
use ssm_e2e::{Aws, Fleet};

/// A bound on every wait for the plugin's output or exit. Not an assertion: each step takes
/// well under a second.
const LIMIT: Duration = Duration::from_secs(60);

/// The size of each body downloaded through a tunnel: a few MiB, thousands of data-channel
/// frames.
const BODY: usize = 3 << 20;

/// An agent version newer than 3.0.196.0 (the default of agent-sim): both sides choose smux.
const MUX_AGENT: &str = "3.3.1142.0";

/// An agent version the plugin does not compare above 3.0.196.0 (§7.2): basic mode.
const BASIC_AGENT: &str = "3.0.196.0";

/// `aws ssm start-session` of a port-forwarding document, running in a process group of its own
/// (as a terminal's foreground job), its output captured; the group is killed on drop.
struct PortSession {
    cli: ChildProcess,
    /// The `SessionId` of the plugin's start line.
    id: String,
    /// The local port of the plugin's `Port <p> opened for sessionId <id>.` line.
    port: u16,
}

impl PortSession {
    /// Starts the session and waits (bounded) for the plugin to listen: the start line and the
    /// `Port … opened` line, then in mux mode `Waiting for connections...`.
    fn start(aws: &Aws, plugin: &Plugin, target: &str, document: &str, parameters: &Value) -> Self {
        let mut command = plugin.start_session(
            aws,
            &[
                "--target",
                target,
                "--document-name",
                document,
                "--parameters",
                &parameters.to_string(),
            ],
        );
        command.process_group(0);
        let mut cli = ChildProcess::spawn(command);
        let id = cli.wait_for_stdout(LIMIT, |line| {
            line.strip_prefix("Starting session with SessionId: ")
                .map(str::to_owned)
        });
        let opened = format!(" opened for sessionId {id}.");
        let port = cli.wait_for_stdout(LIMIT, |line| {
            line.strip_prefix("Port ")
                .and_then(|rest| rest.strip_suffix(opened.as_str()))
                .and_then(|port| port.parse().ok())
        });
        PortSession { cli, id, port }
    }

    /// The mux-mode line that follows `Port … opened` (§7.4).
    fn wait_for_connections_line(&mut self) {
        self.cli.wait_for_stdout(LIMIT, |line| {
            (line == "Waiting for connections...").then_some(())
        });
    }

    /// Polls (bounded) until the plugin's output so far contains `text`.
    fn wait_for_text(&self, text: &str) {
        session::poll(
            &format!("{text:?} in the plugin's output"),
            || self.cli.log().contains(text).then_some(()),
            || format!("output:\n{}", self.cli.log()),
        );
    }

    /// Ctrl-C: SIGINT to the CLI's process group. Waits (bounded) for the exit, asserts status
    /// 0 and the plugin's two closing lines, in order, at the end of the output.
    fn interrupt(mut self) -> String {
        session::interrupt_group(self.cli.id());
        let status = self.cli.wait_exit(LIMIT);
        let log = self.cli.log();
        assert!(status.success(), "exit status {status}; output:\n{log}");
        let ending = format!(
            "Terminate signal received, exiting.\n\n\nExiting session with sessionId: {}.\n\n",
            self.id
        );
        assert!(
            log.ends_with(&ending),
            "output does not end with {ending:?}:\n{log}"
        );
        log
    }
}

impl Drop for PortSession {
    fn drop(&mut self) {
        // The plugin is the CLI's child: kill the whole group, not only the CLI.
        if self.cli.exited().is_none() {
            let mut kill = std::process::Command::new("kill");
            kill.args(["-KILL", "--", &format!("-{}", self.cli.id())]);
            let _ = kill.status();
        }
    }
}

/// `count` bodies of [`BODY`] bytes, each from its own seed.
fn bodies(count: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|seed| session::random_bytes(seed + 100, BODY))
        .collect()
}

/// Downloads `/index` through the tunnel on `port` and asserts a 200 whose body has the SHA-256
/// of `expected`.
fn download_matches(port: u16, index: usize, expected: &[u8]) {
    let reply = session::http_get(port, &format!("/{index}"))
        .unwrap_or_else(|e| panic!("GET /{index} through the tunnel on port {port}: {e}"));
    assert_eq!(reply.status, 200, "GET /{index}");
    assert_eq!(
        (reply.body.len(), session::sha256(&reply.body)),
        (expected.len(), session::sha256(expected)),
        "GET /{index}: (length, SHA-256) of the body against what the server sent"
    );
}

/// The session in the History, with its end recorded: status Terminated and an EndDate.
fn assert_ended(aws: &Aws, session_id: &str, document: &str) {
    let session = session::history(aws, session_id);
    assert_eq!(session["Status"], "Terminated", "{session:#}");
    assert_eq!(session["DocumentName"], document, "{session:#}");
    assert!(session["EndDate"].is_number(), "{session:#}");
}

/// Mux mode (agent 3.3.1142.0): four downloads at once through one tunnel each get their own
/// body intact; the plugin prints its lines; Ctrl-C ends the session, which the History then
/// lists as ended.
#[test]
fn mux_mode_serves_concurrent_downloads_and_ends_on_ctrl_c() {
    let fleet = Fleet::start(
        &json!([{"id": "i-0d0000000000000a1", "agent_version": MUX_AGENT}]),
        &[],
        &[],
    );
    let aws = fleet.emu.aws();
    let plugin = Plugin::install();
    let bodies = bodies(4);
    let server = HttpServer::start(bodies.clone());
    let local = session::free_port();
    let document = "AWS-StartPortForwardingSession";
    let mut tunnel = PortSession::start(
        &aws,
        &plugin,
        &fleet.ids[0],
        document,
        &json!({"portNumber": [server.port().to_string()],
                "localPortNumber": [local.to_string()]}),
    );
    assert_eq!(tunnel.port, local, "the plugin listens on localPortNumber");
    tunnel.wait_for_connections_line();

    thread::scope(|scope| {
        for (index, body) in bodies.iter().enumerate() {
            scope.spawn(move || download_matches(local, index, body));
        }
    });
    tunnel.wait_for_text(&format!(
        "\nConnection accepted for session [{}]\n",
        tunnel.id
    ));

    let id = tunnel.id.clone();
    let log = tunnel.interrupt();
    assert_eq!(
        log.matches("Connection accepted").count(),
        1,
        "printed once, at the first connection:\n{log}"
    );
    assert_ended(&aws, &id, document);
}

/// Basic mode (an agent reporting 3.0.196.0, so that neither side speaks smux, §7.2): one local
/// connection at a time, each served the right body; Ctrl-C ends it.
#[test]
fn basic_mode_serves_connections_one_after_another() {
    let fleet = Fleet::start(
        &json!([{"id": "i-0d0000000000000b1", "agent_version": BASIC_AGENT}]),
        &[],
        &[],
    );
    let aws = fleet.emu.aws();
    let plugin = Plugin::install();
    let bodies = bodies(3);
    let server = HttpServer::start(bodies.clone());
    let local = session::free_port();
    let document = "AWS-StartPortForwardingSession";
    let tunnel = PortSession::start(
        &aws,
        &plugin,
        &fleet.ids[0],
        document,
        &json!({"portNumber": [server.port().to_string()],
                "localPortNumber": [local.to_string()]}),
    );
    assert_eq!(tunnel.port, local, "the plugin listens on localPortNumber");

    for (index, body) in bodies.iter().enumerate() {
        download_matches(local, index, body);
    }
    tunnel.wait_for_text(&format!("Connection accepted for session {}.\n", tunnel.id));

    let id = tunnel.id.clone();
    let log = tunnel.interrupt();
    assert!(
        !log.contains("Waiting for connections..."),
        "basic mode has no such line:\n{log}"
    );
    assert_eq!(
        log.matches("Connection accepted").count(),
        1,
        "printed for the first connection only:\n{log}"
    );
    assert_ended(&aws, &id, document);
}

/// AWS-StartPortForwardingSessionToRemoteHost with `host` 127.0.0.1: the agent dials that host;
/// a download through the tunnel (the OS picks the local port: `localPortNumber` 0) gets its
/// body intact.
#[test]
fn remote_host_document_reaches_the_host() {
    let fleet = Fleet::start(
        &json!([{"id": "i-0d0000000000000c1", "agent_version": MUX_AGENT}]),
        &[],
        &[],
    );
    let aws = fleet.emu.aws();
    let plugin = Plugin::install();
    let bodies = bodies(2);
    let server = HttpServer::start(bodies.clone());
    let document = "AWS-StartPortForwardingSessionToRemoteHost";
    let mut tunnel = PortSession::start(
        &aws,
        &plugin,
        &fleet.ids[0],
        document,
        &json!({"host": ["127.0.0.1"],
                "portNumber": [server.port().to_string()],
                "localPortNumber": ["0"]}),
    );
    assert_ne!(tunnel.port, 0, "the plugin prints the port the OS chose");
    tunnel.wait_for_connections_line();

    for (index, body) in bodies.iter().enumerate() {
        download_matches(tunnel.port, index, body);
    }

    let id = tunnel.id.clone();
    tunnel.interrupt();
    assert_ended(&aws, &id, document);
}
