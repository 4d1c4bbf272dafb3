//! `GetInventory`: one `AWS:InstanceInformation` entity per managed node, the same node set
//! DescribeInstanceInformation lists, so the two never disagree.
//!
//! Supported: `Filters` on `AWS:InstanceInformation.<attribute>` with `Type` `Equal` (the
//! default), `NotEqual`, `BeginWith` or `Exists`; `ResultAttributes` naming
//! `AWS:InstanceInformation`; `MaxResults` 1–50 (default 50) and `NextToken`. Other inventory
//! types do not exist in the emulator yet: filtering on one is `InvalidTypeNameException`,
//! asking for one `InvalidResultAttributeException`; `Aggregators` are
//! `InvalidAggregatorException`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::pagination;
use crate::api::validate::{self, Violations};
use crate::clock::iso8601_seconds;
use crate::model::instance::{ManagedInstance, PingStatus, PlatformType};
use crate::model::{Emulator, Scope};

const TYPE_NAME: &str = "AWS:InstanceInformation";

const FILTER_TYPES: [&str; 6] = [
    "Equal",
    "NotEqual",
    "BeginWith",
    "LessThan",
    "GreaterThan",
    "Exists",
];

/// The attributes of `AWS:InstanceInformation` content.
const ATTRIBUTES: [&str; 10] = [
    "AgentType",
    "AgentVersion",
    "ComputerName",
    "InstanceId",
    "InstanceStatus",
    "IpAddress",
    "PlatformName",
    "PlatformType",
    "PlatformVersion",
    "ResourceType",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    filters: Option<Vec<InventoryFilter>>,
    aggregators: Option<Vec<serde_json::Value>>,
    result_attributes: Option<Vec<ResultAttribute>>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct InventoryFilter {
    key: Option<String>,
    values: Option<Vec<String>>,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResultAttribute {
    type_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    entities: Vec<Entity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entity {
    id: String,
    data: BTreeMap<&'static str, ResultItem>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResultItem {
    type_name: &'static str,
    schema_version: &'static str,
    capture_time: String,
    content: Vec<BTreeMap<&'static str, String>>,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(filters) = &self.filters {
            let keys: Vec<&str> = filters
                .iter()
                .map(|f| f.key.as_deref().unwrap_or(""))
                .collect();
            v.count("filters", &keys, 1, 5);
            for (i, filter) in filters.iter().enumerate() {
                let base = format!("filters.{}.member", i + 1);
                if let Some(key) = v.required(&format!("{base}.key"), &filter.key) {
                    v.length(&format!("{base}.key"), key, 1, 200);
                }
                if let Some(values) = v.required(&format!("{base}.values"), &filter.values) {
                    v.count(&format!("{base}.values"), values, 1, 40);
                }
                if let Some(kind) = &filter.kind {
                    v.one_of(&format!("{base}.type"), kind, &FILTER_TYPES);
                }
            }
        }
        if let Some(attrs) = &self.result_attributes {
            let names: Vec<&str> = attrs
                .iter()
                .map(|a| a.type_name.as_deref().unwrap_or(""))
                .collect();
            v.count("resultAttributes", &names, 1, 1);
            for (i, attr) in attrs.iter().enumerate() {
                let path = format!("resultAttributes.{}.member.typeName", i + 1);
                if let Some(name) = v.required(&path, &attr.type_name) {
                    v.length(&path, name, 1, 100);
                }
            }
        }
        validate::max_results(&mut v, self.max_results, 1, 50, 50);
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        if self.aggregators.is_some() {
            return Err(ApiError::InvalidAggregator(
                "ssm-emulator does not support inventory Aggregators yet".to_owned(),
            ));
        }
        for attr in self.result_attributes.iter().flatten() {
            let name = attr.type_name.as_deref().unwrap_or_default();
            if name != TYPE_NAME {
                return Err(ApiError::InvalidResultAttribute(format!(
                    "The inventory type {name} has no data in ssm-emulator; only {TYPE_NAME} exists"
                )));
            }
        }
        let filters = self
            .filters
            .iter()
            .flatten()
            .map(Predicate::parse)
            .collect::<Result<Vec<_>, _>>()?;

        let size = validate::max_results(&mut Violations::new(), self.max_results, 1, 50, 50);
        let fingerprint = pagination::fingerprint(&[
            "GetInventory",
            &scope.account_id,
            &scope.region,
            &serde_json::to_string(&self.filters).unwrap_or_default(),
            &serde_json::to_string(&self.result_attributes).unwrap_or_default(),
        ]);
        let after = match &self.next_token {
            Some(token) => Some(pagination::decode(token, &fingerprint)?),
            None => None,
        };

        let (now, grace) = (emu.now(), emu.ping_grace());
        let entities: Vec<(String, ManagedInstance, BTreeMap<&'static str, String>)> = emu
            .instances(scope)
            .into_iter()
            .map(|node| {
                let content = content(&node, node.ping_status(now, grace));
                (node.instance_id.clone(), node, content)
            })
            .filter(|(_, _, content)| filters.iter().all(|p| p.matches(content)))
            .collect();
        let (page, next_token) = pagination::page(
            entities,
            |e| e.0.as_str(),
            after.as_deref(),
            size,
            &fingerprint,
        );
        Ok(Response {
            entities: page
                .into_iter()
                .map(|(id, node, content)| {
                    let item = ResultItem {
                        type_name: TYPE_NAME,
                        schema_version: "1.0",
                        capture_time: iso8601_seconds(
                            node.last_ping.unwrap_or(node.registration_date),
                        ),
                        content: vec![content],
                    };
                    Entity {
                        id,
                        data: BTreeMap::from([(TYPE_NAME, item)]),
                    }
                })
                .collect(),
            next_token,
        })
    }
}

/// The `AWS:InstanceInformation` content of a node; absent attributes are left out.
fn content(node: &ManagedInstance, ping: PingStatus) -> BTreeMap<&'static str, String> {
    let mut c = BTreeMap::new();
    let mut put = |k: &'static str, v: Option<&str>| {
        if let Some(v) = v {
            c.insert(k, v.to_owned());
        }
    };
    put("AgentType", node.agent_name.as_deref());
    put("AgentVersion", node.agent_version.as_deref());
    put("ComputerName", node.computer_name.as_deref());
    put("InstanceId", Some(&node.instance_id));
    put(
        "InstanceStatus",
        Some(match ping {
            PingStatus::Online => "Active",
            _ => "ConnectionLost",
        }),
    );
    put("IpAddress", node.ip_address.as_deref());
    put("PlatformName", node.platform_name.as_deref());
    put("PlatformType", node.platform_type.map(PlatformType::as_str));
    put("PlatformVersion", node.platform_version.as_deref());
    put("ResourceType", Some(node.resource_type().as_str()));
    c
}

