//! `CreateDocument`: version 1 of one of the account's own documents.
//!
//! The emulator runs `Command` and `Session` documents; another type of the model is refused
//! with a `ValidationException` saying so (a type outside the model is the usual enum
//! violation). Names starting with `aws`, `amazon` or `amzn` (any case) are reserved for AWS
//! and refused with a `ValidationException`, as the service answers. Then, as the service:
//! `DocumentAlreadyExists`, `MaxDocumentSizeExceeded` (64 KB), `InvalidDocumentContent`,
//! `InvalidDocumentSchemaVersion`. Content must be JSON (`DocumentFormat` `JSON`); YAML is
//! refused with an `InvalidDocumentContent` that says so.

use serde::{Deserialize, Serialize};

use super::document_shapes::{self, DocumentDescription};
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::documents::{DocumentType, MODEL_DOCUMENT_TYPES};
use crate::model::{Emulator, Scope};

/// Name prefixes AWS keeps for its own documents (compared without regard to case).
const RESERVED_PREFIXES: [&str; 3] = ["aws", "amazon", "amzn"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    content: Option<String>,
    name: Option<String>,
    document_type: Option<String>,
    document_format: Option<String>,
    version_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    document_description: DocumentDescription,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        document_shapes::check_content(&mut v, &self.content, &self.document_format);
        document_shapes::check_name(&mut v, &self.name, false);
        document_shapes::check_version(&mut v, &None, &self.version_name);
        if let Some(t) = &self.document_type {
            v.one_of("documentType", t, &MODEL_DOCUMENT_TYPES);
        }
        v.finish()?;
        let name = self.name.as_deref().unwrap_or_default();
        let lower = name.to_ascii_lowercase();
        if RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
            return Err(ApiError::Validation(format!(
                "Invalid document name {name}: names that begin with aws, amazon or amzn are \
                 reserved."
            )));
        }
        Ok(())
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let requested = self.document_type.as_deref().unwrap_or("Command");
        let document_type = DocumentType::parse(requested).ok_or_else(|| {
            ApiError::Validation(format!(
                "ssm-emulator runs Command and Session documents only; DocumentType \
                 {requested} is not supported"
            ))
        })?;
        let name = self.name.unwrap_or_default();
        let raw = self.content.unwrap_or_default();
        let now = emu.now();
        emu.with_state(|state| {
            let store = &mut state.region_mut(scope).documents;
            if store.get(&name).is_some() {
                return Err(ApiError::DocumentAlreadyExists(
                    "The specified document already exists.".to_owned(),
                ));
            }
            let (format, parsed) = document_shapes::read_content(
                &raw,
                self.document_format.as_deref(),
                document_type,
            )?;
            let document = store.create(&name, raw, format, parsed, self.version_name, now)?;
            Ok(Response {
                document_description: DocumentDescription::new(document, document.latest(), scope),
            })
        })
    }
}
