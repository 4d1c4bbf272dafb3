//! `SendCommand`: runs a Command document on nodes named by `InstanceIds` or selected by
//! `Targets` (`InstanceIds`, `tag:<key>`, `tag-key`; exactly one of the two members).
//!
//! Errors: `ValidationException` (model constraints), `InvalidDocument` (unknown, or not a
//! Command document), `InvalidDocumentVersion`, `InvalidParameters` (from document
//! resolution), `DuplicateInstanceId`, `InvalidInstanceId` (a node the account does not have).
//! A known node without a control channel is accepted, as the real service accepts a
//! `ConnectionLost` node: its invocation waits `Delayed` and ends `DeliveryTimedOut` at
//! `ExpiresAfter` = `RequestedDateTime` + `TimeoutSeconds` (default 3600).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ssm_protocol::payload::SendCommandPayload;

use super::command_shapes::{CommandShape, TargetShape};
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::documents::{self, DocumentType};
use crate::model::command::{Command, Invocation, Target, is_valid_limit};
use crate::model::instance::{ManagedInstance, is_valid_instance_id};
use crate::model::{Emulator, Scope};

/// `TimeoutSeconds` when the request has none.
const DEFAULT_TIMEOUT_SECONDS: i64 = 3600;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    instance_ids: Option<Vec<String>>,
    targets: Option<Vec<TargetShape>>,
    document_name: Option<String>,
    document_version: Option<String>,
    document_hash: Option<String>,
    document_hash_type: Option<String>,
    timeout_seconds: Option<i64>,
    comment: Option<String>,
    parameters: Option<BTreeMap<String, Vec<String>>>,
    output_s3_region: Option<String>,
    output_s3_bucket_name: Option<String>,
    output_s3_key_prefix: Option<String>,
    max_concurrency: Option<String>,
    max_errors: Option<String>,
    service_role_arn: Option<String>,
    notification_config: Option<Value>,
    cloud_watch_output_config: Option<Value>,
    alarm_configuration: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    command: CommandShape,
}

