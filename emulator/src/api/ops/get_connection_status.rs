//! `GetConnectionStatus`: whether a node can take a session now. `connected` while the node
//! is `Online` (its control channel is open, or its last report is within the grace period),
//! `notconnected` otherwise, including for ids the emulator has never seen: the operation has
//! no not-found error in the model.

use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::instance::PingStatus;
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    target: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    target: String,
    status: &'static str,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(target) = v.required("target", &self.target) {
            v.length("target", target, 1, 400);
        }
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Response {
        let target = self.target.unwrap_or_default();
        let online = emu.instance(scope, &target).is_some_and(|node| {
            node.ping_status(emu.now(), emu.ping_grace()) == PingStatus::Online
        });
        Response {
            target,
            status: if online { "connected" } else { "notconnected" },
        }
    }
}
