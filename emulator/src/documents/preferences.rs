//! Session Manager preferences (spec §9.1): the `inputs` of the account's
//! `SSM-SessionManagerRunShell` document, or of the Standard_Stream document a session names.
//!
//! The real service keeps an account's preferences, per region, in an account-owned Session
//! document called `SSM-SessionManagerRunShell`, created the first time someone saves
//! preferences (console or CreateDocument) and changed with UpdateDocument. The emulator behaves
//! like an account that saved the defaults once: every region starts with that document at
//! version 1, owned by the account ([`seed`]), so the AWS user guide's
//! `aws ssm update-document --name SSM-SessionManagerRunShell …` works unchanged. Once it is
//! deleted, sessions get the defaults, as in an account that never saved preferences.
//!
//! Which preferences a session gets:
//! - a Port, InteractiveCommands or NonInteractiveCommands document has none of its own: it
//!   gets the account's (agent-port.jsonl and agent-noninteractive.jsonl carry the same `inputs`
//!   as agent-shell.jsonl);
//! - a Standard_Stream document with `inputs` is itself a preferences document (the user
//!   guide's "session-level preferences"): its own `inputs` apply, keys it leaves out taking the
//!   defaults (UNCONFIRMED: the real service might take those from the account's document).
//!
//! The service reads the **latest** version of `SSM-SessionManagerRunShell`, not its default
//! version: the user guide changes preferences with `update-document` alone, which leaves the
//! default version where it was (UNCONFIRMED beyond that guide).
//!
//! What the agent gets is [`Preferences::inputs`]: exactly the ten keys the recorded
//! `interactive_shell` messages carry, in their order. `idleSessionTimeout` and
//! `maxSessionDuration` are the service's business and never reach the agent.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use ssm_protocol::payload::SessionInputs;

use super::content::{self, DocumentFormat, DocumentType};
use super::{Document, Owner, Version, resolve, sha256_hex};
use crate::api::error::ApiError;
use crate::model::RegionState;

/// The name of the account's preferences document (and the default document of StartSession).
pub(crate) const PREFERENCES_DOCUMENT: &str = "SSM-SessionManagerRunShell";

/// `idleSessionTimeout` when a document leaves it out or empty: 20 minutes, the service's
/// default.
pub(crate) const DEFAULT_IDLE_SESSION_TIMEOUT_MINUTES: u64 = 20;

/// The `idleSessionTimeout` values the service accepts, in minutes (user guide: 1 to 60).
pub(crate) const IDLE_SESSION_TIMEOUT_MINUTES: RangeInclusive<u64> = 1..=60;

/// The `maxSessionDuration` values the service accepts, in minutes (user guide: 1 to 1,440;
/// the `MaxSessionDuration` pattern of the API model allows the same).
pub(crate) const MAX_SESSION_DURATION_MINUTES: RangeInclusive<u64> = 1..=1440;

/// The preferences document as an account that saved the defaults has it.
const DEFAULTS_RAW: &str = include_str!("builtin/SSM-SessionManagerRunShell.json");

/// When the seeded document was "created": the built-ins' fixed instant, so that responses
/// do not depend on when the emulator started.
const SEEDED_EPOCH_SECS: u64 = super::builtin::CREATED_EPOCH_SECS;

static DEFAULTS: LazyLock<Document> = LazyLock::new(|| {
    let parsed = content::parse(DEFAULTS_RAW, DocumentType::Session)
        .unwrap_or_else(|e| panic!("the default preferences document is not valid: {e}"));
    let created = UNIX_EPOCH + Duration::from_secs(SEEDED_EPOCH_SECS);
    Document {
        name: PREFERENCES_DOCUMENT.to_owned(),
        owner: Owner::Account,
        versions: vec![Version {
            number: 1,
            raw: DEFAULTS_RAW.to_owned(),
            format: DocumentFormat::Json,
            hash: sha256_hex(DEFAULTS_RAW),
            created,
            version_name: None,
            parsed,
        }],
        default_version: 1,
        created: created as SystemTime,
    }
});

/// The preferences document every region starts with (version 1, the defaults).
pub(crate) fn seed() -> Document {
    DEFAULTS.clone()
}

/// Resolves `name` like [`resolve::resolve`] for StartSession, where
/// `SSM-SessionManagerRunShell` always exists, at its latest version: after the account
/// deleted its own, it is the default preferences document (as for an account that never
/// saved preferences).
pub(crate) fn resolve_session_document(
    region: &RegionState,
    name: &str,
    params: &BTreeMap<String, Vec<String>>,
) -> Result<resolve::ResolvedDocument, ApiError> {
    let bare = resolve::document_name(name);
    if bare == PREFERENCES_DOCUMENT && region.documents.get(bare).is_none() {
        return resolve::resolve_version(&DEFAULTS, DEFAULTS.default(), params);
    }
    let version = (bare == PREFERENCES_DOCUMENT).then_some("$LATEST");
    resolve::resolve(region, name, version, params)
}

/// The preferences a session runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Preferences {
    /// `idleSessionTimeout`, in minutes.
    pub(crate) idle_session_timeout_minutes: u64,
    /// `maxSessionDuration`, in minutes; `None` when empty (no limit).
    pub(crate) max_session_duration_minutes: Option<u64>,
    /// What the agent gets as `DocumentContent.inputs`.
    pub(crate) inputs: SessionInputs,
}

impl Default for Preferences {
    fn default() -> Preferences {
        Preferences {
            idle_session_timeout_minutes: DEFAULT_IDLE_SESSION_TIMEOUT_MINUTES,
            max_session_duration_minutes: None,
            inputs: SessionInputs::default(),
        }
    }
}