const MAX_CONCURRENCY_PATTERN: &str = "^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$";
const MAX_ERRORS_PATTERN: &str = "^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$";

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(name) = v.required("documentName", &self.document_name) {
            let ok = name.len() >= 3
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b));
            v.pattern("documentName", name, ok, "^[a-zA-Z0-9_\\-.:/]{3,128}$");
        }
        if let Some(ids) = &self.instance_ids {
            v.count("instanceIds", ids, 0, 50);
            for (i, id) in ids.iter().enumerate() {
                v.pattern(
                    &format!("instanceIds.{}.member", i + 1),
                    id,
                    is_valid_instance_id(id),
                    "(^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)",
                );
            }
        }
        if let Some(targets) = &self.targets {
            let keys: Vec<&str> = targets
                .iter()
                .map(|t| t.key.as_deref().unwrap_or(""))
                .collect();
            v.count("targets", &keys, 0, 5);
            for (i, t) in targets.iter().enumerate() {
                let base = format!("targets.{}.member", i + 1);
                if let Some(key) = &t.key {
                    v.length(&format!("{base}.key"), key, 1, 163);
                }
                if let Some(values) = &t.values {
                    v.count(&format!("{base}.values"), values, 0, 50);
                }
            }
        }
        if let Some(version) = &self.document_version {
            let ok = version == "$LATEST"
                || version == "$DEFAULT"
                || (!version.starts_with('0')
                    && !version.is_empty()
                    && version.bytes().all(|b| b.is_ascii_digit()));
            v.pattern(
                "documentVersion",
                version,
                ok,
                "([$]LATEST|[$]DEFAULT|^[1-9][0-9]*$)",
            );
        }
        if let Some(hash) = &self.document_hash {
            v.length("documentHash", hash, 0, 256);
        }
        if let Some(kind) = &self.document_hash_type {
            v.one_of("documentHashType", kind, &["Sha256", "Sha1"]);
        }
        if let Some(t) = self.timeout_seconds {
            v.range("timeoutSeconds", t, 30, 2_592_000);
        }
        if let Some(comment) = &self.comment {
            v.length("comment", comment, 0, 100);
        }
        if let Some(region) = &self.output_s3_region {
            v.length("outputS3Region", region, 3, 20);
        }
        if let Some(bucket) = &self.output_s3_bucket_name {
            v.length("outputS3BucketName", bucket, 3, 63);
        }
        if let Some(prefix) = &self.output_s3_key_prefix {
            v.length("outputS3KeyPrefix", prefix, 0, 500);
        }
        if let Some(c) = &self.max_concurrency {
            v.length("maxConcurrency", c, 1, 7);
            v.pattern(
                "maxConcurrency",
                c,
                is_valid_limit(c, false),
                MAX_CONCURRENCY_PATTERN,
            );
        }
        if let Some(e) = &self.max_errors {
            v.length("maxErrors", e, 1, 7);
            v.pattern("maxErrors", e, is_valid_limit(e, true), MAX_ERRORS_PATTERN);
        }
        v.finish()?;
        let has_ids = self.instance_ids.as_ref().is_some_and(|l| !l.is_empty());
        let has_targets = self.targets.as_ref().is_some_and(|l| !l.is_empty());
        if has_ids == has_targets {
            return Err(ApiError::Validation(
                "Exactly one of InstanceIds and Targets must be specified".to_owned(),
            ));
        }
        Ok(())
    }

    pub(crate) fn apply(
        self: Box<Self>,
        emu: &Emulator,
        scope: &Scope,
    ) -> Result<Response, ApiError> {
        let this = *self;
        let now = emu.now();
        let name = this.document_name.clone().unwrap_or_default();
        let params = this.parameters.clone().unwrap_or_default();
        emu.with_state(|state| {
            let command_id = state.uuid().to_string();
            let region = state.region_mut(scope);
            let doc = documents::resolve(region, &name, this.document_version.as_deref(), &params)?;
            if doc.document_type != DocumentType::Command {
                return Err(ApiError::InvalidDocument(format!(
                    "Document {} is of type {} and cannot be run with SendCommand",
                    doc.name,
                    doc.document_type.as_str()
                )));
            }
            if let Some(hash) = &this.document_hash
                && !hash.eq_ignore_ascii_case(&doc.hash)
            {
                return Err(ApiError::InvalidDocument(
                    "The document hash does not match the document".to_owned(),
                ));
            }
            let targets: Vec<Target> = this
                .targets
                .iter()
                .flatten()
                .map(|t| Target {
                    key: t.key.clone().unwrap_or_default(),
                    values: t.values.clone().unwrap_or_default(),
                })
                .collect();
            let nodes = select_nodes(
                &region.instances,
                this.instance_ids.as_deref().unwrap_or_default(),
                &targets,
                scope,
            )?;
            let timeout_seconds = this.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
            let cloud_watch_enabled = this
                .cloud_watch_output_config
                .as_ref()
                .and_then(|c| c.get("CloudWatchOutputEnabled"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let cloud_watch_group = this
                .cloud_watch_output_config
                .as_ref()
                .and_then(|c| c.get("CloudWatchLogGroupName"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let payload = SendCommandPayload {
                command_id: command_id.clone(),
                document_name: doc.name.clone(),
                output_s3_bucket_name: this.output_s3_bucket_name.clone().unwrap_or_default(),
                output_s3_key_prefix: this.output_s3_key_prefix.clone().unwrap_or_default(),
                cloud_watch_log_group_name: cloud_watch_group,
                cloud_watch_output_enabled: cloud_watch_enabled.to_string(),
                parameters: doc.typed_parameters.clone(),
                document_content: doc.content.clone(),
            };
            let invocations = nodes
                .iter()
                .map(|node| {
                    Invocation::new(
                        node.instance_id.clone(),
                        node.computer_name.clone().unwrap_or_default(),
                        &doc.plugin_names,
                    )
                })
                .collect();
            let command = Command {
                command_id: command_id.clone(),
                document_name: doc.name,
                document_version: doc.version,
                comment: this.comment.unwrap_or_default(),
                parameters: doc.parameters,
                instance_ids: this.instance_ids.unwrap_or_default(),
                targets,
                requested: now,
                expires_after: now + Duration::from_secs(timeout_seconds.unsigned_abs()),
                timeout_seconds,
                max_concurrency: this.max_concurrency.unwrap_or_else(|| "50".to_owned()),
                max_errors: this.max_errors.unwrap_or_else(|| "0".to_owned()),
                output_s3_region: this
                    .output_s3_region
                    .unwrap_or_else(|| scope.region.clone()),
                output_s3_bucket_name: this.output_s3_bucket_name.unwrap_or_default(),
                output_s3_key_prefix: this.output_s3_key_prefix.unwrap_or_default(),
                service_role: this.service_role_arn.unwrap_or_default(),
                notification_config: this.notification_config,
                cloud_watch_output_config: this.cloud_watch_output_config,
                alarm_configuration: this.alarm_configuration,
                payload,
                invocations,
                cancelled: false,
                dispatch: Default::default(),
            };
            // The response shows the command as requested, before the dispatcher touches it.
            let shape = CommandShape::of(&command);
            state.region_mut(scope).commands.insert(command);
            crate::run_command::pump(state, scope, now);
            Ok(Response { command: shape })
        })
    }
}

/// The nodes a request names, in request order for `InstanceIds` and id order for `Targets`.
fn select_nodes<'a>(
    instances: &'a BTreeMap<String, ManagedInstance>,
    instance_ids: &[String],
    targets: &[Target],
    scope: &Scope,
) -> Result<Vec<&'a ManagedInstance>, ApiError> {
    let mut seen = HashSet::new();
    if let Some(dup) = instance_ids.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(ApiError::DuplicateInstanceId(format!(
            "Instance Id {dup} is specified more than once"
        )));
    }
    let lookup = |ids: &[String]| -> Result<Vec<&'a ManagedInstance>, ApiError> {
        let missing: Vec<&String> = ids
            .iter()
            .filter(|id| !instances.contains_key(*id))
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ApiError::InvalidInstanceId(format!(
                "Instances [[{list}]] not in a valid state for account {}",
                scope.account_id
            )));
        }
        Ok(ids.iter().filter_map(|id| instances.get(id)).collect())
    };
    if !instance_ids.is_empty() {
        return lookup(instance_ids);
    }
    let mut selected: Vec<&ManagedInstance> = instances.values().collect();
    for target in targets {
        if target.key == "InstanceIds" {
            for id in &target.values {
                if !is_valid_instance_id(id) {
                    return Err(ApiError::InvalidInstanceId(format!(
                        "Instance id {id} is not valid"
                    )));
                }
            }
            let wanted: HashSet<&str> = target.values.iter().map(String::as_str).collect();
            lookup(&target.values)?;
            selected.retain(|n| wanted.contains(n.instance_id.as_str()));
        } else if target.key == "tag-key" {
            selected.retain(|n| target.values.iter().any(|k| n.tags.contains_key(k)));
        } else if let Some(tag) = target.key.strip_prefix("tag:") {
            selected.retain(|n| {
                n.tags
                    .get(tag)
                    .is_some_and(|value| target.values.contains(value))
            });
        } else {
            return Err(ApiError::Validation(format!(
                "Target key {} is not supported: use InstanceIds, tag:<key> or tag-key",
                target.key
            )));
        }
    }
    Ok(selected)
}
