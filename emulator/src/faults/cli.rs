//! The `ssm-emulator fault|seed|reset` subcommands: clients of the admin API of a running
//! emulator (`--endpoint`, default `http://127.0.0.1:4583`).
//!
//! The HTTP client is a few lines of HTTP/1.1 over a loopback `TcpStream` (one request per
//! connection, `Connection: close`, the answer read to EOF): the admin API answers with small
//! JSON bodies of known length, and this keeps the binary free of another client stack.

use std::fmt;

use clap::{Args, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::rules::{
    ApiFaultError, ApiRule, Corruption, DirectionSpec, EndSpec, FaultRule, RelayAction, RelayRule,
};

/// The emulator's address, as AWS clients take it.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4583";

/// The subcommands that drive a running emulator.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, list, remove or clear fault rules of a running emulator.
    ///
    /// Faults are off until a rule is added. Every random decision comes from one RNG seeded
    /// by --seed (or `ssm-emulator seed N`): the same seed and traffic give the same faults.
    Fault {
        /// What to do.
        #[command(subcommand)]
        command: FaultCommand,
        /// Where the emulator is.
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Reseed the random generators of ids, tokens and faults of a running emulator.
    Seed {
        /// The seed.
        seed: u64,
        /// Where the emulator is.
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Clear faults, sessions, commands and the account's own documents of a running
    /// emulator; instances and the seed stay.
    Reset {
        /// Where the emulator is.
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

/// `--endpoint`.
#[derive(Debug, Args)]
pub struct Endpoint {
    /// The running emulator (http://HOST:PORT).
    #[arg(long, global = true, value_name = "URL", default_value = DEFAULT_ENDPOINT, env = "SSM_EMULATOR_ENDPOINT")]
    pub(crate) endpoint: String,
}

/// `ssm-emulator fault …`.
#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Add a fault rule; prints its id.
    ///
    /// Relay faults (--relay) act on the frames of session data channels:
    ///   drop[=P]  duplicate[=P]  reorder[=P],window=N  delay=MS[,jitter=MS]
    ///   bandwidth=BYTES_PER_SEC  corrupt=digest|header[,probability=P]  blackhole
    ///   close[=CODE][,reason=TEXT][,end=client|agent]  pause-publication  start-publication
    /// with, optionally, direction=client-to-agent|agent-to-client, and for close and the
    /// publication frames one trigger: after-frames=N, after-bytes=N or after-ms=MS (none:
    /// at once). P is a probability from 0 to 1 (default 1).
    ///
    /// API faults (--api) answer SSM API requests with an error: ThrottlingException,
    /// InternalServerError, or InvocationDoesNotExist (GetCommandInvocation, with
    /// --first-reads); --latency-ms delays the answers.
    ///
    /// Examples:
    ///   ssm-emulator fault add --relay drop=0.01,direction=agent-to-client --session ID
    ///   ssm-emulator fault add --relay close=1000,reason=Bye,after-frames=50
    ///   ssm-emulator fault add --api ThrottlingException --operation SendCommand --rate 0.5
    ///   ssm-emulator fault add --api InvocationDoesNotExist --operation GetCommandInvocation --first-reads 2
    ///   ssm-emulator fault add --json '{"relay": {"action": {"blackhole": {}}}}'
    #[command(verbatim_doc_comment)]
    Add(AddArgs),
    /// List the rules in force with their counters, the totals and the seed (JSON).
    List,
    /// Remove one rule.
    Rm {
        /// The rule's id (f-1, f-2, …; see `fault list`).
        id: String,
    },
    /// Remove every rule.
    Clear,
}

/// `ssm-emulator fault add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// A relay fault: ACTION[=VALUE],KEY=VALUE,… (see above).
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["api", "json", "latency_ms", "operation"])]
    relay: Option<String>,
    /// Only this session (relay faults).
    #[arg(long, value_name = "SESSION_ID", requires = "relay")]
    session: Option<String>,
    /// Only the sessions of this instance (relay faults).
    #[arg(
        long,
        value_name = "INSTANCE_ID",
        requires = "relay",
        conflicts_with = "session"
    )]
    instance: Option<String>,
    /// An API error: ThrottlingException, InternalServerError or InvocationDoesNotExist.
    #[arg(long, value_name = "ERROR", conflicts_with = "json")]
    api: Option<String>,
    /// The SSM operation (e.g. SendCommand); every operation if absent.
    #[arg(long, value_name = "NAME")]
    operation: Option<String>,
    /// Chance per request of the API error, 0 to 1.
    #[arg(long, value_name = "P", default_value_t = 1.0, requires = "api")]
    rate: f64,
    /// InvocationDoesNotExist: how many reads of each CommandId fail.
    #[arg(long, value_name = "N", requires = "api")]
    first_reads: Option<u32>,
    /// Milliseconds added to the answers of the operation.
    #[arg(long, value_name = "MS", conflicts_with = "json")]
    latency_ms: Option<u64>,
    /// A whole rule as JSON, as `POST /_emulator/faults` takes it.
    #[arg(long, value_name = "RULE")]
    json: Option<String>,
}

