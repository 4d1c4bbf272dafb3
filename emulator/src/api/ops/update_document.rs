//! `UpdateDocument`: a new latest version of one of the account's own documents. The default
//! version stays where it was, as on the service.
//!
//! `DocumentVersion` must be `$LATEST` or the latest version's number (else
//! `InvalidDocumentVersion`); content equal to an existing version's is
//! `DuplicateDocumentContent`; an AWS-owned document is `InvalidDocumentOperation`; an unknown
//! one `InvalidDocument`. The content is checked as in CreateDocument, against the document's
//! type.

use serde::{Deserialize, Serialize};

use super::document_shapes::{self, DocumentDescription};
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::documents::{Owner, no_such_document};
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    content: Option<String>,
    name: Option<String>,
    document_version: Option<String>,
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
        document_shapes::check_version(&mut v, &self.document_version, &self.version_name);
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let name = self.name.unwrap_or_default();
        let raw = self.content.unwrap_or_default();
        let now = emu.now();
        emu.with_state(|state| {
            let store = &mut state.region_mut(scope).documents;
            let existing = store.get(&name).ok_or_else(|| no_such_document(&name))?;
            if existing.owner == Owner::Amazon {
                return Err(ApiError::InvalidDocumentOperation(format!(
                    "Document {name} is owned by Amazon and cannot be updated."
                )));
            }
            let document_type = existing.latest().parsed.document_type;
            let (format, parsed) = document_shapes::read_content(
                &raw,
                self.document_format.as_deref(),
                document_type,
            )?;
            let document = store.update(
                &name,
                self.document_version.as_deref(),
                raw,
                format,
                parsed,
                self.version_name,
                now,
            )?;
            Ok(Response {
                document_description: DocumentDescription::new(document, document.latest(), scope),
            })
        })
    }
}
