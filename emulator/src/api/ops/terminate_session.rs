//! `TerminateSession`: ends a session. The agent gets `channel_closed` on its control channel
//! (it then kills the session and reports `agent_task_complete`), the client gets
//! `channel_closed` on the data channel, both data sockets close, and the session is
//! `Terminated` (end reason `TerminateSession`). Idempotent: an ended or unknown session is answered the same way (the model
//! has no not-found error for it).

use serde::{Deserialize, Serialize};

use super::session_shapes::check_session_id;
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::{Emulator, Scope};
use crate::sessions::EndReason;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    session_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    session_id: String,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        check_session_id(&mut v, &self.session_id);
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Response {
        let id = self.session_id.unwrap_or_default();
        let now = emu.now();
        emu.with_state(|state| {
            let ours = state.sessions.get(&id).is_some_and(|s| &s.scope == scope);
            if ours {
                state.end_session_for(&id, now, EndReason::TerminateSession, "");
            }
        });
        Response { session_id: id }
    }
}
