//! The scenario library (issue #5): every file of `scenarios/` run as a user runs it,
//! `ssm-emulator scenario run scenarios/<name>.toml`, which starts an emulator with its
//! embedded fleet in its own process and drives real clients (`ssm-session` for shells and
//! tunnels); the test asserts the exit status and the report's lines.
//!
//! The throttling storm is also met by the SDKs' own retry code: aws-sdk-ssm with its standard
//! retry config and boto3 in standard mode, against an emulator whose throttling rule is set
//! through the admin API; the calls get through and the emulator's counters show every
//! throttled attempt.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use aws_sdk_ssm::config::retry::RetryConfig;
use serde_json::{Value, json};
use ssm_e2e::Emulator;
use ssm_e2e::process::{self, Finished};

/// A bound on one scenario run, above the scenario's own timeout: a guard against a hang, not
/// an assertion (the slowest, the 10 MiB lossy transfer with its paced baseline, takes about a
/// minute).
const SCENARIO_LIMIT: Duration = Duration::from_secs(300);

/// `ssm-emulator scenario <args>`, to its end.
fn scenario(args: &[&str]) -> Finished {
    let mut command = Command::new(process::binary("ssm-emulator"));
    // `ssm-session` is found beside ssm-emulator (both in target/<profile>/).
    process::binary("ssm-session");
    command
        .current_dir(process::workspace_root())
        .env("NO_COLOR", "1")
        .arg("scenario")
        .args(args);
    process::run(command, SCENARIO_LIMIT)
}

/// Runs a shipped scenario file and checks it passed; its report.
fn passes(name: &str) -> String {
    let file = format!("scenarios/{name}.toml");
    let run = scenario(&["run", &file]);
    assert_eq!(
        run.code, 0,
        "{file} failed (exit {}):\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains(&format!("PASSED {name}: ")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("FAIL "), "{}", run.stdout);
    run.stdout
}

/// The lines of `report` that contain `text`, for assertions on one line.
fn line<'a>(report: &'a str, text: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no line with {text:?} in:\n{report}"))
}

#[test]
fn proxy_loss_during_run_command() {
    let report = passes("proxy-loss-run-command");
    assert!(line(&report, "agent proxy down").contains("proxy down"));
    assert!(report.contains("PASS running.output contains \"finished-42\""));
    // Sent while the node was unreachable: Delayed, then delivered.
    assert!(line(&report, "during.statuses =").contains("Delayed"));
    assert!(report.contains("PASS during.status == \"Success\""));
}

#[test]
fn proxy_loss_during_a_shell_then_resume_session() {
    let report = passes("proxy-loss-shell-resume");
    assert!(report.contains("\"during-42\" came back"), "{report}");
    assert!(report.contains("\"after-42\" came back"), "{report}");
    assert!(report.contains("PASS faults.resume-refused.injected >= 1"));
    assert!(report.contains("PASS shell.exit-code == 0"));
}

#[test]
fn vpc_endpoint_missing() {
    let report = passes("vpc-endpoint-missing");
    assert!(line(&report, "StartSession: HTTP 400").contains("TargetNotConnected"));
    assert!(line(&report, "DescribeInstanceInformation: HTTP").contains("HTTP 200"));
    assert!(report.contains("\"healed-42\" came back"), "{report}");
}

#[test]
fn websocket_closed_repeatedly_during_a_port_forward() {
    let report = passes("websocket-recycle-port-forward");
    assert!(line(&report, "up: sent sha256").ends_with("intact"));
    assert!(line(&report, "down: sent sha256").ends_with("intact"));
    assert!(report.contains("PASS faults.total.close == 3"));
}

#[test]
fn lossy_link_during_a_10_mib_port_forward() {
    let report = passes("lossy-link-port-forward");
    assert!(line(&report, "up: sent sha256").ends_with("intact"));
    assert!(line(&report, "down: sent sha256").ends_with("intact"));
    // The time next to the fault-free baseline.
    assert!(
        line(&report, "MiB each way in").contains("without faults"),
        "{report}"
    );
    assert!(report.contains("PASS faults.drop.injected >= 1"));
}

#[test]
fn throttling_storm_scenario_repeats_for_a_seed() {
    let report = passes("throttling-storm");
    assert!(report.contains("PASS storm.throttled == faults.throttle.injected"));
    // The same seed gives the same fault decisions and so the same counts.
    let counts = |seed: &str| {
        let run = scenario(&["run", "throttling-storm", "--json", "--seed", seed]);
        let report: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("--json prints JSON ({e}):\n{}", run.stdout));
        (
            report["facts"]["storm.throttled"].clone(),
            report["facts"]["storm.attempts"].clone(),
            report["faultTotals"].clone(),
        )
    };
    let first = counts("11");
    assert!(first.0.as_f64().unwrap_or_default() > 0.0, "{first:?}");
    assert_eq!(counts("11"), first);
}

