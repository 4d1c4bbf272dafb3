//! `RemoveTagsFromResource`: removes tag keys from a managed node; keys it does not have are
//! ignored. Errors: `InvalidResourceType`, `InvalidResourceId`, `ValidationException`.

use serde::{Deserialize, Serialize};

use super::tags;
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    resource_type: Option<String>,
    resource_id: Option<String>,
    tag_keys: Option<Vec<String>>,
}

/// `{}`.
#[derive(Debug, Serialize)]
pub(crate) struct Response {}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        tags::check_resource(&mut v, &self.resource_type, &self.resource_id);
        if let Some(keys) = v.required("tagKeys", &self.tag_keys) {
            for (i, key) in keys.iter().enumerate() {
                tags::check_key(&mut v, &format!("tagKeys.{}.member", i + 1), key);
            }
        }
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let resource_type = self.resource_type.unwrap_or_default();
        let resource_id = self.resource_id.unwrap_or_default();
        emu.with_state(|state| {
            let node = tags::node(state.region_mut(scope), scope, &resource_type, &resource_id)?;
            for key in self.tag_keys.unwrap_or_default() {
                node.tags.remove(&key);
            }
            Ok(Response {})
        })
    }
}