/// A CLI failure, printed as `ssm-emulator: <it>`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments do not make a rule.
    #[error("{0}")]
    Usage(String),
    /// The emulator could not be reached or answered nonsense.
    #[error("{endpoint}: {message}")]
    Connection {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// The emulator refused the request.
    #[error("the emulator refused: {0}")]
    Refused(String),
}

/// Runs `command`; returns what to print.
pub async fn run(command: Command) -> Result<String, CliError> {
    let (endpoint, method, path, body) = match command {
        Command::Fault { command, endpoint } => {
            let (method, path, body) = match command {
                FaultCommand::Add(args) => {
                    let rule = rule_of(args)?;
                    let body =
                        serde_json::to_string(&rule).map_err(|e| CliError::Usage(e.to_string()))?;
                    ("POST", "/_emulator/faults".to_owned(), Some(body))
                }
                FaultCommand::List => ("GET", "/_emulator/faults".to_owned(), None),
                FaultCommand::Rm { id } => ("DELETE", format!("/_emulator/faults/{id}"), None),
                FaultCommand::Clear => ("DELETE", "/_emulator/faults".to_owned(), None),
            };
            (endpoint, method, path, body)
        }
        Command::Seed { seed, endpoint } => (
            endpoint,
            "POST",
            "/_emulator/seed".to_owned(),
            Some(format!("{{\"seed\":{seed}}}")),
        ),
        Command::Reset { endpoint } => (endpoint, "POST", "/_emulator/reset".to_owned(), None),
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
    Ok(match value.get("id").and_then(|id| id.as_str()) {
        Some(id) => id.to_owned(),
        None if value.as_object().is_some_and(|o| o.is_empty()) => "ok".to_owned(),
        None => serde_json::to_string_pretty(&value).unwrap_or(body),
    })
}

/// The rule `fault add` means.
fn rule_of(args: AddArgs) -> Result<FaultRule, CliError> {
    if let Some(json) = &args.json {
        return serde_json::from_str(json)
            .map_err(|e| CliError::Usage(format!("--json is not a fault rule: {e}")));
    }
    if let Some(spec) = &args.relay {
        let mut rule = relay_rule(spec)?;
        rule.session_id = args.session;
        rule.instance_id = args.instance;
        return Ok(FaultRule::Relay(rule));
    }
    if args.api.is_none() && args.latency_ms.is_none() {
        return Err(usage(
            "fault add needs --relay SPEC, --api ERROR, --latency-ms MS or --json RULE",
        ));
    }
    let error = args
        .api
        .as_deref()
        .map(|name| match name {
            "ThrottlingException" => Ok(ApiFaultError::ThrottlingException),
            "InternalServerError" => Ok(ApiFaultError::InternalServerError),
            "InvocationDoesNotExist" => Ok(ApiFaultError::InvocationDoesNotExist),
            other => Err(CliError::Usage(format!(
                "--api {other}: use ThrottlingException, InternalServerError or \
                 InvocationDoesNotExist"
            ))),
        })
        .transpose()?;
    Ok(FaultRule::Api(ApiRule {
        operation: args.operation,
        error,
        rate: args.rate,
        first_reads: args.first_reads,
        latency_ms: args.latency_ms,
    }))
}

/// Reads `ACTION[=VALUE],KEY=VALUE,…`.
fn relay_rule(spec: &str) -> Result<RelayRule, CliError> {
    let mut items = spec.split(',').map(|item| match item.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim())),
        None => (item.trim(), None),
    });
    let (action, value) = items
        .next()
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| usage("--relay needs an action, e.g. drop=0.01"))?;
    let options: Vec<(&str, Option<&str>)> = items.collect();
    let option = |name: &str| -> Option<&str> {
        options
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| *v)
    };
    for (key, _) in &options {
        const KNOWN: [&str; 10] = [
            "direction",
            "after-frames",
            "after-bytes",
            "after-ms",
            "probability",
            "window",
            "jitter",
            "reason",
            "end",
            "code",
        ];
        if !KNOWN.contains(key) {
            return Err(usage(format!(
                "--relay: unknown option {key:?}; known: {}",
                KNOWN.join(", ")
            )));
        }
    }
    let probability = || number(value.or(option("probability")), "probability", 1.0);
    let action = match action {
        "drop" => RelayAction::Drop {
            probability: probability()?,
        },
        "duplicate" => RelayAction::Duplicate {
            probability: probability()?,
        },
        "reorder" => RelayAction::Reorder {
            probability: probability()?,
            window: option("window")
                .ok_or_else(|| usage("reorder needs window=N (frames)"))?
                .parse()
                .map_err(|_| usage("window must be a whole number of frames"))?,
        },
        "delay" => RelayAction::Delay {
            ms: number(value, "delay (milliseconds)", f64::NAN)? as u64,
            jitter_ms: number(option("jitter"), "jitter", 0.0)? as u64,
        },
        "bandwidth" => RelayAction::Bandwidth {
            bytes_per_second: number(value, "bandwidth (bytes per second)", f64::NAN)? as u64,
        },
        "corrupt" => RelayAction::Corrupt {
            what: match value {
                Some("digest") => Corruption::Digest,
                Some("header") => Corruption::Header,
                _ => return Err(usage("corrupt=digest or corrupt=header")),
            },
            probability: number(option("probability"), "probability", 1.0)?,
        },
        "blackhole" => RelayAction::Blackhole {},
        "close" => RelayAction::Close {
            end: match option("end") {
                None | Some("client") => EndSpec::Client,
                Some("agent") => EndSpec::Agent,
                Some(other) => return Err(usage(format!("end={other}: use client or agent"))),
            },
            code: number(value.or(option("code")), "close code", 1000.0)? as u16,
            reason: option("reason").unwrap_or("Bye").to_owned(),
        },
        "pause-publication" => RelayAction::PausePublication {},
        "start-publication" => RelayAction::StartPublication {},
        other => {
            return Err(usage(format!(
                "--relay: unknown action {other:?}; use drop, duplicate, reorder, delay, \
                 bandwidth, corrupt, blackhole, close, pause-publication or start-publication"
            )));
        }
    };
    let whole = |name: &str| -> Result<Option<u64>, CliError> {
        option(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| usage(format!("{name} must be a whole number, got {v:?}")))
            })
            .transpose()
    };
    Ok(RelayRule {
        action,
        session_id: None,
        instance_id: None,
        direction: match option("direction") {
            None => None,
            Some("client-to-agent") => Some(DirectionSpec::ClientToAgent),
            Some("agent-to-client") => Some(DirectionSpec::AgentToClient),
            Some(other) => {
                return Err(usage(format!(
                    "direction={other}: use client-to-agent or agent-to-client"
                )));
            }
        },
        after_frames: whole("after-frames")?,
        after_bytes: whole("after-bytes")?,
        after_ms: whole("after-ms")?,
    })
}

