//! `CancelCommand`: stops a command on all its nodes, or on `InstanceIds`.
//!
//! Invocations not delivered yet end `Cancelled` at once. Delivered ones turn `Cancelling`
//! and the agent gets a cancel `agent_job` (`{"CancelMessageId":"aws.ssm.<cmd>.<node>"}`,
//! Topic `aws.ssm.cancelCommand`); its `Cancelled` reply ends them. Errors:
//! `ValidationException`, `InvalidCommandId`, `InvalidInstanceId` (a node the command did not
//! target), `DuplicateInstanceId`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::command_shapes::{check_command_id, no_such_command};
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::command::{Delivery, Status};
use crate::model::instance::is_valid_instance_id;
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    command_id: Option<String>,
    instance_ids: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Response {}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(id) = v.required("commandId", &self.command_id) {
            check_command_id(&mut v, "commandId", id);
        }
        if let Some(ids) = &self.instance_ids {
            v.count("instanceIds", ids, 0, 50);
            for (i, id) in ids.iter().enumerate() {
                v.pattern(
                    &format!("instanceIds.{}.member", i + 1),
                    id,
                    is_valid_instance_id(id),
                    "(^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)",
                );
            }
        }
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let now = emu.now();
        let command_id = self.command_id.unwrap_or_default();
        let ids = self.instance_ids.unwrap_or_default();
        let mut seen = HashSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(ApiError::DuplicateInstanceId(format!(
                "Instance Id {dup} is specified more than once"
            )));
        }
        emu.with_state(|state| {
            crate::run_command::pump(state, scope, now);
            let command = state
                .region_mut(scope)
                .commands
                .get_mut(&command_id)
                .ok_or_else(|| no_such_command(&command_id))?;
            if let Some(id) = ids.iter().find(|id| command.invocation_mut(id).is_none()) {
                return Err(ApiError::InvalidInstanceId(format!(
                    "Instance {id} is not a target of command {command_id}"
                )));
            }
            for invocation in &mut command.invocations {
                if (!ids.is_empty() && !ids.contains(&invocation.instance_id))
                    || invocation.status.is_terminal()
                {
                    continue;
                }
                if invocation.delivery == Delivery::NotSent {
                    invocation.set(Status::Cancelled, "Cancelled");
                } else {
                    invocation.set(Status::Cancelling, "Cancelling");
                    invocation.cancel_requested = true;
                }
            }
            if ids.is_empty()
                || command
                    .invocations
                    .iter()
                    .all(|i| ids.contains(&i.instance_id))
            {
                command.cancelled = true;
            }
            crate::run_command::pump(state, scope, now);
            Ok(Response {})
        })
    }
}
