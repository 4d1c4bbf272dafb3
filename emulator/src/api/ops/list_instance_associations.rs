//! `ListInstanceAssociations`: the State Manager associations that apply to a node. The real
//! agent calls it ≈15–30 s after start, again 30 s later when the list was empty, then every
//! 10 min (spec §9.4), and accepts `{"Associations":[]}`.
//!
//! The emulator has no associations yet, so every node has none: the answer is always an empty
//! list without a `NextToken`, and any `NextToken` is one it did not issue
//! (`InvalidNextToken`). Errors: `ValidationException` (the model's constraints),
//! `InvalidNextToken`. An unknown but well-formed id gets the empty list too, as the real
//! service answers for an id it has no associations for.

use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::validate::{self, Violations};
use crate::model::instance::is_valid_instance_id;
use crate::model::{Emulator, Scope};

/// The model's `MaxResults` range for this operation.
const MAX_RESULTS: (i64, i64) = (1, 50);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    instance_id: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// `{"Associations":[]}`: `InstanceAssociation` items would be `{AssociationId, InstanceId,
/// Content, AssociationVersion}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    associations: Vec<serde_json::Value>,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(id) = v.required("instanceId", &self.instance_id) {
            v.pattern(
                "instanceId",
                id,
                is_valid_instance_id(id),
                r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)",
            );
        }
        let (min, max) = MAX_RESULTS;
        validate::max_results(&mut v, self.max_results, min, max, max as usize);
        v.finish()
    }

    pub(crate) fn apply(self, _emu: &Emulator, _scope: &Scope) -> Result<Response, ApiError> {
        if self.next_token.is_some() {
            return Err(ApiError::InvalidNextToken(
                "The specified token is not valid.".to_owned(),
            ));
        }
        Ok(Response {
            associations: Vec::new(),
        })
    }
}
