//! `DescribeDocument`: one version of a document (`DocumentVersion`, `VersionName`; default
//! `$DEFAULT`) with its parameters as `Parameters[{Name, Type, Description, DefaultValue}]`.
//! `Name` may be the document's ARN. Unknown name: `InvalidDocument`; unknown version:
//! `InvalidDocumentVersion`.

use serde::{Deserialize, Serialize};

use super::document_shapes::{self, DocumentDescription};
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
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    document: DocumentDescription,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        document_shapes::check_name(&mut v, &self.name, true);
        document_shapes::check_version(&mut v, &self.document_version, &self.version_name);
        v.finish()
    }

    pub(crate) fn apply(self, emu: &Emulator, scope: &Scope) -> Result<Response, ApiError> {
        let name = self.name.unwrap_or_default();
        emu.with_state(|state| {
            let store = &state.region_mut(scope).documents;
            let document = document_shapes::find(store, &name)?;
            let version = document_shapes::select(
                document,
                self.document_version.as_deref(),
                self.version_name.as_deref(),
            )?;
            Ok(Response {
                document: DocumentDescription::new(document, version, scope),
            })
        })
    }
}
