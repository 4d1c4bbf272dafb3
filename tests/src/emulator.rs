//! The real `ssm-emulator` binary as a child process.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::clients::{Aws, Python};
use crate::process::{self, ChildProcess};

/// How long the emulator may take to announce its address. A bound on a poll, not an
/// assertion: it takes milliseconds.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// How many times, and how far apart, the harness tries a first API call before giving up.
const READY_ATTEMPTS: u32 = 100;
const READY_INTERVAL: Duration = Duration::from_millis(50);

/// A running `ssm-emulator` on a free loopback port, killed on drop.
///
/// It listens on `127.0.0.1:0` and the harness reads the port the emulator chose from its
/// `SSM API on http://…` log line: no port is picked and released, so two tests can never race
/// for one.
#[derive(Debug)]
pub struct Emulator {
    process: ChildProcess,
    addr: SocketAddr,
    /// Holds the instances file for as long as the emulator runs.
    dir: TempDir,
}

impl Emulator {
    /// Starts the emulator with `instances` as its instances file (the format of
    /// `emulator/instances.example.json`: `{"instances": [{"id": …}, …]}`) and `--seed 1`, and
    /// waits until it answers.
    pub fn start(instances: &Value) -> Emulator {
        Emulator::start_with(instances, &[])
    }

    /// [`Emulator::start`] with more command-line arguments (`--ping-grace 5`, `--seed 9`, …).
    pub fn start_with(instances: &Value, args: &[&str]) -> Emulator {
        let dir = tempfile::tempdir().expect("can create a temporary directory");
        let file = dir.path().join("instances.json");
        std::fs::write(&file, instances.to_string()).expect("can write the instances file");

        let mut command = Command::new(process::binary("ssm-emulator"));
        command
            .env_clear()
            .env("RUST_LOG", log_filter())
            .env("NO_COLOR", "1")
            // No embedded fleet: the tests start the agents they need as separate processes.
            // (An environment variable rather than `--fleet 0`, which older builds refuse.)
            .env("SSM_EMULATOR_FLEET", "0")
            .args(["--listen", "127.0.0.1:0", "--instances-file"])
            .arg(&file);
        if !args.contains(&"--seed") {
            command.args(["--seed", "1"]);
        }
        command.args(args);
        let mut process = ChildProcess::spawn(command);
        let addr = process.wait_for_stdout(STARTUP_LIMIT, announced_addr);
        process.stop_listening();

        let emulator = Emulator { process, addr, dir };
        emulator.wait_until_answering();
        emulator
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, for `--endpoint-url` and SDK configs.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The emulator's output so far (its log and anything on stderr).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// A directory that lives as long as the emulator, for files a test needs.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.exited().is_none()
    }

    /// The AWS CLI, pointed at this emulator.
    pub fn aws(&self) -> Aws {
        Aws::new(&self.endpoint())
    }

    /// boto3 scripts, pointed at this emulator.
    pub fn python(&self) -> Python {
        Python::new(&self.endpoint())
    }

    /// An aws-sdk-ssm client for this emulator with retries disabled, so that every error is
    /// the emulator's first answer.
    pub fn sdk(&self) -> aws_sdk_ssm::Client {
        crate::sdk::client(
            &self.endpoint(),
            aws_sdk_ssm::config::retry::RetryConfig::disabled(),
        )
    }

    /// One raw API call: `POST /` with `X-Amz-Target: AmazonSSM.<operation>` and `body`, on a
    /// fresh connection.
    pub fn call(&self, operation: &str, body: &Value) -> RawResponse {
        self.try_call(operation, body)
            .unwrap_or_else(|e| panic!("AmazonSSM.{operation} to {}: {e}", self.addr))
    }

