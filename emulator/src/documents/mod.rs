//! SSM documents: the AWS-owned ones every account sees, the account's own (per account and
//! region, with versions), and the parameter resolution that Run Command and sessions use to turn
//! a document plus request `Parameters` into what the agent receives.
//!
//! # Layout
//! - `builtin`: the AWS-owned documents, kept as JSON files under `builtin/` and embedded.
//! - `content`: parsing and checking a document body (type, schema version, parameters,
//!   plugins), shared by the built-ins and CreateDocument/UpdateDocument.
//! - `pattern`: the small regular-expression matcher for `allowedPattern`.
//! - `preferences`: Session Manager preferences, read from the account's
//!   `SSM-SessionManagerRunShell` (which every region starts with) or a session's own
//!   Standard_Stream document.
//! - `resolve`: [`resolve`] and [`ResolvedDocument`].
//!
//! Architecture invariant: nothing here knows HTTP. Errors are [`ApiError`]s because the real
//! service reports document problems with dedicated codes (`InvalidDocument`,
//! `InvalidParameters`, …) that the operations pass through unchanged.

mod builtin;
mod content;
// `resolve` serves SendCommand and StartSession, which land separately: until both call it,
// parts of it may be unused.
#[allow(dead_code)]
mod pattern;
pub(crate) mod preferences;
#[allow(dead_code)]
mod resolve;

use std::collections::BTreeMap;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::api::error::ApiError;

pub(crate) use content::{
    DocumentFormat, DocumentType, MODEL_DOCUMENT_TYPES, ParsedContent, parse as parse_content,
};
#[allow(unused_imports)] // For SendCommand and StartSession.
pub(crate) use resolve::ResolvedDocument;
pub(crate) use resolve::document_name;
#[allow(unused_imports)] // For SendCommand and StartSession.
pub(crate) use resolve::resolve;

/// The most versions one document keeps (the service's limit is 1,000).
pub(crate) const MAX_VERSIONS: usize = 1000;

/// The largest document content accepted, in bytes (64 KB for Command and Session documents).
pub(crate) const MAX_CONTENT_BYTES: usize = 64 * 1024;

/// Who owns a document, as `Owner` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// An AWS-owned document (`Owner: "Amazon"`), read-only.
    Amazon,
    /// One of the account's own documents (`Owner` is the account id).
    Account,
}

/// One document with all its versions.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub(crate) name: String,
    pub(crate) owner: Owner,
    /// Version `n` is `versions[n - 1]`; never empty.
    pub(crate) versions: Vec<Version>,
    /// The version number `$DEFAULT` means. UpdateDocument leaves it alone, as AWS does
    /// (UpdateDocumentDefaultVersion moves it).
    pub(crate) default_version: usize,
    /// When version 1 was created.
    pub(crate) created: SystemTime,
}

/// One version of a document.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    /// "1", "2", …
    pub(crate) number: usize,
    /// The content exactly as submitted (GetDocument returns it verbatim).
    pub(crate) raw: String,
    pub(crate) format: DocumentFormat,
    /// SHA-256 of `raw`, in hex (`Hash`, `HashType: Sha256`).
    pub(crate) hash: String,
    pub(crate) created: SystemTime,
    pub(crate) version_name: Option<String>,
    pub(crate) parsed: ParsedContent,
}

impl Document {
    /// The version `selector` names: `None` and `$DEFAULT` the default, `$LATEST` the latest,
    /// or a number. Anything else, or a number with no version, is `InvalidDocumentVersion`.
    pub(crate) fn version(&self, selector: Option<&str>) -> Result<&Version, ApiError> {
        let number = match selector {
            None | Some("$DEFAULT") => self.default_version,
            Some("$LATEST") => self.versions.len(),
            Some(n) => parse_version_number(n).ok_or_else(invalid_version)?,
        };
        number
            .checked_sub(1)
            .and_then(|i| self.versions.get(i))
            .ok_or_else(invalid_version)
    }

    /// The version named `version_name` (`VersionName`), if any has it.
    pub(crate) fn version_named(&self, version_name: &str) -> Result<&Version, ApiError> {
        self.versions
            .iter()
            .find(|v| v.version_name.as_deref() == Some(version_name))
            .ok_or_else(invalid_version)
    }

    /// The latest version.
    pub(crate) fn latest(&self) -> &Version {
        self.versions
            .last()
            .expect("a document has at least one version")
    }

    /// The default version.
    pub(crate) fn default(&self) -> &Version {
        &self.versions[self.default_version - 1]
    }
}

/// A version number as the model writes it (`^[1-9][0-9]*$`).
pub(crate) fn parse_version_number(text: &str) -> Option<usize> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if digits && !text.starts_with('0') {
        text.parse().ok()
    } else {
        None
    }
}

fn invalid_version() -> ApiError {
    ApiError::InvalidDocumentVersion(
        "The document version is not valid or does not exist.".to_owned(),
    )
}

