//! `StartSession`: starts a session on a node (spec §10, §9.1). The session is recorded
//! `Connecting` with a client token, and `interactive_shell` goes to the node's agent on its
//! control channel with the resolved document (String parameters as JSON strings) whose
//! `inputs` are the session's Session Manager preferences (`documents::preferences`: the
//! account's `SSM-SessionManagerRunShell`, or a Standard_Stream document's own). The session
//! keeps those preferences (idle timeout, maximum duration, logging) for its whole life.
//! Without a DocumentName, or with `SSM-SessionManagerRunShell` after the account deleted it,
//! the session runs the default preferences document.
//!
//! Errors: `ValidationException` (model constraints), `TargetNotConnected` (an unknown node,
//! or one whose agent has no control channel), `InvalidDocument` (unknown, or not a Session
//! document, or its preferences are not valid), `InvalidParameters` (from document
//! resolution).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ssm_protocol::MessageType;
use ssm_protocol::payload::{
    self, AgentTaskPayload, MgsPayload, SessionDocumentContent, TOPIC_START_SESSION,
};

use super::Caller;
use super::session_shapes::{caller_name, owner_arn, stream_url};
use crate::api::error::ApiError;
use crate::api::validate::Violations;
use crate::documents::preferences::{self, PREFERENCES_DOCUMENT};
use crate::documents::{self, DocumentType};
use crate::model::{Emulator, Scope};
use crate::sessions::{End, NewSession, new_token};

/// The document of a session when the request names none.
pub(crate) const DEFAULT_DOCUMENT: &str = PREFERENCES_DOCUMENT;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Request {
    target: Option<String>,
    document_name: Option<String>,
    reason: Option<String>,
    parameters: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Response {
    session_id: String,
    token_value: String,
    stream_url: String,
}

fn is_document_name(name: &str) -> bool {
    (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c))
}

impl Request {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        if let Some(target) = v.required("target", &self.target) {
            v.length("target", target, 1, 400);
        }
        if let Some(name) = &self.document_name {
            v.pattern(
                "documentName",
                name,
                is_document_name(name),
                "^[a-zA-Z0-9_\\-.:/]{3,128}$",
            );
        }
        if let Some(reason) = &self.reason {
            v.length("reason", reason, 1, 256);
        }
        for (name, values) in self.parameters.iter().flatten() {
            for value in values {
                v.length(&format!("parameters.{name}.member"), value, 1, 65535);
            }
        }
        v.finish()
    }

    pub(crate) fn apply(
        self,
        emu: &Emulator,
        scope: &Scope,
        caller: &Caller,
    ) -> Result<Response, ApiError> {
        let target = self.target.unwrap_or_default();
        let name = self
            .document_name
            .unwrap_or_else(|| DEFAULT_DOCUMENT.to_owned());
        let params = self.parameters.unwrap_or_default();
        let now = emu.now();
        let who = caller_name(caller);
        let owner = owner_arn(scope, caller);
        emu.with_state(|state| {
            let region = state.region_mut(scope);
            if !region.instances.contains_key(&target) {
                return Err(ApiError::TargetNotConnected(format!(
                    "{target} is not connected."
                )));
            }
            // The type first: a Command document is the wrong document, whatever the parameters.
            let not_session = |t: DocumentType| {
                ApiError::InvalidDocument(format!(
                    "Document type {} is not supported. Only type Session is supported for \
                     Session Manager.",
                    t.as_str()
                ))
            };
            if let Some(d) = region.documents.get(documents::document_name(&name)) {
                let t = d.default().parsed.document_type;
                if t != DocumentType::Session {
                    return Err(not_session(t));
                }
            }
            let doc = preferences::resolve_session_document(region, &name, &params)?;
            if doc.document_type != DocumentType::Session {
                return Err(not_session(doc.document_type));
            }
            let prefs = preferences::for_session(
                region,
                &doc.name,
                doc.session_type.as_deref(),
                &doc.content,
            )?;
            if !state.control.is_connected(scope, &target) {
                return Err(ApiError::TargetNotConnected(format!(
                    "{target} is not connected."
                )));
            }
            let suffix: String = state.uuid().simple().to_string().chars().take(17).collect();
            let session_id = format!("{who}-{suffix}");
            let mut content: SessionDocumentContent = serde_json::from_value(doc.content.clone())
                .map_err(|e| {
                ApiError::InternalServerError(format!("session document content: {e}"))
            })?;
            // The agent gets `{}` for a document without properties, as in agent-shell.jsonl.
            if content.properties.is_null() {
                content.properties = serde_json::Value::Object(serde_json::Map::new());
            }
            content.inputs = prefs.inputs.clone();
            let task = AgentTaskPayload {
                document_name: doc.name.clone(),
                session_id: session_id.clone(),
                run_as_user: String::new(),
                session_owner: owner.clone(),
                parameters: doc.typed_parameters.clone(),
                document_content: content,
            };
            let bytes = MgsPayload::from_task(&task, TOPIC_START_SESSION)
                .and_then(|p| payload::to_json_bytes(&p))
                .map_err(|e| ApiError::InternalServerError(format!("interactive_shell: {e}")))?;
            if state
                .send_to_agent(scope, &target, now, MessageType::InteractiveShell, bytes)
                .is_none()
            {
                return Err(ApiError::TargetNotConnected(format!(
                    "{target} is not connected."
                )));
            }
            let token = new_token(state);
            let url = stream_url(caller, &session_id);
            let session = state.sessions.insert(NewSession {
                id: session_id.clone(),
                scope: scope.clone(),
                target: target.clone(),
                document_name: doc.name,
                owner,
                reason: self.reason,
                start: now,
                stream_url: url.clone(),
                preferences: prefs,
            });
            session.issue(End::Client, token.clone());
            tracing::info!(session_id, target, "StartSession");
            Ok(Response {
                session_id,
                token_value: token,
                stream_url: url,
            })
        })
    }
}
