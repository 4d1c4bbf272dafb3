//! `GetDocument`: the content of one version of a document, as the string it was created with.
//! `DocumentFormat` may ask for `JSON` (what the emulator stores); converting to `YAML` or
//! `TEXT` is not supported and is answered with a `ValidationException` saying so.

use serde::{Deserialize, Serialize};

use super::document_shapes;
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::clock::epoch_seconds;
use crate::model::{Emulator, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    name: Option<String>,
    document_version: Option<String>,
    version_name: Option<String>,
    document_format: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    name: String,
    created_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_name: Option<String>,
    document_version: String,
    status: &'static str,
    content: String,
    document_type: &'static str,
    document_format: &'static str,
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        document_shapes::check_name(&mut v, &self.name, true);
        document_shapes::check_version(&mut v, &self.document_version, &self.version_name);
        if let Some(format) = &self.document_format {
            v.one_of("documentFormat", format, &["YAML", "JSON", "TEXT"]);
        }
        v.finish()?;
        match self.document_format.as_deref() {
            None | Some("JSON") => Ok(()),
            Some(other) => Err(ApiError::Validation(format!(
                "ssm-emulator stores documents as JSON and cannot convert them to {other}; \
                 ask for DocumentFormat JSON"
            ))),
        }
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
                name: document.name.clone(),
                created_date: epoch_seconds(version.created),
                version_name: version.version_name.clone(),
                document_version: version.number.to_string(),
                status: "Active",
                content: version.raw.clone(),
                document_type: version.parsed.document_type.as_str(),
                document_format: version.format.as_str(),
            })
        })
    }
}
