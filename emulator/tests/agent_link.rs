//! Agent-link faults over real TCP: [`ssm_emulator::serve`] on `127.0.0.1:0` with one embedded
//! ssm-agent-sim agent, driven through the admin API and the SSM API with raw HTTP/1.1.
//!
//! - an `agentLink` cut drops the agent's control channel and refuses its reconnects without
//!   an answer; the service then answers as AWS does (PingStatus ConnectionLost after the
//!   grace on the emulator's [`ManualClock`], StartSession TargetNotConnected, a command
//!   Pending/Delayed and then DeliveryTimedOut); clearing it lets the agent come back by itself
//!   and run a new command;
//! - a `sessionService` rule cuts ssmmessages only: the SSM API still answers the agent;
//! - the built-in CONNECT proxy going down drops the agents behind it; up, they reconnect.
//!
//! Waits for the agent's real reconnects are bounded polls (a hang guard, never a timing
//! assertion); service time moves only with the ManualClock.
//!
//! Run with `cargo test -p ssm-emulator --test agent_link`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use ssm_emulator::faults::proxy::AgentProxy;
use ssm_emulator::{Config, Emulator, FleetSetup, ManualClock, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SEED: u64 = 5;

/// The ping grace of these tests' emulator.
const GRACE: Duration = Duration::from_secs(60);

/// How often and how many times a poll looks before the test fails: a 30 s hang guard.
const POLL: Duration = Duration::from_millis(50);
const POLLS: usize = 600;

/// A running emulator with one agent.
struct Running {
    addr: SocketAddr,
    emulator: Emulator,
    clock: Arc<ManualClock>,
    instance_id: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ssm_emulator::fleet::ServeError>>,
    _work_dir: tempfile::TempDir,
}

/// Starts the emulator and its one agent (through an agent proxy if `proxied`), and waits
/// until the agent's control channel is open.
async fn start(proxied: bool) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let clock = Arc::new(ManualClock::at_epoch_secs(1_800_000_000));
    let mut config = Config::local(SEED);
    config.ping_grace = GRACE;
    let emulator = Emulator::new(config, clock.clone());
    if proxied {
        let proxy = AgentProxy::start("127.0.0.1:0".parse().unwrap(), vec![addr])
            .await
            .unwrap();
        emulator.faults().set_agent_proxy(proxy);
    }
    let work_dir = tempfile::tempdir().unwrap();
    let setup = FleetSetup::generated(1, SEED, work_dir.path().to_owned());
    let instance_id = setup.instances[0].instance_id.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, emulator.clone(), setup, async {
        let _ = stopped.await;
    }));
    let running = Running {
        addr,
        emulator,
        clock,
        instance_id,
        stop,
        task,
        _work_dir: work_dir,
    };
    running.until_channel(true).await;
    running
}

impl Running {
    async fn shut_down(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }

    fn channel_open(&self) -> bool {
        let scope = self.emulator.scope(self.emulator.default_region());
        self.emulator
            .control_channel_open(&scope, &self.instance_id)
    }

