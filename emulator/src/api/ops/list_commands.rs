//! `ListCommands`: commands newest first, by `CommandId`, `InstanceId` (commands that target
//! the node) and `Filters` (`InvokedAfter`, `InvokedBefore`, `Status`, `ExecutionStage`,
//! `DocumentName`), paginated (`MaxResults` 1–50, default 50).
//!
//! Errors: `ValidationException`, `InvalidCommandId` (an id no command has),
//! `InvalidNextToken`.

use serde::{Deserialize, Serialize};

use super::command_shapes::{CommandQuery, CommandShape, criteria, no_such_command};
use crate::api::error::ApiError;
use crate::api::pagination;
use crate::model::{Emulator, Scope};

/// `Status` filter values of ListCommands (`CommandStatus`).
pub(crate) const COMMAND_STATUSES: [&str; 7] = [
    "Pending",
    "InProgress",
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
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    commands: Vec<CommandShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        self.query.validate()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let query = &self.query;
        let criteria = criteria(&query.filters, &COMMAND_STATUSES)?;
        let size = query.page_size();
        let (fingerprint, after) = query.resume("ListCommands", scope, "")?;
        let now = emu.now();
        emu.with_state(|state| {
            crate::run_command::pump(state, scope, now);
            let region = state.region_mut(scope);
            if let Some(id) = &query.command_id
                && region.commands.get(id).is_none()
            {
                return Err(no_such_command(id));
            }
            let matching: Vec<(String, CommandShape)> = region
                .commands
                .iter()
                .filter(|(_, c)| {
                    query
                        .command_id
                        .as_ref()
                        .is_none_or(|id| &c.command_id == id)
                })
                .filter(|(_, c)| {
                    query
                        .instance_id
                        .as_ref()
                        .is_none_or(|id| c.invocations.iter().any(|i| &i.instance_id == id))
                })
                .filter(|(_, c)| {
                    let (status, _) = c.status();
                    let done = c.counts().completed_count == c.counts().target_count;
                    criteria.iter().all(|k| k.matches(c, status, done))
                })
                .map(|(key, c)| (key.clone(), CommandShape::of(c)))
                .collect();
            let (page, next_token) =
                pagination::page(matching, |(k, _)| k, after.as_deref(), size, &fingerprint);
            Ok(Response {
                commands: page.into_iter().map(|(_, c)| c).collect(),
                next_token,
            })
        })
    }
}
