//! The AWS-owned documents (`Owner: Amazon`) every account and region sees, read-only.
//!
//! Their bodies are the public copies of the real ones (spec §7.1, §9.1, §9.2), kept as JSON
//! files beside this module and parsed once, on first use, by the same code as CreateDocument.
//! `builtin/SSM-SessionManagerRunShell.json` is not one of them: it is the account-owned
//! preferences document every region starts with (`super::preferences`).

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::content::{self, DocumentFormat, DocumentType};
use super::{Document, Owner, Version, sha256_hex};

/// Name, type and body of each built-in document.
const SOURCES: [(&str, DocumentType, &str); 6] = [
    (
        "AWS-RunShellScript",
        DocumentType::Command,
        include_str!("builtin/AWS-RunShellScript.json"),
    ),
    (
        "AWS-StartSSHSession",
        DocumentType::Session,
        include_str!("builtin/AWS-StartSSHSession.json"),
    ),
    (
        "AWS-StartPortForwardingSession",
        DocumentType::Session,
        include_str!("builtin/AWS-StartPortForwardingSession.json"),
    ),
    (
        "AWS-StartPortForwardingSessionToRemoteHost",
        DocumentType::Session,
        include_str!("builtin/AWS-StartPortForwardingSessionToRemoteHost.json"),
    ),
    (
        "AWS-StartInteractiveCommand",
        DocumentType::Session,
        include_str!("builtin/AWS-StartInteractiveCommand.json"),
    ),
    (
        "AWS-StartNonInteractiveCommand",
        DocumentType::Session,
        include_str!("builtin/AWS-StartNonInteractiveCommand.json"),
    ),
];

/// When the built-ins were "created": a fixed instant (2017-08-30T21:33:44Z, the real
/// AWS-RunShellScript's CreatedDate), so that responses do not depend on when the emulator
/// started.
pub(super) const CREATED_EPOCH_SECS: u64 = 1_504_128_824;

static BUILTINS: LazyLock<Vec<Document>> = LazyLock::new(|| {
    let created = UNIX_EPOCH + Duration::from_secs(CREATED_EPOCH_SECS);
    SOURCES
        .iter()
        .map(|&(name, document_type, raw)| {
            let parsed = content::parse(raw, document_type)
                .unwrap_or_else(|e| panic!("built-in document {name} is not valid: {e}"));
            Document {
                name: name.to_owned(),
                owner: Owner::Amazon,
                versions: vec![Version {
                    number: 1,
                    raw: raw.to_owned(),
                    format: DocumentFormat::Json,
                    hash: sha256_hex(raw),
                    created,
                    version_name: None,
                    parsed,
                }],
                default_version: 1,
                created: created as SystemTime,
            }
        })
        .collect()
});

/// Every built-in document.
pub(super) fn all() -> &'static [Document] {
    &BUILTINS
}

/// The built-in document called `name`.
pub(super) fn get(name: &str) -> Option<&'static Document> {
    BUILTINS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_with_its_type() {
        assert_eq!(all().len(), SOURCES.len());
        let shell = get("AWS-RunShellScript").unwrap();
        let parsed = &shell.latest().parsed;
        assert_eq!(parsed.schema_version, "1.2");
        assert_eq!(parsed.plugin_names, ["aws:runShellScript"]);
        assert_eq!(parsed.platform_types, ["Linux", "MacOS"]);
        let names: Vec<&str> = parsed.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["commands", "workingDirectory", "executionTimeout"]);
        for name in ["AWS-StartSSHSession", "AWS-StartPortForwardingSession"] {
            let parsed = &get(name).unwrap().latest().parsed;
            assert_eq!(parsed.session_type.as_deref(), Some("Port"));
        }
    }
}
