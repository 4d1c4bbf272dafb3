//! `DescribeInstanceInformation`: the managed nodes of the account and region, filtered and
//! paginated (`MaxResults` 5–50, default 50, `NextToken`).
//!
//! Two filter styles, never both in one request:
//! - `InstanceInformationFilterList` (legacy): `{key, valueSet}`, `key` from a closed enum
//!   (outside it: `ValidationException`);
//! - `Filters`: `{Key, Values}` with the same keys plus `SourceIds`, `SourceTypes`, `tag:<k>`
//!   and `tag-key` (any other key: `InvalidFilterKey`). Tag filters cannot be combined with
//!   other filters in one request (`ValidationException`), as the real service answers.
//!
//! Filters combine with AND; the values of one filter with OR. A bad value of `PingStatus`,
//! `PlatformTypes`, `ResourceType`, `AssociationStatus` or `SourceTypes` is
//! `InvalidInstanceInformationFilterValue`; `ResourceType` takes exactly one value. A malformed
//! id under `InstanceIds` is `InvalidInstanceId`; a well-formed id the emulator does not know is
//! simply not listed.

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::pagination;
use crate::api::validate::{self, Violations};
use crate::clock::epoch_seconds;
use crate::model::instance::{
    ManagedInstance, PingStatus, PlatformType, ResourceType, is_valid_instance_id,
};
use crate::model::{Emulator, Scope};

/// Keys of `InstanceInformationFilterList` (the `InstanceInformationFilterKey` enum).
const LEGACY_KEYS: [&str; 8] = [
    "InstanceIds",
    "AgentVersion",
    "PingStatus",
    "PlatformTypes",
    "ActivationIds",
    "IamRole",
    "ResourceType",
    "AssociationStatus",
];

const SOURCE_TYPES: [&str; 4] = [
    "AWS::EC2::Instance",
    "AWS::SSM::ManagedInstance",
    "AWS::IoT::Thing",
    "Microsoft.Compute/virtualMachines",
];

const ASSOCIATION_STATUSES: [&str; 3] = ["Success", "Pending", "Failed"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    instance_information_filter_list: Option<Vec<LegacyFilter>>,
    filters: Option<Vec<StringFilter>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// `InstanceInformationFilter`: note the lower-case member names.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct LegacyFilter {
    key: Option<String>,
    #[serde(rename = "valueSet")]
    value_set: Option<Vec<String>>,
}

/// `InstanceInformationStringFilter`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StringFilter {
    key: Option<String>,
    values: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    instance_information_list: Vec<InstanceInformation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// One element of `InstanceInformationList` (spec §10).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceInformation {
    instance_id: String,
    ping_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_ping_date_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_version: Option<String>,
    is_latest_version: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iam_role: Option<String>,
    registration_date: f64,
    resource_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "IPAddress", skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    computer_name: Option<String>,
    source_id: String,
    source_type: &'static str,
}

/// One parsed filter: a node must satisfy every criterion of the request.
#[derive(Debug)]
enum Criterion {
    InstanceIds(Vec<String>),
    AgentVersion(Vec<String>),
    PingStatus(Vec<PingStatus>),
    PlatformTypes(Vec<PlatformType>),
    ActivationIds(Vec<String>),
    IamRole(Vec<String>),
    ResourceType(ResourceType),
    /// Nodes have no associations yet, so this matches none.
    AssociationStatus,
    SourceIds(Vec<String>),
    SourceTypes(Vec<String>),
    /// `tag:<key>`: the node has the tag with one of the values.
    Tag(String, Vec<String>),
    /// `tag-key`: the node has one of the keys.
    TagKey(Vec<String>),
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(list) = &self.instance_information_filter_list {
            let keys: Vec<&str> = list
                .iter()
                .map(|f| f.key.as_deref().unwrap_or(""))
                .collect();
            v.count("instanceInformationFilterList", &keys, 1, usize::MAX);
            for (i, filter) in list.iter().enumerate() {
                let base = format!("instanceInformationFilterList.{}.member", i + 1);
                if let Some(key) = v.required(&format!("{base}.key"), &filter.key) {
                    v.one_of(&format!("{base}.key"), key, &LEGACY_KEYS);
                }
                check_values(&mut v, &format!("{base}.valueSet"), &filter.value_set);
            }
        }
        if let Some(list) = &self.filters {
            let keys: Vec<&str> = list
                .iter()
                .map(|f| f.key.as_deref().unwrap_or(""))
                .collect();
            v.count("filters", &keys, 1, usize::MAX);
            for (i, filter) in list.iter().enumerate() {
                let base = format!("filters.{}.member", i + 1);
                if let Some(key) = v.required(&format!("{base}.key"), &filter.key) {
                    v.length(&format!("{base}.key"), key, 1, usize::MAX);
                }
                check_values(&mut v, &format!("{base}.values"), &filter.values);
            }
        }
        validate::max_results(&mut v, self.max_results, 5, 50, 50);
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let criteria = self.criteria()?;
        let size = validate::max_results(&mut Violations::new(), self.max_results, 5, 50, 50);
        let fingerprint = pagination::fingerprint(&[
            "DescribeInstanceInformation",
            &scope.account_id,
            &scope.region,
            &serde_json::to_string(&self.instance_information_filter_list).unwrap_or_default(),
            &serde_json::to_string(&self.filters).unwrap_or_default(),
        ]);
        let after = match &self.next_token {
            Some(token) => Some(pagination::decode(token, &fingerprint)?),
            None => None,
        };

