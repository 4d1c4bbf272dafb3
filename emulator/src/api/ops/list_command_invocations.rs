//! `ListCommandInvocations`: one entry per command and node, commands newest first and
//! nodes in target order, by `CommandId`, `InstanceId` and `Filters` (as ListCommands, with
//! `Status` and `ExecutionStage` judged per invocation), paginated (`MaxResults` 1–50,
//! default 50). `Details` adds `CommandPlugins`.
//!
//! Errors: `ValidationException`, `InvalidCommandId`, `InvalidNextToken`.

use serde::{Deserialize, Serialize};

use super::command_shapes::{CommandQuery, InvocationShape, criteria, no_such_command};
use crate::api::error::ApiError;
use crate::api::pagination;
use crate::model::{Emulator, Scope};

/// `Status` filter values of ListCommandInvocations.
const INVOCATION_STATUSES: [&str; 8] = [
    "Pending",
    "InProgress",
    "Delayed",
    "Success",
    "Cancelled",
    "Failed",
    "TimedOut",
    "Cancelling",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    #[serde(flatten)]
    query: CommandQuery,
    details: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    command_invocations: Vec<InvocationShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        self.query.validate()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let query = &self.query;
        let criteria = criteria(&query.filters, &INVOCATION_STATUSES)?;
        let size = query.page_size();
        let details = self.details.unwrap_or(false);
        let extra = if details { "details" } else { "" };
        let (fingerprint, after) = query.resume("ListCommandInvocations", scope, extra)?;
        let now = emu.now();
        emu.with_state(|state| {
            crate::run_command::pump(state, scope, now);
            let region = state.region_mut(scope);
            if let Some(id) = &query.command_id
                && region.commands.get(id).is_none()
            {
                return Err(no_such_command(id));
            }
            let mut matching: Vec<(String, InvocationShape)> = Vec::new();
            for (key, command) in region.commands.iter() {
                if query
                    .command_id
                    .as_ref()
                    .is_some_and(|id| &command.command_id != id)
                {
                    continue;
                }
                for (index, invocation) in command.invocations.iter().enumerate() {
                    if query
                        .instance_id
                        .as_ref()
                        .is_some_and(|id| &invocation.instance_id != id)
                    {
                        continue;
                    }
                    let done = invocation.status.is_terminal();
                    if criteria
                        .iter()
                        .all(|k| k.matches(command, invocation.status, done))
                    {
                        matching.push((
                            format!("{key}/{index:03}"),
                            InvocationShape::of(command, invocation, details),
                        ));
                    }
                }
            }
            let (page, next_token) =
                pagination::page(matching, |(k, _)| k, after.as_deref(), size, &fingerprint);
            Ok(Response {
                command_invocations: page.into_iter().map(|(_, i)| i).collect(),
                next_token,
            })
        })
    }
}
