//! `ListDocuments`: the documents visible in the account and region (AWS-owned and the
//! account's own), each as its default version's `DocumentIdentifier`, sorted by name and
//! paginated (`MaxResults` 1–50, default 50, `NextToken`).
//!
//! Two filter styles, which combine with AND:
//! - `DocumentFilterList` (legacy): `{key, value}`, `key` ∈ `Name|Owner|PlatformTypes|DocumentType`
//!   (outside it: `ValidationException`);
//! - `Filters`: `{Key, Values}` (at most 6), keys `Name`, `Owner`, `PlatformTypes`,
//!   `DocumentType`, `SearchKeyword` and `TargetType`; any other key is `InvalidFilterKey`.
//!   The values of one filter combine with OR.
//!
//! `Owner`: `Self`/`Private` the account's own documents, `Amazon` the AWS-owned ones, `All`
//! both, `Public`/`ThirdParty` none (the emulator has no shared documents); no Owner filter
//! lists both. `Name` matches names beginning with the value; `SearchKeyword` names containing
//! it. The emulator's documents declare no `TargetType`, so a `TargetType` filter lists none.

use serde::{Deserialize, Serialize};

use super::document_shapes::DocumentIdentifier;
use crate::api::error::ApiError;
use crate::api::pagination;
use crate::api::validate::{self, Violations};
use crate::documents::{Document, Owner};
use crate::model::{Emulator, Scope};

const LEGACY_KEYS: [&str; 4] = ["Name", "Owner", "PlatformTypes", "DocumentType"];
const KEYS: [&str; 6] = [
    "Name",
    "Owner",
    "PlatformTypes",
    "DocumentType",
    "SearchKeyword",
    "TargetType",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    document_filter_list: Option<Vec<LegacyFilter>>,
    filters: Option<Vec<KeyValuesFilter>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// `DocumentFilter`: note the lower-case member names.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct LegacyFilter {
    key: Option<String>,
    value: Option<String>,
}

/// `DocumentKeyValuesFilter`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyValuesFilter {
    key: Option<String>,
    values: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    document_identifiers: Vec<DocumentIdentifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(list) = &self.document_filter_list {
            let keys: Vec<&str> = list
                .iter()
                .map(|f| f.key.as_deref().unwrap_or(""))
                .collect();
            v.count("documentFilterList", &keys, 1, usize::MAX);
            for (i, filter) in list.iter().enumerate() {
                let base = format!("documentFilterList.{}.member", i + 1);
                if let Some(key) = v.required(&format!("{base}.key"), &filter.key) {
                    v.one_of(&format!("{base}.key"), key, &LEGACY_KEYS);
                }
                if let Some(value) = v.required(&format!("{base}.value"), &filter.value) {
                    v.length(&format!("{base}.value"), value, 1, usize::MAX);
                }
            }
        }
        if let Some(filters) = &self.filters {
            let keys: Vec<&str> = filters
                .iter()
                .map(|f| f.key.as_deref().unwrap_or(""))
                .collect();
            v.count("filters", &keys, 0, 6);
            for (i, filter) in filters.iter().enumerate() {
                let base = format!("filters.{}.member", i + 1);
                if let Some(key) = &filter.key {
                    v.length(&format!("{base}.key"), key, 1, 128);
                }
                for (j, value) in filter.values.iter().flatten().enumerate() {
                    v.length(&format!("{base}.values.{}.member", j + 1), value, 1, 256);
                }
            }
        }
        validate::max_results(&mut v, self.max_results, 1, 50, 50);
        v.finish()?;
        for filter in self.filters.iter().flatten() {
            let key = filter.key.as_deref().unwrap_or_default();
            if !KEYS.contains(&key) {
                return Err(ApiError::InvalidFilterKey(format!(
                    "The filter key {key} is not valid. Valid keys: {}.",
                    KEYS.join(", ")
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let mut criteria: Vec<(String, Vec<String>)> = Vec::new();
        for f in self.document_filter_list.iter().flatten() {
            criteria.push((
                f.key.clone().unwrap_or_default(),
                vec![f.value.clone().unwrap_or_default()],
            ));
        }
        for f in self.filters.iter().flatten() {
            criteria.push((
                f.key.clone().unwrap_or_default(),
                f.values.clone().unwrap_or_default(),
            ));
        }
        let size = usize::try_from(self.max_results.unwrap_or(50)).unwrap_or(50);
        let described: Vec<String> = criteria
            .iter()
            .map(|(k, vs)| format!("{k}={}", vs.join("\u{1f}")))
            .collect();
        let mut parts = vec!["ListDocuments", &scope.account_id, &scope.region];
        parts.extend(described.iter().map(String::as_str));
        let fingerprint = pagination::fingerprint(&parts);
        let after = match &self.next_token {
            Some(token) => Some(pagination::decode(token, &fingerprint)?),
            None => None,
        };
        emu.with_state(|state| {
            let store = &state.region_mut(scope).documents;
            let matching: Vec<&Document> = store
                .all()
                .into_iter()
                .filter(|d| criteria.iter().all(|(k, vs)| matches(d, k, vs)))
                .collect();
            let (page, next_token) = pagination::page(
                matching,
                |d| d.name.as_str(),
                after.as_deref(),
                size,
                &fingerprint,
            );
            Ok(Response {
                document_identifiers: page
                    .into_iter()
                    .map(|d| DocumentIdentifier::new(d, scope))
                    .collect(),
                next_token,
            })
        })
    }
}

/// Whether `document` passes the filter `key` with any of `values`.
fn matches(document: &Document, key: &str, values: &[String]) -> bool {
    let parsed = &document.default().parsed;
    values.iter().any(|value| match key {
        "Name" => document.name.starts_with(value.as_str()),
        "SearchKeyword" => document
            .name
            .to_ascii_lowercase()
            .contains(&value.to_ascii_lowercase()),
        "Owner" => match value.as_str() {
            "All" => true,
            "Self" | "Private" => document.owner == Owner::Account,
            "Amazon" => document.owner == Owner::Amazon,
            _ => false,
        },
        "PlatformTypes" => parsed.platform_types.contains(&value.as_str()),
        "DocumentType" => parsed.document_type.as_str() == value,
        _ => false,
    })
}