    /// Polls until the agent's control channel is open (`true`) or closed (`false`).
    async fn until_channel(&self, open: bool) {
        for _ in 0..POLLS {
            if self.channel_open() == open {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "control channel of {} never became open={open}",
            self.instance_id
        );
    }

    /// One request on a fresh connection: the status and body, or `None` when the connection
    /// closed without an answer.
    async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> Option<(u16, Value)> {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        // A reset connection is an unanswered request too.
        let _ = stream.read_to_end(&mut raw).await;
        if raw.is_empty() {
            return None;
        }
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    /// `AmazonSSM.<op>`.
    async fn api(&self, op: &str, body: &Value) -> Option<(u16, Value)> {
        let headers =
            format!("Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: AmazonSSM.{op}\r\n");
        self.http("POST", "/", &headers, &body.to_string()).await
    }

    async fn ok(&self, op: &str, body: Value) -> Value {
        let (status, body) = self.api(op, &body).await.expect("an answer");
        assert_eq!(status, 200, "{op}: {body}");
        body
    }

    async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let headers = "Content-Type: application/json\r\n";
        let (status, body) = self
            .http(method, path, headers, &body.to_string())
            .await
            .expect("an answer");
        assert_eq!(status, 200, "{method} {path}: {body}");
        body
    }

    async fn ping_status(&self) -> String {
        let list = self.ok("DescribeInstanceInformation", json!({})).await;
        list["InstanceInformationList"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["InstanceId"] == self.instance_id.as_str())
            .map(|i| i["PingStatus"].as_str().unwrap().to_owned())
            .unwrap()
    }

    async fn send_command(&self) -> String {
        let sent = self
            .ok(
                "SendCommand",
                json!({
                    "DocumentName": "AWS-RunShellScript",
                    "InstanceIds": [self.instance_id],
                    "Parameters": {"commands": ["echo link-ok"]},
                    "TimeoutSeconds": 30,
                }),
            )
            .await;
        sent["Command"]["CommandId"].as_str().unwrap().to_owned()
    }

    async fn invocation(&self, command_id: &str) -> Value {
        self.ok(
            "GetCommandInvocation",
            json!({"CommandId": command_id, "InstanceId": self.instance_id}),
        )
        .await
    }

    /// The rule's `injected` counter.
    async fn injected(&self, id: &str) -> u64 {
        let report = self.admin("GET", "/_emulator/faults", json!({})).await;
        report["faults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .map_or(0, |f| f["injected"].as_u64().unwrap())
    }

    /// An agent-shaped UpdateInstanceInformation for the instance.
    async fn agent_ping(&self) -> Option<(u16, Value)> {
        self.api(
            "UpdateInstanceInformation",
            &json!({
                "AgentName": "amazon-ssm-agent",
                "AgentVersion": "3.3.1142.0",
                "InstanceId": self.instance_id,
                "PlatformType": "Linux",
            }),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_link_cut_looks_like_aws_and_the_agent_comes_back() {
    let emu = start(false).await;
    assert_eq!(emu.ping_status().await, "Online");

    let rule = json!({"agentLink": {"instanceId": emu.instance_id}});
    let id = emu.admin("POST", "/_emulator/faults", rule).await;
    let id = id["id"].as_str().unwrap().to_owned();
    emu.until_channel(false).await;

    // The agent retries; every attempt is refused (counted) and the channel stays closed.
    let before = emu.injected(&id).await;
    for _ in 0..POLLS {
        if emu.injected(&id).await > before {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(
        emu.injected(&id).await > before,
        "no reconnect attempt was refused"
    );
    assert!(!emu.channel_open());
    // The agent's own calls get no answer at all: the connection just dies.
    assert_eq!(emu.agent_ping().await, None);

    // Service side: TargetNotConnected, then the command waits for delivery.
    let (status, body) = emu
        .api("StartSession", &json!({"Target": emu.instance_id}))
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "TargetNotConnected", "{body}");
    let command_id = emu.send_command().await;
    let waiting = emu.invocation(&command_id).await;
    assert!(
        matches!(waiting["Status"].as_str(), Some("Pending" | "Delayed")),
        "{waiting}"
    );

    // Past the grace and the delivery timeout on the emulator's clock.
    emu.clock.advance(GRACE + Duration::from_secs(1));
    assert_eq!(emu.ping_status().await, "ConnectionLost");
    let timed_out = emu.invocation(&command_id).await;
    assert_eq!(timed_out["Status"], "TimedOut", "{timed_out}");
    assert_eq!(
        timed_out["StatusDetails"], "DeliveryTimedOut",
        "{timed_out}"
    );

    // Restored: the agent reconnects by itself and runs a new command.
    emu.admin("DELETE", &format!("/_emulator/faults/{id}"), json!({}))
        .await;
    emu.until_channel(true).await;
    assert_eq!(emu.ping_status().await, "Online");
    let command_id = emu.send_command().await;
    let mut done = Value::Null;
    for _ in 0..POLLS {
        done = emu.invocation(&command_id).await;
        if done["Status"] == "Success" {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(done["Status"], "Success", "{done}");
    assert_eq!(done["StandardOutputContent"], "link-ok\n");
    emu.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_session_endpoint_cuts_ssmmessages_only_for_its_duration() {
    let emu = start(false).await;
    let rule = json!({"sessionService": {"durationMs": 3000}});
    emu.admin("POST", "/_emulator/faults", rule).await;
    emu.until_channel(false).await;
    // The SSM API still answers the agent.
    let (status, _) = emu.agent_ping().await.expect("ssm answers");
    assert_eq!(status, 200);
    // When the duration is over the rule is gone and the agent reconnects by itself.
    emu.until_channel(true).await;
    let report = emu.admin("GET", "/_emulator/faults", json!({})).await;
    assert_eq!(report["faults"], json!([]));
    assert!(report["totals"]["sessionService"].as_u64().unwrap() >= 1);
    emu.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_behind_the_proxy_drop_when_it_goes_down_and_return_when_it_is_up() {
    let emu = start(true).await;
    let proxy = emu.emulator.faults().agent_proxy().unwrap();
    let down = emu
        .admin("POST", "/_emulator/proxy", json!({"state": "down"}))
        .await;
    assert_eq!(down["state"], "down");
    emu.until_channel(false).await;
    // Down is a closed port: connections are refused.
    let refused = TcpStream::connect(proxy.addr()).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    let up = emu
        .admin("POST", "/_emulator/proxy", json!({"state": "up"}))
        .await;
    assert_eq!(up["state"], "up");
    assert_eq!(up["address"], proxy.addr().to_string());
    emu.until_channel(true).await;
    emu.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_tunnels_only_to_the_emulator() {
    let emu = start(true).await;
    let proxy = emu.emulator.faults().agent_proxy().unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    stream
        .write_all(b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    emu.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_agents_crash_and_restart_through_the_admin_api() {
    let emu = start(false).await;
    let path = format!("/_emulator/agents/{}/crash", emu.instance_id);
    let crashed = emu
        .admin("POST", &path, json!({"restartAfterSeconds": null}))
        .await;
    assert_eq!(crashed["state"], "down");
    emu.until_channel(false).await;
    let path = format!("/_emulator/agents/{}/restart", emu.instance_id);
    emu.admin("POST", &path, json!({})).await;
    emu.until_channel(true).await;
    let agents = emu.admin("GET", "/_emulator/agents", json!({})).await;
    assert_eq!(agents["agents"][0]["crashes"], 1);
    emu.shut_down().await;
}
