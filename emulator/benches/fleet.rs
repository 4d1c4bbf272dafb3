//! Fleet benchmark: one emulator and N simulated agents in this process, all on loopback TCP.
//!
//! ```sh
//! cargo bench -p ssm-emulator --bench fleet              # N = 1, 100, 1000
//! cargo bench -p ssm-emulator --bench fleet -- 1000 2000 # other fleet sizes
//! ```
//!
//! For each fleet size N it starts [`ssm_emulator::serve`] on `127.0.0.1:0` with N
//! ssm-agent-sim agents (ids from seed 7, each tagged `Bench=fleet`, the embedded fleet's
//! timings), waits until every agent's control channel is open and its tag applied, and
//! prints:
//!
//! - **startup**: from `serve` to every agent connected and tagged;
//! - **DescribeInstanceInformation** latency per page (`MaxResults` 50, walking every page
//!   with its `NextToken`), p50/p99/max over about 200 pages;
//! - **SendCommand to all**: `AWS-RunShellScript` `echo hi`, `Targets`
//!   `[{"Key":"tag:Bench","Values":["fleet"]}]`, `MaxConcurrency` "100%", from the request
//!   until `ListCommands` shows the command `Success` (polled every 10 ms), then a check with
//!   `ListCommandInvocations` that all N invocations are `Success`; three runs.
//!
//! The client is a single keep-alive HTTP/1.1 connection (hyper), so it is measured against
//! the emulator and not against connection setup; it is not aws-sdk-ssm, which the emulator
//! crate never links. Each agent runs its script as a real `/bin/sh` process, as on a real
//! instance. Logs are off (no subscriber): `RUST_LOG` has no effect here.
//!
//! A bench target with `harness = false` rather than a `[[bin]]`: `cargo bench` builds it with
//! the optimised bench profile, `cargo test` never builds or runs it, and it is not installed
//! with the emulator. Run without `--bench` (as `cargo test --benches` would), it only
//! checks a fleet of one.
//!
//! Every agent holds a websocket and one HTTP connection at a time, and the emulator the other
//! ends, so 1,000 agents need about 4,000 descriptors: the soft `RLIMIT_NOFILE` is raised to
//! the hard limit first.
//!
//! The figures measured on the project's 2-core machine are in `BENCHMARKS.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use ssm_emulator::fleet::{FleetSetup, embedded_timings};
use ssm_emulator::{Config, Emulator, SystemClock, serve};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const SEED: u64 = 7;
const PAGE: usize = 50;
/// About this many DescribeInstanceInformation pages are timed per fleet size.
const PAGE_SAMPLES: usize = 200;
const SEND_RUNS: usize = 3;
/// A hang guard for every wait (not a target): the bench gives up after this.
const GIVE_UP: Duration = Duration::from_secs(300);

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = match (bench, sizes.is_empty()) {
        (_, false) => sizes,
        (true, true) => vec![1, 100, 1000],
        (false, true) => vec![1],
    };
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "fleet benchmark: {} cores, {} build",
        std::thread::available_parallelism().map_or(0, usize::from),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    for n in sizes {
        runtime.block_on(bench_fleet(n));
    }
}

/// Raises the soft limit on open files to the hard limit.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => println!(
            "RLIMIT_NOFILE: soft {:?} -> {:?}",
            limit.current, limit.maximum
        ),
        Err(e) => println!("RLIMIT_NOFILE stays {:?}: {e}", limit.current),
    }
}

