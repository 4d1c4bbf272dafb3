//! The one error type of the API: every failure a client can see, as the AWS error code it maps
//! to (spec §10: HTTP 400, or 500 for `InternalServerError`, and `{"__type","message"}`).
//!
//! `x-amzn-RequestId` is not set here but by the request-id middleware, which covers successes,
//! these errors and anything axum itself rejects.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::JSON_CONTENT_TYPE;

/// An SSM API error. The variant is the AWS error code; the string is the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// The body is not JSON, or a member has the wrong JSON type.
    #[error("{0}")]
    Serialization(String),
    /// `X-Amz-Target` is missing or names no operation this endpoint serves.
    #[error("{0}")]
    UnknownOperation(String),
    /// A member breaks a constraint of the model (required, length, range, enum, pattern).
    #[error("{0}")]
    Validation(String),
    /// A filter key is not one the operation knows.
    #[error("{0}")]
    InvalidFilterKey(String),
    /// A DescribeInstanceInformation filter value is not valid.
    #[error("{0}")]
    InvalidInstanceInformationFilterValue(String),
    /// An instance id is malformed.
    #[error("{0}")]
    InvalidInstanceId(String),
    /// A `NextToken` was not issued by this emulator for this query.
    #[error("{0}")]
    InvalidNextToken(String),
    /// The resource type cannot be tagged here.
    #[error("{0}")]
    InvalidResourceType(String),
    /// No resource of that type has that id.
    #[error("{0}")]
    InvalidResourceId(String),
    /// The resource would carry more tags than allowed.
    #[error("{0}")]
    TooManyTagsError(String),
    /// A GetInventory filter is not valid.
    #[error("{0}")]
    InvalidFilter(String),
    /// A GetInventory type name is not one the emulator has.
    #[error("{0}")]
    InvalidTypeName(String),
    /// GetInventory aggregators are not valid (the emulator supports none yet).
    #[error("{0}")]
    InvalidAggregator(String),
    /// A GetInventory result attribute is not valid.
    #[error("{0}")]
    InvalidResultAttribute(String),
    /// No document has that name (or the caller cannot see it).
    #[error("{0}")]
    InvalidDocument(String),
    /// The document has no such version, or the version selector is not valid here.
    #[error("{0}")]
    InvalidDocumentVersion(String),
    /// Parameters do not fit the document: unknown, missing, wrongly typed or disallowed values.
    #[error("{0}")]
    InvalidParameters(String),
    /// CreateDocument/UpdateDocument content that is not a valid document.
    #[error("{0}")]
    InvalidDocumentContent(String),
    /// The content's `schemaVersion` is not one the document type supports.
    #[error("{0}")]
    InvalidDocumentSchemaVersion(String),
    /// CreateDocument with a name that is taken.
    #[error("{0}")]
    DocumentAlreadyExists(String),
    /// UpdateDocument with the content of an existing version.
    #[error("{0}")]
    DuplicateDocumentContent(String),
    /// The operation cannot be applied to this document (e.g. deleting an AWS-owned one).
    #[error("{0}")]
    InvalidDocumentOperation(String),
    /// The document content is larger than the service accepts.
    #[error("{0}")]
    MaxDocumentSizeExceeded(String),
    /// A document would have more versions than the service keeps.
    #[error("{0}")]
    DocumentVersionLimitExceeded(String),
    /// The same instance id appears twice in one request.
    #[error("{0}")]
    DuplicateInstanceId(String),
    /// No command has that id.
    #[error("{0}")]
    InvalidCommandId(String),
    /// The command's document has no plugin (step) of that name.
    #[error("{0}")]
    InvalidPluginName(String),
    /// No invocation of that command on that node.
    #[error("{0}")]
    InvocationDoesNotExist(String),
    /// StartSession: the target's agent has no control channel.
    #[error("{0}")]
    TargetNotConnected(String),
    /// ResumeSession: no live session has that id.
    #[error("{0}")]
    DoesNotExist(String),
    /// The emulator itself failed.
    #[error("{0}")]
    InternalServerError(String),
    /// Too many requests (only ever injected by a fault rule): the SDKs retry it.
    #[error("{0}")]
    Throttling(String),
}

impl ApiError {
    /// The AWS error code, written as `__type`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Serialization(_) => "SerializationException",
            ApiError::UnknownOperation(_) => "UnknownOperationException",
            ApiError::Validation(_) => "ValidationException",
            ApiError::InvalidFilterKey(_) => "InvalidFilterKey",
            ApiError::InvalidInstanceInformationFilterValue(_) => {
                "InvalidInstanceInformationFilterValue"
            }
            ApiError::InvalidInstanceId(_) => "InvalidInstanceId",
            ApiError::InvalidNextToken(_) => "InvalidNextToken",
            ApiError::InvalidResourceType(_) => "InvalidResourceType",
            ApiError::InvalidResourceId(_) => "InvalidResourceId",
            ApiError::TooManyTagsError(_) => "TooManyTagsError",
            ApiError::InvalidFilter(_) => "InvalidFilter",
            ApiError::InvalidTypeName(_) => "InvalidTypeNameException",
            ApiError::InvalidAggregator(_) => "InvalidAggregatorException",
            ApiError::InvalidResultAttribute(_) => "InvalidResultAttributeException",
            ApiError::InvalidDocument(_) => "InvalidDocument",
            ApiError::InvalidDocumentVersion(_) => "InvalidDocumentVersion",
            ApiError::InvalidParameters(_) => "InvalidParameters",
            ApiError::InvalidDocumentContent(_) => "InvalidDocumentContent",
            ApiError::InvalidDocumentSchemaVersion(_) => "InvalidDocumentSchemaVersion",
            ApiError::DocumentAlreadyExists(_) => "DocumentAlreadyExists",
            ApiError::DuplicateDocumentContent(_) => "DuplicateDocumentContent",
            ApiError::InvalidDocumentOperation(_) => "InvalidDocumentOperation",
            ApiError::MaxDocumentSizeExceeded(_) => "MaxDocumentSizeExceeded",
            ApiError::DocumentVersionLimitExceeded(_) => "DocumentVersionLimitExceeded",
            ApiError::DuplicateInstanceId(_) => "DuplicateInstanceId",
            ApiError::InvalidCommandId(_) => "InvalidCommandId",
            ApiError::InvalidPluginName(_) => "InvalidPluginName",
            ApiError::InvocationDoesNotExist(_) => "InvocationDoesNotExist",
            ApiError::TargetNotConnected(_) => "TargetNotConnected",
            ApiError::DoesNotExist(_) => "DoesNotExistException",
            ApiError::InternalServerError(_) => "InternalServerError",
            ApiError::Throttling(_) => "ThrottlingException",
        }
    }

    /// 500 for the server's own faults, 400 for everything the caller can fix.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::InternalServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(code = self.code(), message = %self, "internal error");
        } else {
            tracing::debug!(code = self.code(), message = %self, "client error");
        }
        let body = serde_json::json!({ "__type": self.code(), "message": self.to_string() });
        (
            self.status(),
            [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response()
    }
}
