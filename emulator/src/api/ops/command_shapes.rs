//! Shapes and checks shared by the Run Command operations: `Command`, `CommandInvocation`,
//! `CommandPlugin`, the `CommandFilter` list of ListCommands and ListCommandInvocations, and
//! the CommandId checks.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::error::ApiError;
use crate::api::pagination;
use crate::api::validate::{self, Violations};
use crate::clock::epoch_seconds;
use crate::model::Scope;
use crate::model::command::{Command, Invocation, Plugin, Status};
use crate::model::instance::is_valid_instance_id;

/// `Command` (spec §10), as SendCommand and ListCommands return it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CommandShape {
    command_id: String,
    document_name: String,
    document_version: String,
    comment: String,
    expires_after: f64,
    parameters: BTreeMap<String, Vec<String>>,
    instance_ids: Vec<String>,
    targets: Vec<TargetShape>,
    requested_date_time: f64,
    status: &'static str,
    status_details: &'static str,
    output_s3_region: String,
    output_s3_bucket_name: String,
    output_s3_key_prefix: String,
    max_concurrency: String,
    max_errors: String,
    target_count: usize,
    completed_count: usize,
    error_count: usize,
    delivery_timed_out_count: usize,
    service_role: String,
    notification_config: Value,
    cloud_watch_output_config: Value,
    timeout_seconds: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    alarm_configuration: Option<Value>,
}

/// `Target`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetShape {
    pub(crate) key: Option<String>,
    pub(crate) values: Option<Vec<String>>,
}

