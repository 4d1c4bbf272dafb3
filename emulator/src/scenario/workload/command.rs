//! `send-command`: AWS-RunShellScript on one instance, then GetCommandInvocation every
//! [`POLL_PERIOD`] until a final status, as `aws ssm send-command` followed by a waiter does.
//!
//! Facts: `status` (the final one, or the last seen), `statuses` (every distinct status in the
//! order seen, e.g. `"InProgress, Success"`), `output`, `error-output`, `response-code`,
//! `seconds`; `error` when SendCommand itself failed or no final status came in time.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Context, Outcome};
use crate::scenario::file::{SendCommandSpec, show_duration};
use crate::scenario::limits::POLL_PERIOD;

/// The statuses after which an invocation no longer changes.
const FINAL: &[&str] = &[
    "Success",
    "Failed",
    "Cancelled",
    "TimedOut",
    "DeliveryTimedOut",
    "ExecutionTimedOut",
    "Undeliverable",
    "Terminated",
    "InvalidPlatform",
    "AccessDenied",
];

/// Runs the command and waits for its end.
pub async fn run(ctx: &Context, spec: &SendCommandSpec) -> Outcome {
    let mut out = Outcome::default();
    let mut parameters = json!({ "commands": spec.commands });
    if let Some(timeout) = spec.execution_timeout {
        parameters["executionTimeout"] = json!([timeout.to_string()]);
    }
    let request = json!({
        "InstanceIds": [spec.instance],
        "DocumentName": "AWS-RunShellScript",
        "Parameters": parameters,
    });
    let sent = Instant::now();
    let command_id = match ctx
        .client
        .call("SendCommand", &request)
        .await
        .and_then(|a| a.ok())
    {
        Ok(body) => body["Command"]["CommandId"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Err(e) => {
            out.fact("status", "SendCommandFailed");
            out.error(format!("SendCommand: {e}"));
            return out;
        }
    };
    out.line(format!(
        "{} SendCommand {command_id} to {}",
        super::since(ctx.start),
        spec.instance
    ));
    let read = json!({ "CommandId": command_id, "InstanceId": spec.instance });
    let mut statuses: Vec<String> = Vec::new();
    let mut last = Value::Null;
    let deadline = sent + spec.wait;
    loop {
        if let Ok(answer) = ctx.client.call("GetCommandInvocation", &read).await
            && let Ok(body) = answer.ok()
        {
            let status = body["Status"].as_str().unwrap_or_default().to_owned();
            if statuses.last() != Some(&status) {
                out.line(format!("{} status {status}", super::since(ctx.start)));
                statuses.push(status.clone());
            }
            last = body;
            if FINAL.contains(&status.as_str()) {
                break;
            }
        }
        if Instant::now() >= deadline {
            out.error(format!(
                "no final status within {}",
                show_duration(spec.wait)
            ));
            break;
        }
        tokio::time::sleep(POLL_PERIOD).await;
    }
    let text = |key: &str| last[key].as_str().unwrap_or_default().to_owned();
    out.fact("status", text("Status"));
    out.fact("statuses", statuses.join(", "));
    out.fact("output", text("StandardOutputContent"));
    out.fact("error-output", text("StandardErrorContent"));
    out.fact(
        "response-code",
        last["ResponseCode"].as_i64().unwrap_or(-1) as f64,
    );
    out.fact("seconds", sent.elapsed().as_secs_f64());
    out
}
