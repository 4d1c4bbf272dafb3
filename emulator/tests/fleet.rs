//! `ssm-emulator` as a newcomer starts it: [`ssm_emulator::serve`] on `127.0.0.1:0` with an
//! embedded fleet of three ssm-agent-sim agents, spoken to over real TCP with raw HTTP/1.1, as
//! the AWS CLI would. The agents run real `/bin/sh` processes.
//!
//! Waits are bounded polls of the API (a hang guard, never a timing assertion).
//!
//! Run with `cargo test -p ssm-emulator --test fleet`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use ssm_emulator::{Config, Emulator, FleetSetup, SystemClock, serve};
use support::TestEmu;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SEED: u64 = 42;

/// How often and how many times a poll looks before the test fails: a 20 s hang guard.
const POLL: Duration = Duration::from_millis(50);
const POLLS: usize = 400;

/// A running `serve` and the means to stop it.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ssm_emulator::fleet::ServeError>>,
    _work_dir: tempfile::TempDir,
}

async fn start(fleet: usize) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let work_dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::new(Config::local(SEED), Arc::new(SystemClock));
    let setup = FleetSetup::generated(fleet, SEED, work_dir.path().to_owned());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, emulator, setup, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop,
        task,
        _work_dir: work_dir,
    }
}

impl Running {
    /// Ctrl-C: stops the fleet, then the server; `serve` must return cleanly.
    async fn shut_down(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// `AmazonSSM.<op>` on a fresh connection; returns the status and the JSON body.
async fn call(addr: SocketAddr, op: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: AmazonSSM.{op}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

async fn ok(addr: SocketAddr, op: &str, body: Value) -> Value {
    let (status, reply) = call(addr, op, &body).await;
    assert_eq!(status, 200, "{op} {body} failed: {reply}");
    reply
}

/// Polls `check` until it gives `Some`, at most [`POLLS`] times; `what` names the wait.
async fn poll<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    for _ in 0..POLLS {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("gave up waiting for {what}");
}

/// The instances DescribeInstanceInformation lists as Online.
async fn online(addr: SocketAddr) -> Vec<Value> {
    let reply = ok(addr, "DescribeInstanceInformation", json!({})).await;
    reply["InstanceInformationList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["PingStatus"] == "Online")
        .cloned()
        .collect()
}

#[tokio::test]
async fn three_instances_come_online_and_run_a_command() {
    let emu = start(3).await;
    let addr = emu.addr;
    let mut expected: Vec<String> = ssm_agent_sim::default_instances(3, SEED)
        .into_iter()
        .map(|i| i.instance_id)
        .collect();
    expected.sort();

    let listed = poll("3 Online instances", || async move {
        let listed = online(addr).await;
        (listed.len() == 3).then_some(listed)
    })
    .await;
    let mut ids: Vec<String> = listed
        .iter()
        .map(|i| i["InstanceId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, expected, "the fleet's ids come from --seed");
    for instance in &listed {
        assert_eq!(
            (
                &instance["PlatformType"],
                &instance["PlatformName"],
                &instance["PlatformVersion"],
                &instance["AgentVersion"],
            ),
            (
                &json!("Linux"),
                &json!("Amazon Linux"),
                &json!("2023"),
                &json!("3.3.1142.0")
            )
        );
    }
    // Online by report, and the control channel is open: SendCommand reaches them.
    let connected = |id: String| async move {
        let reply = ok(addr, "GetConnectionStatus", json!({"Target": id})).await;
        (reply["Status"] == "connected").then_some(())
    };
    for id in &expected {
        poll("an open control channel", || connected(id.clone())).await;
    }

    let reply = ok(
        addr,
        "SendCommand",
        json!({
            "DocumentName": "AWS-RunShellScript",
            "InstanceIds": expected,
            "Parameters": {"commands": ["echo hi"]},
        }),
    )
    .await;
    let command_id = reply["Command"]["CommandId"].as_str().unwrap().to_owned();

    let invocations = poll("3 invocations to finish", || {
        let command_id = command_id.clone();
        async move {
            let reply = ok(
                addr,
                "ListCommandInvocations",
                json!({"CommandId": command_id, "Details": true}),
            )
            .await;
            let list = reply["CommandInvocations"].as_array().unwrap().clone();
            let done = list.len() == 3
                && list
                    .iter()
                    .all(|i| !matches!(i["Status"].as_str(), Some("Pending" | "InProgress")));
            done.then_some(list)
        }
    })
    .await;
    for invocation in &invocations {
        assert_eq!(invocation["Status"], "Success", "{invocation}");
        assert_eq!(
            invocation["CommandPlugins"][0]["Output"], "hi\n",
            "{invocation}"
        );
    }
    for id in &expected {
        let invocation = ok(
            addr,
            "GetCommandInvocation",
            json!({"CommandId": command_id, "InstanceId": id}),
        )
        .await;
        assert_eq!(
            (
                &invocation["Status"],
                &invocation["ResponseCode"],
                &invocation["StandardOutputContent"]
            ),
            (&json!("Success"), &json!(0), &json!("hi\n"))
        );
    }
    let reply = ok(addr, "ListCommands", json!({"CommandId": command_id})).await;
    assert_eq!(
        (
            &reply["Commands"][0]["Status"],
            &reply["Commands"][0]["CompletedCount"]
        ),
        (&json!("Success"), &json!(3))
    );

    emu.shut_down().await;
}

/// Like the binary, which returns from `main` (dropping its runtime) as soon as `serve` has:
/// the runtime is dropped right after `serve` returns, so whatever the fleet left to detached
/// tasks never happens, and a script that is still running afterwards was not killed.
#[test]
fn shutdown_kills_running_commands() {
    // A sleep no other process on the machine runs: its argument carries this test's pid.
    let nap = format!("600.{}", std::process::id());
    let sleepers = || -> Vec<u32> {
        let cmdline = format!("sleep\0{nap}\0");
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmd| cmd == cmdline.as_bytes())
            })
            .collect()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let emu = start(1).await;
        let addr = emu.addr;
        let id = ssm_agent_sim::default_instances(1, SEED)
            .remove(0)
            .instance_id;
        poll("an open control channel", || {
            let id = id.clone();
            async move {
                let reply = ok(addr, "GetConnectionStatus", json!({"Target": id})).await;
                (reply["Status"] == "connected").then_some(())
            }
        })
        .await;
        ok(
            addr,
            "SendCommand",
            json!({
                "DocumentName": "AWS-RunShellScript",
                "InstanceIds": [id],
                "Parameters": {"commands": [format!("sleep {nap}")]},
            }),
        )
        .await;
        poll("the script to be running", || async {
            (!sleepers().is_empty()).then_some(())
        })
        .await;
        emu.shut_down().await;
    });
    drop(runtime);
    // SIGKILL has been sent to the script's process group; the kernel finishes it at once.
    for _ in 0..POLLS {
        if sleepers().is_empty() {
            return;
        }
        std::thread::sleep(POLL);
    }
    panic!("the script survived shutdown: {:?}", sleepers());
}

#[tokio::test]
async fn fleet_zero_serves_the_api_alone() {
    let emu = start(0).await;
    let reply = ok(emu.addr, "DescribeInstanceInformation", json!({})).await;
    assert_eq!(reply["InstanceInformationList"], json!([]));
    emu.shut_down().await;
}

#[tokio::test]
async fn list_instance_associations_is_empty_and_validated() {
    let t = TestEmu::new();
    let id = "i-0123456789abcdef0";
    let body = t
        .call(
            "ListInstanceAssociations",
            json!({"InstanceId": id, "MaxResults": 20}),
        )
        .await
        .ok();
    assert_eq!(body, json!({"Associations": []}));
    let body = t
        .call(
            "ListInstanceAssociations",
            json!({"InstanceId": "mi-0123456789abcdef1"}),
        )
        .await
        .ok();
    assert_eq!(body, json!({"Associations": []}));

    let message = t
        .call("ListInstanceAssociations", json!({}))
        .await
        .client_error("ValidationException");
    assert!(
        message.contains("Value null at 'instanceId' failed to satisfy constraint"),
        "{message}"
    );
    let message = t
        .call(
            "ListInstanceAssociations",
            json!({"InstanceId": "i-1", "MaxResults": 51}),
        )
        .await
        .client_error("ValidationException");
    assert!(
        message.starts_with("2 validation errors detected"),
        "{message}"
    );
    assert!(message.contains("'i-1' at 'instanceId'"), "{message}");
    assert!(
        message.contains("'51' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 50"),
        "{message}"
    );
    let message = t
        .call(
            "ListInstanceAssociations",
            json!({"InstanceId": id, "MaxResults": 0}),
        )
        .await
        .client_error("ValidationException");
    assert!(message.contains("greater than or equal to 1"), "{message}");
    t.call(
        "ListInstanceAssociations",
        json!({"InstanceId": id, "NextToken": "AAAA"}),
    )
    .await
    .client_error("InvalidNextToken");
    t.call("ListInstanceAssociations", json!({"InstanceId": 7}))
        .await
        .client_error("SerializationException");
}
