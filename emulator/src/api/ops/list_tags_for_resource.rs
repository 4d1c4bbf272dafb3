//! `ListTagsForResource`: a managed node's tags, sorted by key. Errors: `InvalidResourceType`,
//! `InvalidResourceId`, `ValidationException`.

use serde::{Deserialize, Serialize};

use super::tags::{self, Tag};
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    resource_type: Option<String>,
    resource_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    tag_list: Vec<Tag>,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        tags::check_resource(&mut v, &self.resource_type, &self.resource_id);
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let resource_type = self.resource_type.unwrap_or_default();
        let resource_id = self.resource_id.unwrap_or_default();
        emu.with_state(|state| {
            let node = tags::node(state.region_mut(scope), scope, &resource_type, &resource_id)?;
            Ok(Response {
                tag_list: tags::tag_list(node),
            })
        })
    }
}
