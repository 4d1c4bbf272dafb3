//! What the session operations share: the caller's name and ARN, the StreamUrl, the
//! SessionId check and the `DescribeSessions` item (with `MaxSessionDuration` and `OutputUrl`
//! from the session's preferences, see `sessions::audit`).

use serde::Serialize;

use super::Caller;
use crate::api::validate::Violations;
use crate::clock::epoch_seconds;
use crate::model::Scope;
use crate::sessions::{OutputUrls, Session};
use crate::tls::Scheme;

/// Who the caller is, as a session id prefix: the SigV4 access key id, or `emulator` for
/// unsigned requests.
pub(crate) fn caller_name(caller: &Caller) -> String {
    caller
        .access_key
        .as_deref()
        .filter(|k| {
            k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .unwrap_or("emulator")
        .to_owned()
}

/// The caller's ARN (`SessionOwner`, `Owner`).
pub(crate) fn owner_arn(scope: &Scope, caller: &Caller) -> String {
    format!(
        "arn:aws:iam::{}:user/{}",
        scope.account_id,
        caller_name(caller)
    )
}

/// `ws://<host>/v1/data-channel/<id>?role=publish_subscribe` (`wss` on the TLS listener).
pub(crate) fn stream_url(caller: &Caller, session_id: &str) -> String {
    format!(
        "{}://{}/v1/data-channel/{session_id}?role=publish_subscribe",
        caller.scheme.websocket(),
        caller.host.as_deref().unwrap_or("localhost")
    )
}

/// `http(s)://<Host>` as the caller reached the emulator, for the `OutputUrl`s.
pub(crate) fn http_base(caller: &Caller) -> String {
    let scheme = match caller.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    format!(
        "{scheme}://{}",
        caller.host.as_deref().unwrap_or("localhost")
    )
}

/// `SessionId`: 1–96 characters.
pub(crate) fn check_session_id(v: &mut Violations, id: &Option<String>) {
    if let Some(id) = v.required("sessionId", id) {
        v.length("sessionId", id, 1, 96);
    }
}

/// One `Sessions` item of DescribeSessions.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SessionShape {
    session_id: String,
    target: String,
    status: &'static str,
    start_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_date: Option<f64>,
    document_name: String,
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Always present, `{}` without logging preferences (the AWS CLI's describe-sessions
    /// example shows `"OutputUrl": {}`).
    output_url: OutputUrls,
    /// Minutes, when the session's preferences set `maxSessionDuration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_session_duration: Option<String>,
    access_type: &'static str,
}

impl SessionShape {
    /// The item for `session`, its `OutputUrl`s under `base` (see [`http_base`]).
    pub(crate) fn of(session: &Session, base: &str) -> SessionShape {
        SessionShape {
            session_id: session.id.clone(),
            target: session.target.clone(),
            status: session.status.as_str(),
            start_date: epoch_seconds(session.start),
            end_date: session.end.map(epoch_seconds),
            document_name: session.document_name.clone(),
            owner: session.owner.clone(),
            reason: session.reason.clone(),
            output_url: session.output_urls(base),
            max_session_duration: session
                .preferences
                .max_session_duration_minutes
                .map(|minutes| minutes.to_string()),
            access_type: "Standard",
        }
    }
}
