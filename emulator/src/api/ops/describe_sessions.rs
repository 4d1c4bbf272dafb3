//! `DescribeSessions`: the sessions of this account and region, newest first. `State`
//! `Active` lists Connected, Connecting, Disconnected and Terminating sessions, `History`
//! Terminated and Failed ones. `Filters` (`key`/`value`, lower case): `InvokedAfter`,
//! `InvokedBefore` (ISO 8601, against the start), `Target`, `Owner` (the ARN, or `Self`),
//! `Status`, `SessionId`, `AccessType` (`Standard`; no session is `JustInTime`). Paginated,
//! `MaxResults` 1–200 (default 20).
//!
//! Errors: `ValidationException`, `InvalidFilterKey`, `InvalidNextToken`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::Caller;
use super::command_shapes::parse_iso8601;
use super::session_shapes::{SessionShape, http_base, owner_arn};
use crate::api::error::ApiError;
use crate::api::pagination;
use crate::api::validate::{self, Violations};
use crate::model::{Emulator, Scope};
use crate::sessions::Session;

const FILTER_KEYS: [&str; 7] = [
    "InvokedAfter",
    "InvokedBefore",
    "Target",
    "Owner",
    "Status",
    "SessionId",
    "AccessType",
];

const DEFAULT_PAGE: usize = 20;

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Filter {
    key: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    state: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    filters: Option<Vec<Filter>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    sessions: Vec<SessionShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

enum Criterion {
    After(SystemTime),
    Before(SystemTime),
    Target(String),
    Owner(String),
    Status(String),
    SessionId(String),
    AccessType(String),
}

impl Criterion {
    fn matches(&self, s: &Session) -> bool {
        match self {
            Criterion::After(t) => s.start >= *t,
            Criterion::Before(t) => s.start <= *t,
            Criterion::Target(v) => &s.target == v,
            Criterion::Owner(v) => &s.owner == v,
            Criterion::Status(v) => s.status.as_str() == v,
            Criterion::SessionId(v) => &s.id == v,
            Criterion::AccessType(v) => v == "Standard",
        }
    }
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(state) = v.required("state", &self.state) {
            v.one_of("state", state, &["Active", "History"]);
        }
        validate::max_results(&mut v, self.max_results, 1, 200, DEFAULT_PAGE);
        if let Some(filters) = &self.filters {
            let keys: Vec<&str> = filters
                .iter()
                .map(|f| f.key.as_deref().unwrap_or(""))
                .collect();
            v.count("filters", &keys, 1, 6);
            for (i, f) in filters.iter().enumerate() {
                let path = format!("filters.{}.member", i + 1);
                v.required(&format!("{path}.key"), &f.key);
                if let Some(value) = v.required(&format!("{path}.value"), &f.value) {
                    v.length(&format!("{path}.value"), value, 1, 400);
                }
            }
        }
        v.finish()
    }

    fn criteria(&self) -> Result<Vec<Criterion>, ApiError> {
        let mut out = Vec::new();
        for f in self.filters.iter().flatten() {
            let key = f.key.clone().unwrap_or_default();
            let value = f.value.clone().unwrap_or_default();
            let date = || {
                parse_iso8601(&value).ok_or_else(|| {
                    ApiError::Validation(format!(
                        "The filter value {value} for {key} is not a valid date"
                    ))
                })
            };
            out.push(match key.as_str() {
                "InvokedAfter" => Criterion::After(date()?),
                "InvokedBefore" => Criterion::Before(date()?),
                "Target" => Criterion::Target(value),
                "Owner" => Criterion::Owner(value),
                "Status" => Criterion::Status(value),
                "SessionId" => Criterion::SessionId(value),
                "AccessType" => Criterion::AccessType(value),
                _ => {
                    return Err(ApiError::InvalidFilterKey(format!(
                        "The filter key {key} is not valid. Valid keys: {}",
                        FILTER_KEYS.join(", ")
                    )));
                }
            });
        }
        Ok(out)
    }

    pub(crate) fn apply(
        self,
        emu: &Emulator,
        scope: &Scope,
        caller: &Caller,
    ) -> Result<Response, ApiError> {
        let mut criteria = self.criteria()?;
        // `Owner: Self` is the caller.
        for c in &mut criteria {
            if let Criterion::Owner(v) = c
                && v == "Self"
            {
                *v = owner_arn(scope, caller);
            }
        }
        let history = self.state.as_deref() == Some("History");
        let size = validate::max_results(
            &mut Violations::new(),
            self.max_results,
            1,
            200,
            DEFAULT_PAGE,
        );
        let fingerprint = pagination::fingerprint(&[
            "DescribeSessions",
            &scope.account_id,
            &scope.region,
            self.state.as_deref().unwrap_or(""),
            &serde_json::to_string(&self.filters).unwrap_or_default(),
        ]);
        let after = match &self.next_token {
            Some(token) => Some(pagination::decode(token, &fingerprint)?),
            None => None,
        };
        let base = http_base(caller);
        emu.with_state(|state| {
            let matching: Vec<(String, SessionShape)> = state
                .sessions
                .in_scope(scope)
                .into_iter()
                .filter(|s| s.status.is_final() == history)
                .filter(|s| criteria.iter().all(|c| c.matches(s)))
                .map(|s| {
                    (
                        format!("{:016x}", u64::MAX - s.serial),
                        SessionShape::of(s, &base),
                    )
                })
                .collect();
            let (page, next_token) =
                pagination::page(matching, |(k, _)| k, after.as_deref(), size, &fingerprint);
            Ok(Response {
                sessions: page.into_iter().map(|(_, s)| s).collect(),
                next_token,
            })
        })
    }
}
