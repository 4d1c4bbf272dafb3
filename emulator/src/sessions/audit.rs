//! The audit trail of a session: who, what, when and why it ended ([`SessionRecord`], served
//! as `GET /_emulator/sessions/{id}`), its transcript, and where the logging preferences would
//! have put that transcript ([`OutputUrls`]).
//!
//! With `s3BucketName` set, the real agent uploads the session log to
//! `s3://<bucket>/<prefix>/<sessionId>.log`, and with `cloudWatchLogGroupName` set it writes
//! to the stream `<sessionId>` of that group. Offline there is no S3 or CloudWatch, so the
//! emulator serves the transcript at URLs shaped like those places, which DescribeSessions
//! returns as `OutputUrl` (the model says only "string, 1–2083"; the real URLs' form is
//! UNCONFIRMED):
//! - `S3OutputUrl`: `<base>/_emulator/s3/<bucket>/<key>`, the key `<prefix>/<sessionId>.log`
//!   (`<sessionId>.log` without a prefix; slashes around the prefix trimmed);
//! - `CloudWatchOutputUrl`: `<base>/_emulator/cloudwatch/<group>/<sessionId>`, the group
//!   percent-encoded as one path segment (group names contain `/`).
//!
//! `<base>` is `http(s)://<Host of the request>`. Without those preferences `OutputUrl` is
//! `{}`, as in the AWS CLI's describe-sessions example.

use serde::Serialize;

use super::Session;
use crate::clock::iso8601_seconds;

/// Where the transcript of a session is served, per its logging preferences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OutputUrls {
    #[serde(rename = "S3OutputUrl", skip_serializing_if = "Option::is_none")]
    pub(crate) s3: Option<String>,
    #[serde(
        rename = "CloudWatchOutputUrl",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) cloud_watch: Option<String>,
}

impl Session {
    /// The S3 key of this session's log, if its preferences name a bucket.
    pub(crate) fn s3_key(&self) -> Option<(&str, String)> {
        let inputs = &self.preferences.inputs;
        if inputs.s3_bucket_name.is_empty() {
            return None;
        }
        let prefix = inputs.s3_key_prefix.trim_matches('/');
        let file = format!("{}.log", self.id);
        let key = if prefix.is_empty() {
            file
        } else {
            format!("{prefix}/{file}")
        };
        Some((inputs.s3_bucket_name.as_str(), key))
    }

    /// The CloudWatch log group of this session, if its preferences name one.
    pub(crate) fn log_group(&self) -> Option<&str> {
        let group = self.preferences.inputs.cloud_watch_log_group_name.as_str();
        (!group.is_empty()).then_some(group)
    }

    /// `OutputUrl` for a caller that reached the emulator at `base` (`http://host:port`).
    pub(crate) fn output_urls(&self, base: &str) -> OutputUrls {
        OutputUrls {
            s3: self.s3_key().map(|(bucket, key)| {
                format!(
                    "{base}/_emulator/s3/{}/{}",
                    encode(bucket, false),
                    encode(&key, true)
                )
            }),
            cloud_watch: self.log_group().map(|group| {
                format!(
                    "{base}/_emulator/cloudwatch/{}/{}",
                    encode(group, false),
                    encode(&self.id, false)
                )
            }),
        }
    }

    /// The audit record of this session.
    pub(crate) fn record(&self, base: &str) -> SessionRecord {
        SessionRecord {
            session_id: self.id.clone(),
            owner: self.owner.clone(),
            target: self.target.clone(),
            document_name: self.document_name.clone(),
            reason: self.reason.clone(),
            status: self.status.as_str(),
            start_date: iso8601_seconds(self.start),
            end_date: self.end.map(iso8601_seconds),
            end_reason: self.end_reason.map(|r| r.as_str()),
            last_activity: iso8601_seconds(self.activity.last()),
            idle_session_timeout: self.preferences.idle_session_timeout_minutes.to_string(),
            max_session_duration: self
                .preferences
                .max_session_duration_minutes
                .map(|m| m.to_string()),
            transcript_url: format!(
                "{base}/_emulator/sessions/{}/transcript",
                encode(&self.id, false)
            ),
            output_url: self.output_urls(base),
        }
    }
}

/// `GET /_emulator/sessions/{id}`: everything an auditor asks about one session.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionRecord {
    session_id: String,
    /// The caller's ARN.
    owner: String,
    target: String,
    document_name: String,
    reason: Option<String>,
    status: &'static str,
    /// ISO 8601, UTC, on the emulator's clock.
    start_date: String,
    end_date: Option<String>,
    /// Why it ended: `AgentTaskComplete`, `AgentTaskFailed`, `TerminateSession`,
    /// `IdleSessionTimeout` or `MaxSessionDuration`.
    end_reason: Option<&'static str>,
    /// When it last carried data (see `expiry`).
    last_activity: String,
    /// Minutes, as the preferences write them.
    idle_session_timeout: String,
    max_session_duration: Option<String>,
    transcript_url: String,
    output_url: OutputUrls,
}

/// Percent-encodes `text` for a URL path: everything but RFC 3986 unreserved characters (and
/// `/` when `keep_slash`).
pub(crate) fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode("/aws/ssm#1", false), "%2Faws%2Fssm%231");
        assert_eq!(encode("logs/a b.log", true), "logs/a%20b.log");
    }
}