        let now = emu.now();
        let grace = emu.ping_grace();
        // Filtered and paged on references under the lock; only the page is copied.
        let (page, next_token) = emu.with_state(|state| {
            let Some(region) = state.region(scope) else {
                return (Vec::new(), None);
            };
            let start = match after.as_deref() {
                Some(after) => Bound::Excluded(after),
                None => Bound::Unbounded,
            };
            let matching = region
                .instances
                .range::<str, _>((start, Bound::Unbounded))
                .map(|(_, node)| node)
                .filter(|node| criteria.iter().all(|c| c.matches(node, now, grace)));
            let (page, next_token) =
                pagination::page_from(matching, |n| n.instance_id.as_str(), size, &fingerprint);
            let page: Vec<ManagedInstance> = page.into_iter().cloned().collect();
            (page, next_token)
        });
        Ok(Response {
            instance_information_list: page
                .into_iter()
                .map(|node| describe(node, now, grace))
                .collect(),
            next_token,
        })
    }

    /// The filters of either style as criteria, or the error a bad filter earns.
    fn criteria(&self) -> Result<Vec<Criterion>, ApiError> {
        match (&self.instance_information_filter_list, &self.filters) {
            (Some(_), Some(_)) => Err(ApiError::Validation(
                "InstanceInformationFilterList and Filters cannot be used in the same request; \
                 use Filters"
                    .to_owned(),
            )),
            (Some(legacy), None) => legacy
                .iter()
                .map(|f| {
                    criterion(
                        f.key.as_deref().unwrap_or_default(),
                        f.value_set.as_deref().unwrap_or_default(),
                        false,
                    )
                })
                .collect(),
            (None, Some(filters)) => {
                let criteria = filters
                    .iter()
                    .map(|f| {
                        criterion(
                            f.key.as_deref().unwrap_or_default(),
                            f.values.as_deref().unwrap_or_default(),
                            true,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let tags = criteria.iter().filter(|c| c.is_tag()).count();
                if tags > 0 && tags < criteria.len() {
                    return Err(ApiError::Validation(
                        "Cannot mix tag or inventory filter with any other filter.".to_owned(),
                    ));
                }
                Ok(criteria)
            }
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// Checks a filter's value list: present, 1–100 values, each non-empty.
fn check_values(v: &mut Violations, path: &str, values: &Option<Vec<String>>) {
    if let Some(values) = v.required(path, values) {
        v.count(path, values, 1, 100);
        for (i, value) in values.iter().enumerate() {
            v.length(&format!("{path}.{}.member", i + 1), value, 1, usize::MAX);
        }
    }
}

/// Parses one filter. `string_filter` is true for `Filters`, which also take source and tag
/// keys.
fn criterion(key: &str, values: &[String], string_filter: bool) -> Result<Criterion, ApiError> {
    let bad_value = |key: &str, valid: &[&str]| {
        ApiError::InvalidInstanceInformationFilterValue(format!(
            "{key} filter is invalid, valid values are {}",
            valid.join(", ")
        ))
    };
    let owned = || values.to_vec();
    Ok(match key {
        "InstanceIds" => {
            let malformed: Vec<&str> = values
                .iter()
                .map(String::as_str)
                .filter(|id| !is_valid_instance_id(id))
                .collect();
            if !malformed.is_empty() {
                return Err(ApiError::InvalidInstanceId(format!(
                    "Invalid instance id(s): {}",
                    malformed.join(", ")
                )));
            }
            Criterion::InstanceIds(owned())
        }
        "AgentVersion" => Criterion::AgentVersion(owned()),
        "PingStatus" => Criterion::PingStatus(
            values
                .iter()
                .map(|s| PingStatus::ALL.into_iter().find(|p| p.as_str() == s))
                .collect::<Option<_>>()
                .ok_or_else(|| bad_value(key, &["Online", "ConnectionLost", "Inactive"]))?,
        ),
        "PlatformTypes" => Criterion::PlatformTypes(
            values
                .iter()
                .map(|s| PlatformType::parse(s))
                .collect::<Option<_>>()
                .ok_or_else(|| bad_value(key, &["Windows", "Linux", "MacOS"]))?,
        ),
        "ActivationIds" => Criterion::ActivationIds(owned()),
        "IamRole" => Criterion::IamRole(owned()),
        "ResourceType" => {
            if values.len() != 1 {
                return Err(ApiError::InvalidInstanceInformationFilterValue(
                    "ResourceType filter may contain only one value.".to_owned(),
                ));
            }
            Criterion::ResourceType(match values[0].as_str() {
                "EC2Instance" => ResourceType::EC2Instance,
                "ManagedInstance" => ResourceType::ManagedInstance,
                _ => return Err(bad_value(key, &["EC2Instance", "ManagedInstance"])),
            })
        }
        "AssociationStatus" => {
            if values
                .iter()
                .any(|s| !ASSOCIATION_STATUSES.contains(&s.as_str()))
            {
                return Err(bad_value(key, &ASSOCIATION_STATUSES));
            }
            Criterion::AssociationStatus
        }
        "SourceIds" if string_filter => Criterion::SourceIds(owned()),
        "SourceTypes" if string_filter => {
            if values.iter().any(|s| !SOURCE_TYPES.contains(&s.as_str())) {
                return Err(bad_value(key, &SOURCE_TYPES));
            }
            Criterion::SourceTypes(owned())
        }
        "tag-key" if string_filter => Criterion::TagKey(owned()),
        _ if string_filter && key.starts_with("tag:") && key.len() > 4 => {
            Criterion::Tag(key["tag:".len()..].to_owned(), owned())
        }
        // Legacy keys outside the enum were already rejected by validation.
        _ => {
            return Err(ApiError::InvalidFilterKey(format!(
                "The filter key {key} is not valid. Valid keys are: ActivationIds, \
                 AgentVersion, AssociationStatus, IamRole, InstanceIds, PingStatus, \
                 PlatformTypes, ResourceType, SourceIds, SourceTypes, tag-key, tag:<key>"
            )));
        }
    })
}

impl Criterion {
    fn is_tag(&self) -> bool {
        matches!(self, Criterion::Tag(..) | Criterion::TagKey(_))
    }

    fn matches(
        &self,
        node: &ManagedInstance,
        now: std::time::SystemTime,
        grace: std::time::Duration,
    ) -> bool {
        let any = |values: &[String], field: Option<&str>| {
            field.is_some_and(|f| values.iter().any(|v| v == f))
        };
        match self {
            Criterion::InstanceIds(ids) | Criterion::SourceIds(ids) => {
                any(ids, Some(&node.instance_id))
            }
            Criterion::AgentVersion(versions) => any(versions, node.agent_version.as_deref()),
            Criterion::PingStatus(statuses) => statuses.contains(&node.ping_status(now, grace)),
            Criterion::PlatformTypes(types) => {
                node.platform_type.is_some_and(|t| types.contains(&t))
            }
            Criterion::ActivationIds(ids) => any(ids, node.activation_id.as_deref()),
            Criterion::IamRole(roles) => any(roles, node.iam_role.as_deref()),
            Criterion::ResourceType(t) => node.resource_type() == *t,
            Criterion::AssociationStatus => false,
            Criterion::SourceTypes(types) => any(types, Some(node.resource_type().source_type())),
            Criterion::Tag(key, values) => any(values, node.tags.get(key).map(String::as_str)),
            Criterion::TagKey(keys) => keys.iter().any(|k| node.tags.contains_key(k)),
        }
    }
}

fn describe(
    node: ManagedInstance,
    now: std::time::SystemTime,
    grace: std::time::Duration,
) -> InstanceInformation {
    let resource_type = node.resource_type();
    InstanceInformation {
        ping_status: node.ping_status(now, grace).as_str(),
        last_ping_date_time: node.last_ping.map(epoch_seconds),
        is_latest_version: node.is_latest_version(),
        platform_type: node.platform_type.map(PlatformType::as_str),
        registration_date: epoch_seconds(node.registration_date),
        resource_type: resource_type.as_str(),
        source_id: node.instance_id.clone(),
        source_type: resource_type.source_type(),
        instance_id: node.instance_id,
        agent_version: node.agent_version,
        platform_name: node.platform_name,
        platform_version: node.platform_version,
        activation_id: node.activation_id,
        iam_role: node.iam_role,
        name: node.name,
        ip_address: node.ip_address,
        computer_name: node.computer_name,
    }
}