/// One parsed inventory filter.
#[derive(Debug)]
struct Predicate {
    attribute: &'static str,
    kind: FilterKind,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum FilterKind {
    Equal,
    NotEqual,
    BeginWith,
    Exists,
}

impl Predicate {
    fn parse(filter: &InventoryFilter) -> Result<Predicate, ApiError> {
        let key = filter.key.as_deref().unwrap_or_default();
        let Some((type_name, attribute)) = key.split_once('.') else {
            return Err(ApiError::InvalidFilter(format!(
                "The filter key {key} is not valid: write <TypeName>.<Attribute>, e.g. \
                 {TYPE_NAME}.PlatformType"
            )));
        };
        if type_name != TYPE_NAME {
            return Err(ApiError::InvalidTypeName(format!(
                "The inventory type {type_name} has no data in ssm-emulator; only {TYPE_NAME} \
                 exists"
            )));
        }
        let Some(attribute) = ATTRIBUTES.into_iter().find(|a| *a == attribute) else {
            return Err(ApiError::InvalidFilter(format!(
                "{attribute} is not an attribute of {TYPE_NAME}; valid attributes are {}",
                ATTRIBUTES.join(", ")
            )));
        };
        let kind = match filter.kind.as_deref().unwrap_or("Equal") {
            "Equal" => FilterKind::Equal,
            "NotEqual" => FilterKind::NotEqual,
            "BeginWith" => FilterKind::BeginWith,
            "Exists" => FilterKind::Exists,
            other => {
                return Err(ApiError::InvalidFilter(format!(
                    "ssm-emulator does not support inventory filter type {other} yet; use \
                     Equal, NotEqual, BeginWith or Exists"
                )));
            }
        };
        Ok(Predicate {
            attribute,
            kind,
            values: filter.values.clone().unwrap_or_default(),
        })
    }

    fn matches(&self, content: &BTreeMap<&'static str, String>) -> bool {
        let value = content.get(self.attribute);
        match self.kind {
            FilterKind::Equal => value.is_some_and(|v| self.values.contains(v)),
            FilterKind::NotEqual => !value.is_some_and(|v| self.values.contains(v)),
            FilterKind::BeginWith => {
                value.is_some_and(|v| self.values.iter().any(|p| v.starts_with(p.as_str())))
            }
            FilterKind::Exists => value.is_some(),
        }
    }
}