fn notification_config(given: Option<&Value>) -> Value {
    given.cloned().unwrap_or_else(
        || json!({"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""}),
    )
}

fn cloud_watch_output_config(given: Option<&Value>) -> Value {
    given
        .cloned()
        .unwrap_or_else(|| json!({"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false}))
}

impl CommandShape {
    pub(crate) fn of(command: &Command) -> CommandShape {
        let (status, status_details) = command.status();
        let counts = command.counts();
        CommandShape {
            command_id: command.command_id.clone(),
            document_name: command.document_name.clone(),
            document_version: command.document_version.clone(),
            comment: command.comment.clone(),
            expires_after: epoch_seconds(command.expires_after),
            parameters: command.parameters.clone(),
            instance_ids: command.instance_ids.clone(),
            targets: command
                .targets
                .iter()
                .map(|t| TargetShape {
                    key: Some(t.key.clone()),
                    values: Some(t.values.clone()),
                })
                .collect(),
            requested_date_time: epoch_seconds(command.requested),
            status: status.as_str(),
            status_details,
            output_s3_region: command.output_s3_region.clone(),
            output_s3_bucket_name: command.output_s3_bucket_name.clone(),
            output_s3_key_prefix: command.output_s3_key_prefix.clone(),
            max_concurrency: command.max_concurrency.clone(),
            max_errors: command.max_errors.clone(),
            target_count: counts.target_count,
            completed_count: counts.completed_count,
            error_count: counts.error_count,
            delivery_timed_out_count: counts.delivery_timed_out_count,
            service_role: command.service_role.clone(),
            notification_config: notification_config(command.notification_config.as_ref()),
            cloud_watch_output_config: cloud_watch_output_config(
                command.cloud_watch_output_config.as_ref(),
            ),
            timeout_seconds: command.timeout_seconds,
            alarm_configuration: command.alarm_configuration.clone(),
        }
    }
}

/// `CommandInvocation`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct InvocationShape {
    command_id: String,
    instance_id: String,
    instance_name: String,
    comment: String,
    document_name: String,
    document_version: String,
    requested_date_time: f64,
    status: &'static str,
    status_details: &'static str,
    trace_output: String,
    standard_output_url: String,
    standard_error_url: String,
    command_plugins: Vec<PluginShape>,
    service_role: String,
    notification_config: Value,
    cloud_watch_output_config: Value,
}

/// `CommandPlugin`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PluginShape {
    name: String,
    status: &'static str,
    status_details: &'static str,
    response_code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_start_date_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_finish_date_time: Option<f64>,
    output: String,
    standard_output_url: String,
    standard_error_url: String,
    output_s3_region: String,
    output_s3_bucket_name: String,
    output_s3_key_prefix: String,
}

impl InvocationShape {
    pub(crate) fn of(command: &Command, invocation: &Invocation, details: bool) -> InvocationShape {
        InvocationShape {
            command_id: command.command_id.clone(),
            instance_id: invocation.instance_id.clone(),
            instance_name: invocation.instance_name.clone(),
            comment: command.comment.clone(),
            document_name: command.document_name.clone(),
            document_version: command.document_version.clone(),
            requested_date_time: epoch_seconds(command.requested),
            status: invocation.status.as_str(),
            status_details: invocation.status_details,
            trace_output: String::new(),
            standard_output_url: String::new(),
            standard_error_url: String::new(),
            command_plugins: if details {
                invocation
                    .plugins
                    .iter()
                    .map(|p| plugin_shape(command, p))
                    .collect()
            } else {
                Vec::new()
            },
            service_role: command.service_role.clone(),
            notification_config: notification_config(command.notification_config.as_ref()),
            cloud_watch_output_config: cloud_watch_output_config(
                command.cloud_watch_output_config.as_ref(),
            ),
        }
    }
}

fn plugin_shape(command: &Command, plugin: &Plugin) -> PluginShape {
    PluginShape {
        name: plugin.name.clone(),
        status: plugin_status(plugin.status),
        status_details: plugin.status_details,
        response_code: plugin.response_code,
        response_start_date_time: parse_iso8601(&plugin.start).map(epoch_seconds),
        response_finish_date_time: parse_iso8601(&plugin.end).map(epoch_seconds),
        output: plugin.output.clone(),
        standard_output_url: String::new(),
        standard_error_url: String::new(),
        output_s3_region: command.output_s3_region.clone(),
        output_s3_bucket_name: command.output_s3_bucket_name.clone(),
        output_s3_key_prefix: command.output_s3_key_prefix.clone(),
    }
}

/// `CommandPluginStatus` has no `Delayed` or `Cancelling`.
pub(crate) fn plugin_status(status: Status) -> &'static str {
    match status {
        Status::Delayed => "Pending",
        Status::Cancelling => "InProgress",
        other => other.as_str(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (what the agent writes, and what filters take) as a time.
pub(crate) fn parse_iso8601(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let millis: u64 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        digits.parse().ok()?
    };
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + h * 3600 + min * 60 + sec).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
}

/// `CommandFilter` (`{key, value}`, lower-case members).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct CommandFilter {
    key: Option<String>,
    value: Option<String>,
}

/// One parsed filter.
#[derive(Debug)]
pub(crate) enum Criterion {
    InvokedAfter(SystemTime),
    InvokedBefore(SystemTime),
    Status(String),
    /// `Executing` (true) or `Complete` (false).
    Executing(bool),
    DocumentName(String),
}

const FILTER_KEYS: [&str; 5] = [
    "InvokedAfter",
    "InvokedBefore",
    "Status",
    "ExecutionStage",
    "DocumentName",
];

/// Checks the model constraints of a filter list.
pub(crate) fn check_filters(v: &mut Violations, filters: &Option<Vec<CommandFilter>>) {
    let Some(filters) = filters else { return };
    let keys: Vec<&str> = filters
        .iter()
        .map(|f| f.key.as_deref().unwrap_or(""))
        .collect();
    v.count("filters", &keys, 1, 5);
    for (i, f) in filters.iter().enumerate() {
        let base = format!("filters.{}.member", i + 1);
        if let Some(key) = v.required(&format!("{base}.key"), &f.key) {
            v.one_of(&format!("{base}.key"), key, &FILTER_KEYS);
        }
        if let Some(value) = v.required(&format!("{base}.value"), &f.value) {
            v.length(&format!("{base}.value"), value, 1, 128);
        }
    }
}

/// Parses validated filters; a value that does not fit its key is a `ValidationException`.
pub(crate) fn criteria(
    filters: &Option<Vec<CommandFilter>>,
    statuses: &[&str],
) -> Result<Vec<Criterion>, ApiError> {
    let mut out = Vec::new();
    for f in filters.iter().flatten() {
        let (key, value) = (
            f.key.as_deref().unwrap_or_default(),
            f.value.clone().unwrap_or_default(),
        );
        let bad = || {
            ApiError::Validation(format!(
                "1 validation error detected: Value '{value}' is not valid for filter key {key}"
            ))
        };
        out.push(match key {
            "InvokedAfter" => Criterion::InvokedAfter(parse_iso8601(&value).ok_or_else(bad)?),
            "InvokedBefore" => Criterion::InvokedBefore(parse_iso8601(&value).ok_or_else(bad)?),
            "Status" if statuses.contains(&value.as_str()) => Criterion::Status(value),
            "ExecutionStage" if value == "Executing" => Criterion::Executing(true),
            "ExecutionStage" if value == "Complete" => Criterion::Executing(false),
            "DocumentName" => Criterion::DocumentName(value),
            _ => return Err(bad()),
        });
    }
    Ok(out)
}

impl Criterion {
    /// Whether a command, or one of its invocations, passes: `status`/`done` are of the item
    /// listed.
    pub(crate) fn matches(&self, command: &Command, status: Status, done: bool) -> bool {
        match self {
            Criterion::InvokedAfter(t) => command.requested >= *t,
            Criterion::InvokedBefore(t) => command.requested <= *t,
            Criterion::Status(s) => status.as_str() == s,
            Criterion::Executing(executing) => *executing != done,
            Criterion::DocumentName(name) => &command.document_name == name,
        }
    }
}

/// The request members ListCommands and ListCommandInvocations share, with their checks and
/// the start of the page they ask for. Each request embeds it with `#[serde(flatten)]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CommandQuery {
    pub(crate) command_id: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) max_results: Option<i64>,
    pub(crate) next_token: Option<String>,
    pub(crate) filters: Option<Vec<CommandFilter>>,
}

