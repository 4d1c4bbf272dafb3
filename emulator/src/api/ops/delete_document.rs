//! `DeleteDocument`: removes one of the account's own documents with all its versions.
//! AWS-owned documents: `InvalidDocumentOperation`; unknown names: `InvalidDocument`.
//!
//! `DocumentVersion`/`VersionName` must name an existing version (else
//! `InvalidDocumentVersion`); deleting a single version is not supported by the emulator and is
//! answered with `InvalidDocumentOperation` saying so, unless the document has only that one.

use serde::{Deserialize, Serialize};

use super::document_shapes;
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    name: Option<String>,
    document_version: Option<String>,
    version_name: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Response {}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        document_shapes::check_name(&mut v, &self.name, false);
        document_shapes::check_version(&mut v, &self.document_version, &self.version_name);
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let name = self.name.unwrap_or_default();
        emu.with_state(|state| {
            let store = &mut state.region_mut(scope).documents;
            let document = document_shapes::find(store, &name)?;
            if self.document_version.is_some() || self.version_name.is_some() {
                document_shapes::select(
                    document,
                    self.document_version.as_deref(),
                    self.version_name.as_deref(),
                )?;
                if document.versions.len() > 1 {
                    return Err(ApiError::InvalidDocumentOperation(
                        "ssm-emulator deletes whole documents only: omit DocumentVersion and \
                         VersionName to delete every version"
                            .to_owned(),
                    ));
                }
            }
            store.delete(&name)?;
            Ok(Response {})
        })
    }
}
