//! `ResumeSession`: a fresh client token for a session that has not ended, and its original
//! StreamUrl (the plugin re-dials that one anyway, §8.3).
//!
//! Errors: `ValidationException`, `DoesNotExistException` (no such session in this account
//! and region, or it ended).

use serde::{Deserialize, Serialize};

use super::Caller;
use super::session_shapes::check_session_id;
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::{Emulator, Scope};
use crate::sessions::{End, new_token};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    session_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    session_id: String,
    token_value: String,
    stream_url: String,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        check_session_id(&mut v, &self.session_id);
        v.finish()
    }

    pub(crate) fn apply(
        self,
        emu: &Emulator,
        scope: &Scope,
        _caller: &Caller,
    ) -> Result<Response, ApiError> {
        let id = self.session_id.unwrap_or_default();
        emu.with_state(|state| {
            let live = state
                .sessions
                .get(&id)
                .is_some_and(|s| &s.scope == scope && !s.status.is_final());
            if !live {
                return Err(ApiError::DoesNotExist(format!(
                    "Session {id} does not exist or has already ended."
                )));
            }
            let token = new_token(state);
            let session = state
                .sessions
                .get_mut(&id)
                .expect("checked under the same lock");
            session.issue(End::Client, token.clone());
            Ok(Response {
                session_id: id,
                token_value: token,
                stream_url: session.stream_url.clone(),
            })
        })
    }
}