fn usage(message: impl fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

/// `value` as a number; `default` if absent (a NaN default means required).
fn number(value: Option<&str>, name: &str, default: f64) -> Result<f64, CliError> {
    match value {
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| usage(format!("{name} must be a number ≥ 0, got {v:?}"))),
        None if default.is_nan() => Err(usage(format!("{name} needs a value, e.g. delay=100"))),
        None => Ok(default),
    }
}

/// One HTTP/1.1 request to `endpoint`; the status and the body.
pub(crate) async fn request(
    endpoint: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), CliError> {
    let failed = |message: String| CliError::Connection {
        endpoint: endpoint.to_owned(),
        message,
    };
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| {
            failed("only http:// endpoints are supported (the admin API is plain HTTP)".to_owned())
        })?
        .trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| {
            failed(format!(
                "cannot connect ({e}); is ssm-emulator running there?"
            ))
        })?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| failed(format!("cannot send the request: {e}")))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| failed(format!("cannot read the answer: {e}")))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| failed("the answer is not HTTP".to_owned()))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| failed(format!("the answer is not HTTP: {head}")))?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_specs_read_as_the_help_says() {
        let rule = relay_rule("drop=0.01,direction=agent-to-client").unwrap();
        assert_eq!(rule.action, RelayAction::Drop { probability: 0.01 });
        assert_eq!(rule.direction, Some(DirectionSpec::AgentToClient));
        let rule = relay_rule("close=4000,reason=gone,end=agent,after-frames=5").unwrap();
        assert_eq!(
            rule.action,
            RelayAction::Close {
                end: EndSpec::Agent,
                code: 4000,
                reason: "gone".into()
            }
        );
        assert_eq!(rule.after_frames, Some(5));
        assert_eq!(
            relay_rule("delay=100,jitter=20").unwrap().action,
            RelayAction::Delay {
                ms: 100,
                jitter_ms: 20
            }
        );
        assert_eq!(
            relay_rule("blackhole").unwrap().action,
            RelayAction::Blackhole {}
        );
        for bad in [
            "",
            "dorp",
            "delay",
            "reorder",
            "drop=x",
            "drop,colour=red",
            "corrupt",
        ] {
            assert!(relay_rule(bad).is_err(), "{bad} was accepted");
        }
    }
}