#[test]
fn a_failed_expectation_is_named_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.toml");
    std::fs::write(
        &file,
        r#"
name = "wrong"
seed = 1
[fleet]
instances = ["i-0c0ffee000000f001"]
[[workload]]
name = "run"
send-command = { instance = "i-0c0ffee000000f001", commands = ["echo real"] }
[[expect]]
fact = "run.output"
contains = "imagined"
"#,
    )
    .unwrap();
    let run = scenario(&["run", file.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("FAILED wrong: expectation run.output contains \"imagined\""),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("PASS") || run.stdout.contains("FAIL run.output"));

    std::fs::write(&file, "name = \"typo\"\nseed = 1\n[fleet]\ncount = 1\n[[timeline]]\nat = \"1s\"\nprxy = \"down\"\n").unwrap();
    let run = scenario(&["run", file.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("prxy"), "{}", run.stderr);
}

#[test]
fn the_library_is_listed() {
    let run = scenario(&["list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for name in [
        "proxy-loss-run-command",
        "proxy-loss-shell-resume",
        "vpc-endpoint-missing",
        "websocket-recycle-port-forward",
        "lossy-link-port-forward",
        "throttling-storm",
    ] {
        assert!(run.stdout.contains(name), "{name} missing:\n{}", run.stdout);
    }
}

/// An admin request to a running emulator; the status and the JSON body.
fn admin(emulator: &Emulator, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = TcpStream::connect(emulator.addr()).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        emulator.addr(),
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// An emulator (no agents: only the test calls DescribeInstanceInformation, so the fault RNG
/// draws for these calls alone) throttling 30% of DescribeInstanceInformation calls.
fn throttling_emulator() -> Emulator {
    let emulator = Emulator::start(&json!({"instances": []}));
    let (status, answer) = admin(
        &emulator,
        "POST",
        "/_emulator/faults",
        &json!({"api": {"operation": "DescribeInstanceInformation",
                        "error": "ThrottlingException", "rate": 0.3}}),
    );
    assert_eq!(status, 200, "{answer}");
    emulator
}

/// The throttling rule's counters: (matched, injected).
fn throttle_counters(emulator: &Emulator) -> (u64, u64) {
    let (_, report) = admin(emulator, "GET", "/_emulator/faults", &Value::Null);
    let rule = &report["faults"][0];
    (
        rule["matched"].as_u64().unwrap(),
        rule["injected"].as_u64().unwrap(),
    )
}

/// Calls per client in the storm.
const STORM_CALLS: u64 = 10;

/// Attempts per call: with 30% throttled, a call fails five times in a row with chance 0.24%;
/// the seed fixes the draws, so the outcome is the same on every run.
const STORM_ATTEMPTS: u32 = 5;

#[tokio::test]
async fn throttling_storm_against_aws_sdk_ssm_standard_retries() {
    let emulator = throttling_emulator();
    let client = ssm_e2e::sdk::client(
        &emulator.endpoint(),
        RetryConfig::standard().with_max_attempts(STORM_ATTEMPTS),
    );
    for call in 0..STORM_CALLS {
        let answer = client.describe_instance_information().send().await;
        assert!(answer.is_ok(), "call {call}: {answer:?}");
    }
    let (matched, injected) = throttle_counters(&emulator);
    assert!(injected > 0, "the rule throttled nothing");
    // Every throttled attempt was retried, and every call ended with one success.
    assert_eq!(matched, STORM_CALLS + injected);
}

#[test]
fn throttling_storm_against_boto3_standard_retries() {
    let emulator = throttling_emulator();
    let out = emulator
        .python()
        .script(
            "throttling_storm.py",
            &[&STORM_CALLS.to_string(), &STORM_ATTEMPTS.to_string()],
        )
        .json();
    assert_eq!(out["succeeded"], STORM_CALLS, "{out}");
    assert_eq!(out["failed"], json!([]), "{out}");
    let (matched, injected) = throttle_counters(&emulator);
    assert!(injected > 0, "the rule throttled nothing");
    // botocore's RetryAttempts add up to the throttled attempts the emulator counted.
    assert_eq!(out["retries"], injected, "{out}");
    assert_eq!(matched, STORM_CALLS + injected);
}
