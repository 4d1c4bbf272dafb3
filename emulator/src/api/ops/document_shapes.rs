//! What the document operations share: the model's name and version patterns, finding a
//! version by `DocumentVersion`/`VersionName`, and the `DocumentDescription` and
//! `DocumentIdentifier` output shapes.

use serde::Serialize;

use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::clock::epoch_seconds;
use crate::documents::{Document, Owner, Version, no_such_document, parse_version_number};
use crate::model::Scope;

/// `DocumentName` of CreateDocument/UpdateDocument/DeleteDocument/ListDocuments.
pub(super) const NAME_PATTERN: &str = r"^[a-zA-Z0-9_\-.]{3,128}$";
/// `DocumentARN` of DescribeDocument/GetDocument (a name or an ARN).
pub(super) const NAME_OR_ARN_PATTERN: &str = r"^[a-zA-Z0-9_\-.:/]{3,128}$";
const VERSION_PATTERN: &str = "([$]LATEST|[$]DEFAULT|^[1-9][0-9]*$)";
const VERSION_NAME_PATTERN: &str = r"^[a-zA-Z0-9_\-.]{1,128}$";

/// Whether `name` fits `^[a-zA-Z0-9_\-.]{3,128}$` (with `extra` characters also allowed).
pub(super) fn name_fits(name: &str, extra: &str) -> bool {
    (3..=128).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c) || extra.contains(c))
}

/// Checks `Name` against the narrow (`arn: false`) or wide pattern.
pub(super) fn check_name(v: &mut Violations, name: &Option<String>, arn: bool) {
    if let Some(name) = v.required("name", name) {
        let (extra, pattern) = if arn {
            (":/", NAME_OR_ARN_PATTERN)
        } else {
            ("", NAME_PATTERN)
        };
        v.pattern("name", name, name_fits(name, extra), pattern);
    }
}

/// Checks `DocumentVersion` and `VersionName`.
pub(super) fn check_version(
    v: &mut Violations,
    document_version: &Option<String>,
    version_name: &Option<String>,
) {
    if let Some(dv) = document_version {
        let ok = dv == "$LATEST" || dv == "$DEFAULT" || parse_version_number(dv).is_some();
        v.pattern("documentVersion", dv, ok, VERSION_PATTERN);
    }
    if let Some(vn) = version_name {
        v.pattern(
            "versionName",
            vn,
            (1..=128).contains(&vn.chars().count())
                && vn
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)),
            VERSION_NAME_PATTERN,
        );
    }
}

/// The version a request names: by `DocumentVersion` (default: `$DEFAULT`), and if it also
/// gives `VersionName`, that version must carry it.
pub(super) fn select<'d>(
    document: &'d Document,
    document_version: Option<&str>,
    version_name: Option<&str>,
) -> Result<&'d Version, ApiError> {
    match (document_version, version_name) {
        (None, Some(name)) => document.version_named(name),
        (dv, None) => document.version(dv),
        (Some(dv), Some(name)) => {
            let version = document.version(Some(dv))?;
            if version.version_name.as_deref() == Some(name) {
                Ok(version)
            } else {
                document
                    .version_named(name)
                    .and(Err(ApiError::InvalidDocumentVersion(
                        "The document version and version name name different versions.".to_owned(),
                    )))
            }
        }
    }
}

/// The document `name` (or ARN) from `store`, or `InvalidDocument`.
pub(super) fn find<'s>(
    store: &'s crate::documents::DocumentStore,
    name: &str,
) -> Result<&'s Document, ApiError> {
    let name = crate::documents::document_name(name);
    store.get(name).ok_or_else(|| no_such_document(name))
}

/// `Owner`: `Amazon` or the account id.
pub(super) fn owner(document: &Document, scope: &Scope) -> String {
    match document.owner {
        Owner::Amazon => "Amazon".to_owned(),
        Owner::Account => scope.account_id.clone(),
    }
}