async fn bench_fleet(n: usize) {
    println!("\n== {n} instance{}", if n == 1 { "" } else { "s" });
    let work_dir = std::env::temp_dir().join(format!("ssm-emulator-bench-{}", std::process::id()));
    let mut instances = ssm_agent_sim::default_instances(n, SEED);
    for instance in &mut instances {
        instance.tags = BTreeMap::from([("Bench".to_owned(), "fleet".to_owned())]);
    }
    let fleet = FleetSetup {
        instances,
        timings: embedded_timings(),
        work_dir: work_dir.clone(),
        seed: SEED,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let emulator = Emulator::new(Config::local(SEED), Arc::new(SystemClock));
    let (stop, stopped) = oneshot::channel::<()>();
    let started = Instant::now();
    let server = tokio::spawn(serve(listener, emulator.clone(), fleet, async {
        let _ = stopped.await;
    }));

    let scope = emulator.scope(emulator.default_region());
    wait("every agent connected and tagged", || {
        let ready = emulator
            .instances(&scope)
            .iter()
            .filter(|node| node.connected && node.tags.contains_key("Bench"))
            .count();
        (ready == n).then_some(())
    })
    .await;
    println!(
        "startup (serve to all connected and tagged): {:?}",
        started.elapsed()
    );

    let mut client = Client::connect(addr).await;
    describe_pages(&mut client, n).await;
    for run in 1..=SEND_RUNS {
        send_to_all(&mut client, n, run).await;
    }

    let _ = stop.send(());
    let stopping = Instant::now();
    server
        .await
        .expect("serve task")
        .expect("serve ends cleanly");
    println!("shutdown: {:?}", stopping.elapsed());
    let _ = std::fs::remove_dir_all(&work_dir);
}

/// Walks every page of DescribeInstanceInformation (MaxResults 50) until about
/// [`PAGE_SAMPLES`] pages are timed.
async fn describe_pages(client: &mut Client, n: usize) {
    let mut samples = Vec::new();
    let mut listed = 0;
    while samples.len() < PAGE_SAMPLES {
        let mut token: Option<String> = None;
        listed = 0;
        loop {
            let mut request = json!({"MaxResults": PAGE});
            if let Some(token) = &token {
                request["NextToken"] = json!(token);
            }
            let at = Instant::now();
            let reply = client.call("DescribeInstanceInformation", &request).await;
            samples.push(at.elapsed());
            listed += reply["InstanceInformationList"]
                .as_array()
                .map_or(0, Vec::len);
            match reply["NextToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
    }
    assert_eq!(
        listed, n,
        "DescribeInstanceInformation lists every instance"
    );
    samples.sort();
    println!(
        "DescribeInstanceInformation, MaxResults {PAGE}: {} pages per walk, {} pages timed: \
         p50 {:?}, p99 {:?}, max {:?}",
        n.div_ceil(PAGE).max(1),
        samples.len(),
        percentile(&samples, 50),
        percentile(&samples, 99),
        samples.last().copied().unwrap_or_default()
    );
}

/// SendCommand to every instance by tag; the time until the command is Success.
async fn send_to_all(client: &mut Client, n: usize, run: usize) {
    let request = json!({
        "DocumentName": "AWS-RunShellScript",
        "Targets": [{"Key": "tag:Bench", "Values": ["fleet"]}],
        "MaxConcurrency": "100%",
        "Parameters": {"commands": ["echo hi"]},
    });
    let sent = Instant::now();
    let reply = client.call("SendCommand", &request).await;
    let send_latency = sent.elapsed();
    let command_id = reply["Command"]["CommandId"]
        .as_str()
        .unwrap_or_else(|| panic!("SendCommand failed: {reply}"))
        .to_owned();
    let mut status = String::new();
    let deadline = Instant::now() + GIVE_UP;
    while Instant::now() < deadline {
        let reply = client
            .call("ListCommands", &json!({"CommandId": command_id}))
            .await;
        status = reply["Commands"][0]["Status"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        if !matches!(status.as_str(), "Pending" | "InProgress") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = sent.elapsed();
    let successes = count_successes(client, &command_id).await;
    println!(
        "SendCommand to all (run {run}): {status} after {done:?} \
         ({successes}/{n} invocations Success; SendCommand itself {send_latency:?})"
    );
}

/// Invocations of `command_id` in `Success`, over every page of ListCommandInvocations.
async fn count_successes(client: &mut Client, command_id: &str) -> usize {
    let mut token: Option<String> = None;
    let mut successes = 0;
    loop {
        let mut request = json!({"CommandId": command_id, "MaxResults": 50});
        if let Some(token) = &token {
            request["NextToken"] = json!(token);
        }
        let reply = client.call("ListCommandInvocations", &request).await;
        successes += reply["CommandInvocations"].as_array().map_or(0, |list| {
            list.iter().filter(|i| i["Status"] == "Success").count()
        });
        match reply["NextToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => return successes,
        }
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Polls `check` every 10 ms until it gives `Some`; gives up after [`GIVE_UP`].
async fn wait<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + GIVE_UP;
    while Instant::now() < deadline {
        if let Some(value) = check() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}

/// One keep-alive HTTP/1.1 connection to the SSM API.
struct Client {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        Client { addr, sender }
    }

    /// `AmazonSSM.<op>` with `body`; the JSON reply of a success, panics on an error.
    async fn call(&mut self, op: &str, body: &Value) -> Value {
        let request = http::Request::post("/")
            .header(http::header::HOST, self.addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", format!("AmazonSSM.{op}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a valid request");
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(request).await.expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        let reply: Value = serde_json::from_slice(&bytes).expect("a JSON reply");
        assert!(status.is_success(), "{op} {body} failed: {status} {reply}");
        reply
    }
}
