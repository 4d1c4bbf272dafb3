//! `GetCommandInvocation`: one invocation's result, for one plugin (`PluginName`, required
//! when the document has several) or the only one.
//!
//! Errors: `ValidationException`, `InvocationDoesNotExist` (no such command, or it did not
//! target that node), `InvalidPluginName`. `ExecutionStartDateTime`, `ExecutionEndDateTime`
//! are the agent's ISO 8601 times (empty until the plugin ran) and `ExecutionElapsedTime` is
//! `PT<seconds>.<millis>S`; `ResponseCode` is -1 until the plugin ran.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::command_shapes::{check_command_id, parse_iso8601};
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::instance::is_valid_instance_id;
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    command_id: Option<String>,
    instance_id: Option<String>,
    plugin_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    command_id: String,
    instance_id: String,
    comment: String,
    document_name: String,
    document_version: String,
    plugin_name: String,
    response_code: i64,
    execution_start_date_time: String,
    execution_elapsed_time: String,
    execution_end_date_time: String,
    status: &'static str,
    status_details: &'static str,
    standard_output_content: String,
    standard_output_url: String,
    standard_error_content: String,
    standard_error_url: String,
    cloud_watch_output_config: Value,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(id) = v.required("commandId", &self.command_id) {
            check_command_id(&mut v, "commandId", id);
        }
        if let Some(id) = v.required("instanceId", &self.instance_id) {
            v.pattern(
                "instanceId",
                id,
                is_valid_instance_id(id),
                "(^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)",
            );
        }
        if let Some(name) = &self.plugin_name {
            v.length("pluginName", name, 4, usize::MAX);
        }
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let now = emu.now();
        let command_id = self.command_id.unwrap_or_default();
        let instance_id = self.instance_id.unwrap_or_default();
        emu.with_state(|state| {
            crate::run_command::pump(state, scope, now);
            let missing = || ApiError::InvocationDoesNotExist(String::new());
            let region = state.region(scope).ok_or_else(missing)?;
            let command = region.commands.get(&command_id).ok_or_else(missing)?;
            let invocation = command
                .invocations
                .iter()
                .find(|i| i.instance_id == instance_id)
                .ok_or_else(missing)?;
            let plugin = match &self.plugin_name {
                Some(name) => invocation
                    .plugins
                    .iter()
                    .find(|p| &p.name == name)
                    .ok_or_else(|| ApiError::InvalidPluginName(String::new()))?,
                None if invocation.plugins.len() == 1 => &invocation.plugins[0],
                None => return Err(ApiError::InvalidPluginName(String::new())),
            };
            let elapsed = match (parse_iso8601(&plugin.start), parse_iso8601(&plugin.end)) {
                (Some(start), Some(end)) if !plugin.end.is_empty() => {
                    let ms = end.duration_since(start).unwrap_or_default().as_millis();
                    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
                }
                _ => String::new(),
            };
            Ok(Response {
                command_id: command.command_id.clone(),
                instance_id: invocation.instance_id.clone(),
                comment: command.comment.clone(),
                document_name: command.document_name.clone(),
                document_version: command.document_version.clone(),
                plugin_name: plugin.name.clone(),
                response_code: plugin.response_code,
                execution_start_date_time: plugin.start.clone(),
                execution_elapsed_time: elapsed,
                execution_end_date_time: plugin.end.clone(),
                // The invocation's status when the document has one plugin, the plugin's
                // otherwise.
                status: if invocation.plugins.len() == 1 {
                    invocation.status.as_str()
                } else {
                    plugin.status.as_str()
                },
                status_details: if invocation.plugins.len() == 1 {
                    invocation.status_details
                } else {
                    plugin.status_details
                },
                standard_output_content: plugin.standard_output.clone(),
                standard_output_url: String::new(),
                standard_error_content: plugin.standard_error.clone(),
                standard_error_url: String::new(),
                cloud_watch_output_config: command
                    .cloud_watch_output_config
                    .clone()
                    .unwrap_or_else(
                        || json!({"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false}),
                    ),
            })
        })
    }
}