impl CommandQuery {
    /// The model's constraints on the shared members.
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(id) = &self.command_id {
            check_command_id(&mut v, "commandId", id);
        }
        if let Some(id) = &self.instance_id {
            v.pattern(
                "instanceId",
                id,
                is_valid_instance_id(id),
                "(^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)",
            );
        }
        validate::max_results(&mut v, self.max_results, 1, 50, 50);
        check_filters(&mut v, &self.filters);
        v.finish()
    }

    /// The page size (`MaxResults` 1–50, default 50).
    pub(crate) fn page_size(&self) -> usize {
        validate::max_results(&mut Violations::new(), self.max_results, 1, 50, 50)
    }

    /// The fingerprint of this query for `operation` in `scope` (plus `extra`, for members
    /// only one operation has), and the key the `NextToken` resumes after.
    pub(crate) fn resume(
        &self,
        operation: &str,
        scope: &Scope,
        extra: &str,
    ) -> Result<(String, Option<String>), ApiError> {
        let fingerprint = pagination::fingerprint(&[
            operation,
            &scope.account_id,
            &scope.region,
            self.command_id.as_deref().unwrap_or(""),
            self.instance_id.as_deref().unwrap_or(""),
            &serde_json::to_string(&self.filters).unwrap_or_default(),
            extra,
        ]);
        let after = match &self.next_token {
            Some(token) => Some(pagination::decode(token, &fingerprint)?),
            None => None,
        };
        Ok((fingerprint, after))
    }
}

/// A CommandId is exactly 36 characters.
pub(crate) fn check_command_id(v: &mut Violations, path: &str, id: &str) {
    v.length(path, id, 36, 36);
}

/// The error for a CommandId that names no command.
pub(crate) fn no_such_command(_id: &str) -> ApiError {
    ApiError::InvalidCommandId(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_agents_timestamps() {
        let t = parse_iso8601("2026-11-22T22:43:38.001Z").unwrap();
        assert_eq!(epoch_seconds(t), 1_795_387_418.001);
        let t = parse_iso8601("2024-02-29T23:59:59Z").unwrap();
        assert_eq!(epoch_seconds(t), 1_709_251_199.0);
        assert_eq!(parse_iso8601("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso8601("yesterday"), None);
    }
}