    fn try_call(&self, operation: &str, body: &Value) -> std::io::Result<RawResponse> {
        let body = body.to_string();
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: AmazonSSM.{operation}\r\n\
             Content-Length: {len}\r\nConnection: close\r\n\r\n{body}",
            addr = self.addr,
            len = body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        RawResponse::parse(&String::from_utf8_lossy(&raw)).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP response: {:?}", String::from_utf8_lossy(&raw)),
            )
        })
    }

    /// Every instance of the default region with its `PingStatus`, from
    /// DescribeInstanceInformation (all pages).
    pub fn ping_statuses(&self) -> BTreeMap<String, String> {
        let mut statuses = BTreeMap::new();
        let mut next: Option<String> = None;
        loop {
            let mut body = json!({"MaxResults": 50});
            if let Some(token) = &next {
                body["NextToken"] = json!(token);
            }
            let reply = self.call("DescribeInstanceInformation", &body);
            assert_eq!(reply.status, 200, "DescribeInstanceInformation: {reply:?}");
            let page = reply.json();
            for node in page["InstanceInformationList"]
                .as_array()
                .into_iter()
                .flatten()
            {
                statuses.insert(
                    node["InstanceId"].as_str().unwrap_or_default().to_owned(),
                    node["PingStatus"].as_str().unwrap_or_default().to_owned(),
                );
            }
            match page["NextToken"].as_str() {
                Some(token) => next = Some(token.to_owned()),
                None => return statuses,
            }
        }
    }

    /// Polls until every one of `ids` is `Online`, for a bounded number of attempts; panics with
    /// the statuses seen and the emulator's log if they never are.
    pub fn wait_until_online(&self, ids: &[&str]) {
        let mut seen = BTreeMap::new();
        for _ in 0..READY_ATTEMPTS {
            seen = self.ping_statuses();
            if ids
                .iter()
                .all(|id| seen.get(*id).is_some_and(|s| s == "Online"))
            {
                return;
            }
            thread::sleep(READY_INTERVAL);
        }
        panic!(
            "instances {ids:?} not all Online after {READY_ATTEMPTS} polls; last seen: {seen:?}"
        );
    }

    /// Polls a cheap call until the emulator answers it.
    fn wait_until_answering(&self) {
        let mut last = None;
        for _ in 0..READY_ATTEMPTS {
            match self.try_call("DescribeInstanceInformation", &json!({})) {
                Ok(reply) if reply.status == 200 => return,
                Ok(reply) => last = Some(format!("{reply:?}")),
                Err(e) => last = Some(e.to_string()),
            }
            thread::sleep(READY_INTERVAL);
        }
        panic!(
            "ssm-emulator on {} did not answer DescribeInstanceInformation after \
             {READY_ATTEMPTS} attempts; last: {last:?}",
            self.addr
        );
    }
}

/// One HTTP response to a raw call.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl RawResponse {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    fn parse(text: &str) -> Option<RawResponse> {
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Some(RawResponse {
            status,
            headers,
            body: body.to_owned(),
        })
    }
}

/// The address in the emulator's `SSM API on http://127.0.0.1:PORT …` log line.
fn announced_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("http://")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The emulator's log filter: `SSM_E2E_LOG` if set (for example `ssm_emulator=debug`), else
/// info, which includes the line announcing the address.
fn log_filter() -> String {
    std::env::var("SSM_E2E_LOG").unwrap_or_else(|_| "ssm_emulator=info".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_announced_address() {
        let line = "2026-11-23T12:17:16.987174Z  INFO ssm_emulator: SSM API on \
                    http://127.0.0.1:45237 (aws ssm --endpoint-url http://127.0.0.1:45237 …)";
        assert_eq!(
            announced_addr(line),
            Some("127.0.0.1:45237".parse().unwrap())
        );
        assert_eq!(announced_addr("starting seed=1 instances=4"), None);
    }

    #[test]
    fn parses_a_raw_response() {
        let r = RawResponse::parse(
            "HTTP/1.1 400 Bad Request\r\nx-amzn-RequestId: abc\r\ncontent-length: 2\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.header("X-AMZN-REQUESTID"), Some("abc"));
        assert_eq!(r.body, "{}");
    }
}
