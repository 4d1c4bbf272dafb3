//! One module per SSM operation, each with the same shape (mini-redis `cmd/*`, moto
//! `responses.py`):
//!
//! - `Request`: the input members, deserialized by serde (wrong JSON types become
//!   `SerializationException`; unknown members are ignored, as agents send some the public model
//!   lacks);
//! - `Request::validate`: the model's constraints, collected into one `ValidationException`;
//! - `Request::apply(self, &Emulator, &Scope)`: the change to the state or the query on it, run
//!   under the state lock without awaiting;
//! - `Response`: the output members, serialized by serde.
//!
//! [`Operation`] is the closed set this endpoint serves, chosen by `X-Amz-Target`.

mod add_tags_to_resource;
mod describe_instance_information;
mod get_connection_status;
mod get_inventory;
mod list_tags_for_resource;
mod remove_tags_from_resource;
mod tags;
mod update_instance_information;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::model::{Emulator, Scope};

/// The `X-Amz-Target` prefix of the SSM API (spec §10).
const TARGET_PREFIX: &str = "AmazonSSM.";

/// Every operation the endpoint serves, with its parsed request.
#[derive(Debug)]
pub(crate) enum Operation {
    UpdateInstanceInformation(update_instance_information::Request),
    DescribeInstanceInformation(describe_instance_information::Request),
    GetConnectionStatus(get_connection_status::Request),
    AddTagsToResource(add_tags_to_resource::Request),
    RemoveTagsFromResource(remove_tags_from_resource::Request),
    ListTagsForResource(list_tags_for_resource::Request),
    GetInventory(get_inventory::Request),
}

impl Operation {
    /// Picks the operation named by `target` (the `X-Amz-Target` header) and parses `body` as
    /// its request.
    pub(crate) fn parse(target: Option<&str>, body: &[u8]) -> Result<Operation, ApiError> {
        let Some(target) = target else {
            return Err(ApiError::UnknownOperation(
                "Missing X-Amz-Target header: SSM API requests need \
                 X-Amz-Target: AmazonSSM.<Operation>"
                    .to_owned(),
            ));
        };
        let unknown = || {
            ApiError::UnknownOperation(format!(
                "Operation {target} is not supported by ssm-emulator"
            ))
        };
        let name = target.strip_prefix(TARGET_PREFIX).ok_or_else(unknown)?;
        Ok(match name {
            "UpdateInstanceInformation" => Operation::UpdateInstanceInformation(from_body(body)?),
            "DescribeInstanceInformation" => {
                Operation::DescribeInstanceInformation(from_body(body)?)
            }
            "GetConnectionStatus" => Operation::GetConnectionStatus(from_body(body)?),
            "AddTagsToResource" => Operation::AddTagsToResource(from_body(body)?),
            "RemoveTagsFromResource" => Operation::RemoveTagsFromResource(from_body(body)?),
            "ListTagsForResource" => Operation::ListTagsForResource(from_body(body)?),
            "GetInventory" => Operation::GetInventory(from_body(body)?),
            _ => return Err(unknown()),
        })
    }

    /// The operation's name, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Operation::UpdateInstanceInformation(_) => "UpdateInstanceInformation",
            Operation::DescribeInstanceInformation(_) => "DescribeInstanceInformation",
            Operation::GetConnectionStatus(_) => "GetConnectionStatus",
            Operation::AddTagsToResource(_) => "AddTagsToResource",
            Operation::RemoveTagsFromResource(_) => "RemoveTagsFromResource",
            Operation::ListTagsForResource(_) => "ListTagsForResource",
            Operation::GetInventory(_) => "GetInventory",
        }
    }

    /// Validates the request, applies it to `scope` of `emu`, and returns the response body.
    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<String, ApiError> {
        match self {
            Operation::UpdateInstanceInformation(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope))
            }
            Operation::DescribeInstanceInformation(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::GetConnectionStatus(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope))
            }
            Operation::AddTagsToResource(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::RemoveTagsFromResource(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::ListTagsForResource(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::GetInventory(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
        }
    }
}

/// Parses a request body. An empty body counts as `{}`, which some clients send as nothing.
fn from_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::Serialization(format!("Unable to parse the request body as JSON: {e}"))
    })
}

fn to_body<T: Serialize>(response: &T) -> Result<String, ApiError> {
    serde_json::to_string(response)
        .map_err(|e| ApiError::InternalServerError(format!("cannot serialize the response: {e}")))
}
