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
mod cancel_command;
mod command_shapes;
mod create_document;
mod delete_document;
mod describe_document;
mod describe_instance_information;
mod describe_sessions;
mod document_shapes;
mod get_command_invocation;
mod get_connection_status;
mod get_document;
mod get_inventory;
mod list_command_invocations;
mod list_commands;
mod list_documents;
mod list_instance_associations;
mod list_tags_for_resource;
mod remove_tags_from_resource;
mod resume_session;
mod send_command;
mod session_shapes;
mod start_session;
mod tags;
mod terminate_session;
mod update_document;
mod update_instance_information;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::model::{Emulator, Scope};

/// Who called and how: what StartSession needs beyond the body (the owner and the StreamUrl).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The access key id of the SigV4 signature, if the request was signed.
    pub(crate) access_key: Option<String>,
    /// The `Host` header.
    pub(crate) host: Option<String>,
    /// Whether the request came in on the TLS listener.
    pub(crate) scheme: crate::tls::Scheme,
}

/// The `X-Amz-Target` prefix of the SSM API (spec §10).
pub(crate) const TARGET_PREFIX: &str = "AmazonSSM.";

/// Every operation the endpoint serves, with its parsed request.
#[derive(Debug)]
pub(crate) enum Operation {
    UpdateInstanceInformation(update_instance_information::Request),
    DescribeInstanceInformation(describe_instance_information::Request),
    GetConnectionStatus(get_connection_status::Request),
    AddTagsToResource(add_tags_to_resource::Request),
    RemoveTagsFromResource(remove_tags_from_resource::Request),
    ListTagsForResource(list_tags_for_resource::Request),
    ListInstanceAssociations(list_instance_associations::Request),
    GetInventory(get_inventory::Request),
    // Boxed: its request is several times larger than any other.
    SendCommand(Box<send_command::Request>),
    ListCommands(list_commands::Request),
    ListCommandInvocations(list_command_invocations::Request),
    GetCommandInvocation(get_command_invocation::Request),
    CancelCommand(cancel_command::Request),
    ListDocuments(list_documents::Request),
    DescribeDocument(describe_document::Request),
    GetDocument(get_document::Request),
    CreateDocument(create_document::Request),
    UpdateDocument(update_document::Request),
    DeleteDocument(delete_document::Request),
    StartSession(start_session::Request),
    ResumeSession(resume_session::Request),
    TerminateSession(terminate_session::Request),
    DescribeSessions(describe_sessions::Request),
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
            "ListInstanceAssociations" => Operation::ListInstanceAssociations(from_body(body)?),
            "GetInventory" => Operation::GetInventory(from_body(body)?),
            "SendCommand" => Operation::SendCommand(Box::new(from_body(body)?)),
            "ListCommands" => Operation::ListCommands(from_body(body)?),
            "ListCommandInvocations" => Operation::ListCommandInvocations(from_body(body)?),
            "GetCommandInvocation" => Operation::GetCommandInvocation(from_body(body)?),
            "CancelCommand" => Operation::CancelCommand(from_body(body)?),
            "ListDocuments" => Operation::ListDocuments(from_body(body)?),
            "DescribeDocument" => Operation::DescribeDocument(from_body(body)?),
            "GetDocument" => Operation::GetDocument(from_body(body)?),
            "CreateDocument" => Operation::CreateDocument(from_body(body)?),
            "UpdateDocument" => Operation::UpdateDocument(from_body(body)?),
            "DeleteDocument" => Operation::DeleteDocument(from_body(body)?),
            "StartSession" => Operation::StartSession(from_body(body)?),
            "ResumeSession" => Operation::ResumeSession(from_body(body)?),
            "TerminateSession" => Operation::TerminateSession(from_body(body)?),
            "DescribeSessions" => Operation::DescribeSessions(from_body(body)?),
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
            Operation::ListInstanceAssociations(_) => "ListInstanceAssociations",
            Operation::GetInventory(_) => "GetInventory",
            Operation::SendCommand(_) => "SendCommand",
            Operation::ListCommands(_) => "ListCommands",
            Operation::ListCommandInvocations(_) => "ListCommandInvocations",
            Operation::GetCommandInvocation(_) => "GetCommandInvocation",
            Operation::CancelCommand(_) => "CancelCommand",
            Operation::ListDocuments(_) => "ListDocuments",
            Operation::DescribeDocument(_) => "DescribeDocument",
            Operation::GetDocument(_) => "GetDocument",
            Operation::CreateDocument(_) => "CreateDocument",
            Operation::UpdateDocument(_) => "UpdateDocument",
            Operation::DeleteDocument(_) => "DeleteDocument",
            Operation::StartSession(_) => "StartSession",
            Operation::ResumeSession(_) => "ResumeSession",
            Operation::TerminateSession(_) => "TerminateSession",
            Operation::DescribeSessions(_) => "DescribeSessions",
        }
    }

    /// Validates the request, applies it to `scope` of `emu`, and returns the response body.
    pub(crate) fn apply(
        self,
        emu: &Emulator,
        scope: &Scope,
        caller: &Caller,
    ) -> Result<String, ApiError> {
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
            Operation::ListInstanceAssociations(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::GetInventory(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::SendCommand(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::ListCommands(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::ListCommandInvocations(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::GetCommandInvocation(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::CancelCommand(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::ListDocuments(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::DescribeDocument(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::GetDocument(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::CreateDocument(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::UpdateDocument(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::DeleteDocument(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope)?)
            }
            Operation::StartSession(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope, caller)?)
            }
            Operation::ResumeSession(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope, caller)?)
            }
            Operation::TerminateSession(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope))
            }
            Operation::DescribeSessions(req) => {
                req.validate()?;
                to_body(&req.apply(emu, scope, caller)?)
            }
        }
    }
}

/// Parses a request body. An empty body counts as `{}`, which some clients send as nothing.
/// (MDS, `crate::mds`, parses its bodies the same way.)
pub(crate) fn from_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::Serialization(format!("Unable to parse the request body as JSON: {e}"))
    })
}

pub(crate) fn to_body<T: Serialize>(response: &T) -> Result<String, ApiError> {
    serde_json::to_string(response)
        .map_err(|e| ApiError::InternalServerError(format!("cannot serialize the response: {e}")))
}
