//! End-to-end tests: the real `ssm-emulator` binary, driven by the AWS CLI v1, boto3 and
//! aws-sdk-ssm, asserting what their users see.
//!
//! Run with `cargo build --workspace --bins && cargo test -p ssm-e2e` (the Python clients come
//! from `.venv`: `bash scripts/test-all` installs them once).
//!
//! - [`agent`]: `ssm-agent-sim`'s agents as the CLI sees them;
//! - [`binary`]: the emulator's own command line (`--help`, a port in use, a bad file);
//! - [`cli`]: the AWS CLI (the tutorial command, inventory, tags, errors);
//! - [`boto3`]: boto3's paginator and `ClientError`s;
//! - [`run_command_cli`], [`run_command_boto3`], [`run_command_sdk`]: Run Command with each
//!   client against a separate `ssm-agent-sim` fleet;
//! - [`sdk`]: aws-sdk-ssm's typed errors and paginator;
//! - [`scenarios`]: the shipped scenario files run with `ssm-emulator scenario run`;
//! - [`session_bridge`]: shells and port forwarding through aws-ssm-bridge, an independent
//!   client;
//! - [`session_cli`]: `aws ssm start-session` through `ssm-session` as the plugin, over pipes
//!   and on a terminal, and TerminateSession;
//! - [`session_commands`]: InteractiveCommands and NonInteractiveCommands sessions;
//! - [`session_lifecycle`]: Session Manager preferences (idle timeout, the transcript in the
//!   History's OutputUrl);
//! - [`session_port`]: port forwarding to a local HTTP server, mux and basic mode;
//! - [`session_ssh`]: OpenSSH `ssh` and `scp` with the tutorial's ProxyCommand;
//! - [`session_tls`]: the API over `https://` and the data channel over `wss://`.
//!
//! The session tests share `ssm_e2e::session` (the plugin on `PATH`, the CLI's session with its
//! output captured, the History poll).

mod agent;
mod binary;
mod boto3;
mod cli;
mod run_command_boto3;
mod run_command_cli;
mod run_command_sdk;
mod scenarios;
mod sdk;
mod session_bridge;
mod session_cli;
mod session_commands;
mod session_lifecycle;
mod session_port;
mod session_ssh;
mod session_tls;

use serde_json::{Value, json};

/// Three online instances and one that lost its connection, with tags.
const FLEET_IDS: [&str; 4] = [
    "i-0aaaaaaaaaaaaaaa1",
    "i-0aaaaaaaaaaaaaaa2",
    "i-0aaaaaaaaaaaaaaa4",
    "mi-0aaaaaaaaaaaaaaa3",
];

/// The instances file of [`FLEET_IDS`].
fn fleet() -> Value {
    json!({"instances": [
        {"id": "i-0aaaaaaaaaaaaaaa1", "platform_name": "Ubuntu", "platform_version": "22.04",
         "agent_version": "3.3.1142.0", "tags": {"Env": "dev"}},
        {"id": "i-0aaaaaaaaaaaaaaa2", "platform": "Windows",
         "platform_name": "Microsoft Windows Server 2022 Datacenter",
         "agent_version": "3.3.987.0"},
        {"id": "mi-0aaaaaaaaaaaaaaa3", "platform_name": "Amazon Linux",
         "agent_version": "3.2.582.0", "name": "build-box", "tags": {"Env": "prod"}},
        {"id": "i-0aaaaaaaaaaaaaaa4", "online": false, "tags": {"Env": "dev"}},
    ]})
}

/// `n` online Linux instances, `i-0000000000000000N` style ids, in id order.
fn many(n: usize) -> (Vec<String>, Value) {
    let ids: Vec<String> = (1..=n).map(|i| format!("i-{i:017x}")).collect();
    let instances: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
    (ids, json!({ "instances": instances }))
}
