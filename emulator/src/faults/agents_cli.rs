//! The `ssm-emulator proxy down|up|status` and `ssm-emulator agent …` subcommands: clients of
//! the admin routes of [`super::agents`], beside `fault` (same `--endpoint`, same errors).

use clap::{Subcommand, ValueEnum};

use super::cli::{CliError, Endpoint, request};

/// The subcommands for the agent side of a running emulator.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn the built-in CONNECT proxy for agents (--agent-proxy-listen) down or up.
    ///
    /// down closes its listener (connections are refused) and resets every tunnel, so agents
    /// behind it lose their control channel; up listens again on the same address and the
    /// agents reconnect by themselves.
    Proxy {
        /// down, up, or status.
        action: ProxyAction,
        /// Where the emulator is.
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Crash, restart, slow down or list the embedded fleet's simulated agents.
    ///
    /// Examples:
    ///   ssm-emulator agent crash i-0123456789abcdef0 --restart-after 5
    ///   ssm-emulator agent crash i-0123456789abcdef0          (stays down)
    ///   ssm-emulator agent restart i-0123456789abcdef0
    ///   ssm-emulator agent slowness i-0123456789abcdef0 --job-ack-delay-ms 3000
    ///   ssm-emulator agent list
    #[command(verbatim_doc_comment)]
    Agent {
        /// What to do.
        #[command(subcommand)]
        command: AgentCommand,
        /// Where the emulator is.
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

/// `ssm-emulator proxy …`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProxyAction {
    /// Close the listener and reset every tunnel.
    Down,
    /// Listen again on the same address.
    Up,
    /// Print the state and address.
    Status,
}

/// `ssm-emulator agent …`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// The agent dies as the real agent's process does (its control channel drops without a
    /// Close frame; running commands and sessions survive).
    Crash {
        /// The instance id.
        instance_id: String,
        /// Restart after this many seconds; without it the agent stays down until `restart`.
        #[arg(long, value_name = "SECS")]
        restart_after: Option<f64>,
    },
    /// Start a crashed agent now.
    Restart {
        /// The instance id.
        instance_id: String,
    },
    /// Delay the agent's job acknowledgements and command starts (0 for a prompt agent).
    Slowness {
        /// The instance id.
        instance_id: String,
        /// Milliseconds before each agent_job is acknowledged.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        job_ack_delay_ms: u64,
        /// Milliseconds between a job's acknowledgement and its process start.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        command_start_delay_ms: u64,
    },
    /// The agents and their state (JSON).
    List,
}

/// Runs `command`; returns what to print.
pub async fn run(command: Command) -> Result<String, CliError> {
    let (endpoint, method, path, body) = match command {
        Command::Proxy { action, endpoint } => match action {
            ProxyAction::Status => (endpoint, "GET", "/_emulator/proxy".to_owned(), None),
            ProxyAction::Down | ProxyAction::Up => {
                let state = if matches!(action, ProxyAction::Down) {
                    "down"
                } else {
                    "up"
                };
                let body = serde_json::json!({ "state": state }).to_string();
                (endpoint, "POST", "/_emulator/proxy".to_owned(), Some(body))
            }
        },
        Command::Agent { command, endpoint } => {
            let (path, body) = match command {
                AgentCommand::Crash {
                    instance_id,
                    restart_after,
                } => (
                    format!("/_emulator/agents/{instance_id}/crash"),
                    Some(serde_json::json!({ "restartAfterSeconds": restart_after }).to_string()),
                ),
                AgentCommand::Restart { instance_id } => {
                    (format!("/_emulator/agents/{instance_id}/restart"), None)
                }
                AgentCommand::Slowness {
                    instance_id,
                    job_ack_delay_ms,
                    command_start_delay_ms,
                } => (
                    format!("/_emulator/agents/{instance_id}/slowness"),
                    Some(
                        serde_json::json!({
                            "jobAckDelayMs": job_ack_delay_ms,
                            "commandStartDelayMs": command_start_delay_ms,
                        })
                        .to_string(),
                    ),
                ),
                AgentCommand::List => ("/_emulator/agents".to_owned(), None),
            };
            let method = if body.is_some() || path.ends_with("/restart") {
                "POST"
            } else {
                "GET"
            };
            (endpoint, method, path, body)
        }
    };
    let (status, body) = request(&endpoint.endpoint, method, &path, body.as_deref()).await?;
    let value: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| CliError::Connection {
            endpoint: endpoint.endpoint.clone(),
            message: format!("HTTP {status} with a body that is not JSON: {body}"),
        })?;
    if !(200..300).contains(&status) {
        let message = value["message"].as_str().unwrap_or(&body).to_owned();
        return Err(CliError::Refused(message));
    }
    Ok(serde_json::to_string_pretty(&value).unwrap_or(body))
}