/// The `InvalidDocument` error for a name no document has.
pub(crate) fn no_such_document(name: &str) -> ApiError {
    ApiError::InvalidDocument(format!("Document with name {name} does not exist."))
}

/// The account's own documents in one region. The AWS-owned ones live in `builtin` and are the
/// same everywhere.
#[derive(Debug)]
pub(crate) struct DocumentStore {
    /// By name, so that listing order (and pagination) is stable.
    custom: BTreeMap<String, Document>,
}

impl Default for DocumentStore {
    /// A region's documents before anyone changed them: the account's Session Manager
    /// preferences with the defaults (see `preferences`).
    fn default() -> DocumentStore {
        let seeded = preferences::seed();
        DocumentStore {
            custom: BTreeMap::from([(seeded.name.clone(), seeded)]),
        }
    }
}

impl DocumentStore {
    /// The document called `name`, AWS-owned or the account's.
    pub(crate) fn get(&self, name: &str) -> Option<&Document> {
        builtin::get(name).or_else(|| self.custom.get(name))
    }

    /// Every document visible here, AWS-owned and the account's, sorted by name.
    pub(crate) fn all(&self) -> Vec<&Document> {
        let mut all: Vec<&Document> = builtin::all().iter().chain(self.custom.values()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Adds version 1 of a new document. The caller has checked the name.
    pub(crate) fn create(
        &mut self,
        name: &str,
        raw: String,
        format: DocumentFormat,
        parsed: ParsedContent,
        version_name: Option<String>,
        now: SystemTime,
    ) -> Result<&Document, ApiError> {
        if self.get(name).is_some() {
            return Err(ApiError::DocumentAlreadyExists(
                "The specified document already exists.".to_owned(),
            ));
        }
        let document = Document {
            name: name.to_owned(),
            owner: Owner::Account,
            versions: vec![Version {
                number: 1,
                hash: sha256_hex(&raw),
                raw,
                format,
                created: now,
                version_name,
                parsed,
            }],
            default_version: 1,
            created: now,
        };
        Ok(self.custom.entry(name.to_owned()).or_insert(document))
    }

    /// Adds a new latest version to the account's document `name`. `base` is the request's
    /// `DocumentVersion`, which must name the latest version.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        name: &str,
        base: Option<&str>,
        raw: String,
        format: DocumentFormat,
        parsed: ParsedContent,
        version_name: Option<String>,
        now: SystemTime,
    ) -> Result<&Document, ApiError> {
        if builtin::get(name).is_some() {
            return Err(ApiError::InvalidDocumentOperation(format!(
                "Document {name} is owned by Amazon and cannot be updated."
            )));
        }
        let document = self
            .custom
            .get_mut(name)
            .ok_or_else(|| no_such_document(name))?;
        let latest = document.versions.len();
        match base {
            None | Some("$LATEST") => {}
            Some(n) if n == latest.to_string() => {}
            Some(_) => {
                return Err(ApiError::InvalidDocumentVersion(
                    "The document version is not valid or does not exist. \
                     UpdateDocument must name $LATEST or the latest version."
                        .to_owned(),
                ));
            }
        }
        if document.versions.len() >= MAX_VERSIONS {
            return Err(ApiError::DocumentVersionLimitExceeded(format!(
                "Document {name} already has the maximum of {MAX_VERSIONS} versions."
            )));
        }
        let hash = sha256_hex(&raw);
        if document.versions.iter().any(|v| v.hash == hash) {
            return Err(ApiError::DuplicateDocumentContent(
                "The content of the association document matches another document. \
                 Change the content of the document and try again."
                    .to_owned(),
            ));
        }
        if let Some(version_name) = &version_name
            && document
                .versions
                .iter()
                .any(|v| v.version_name.as_ref() == Some(version_name))
        {
            return Err(ApiError::Validation(format!(
                "The version name {version_name} is already used by another version of {name}."
            )));
        }
        document.versions.push(Version {
            number: latest + 1,
            raw,
            format,
            hash,
            created: now,
            version_name,
            parsed,
        });
        Ok(document)
    }

    /// Deletes the account's document `name` with all its versions.
    pub(crate) fn delete(&mut self, name: &str) -> Result<(), ApiError> {
        if builtin::get(name).is_some() {
            return Err(ApiError::InvalidDocumentOperation(format!(
                "Document {name} is owned by Amazon and cannot be deleted."
            )));
        }
        self.custom
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| no_such_document(name))
    }
}

/// Lower-case hex SHA-256 of `text`, as `Hash` shows it.
pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `MaxDocumentSizeExceeded` for content over [`MAX_CONTENT_BYTES`].
pub(crate) fn check_size(raw: &str) -> Result<(), ApiError> {
    if raw.len() > MAX_CONTENT_BYTES {
        return Err(ApiError::MaxDocumentSizeExceeded(format!(
            "The content of the document is {} bytes; the maximum is {MAX_CONTENT_BYTES} bytes.",
            raw.len()
        )));
    }
    Ok(())
}