/// `DocumentDescription` (DescribeDocument's `Document`, CreateDocument's and UpdateDocument's
/// `DocumentDescription`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DocumentDescription {
    hash: String,
    hash_type: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_name: Option<String>,
    owner: String,
    created_date: f64,
    status: &'static str,
    document_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    parameters: Vec<DocumentParameter>,
    platform_types: Vec<&'static str>,
    document_type: &'static str,
    schema_version: String,
    latest_version: String,
    default_version: String,
    document_format: &'static str,
    tags: Vec<serde_json::Value>,
}

/// One element of `Parameters`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DocumentParameter {
    name: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_value: Option<String>,
}

impl DocumentDescription {
    pub(super) fn new(document: &Document, version: &Version, scope: &Scope) -> Self {
        let parsed = &version.parsed;
        DocumentDescription {
            hash: version.hash.clone(),
            hash_type: "Sha256",
            name: document.name.clone(),
            version_name: version.version_name.clone(),
            owner: owner(document, scope),
            created_date: epoch_seconds(version.created),
            status: "Active",
            document_version: version.number.to_string(),
            description: parsed.description.clone(),
            parameters: parsed
                .parameters
                .iter()
                .map(|p| DocumentParameter {
                    name: p.name.clone(),
                    kind: p.kind.as_str(),
                    description: p.description.clone(),
                    default_value: p.default_text(),
                })
                .collect(),
            platform_types: parsed.platform_types.clone(),
            document_type: parsed.document_type.as_str(),
            schema_version: parsed.schema_version.clone(),
            latest_version: document.latest().number.to_string(),
            default_version: document.default().number.to_string(),
            document_format: version.format.as_str(),
            tags: Vec::new(),
        }
    }
}

/// `DocumentIdentifier`, one element of ListDocuments' `DocumentIdentifiers`: the default
/// version's view of a document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DocumentIdentifier {
    pub(super) name: String,
    created_date: f64,
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_name: Option<String>,
    platform_types: Vec<&'static str>,
    document_version: String,
    document_type: &'static str,
    schema_version: String,
    document_format: &'static str,
    tags: Vec<serde_json::Value>,
}

impl DocumentIdentifier {
    pub(super) fn new(document: &Document, scope: &Scope) -> Self {
        let version = document.default();
        DocumentIdentifier {
            name: document.name.clone(),
            created_date: epoch_seconds(document.created),
            owner: owner(document, scope),
            version_name: version.version_name.clone(),
            platform_types: version.parsed.platform_types.clone(),
            document_version: version.number.to_string(),
            document_type: version.parsed.document_type.as_str(),
            schema_version: version.parsed.schema_version.clone(),
            document_format: version.format.as_str(),
            tags: Vec::new(),
        }
    }
}

/// CreateDocument's and UpdateDocument's content checks, in the order the service applies
/// them: size, format, then the body itself.
pub(super) fn read_content(
    raw: &str,
    format: Option<&str>,
    document_type: crate::documents::DocumentType,
) -> Result<
    (
        crate::documents::DocumentFormat,
        crate::documents::ParsedContent,
    ),
    ApiError,
> {
    crate::documents::check_size(raw)?;
    match format {
        None | Some("JSON") => {}
        Some(other) => {
            return Err(ApiError::InvalidDocumentContent(format!(
                "ssm-emulator reads documents in JSON format only; {other} content is not \
                 supported. Send the content as JSON with DocumentFormat JSON."
            )));
        }
    }
    let parsed = crate::documents::parse_content(raw, document_type)?;
    Ok((crate::documents::DocumentFormat::Json, parsed))
}

/// Checks `DocumentFormat`, `VersionName` and `Content` of CreateDocument/UpdateDocument.
pub(super) fn check_content(v: &mut Violations, content: &Option<String>, format: &Option<String>) {
    if let Some(content) = v.required("content", content) {
        v.length("content", content, 1, usize::MAX);
    }
    if let Some(format) = format {
        v.one_of("documentFormat", format, &["YAML", "JSON", "TEXT"]);
    }
}
