//! `AddTagsToResource`: adds tags to a managed node, overwriting the values of keys it already
//! has. Errors: `InvalidResourceType`, `InvalidResourceId`, `TooManyTagsError` (more than 50
//! tags on the node afterwards), `ValidationException`.

use serde::{Deserialize, Serialize};

use super::tags::{self, Tag};
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::instance::MAX_TAGS_PER_RESOURCE;
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    resource_type: Option<String>,
    resource_id: Option<String>,
    tags: Option<Vec<Tag>>,
}

/// `{}`.
#[derive(Debug, Serialize)]
pub(crate) struct Response {}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        tags::check_resource(&mut v, &self.resource_type, &self.resource_id);
        if let Some(list) = v.required("tags", &self.tags) {
            let shown: Vec<String> = list
                .iter()
                .map(|t| {
                    format!(
                        "{}={}",
                        t.key.as_deref().unwrap_or(""),
                        t.value.as_deref().unwrap_or("")
                    )
                })
                .collect();
            v.count("tags", &shown, 1, 1000);
            for (i, tag) in list.iter().enumerate() {
                let key_path = format!("tags.{}.member.key", i + 1);
                if let Some(key) = v.required(&key_path, &tag.key) {
                    tags::check_key(&mut v, &key_path, key);
                }
                let value_path = format!("tags.{}.member.value", i + 1);
                if let Some(value) = v.required(&value_path, &tag.value) {
                    tags::check_value(&mut v, &value_path, value);
                }
            }
        }
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let resource_type = self.resource_type.unwrap_or_default();
        let resource_id = self.resource_id.unwrap_or_default();
        emu.with_state(|state| {
            let node = tags::node(state.region_mut(scope), scope, &resource_type, &resource_id)?;
            let mut updated = node.tags.clone();
            for tag in self.tags.unwrap_or_default() {
                updated.insert(tag.key.unwrap_or_default(), tag.value.unwrap_or_default());
            }
            if updated.len() > MAX_TAGS_PER_RESOURCE {
                return Err(ApiError::TooManyTagsError(format!(
                    "The Tags parameter contains more than {MAX_TAGS_PER_RESOURCE} tags for \
                     resource {resource_id}, the most one resource can have"
                )));
            }
            node.tags = updated;
            Ok(Response {})
        })
    }
}