impl Preferences {
    /// How long a session may go without data before it ends.
    pub(crate) fn idle_session_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_session_timeout_minutes * 60)
    }

    /// How long a session may last at most.
    pub(crate) fn max_session_duration(&self) -> Option<Duration> {
        self.max_session_duration_minutes
            .map(|minutes| Duration::from_secs(minutes * 60))
    }

    /// Reads the `inputs` object of a session document. The error says which member is wrong
    /// and why.
    pub(crate) fn from_inputs(inputs: &Value) -> Result<Preferences, String> {
        let Value::Object(members) = inputs else {
            return Err("inputs must be a JSON object".to_owned());
        };
        let idle = minutes(members.get("idleSessionTimeout"), "idleSessionTimeout")?
            .unwrap_or(DEFAULT_IDLE_SESSION_TIMEOUT_MINUTES);
        check_range("idleSessionTimeout", idle, &IDLE_SESSION_TIMEOUT_MINUTES)?;
        let max = minutes(members.get("maxSessionDuration"), "maxSessionDuration")?;
        if let Some(max) = max {
            check_range("maxSessionDuration", max, &MAX_SESSION_DURATION_MINUTES)?;
        }
        let inputs: SessionInputs =
            serde_json::from_value(inputs.clone()).map_err(|e| format!("inputs: {e}"))?;
        Ok(Preferences {
            idle_session_timeout_minutes: idle,
            max_session_duration_minutes: max,
            inputs,
        })
    }
}

/// A number of minutes written as a string of digits (what the console writes) or a JSON
/// number; absent or `""` is `None`.
fn minutes(value: Option<&Value>, name: &str) -> Result<Option<u64>, String> {
    let not_minutes = || format!("{name} must be a whole number of minutes, not {value:?}");
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| not_minutes()),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(not_minutes),
        Some(_) => Err(not_minutes()),
    }
}

fn check_range(name: &str, value: u64, range: &RangeInclusive<u64>) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be from {} to {} minutes, not {value}",
            range.start(),
            range.end()
        ))
    }
}

/// The account's preferences in `region`: the latest version of its
/// `SSM-SessionManagerRunShell`, or the defaults when it has none.
///
/// Errors: `InvalidDocument` when that document's preferences are not valid (the session
/// cannot start until someone fixes them).
pub(crate) fn account_preferences(region: &RegionState) -> Result<Preferences, ApiError> {
    if region.documents.get(PREFERENCES_DOCUMENT).is_none() {
        return Ok(Preferences::default());
    }
    let resolved = resolve::resolve(
        region,
        PREFERENCES_DOCUMENT,
        Some("$LATEST"),
        &BTreeMap::new(),
    )?;
    of_document(PREFERENCES_DOCUMENT, &resolved.content)
}

/// The preferences of a session started with a document whose resolved content is `content`
/// and whose `sessionType` is `session_type`.
pub(crate) fn for_session(
    region: &RegionState,
    name: &str,
    session_type: Option<&str>,
    content: &Value,
) -> Result<Preferences, ApiError> {
    let own = content.get("inputs").filter(|inputs| inputs.is_object());
    match (session_type, own) {
        _ if name == PREFERENCES_DOCUMENT => account_preferences(region),
        (Some("Standard_Stream"), Some(_)) => of_document(name, content),
        _ => account_preferences(region),
    }
}

fn of_document(name: &str, content: &Value) -> Result<Preferences, ApiError> {
    let inputs = content.get("inputs").cloned().unwrap_or(Value::Null);
    let inputs = if inputs.is_null() {
        Value::Object(serde_json::Map::new())
    } else {
        inputs
    };
    Preferences::from_inputs(&inputs).map_err(|why| {
        ApiError::InvalidDocument(format!(
            "The Session Manager preferences in document {name} are not valid: {why}."
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seeded_document_holds_the_defaults() {
        let seeded = seed();
        assert_eq!(seeded.owner, Owner::Account);
        let inputs = &seeded.default().parsed.body["inputs"];
        assert_eq!(
            Preferences::from_inputs(inputs).unwrap(),
            Preferences::default()
        );
    }

    #[test]
    fn reads_minutes_as_strings_or_numbers() {
        let p = Preferences::from_inputs(&json!({
            "idleSessionTimeout": "1", "maxSessionDuration": 90,
            "s3BucketName": "audit", "runAsEnabled": true, "runAsDefaultUser": "nobody",
            "shellProfile": {"linux": "cd /tmp", "windows": ""}
        }))
        .unwrap();
        assert_eq!(p.idle_session_timeout(), Duration::from_secs(60));
        assert_eq!(p.max_session_duration(), Some(Duration::from_secs(5400)));
        assert_eq!(p.inputs.s3_bucket_name, "audit");
        assert!(p.inputs.run_as_enabled);
        assert_eq!(p.inputs.shell_profile.linux, "cd /tmp");

        let p =
            Preferences::from_inputs(&json!({"idleSessionTimeout": "", "maxSessionDuration": ""}))
                .unwrap();
        assert_eq!(p, Preferences::default());
    }

    #[test]
    fn refuses_what_the_service_would_not_accept() {
        for (inputs, named) in [
            (json!({"idleSessionTimeout": "0"}), "idleSessionTimeout"),
            (json!({"idleSessionTimeout": "61"}), "idleSessionTimeout"),
            (json!({"idleSessionTimeout": "soon"}), "idleSessionTimeout"),
            (json!({"maxSessionDuration": "1441"}), "maxSessionDuration"),
            (json!({"maxSessionDuration": -5}), "maxSessionDuration"),
            (json!({"runAsEnabled": "yes"}), "inputs"),
            (json!([]), "object"),
        ] {
            let why = Preferences::from_inputs(&inputs).unwrap_err();
            assert!(why.contains(named), "{inputs}: {why}");
        }
    }
}
