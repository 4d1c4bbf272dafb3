//! `ListCommandInvocations`: one entry per command and node, commands newest first and
//! nodes in target order, by `CommandId`, `InstanceId` and `Filters` (as ListCommands, with
//! `Status` and `ExecutionStage` judged per invocation), paginated (`MaxResults` 1–50,
//! default 50). `Details` adds `CommandPlugins`.
//!
//! Errors: `ValidationException`, `InvalidCommandId`, `InvalidNextToken`.

use serde::{Deserialize, Serialize};

use super::command_shapes::{
    CommandFilter, InvocationShape, check_command_id, check_filters, criteria, no_such_command,
};
use crate::api::error::ApiError;
use crate::api::pagination;
use crate::api::validate::{self, Violations};
use crate::model::instance::is_valid_instance_id;
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
    command_id: Option<String>,
    instance_id: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    filters: Option<Vec<CommandFilter>>,
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

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let criteria = criteria(&self.filters, &INVOCATION_STATUSES)?;
        let size = validate::max_results(&mut Violations::new(), self.max_results, 1, 50, 50);
        let details = self.details.unwrap_or(false);
        let fingerprint = pagination::fingerprint(&[
            "ListCommandInvocations",
            &scope.account_id,
            &scope.region,
            self.command_id.as_deref().unwrap_or(""),
            self.instance_id.as_deref().unwrap_or(""),
            &serde_json::to_string(&self.filters).unwrap_or_default(),
            if details { "details" } else { "" },
        ]);
        let after = match &self.next_token {
            Some(token) => Some(pagination::decode(token, &fingerprint)?),
            None => None,
        };
        let now = emu.now();
        emu.with_state(|state| {
            crate::run_command::pump(state, scope, now);
            let region = state.region_mut(scope);
            if let Some(id) = &self.command_id
                && region.commands.get(id).is_none()
            {
                return Err(no_such_command(id));
            }
            let mut matching: Vec<(String, InvocationShape)> = Vec::new();
            for (key, command) in region.commands.iter() {
                if self
                    .command_id
                    .as_ref()
                    .is_some_and(|id| &command.command_id != id)
                {
                    continue;
                }
                for (index, invocation) in command.invocations.iter().enumerate() {
                    if self
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
