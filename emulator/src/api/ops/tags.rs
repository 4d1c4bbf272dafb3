//! What the three tagging operations share: the `Tag` shape, the model's key and value
//! constraints, and finding the tagged node.
//!
//! Only `ResourceType: ManagedInstance` is emulated. Its resource ids are `mi-…` for hybrid
//! nodes and, as the brief of this emulator asks, `i-…` for EC2 nodes too (tag operations on
//! managed nodes document both forms).

use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::instance::ManagedInstance;
use crate::model::{RegionState, Scope};

/// Every `ResourceTypeForTagging` of the model.
pub(super) const RESOURCE_TYPES: [&str; 9] = [
    "Document",
    "ManagedInstance",
    "MaintenanceWindow",
    "Parameter",
    "PatchBaseline",
    "OpsItem",
    "OpsMetadata",
    "Automation",
    "Association",
];

const KEY_PATTERN: &str = r"^(?!^(?i)aws:)(?=^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$).*$";
const VALUE_PATTERN: &str = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$";

/// `{"Key","Value"}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Tag {
    pub(super) key: Option<String>,
    pub(super) value: Option<String>,
}

/// Whether every character is a letter, a space separator, a digit or one of `_.:/=+-@`.
fn allowed_chars(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_alphabetic()
            || c.is_numeric()
            || (c.is_whitespace() && !c.is_control())
            || "_.:/=+-@".contains(c)
    })
}

/// Checks a tag key (1–128 characters, allowed characters, no `aws:` prefix).
pub(super) fn check_key(v: &mut Violations, path: &str, key: &str) {
    v.length(path, key, 1, 128);
    let reserved = key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"));
    v.pattern(path, key, allowed_chars(key) && !reserved, KEY_PATTERN);
}

/// Checks a tag value (0–256 characters, allowed characters).
pub(super) fn check_value(v: &mut Violations, path: &str, value: &str) {
    v.length(path, value, 0, 256);
    v.pattern(path, value, allowed_chars(value), VALUE_PATTERN);
}

/// Checks `ResourceType` and `ResourceId` members for presence and the enum.
pub(super) fn check_resource(
    v: &mut Violations,
    resource_type: &Option<String>,
    resource_id: &Option<String>,
) {
    if let Some(t) = v.required("resourceType", resource_type) {
        v.one_of("resourceType", t, &RESOURCE_TYPES);
    }
    v.required("resourceId", resource_id);
}

/// The node a tagging request addresses, or the error the real service gives.
pub(super) fn node<'a>(
    region: &'a mut RegionState,
    scope: &Scope,
    resource_type: &str,
    resource_id: &str,
) -> Result<&'a mut ManagedInstance, ApiError> {
    if resource_type != "ManagedInstance" {
        return Err(ApiError::InvalidResourceType(format!(
            "ssm-emulator does not tag resources of type {resource_type} yet; \
             only ManagedInstance is supported"
        )));
    }
    region.instances.get_mut(resource_id).ok_or_else(|| {
        ApiError::InvalidResourceId(format!(
            "No managed node with ID {resource_id} in {} for account {}",
            scope.region, scope.account_id
        ))
    })
}

/// A node's tags in the output shape, sorted by key.
pub(super) fn tag_list(node: &ManagedInstance) -> Vec<Tag> {
    node.tags
        .iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        let mut v = Violations::new();
        check_key(&mut v, "k", "Env");
        check_key(&mut v, "k", "team/owner@corp = x+y:z_1.2-3");
        check_key(&mut v, "k", "Größe");
        assert!(v.finish().is_ok());
        for bad in ["", "aws:foo", "AWS:x", "a#b", "a\tb"] {
            let mut v = Violations::new();
            check_key(&mut v, "k", bad);
            assert!(v.finish().is_err(), "{bad:?} should be rejected");
        }
    }
}
