//! `ListCommands`: commands newest first, by `CommandId`, `InstanceId` (commands that target
//! the node) and `Filters` (`InvokedAfter`, `InvokedBefore`, `Status`, `ExecutionStage`,
//! `DocumentName`), paginated (`MaxResults` 1–50, default 50).
//!
//! Errors: `ValidationException`, `InvalidCommandId` (an id no command has),
//! `InvalidNextToken`.

use serde::{Deserialize, Serialize};

use super::command_shapes::{
    CommandFilter, CommandShape, check_command_id, check_filters, criteria, no_such_command,
};
use crate::api::error::ApiError;
use crate::api::pagination;
use crate::api::validate::{self, Violations};
use crate::model::instance::is_valid_instance_id;
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
    command_id: Option<String>,
    instance_id: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    filters: Option<Vec<CommandFilter>>,
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
        let criteria = criteria(&self.filters, &COMMAND_STATUSES)?;
        let size = validate::max_results(&mut Violations::new(), self.max_results, 1, 50, 50);
        let fingerprint = pagination::fingerprint(&[
            "ListCommands",
            &scope.account_id,
            &scope.region,
            self.command_id.as_deref().unwrap_or(""),
            self.instance_id.as_deref().unwrap_or(""),
            &serde_json::to_string(&self.filters).unwrap_or_default(),
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
            let matching: Vec<(String, CommandShape)> = region
                .commands
                .iter()
                .filter(|(_, c)| {
                    self.command_id
                        .as_ref()
                        .is_none_or(|id| &c.command_id == id)
                })
                .filter(|(_, c)| {
                    self.instance_id
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
