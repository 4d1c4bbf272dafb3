//! The two SSM API calls the plugin makes itself (spec §8.2): ResumeSession and
//! TerminateSession, AWS JSON 1.1 over HTTP/1.1 (`http://` or `https://`, see [`crate::transport`]
//! for the certificates trusted), SigV4-signed.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Request;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::argv::VERSION;
use crate::sigv4::{self, Credentials};
use crate::transport;

/// Longest wait for one call, connect to last body byte.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Why a call failed.
#[derive(Debug)]
pub struct ApiError(pub String);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ApiError {}

/// A client for one endpoint and region.
#[derive(Clone, Debug)]
pub struct Api {
    /// Whether the endpoint is `https://`.
    tls: bool,
    host: String,
    port: u16,
    /// The endpoint's authority as written (the Host header, as Go's net/http sends it).
    authority: String,
    path: String,
    region: String,
    credentials: Option<Credentials>,
}

#[derive(Deserialize)]
struct ResumeSessionOutput {
    #[serde(rename = "TokenValue", default)]
    token_value: Option<String>,
}

impl Api {
    /// A client for argv\[6\]: an `http://` or `https://` endpoint; a scheme-less one means
    /// `https://`, as in the SDK.
    pub fn new(
        endpoint: &str,
        region: &str,
        credentials: Option<Credentials>,
    ) -> Result<Api, ApiError> {
        let (tls, rest) = if let Some(rest) = endpoint.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = endpoint.strip_prefix("https://") {
            (true, rest)
        } else if endpoint.contains("://") {
            return Err(ApiError(format!(
                "endpoint {endpoint:?}: only http:// and https:// endpoints are supported"
            )));
        } else {
            (true, endpoint)
        };
        let default_port = if tls { 443 } else { 80 };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let bad_port = || ApiError(format!("endpoint {endpoint:?}: bad port"));
        let parse_port = |port: Option<&str>| match port {
            Some(port) => port.parse().map_err(|_| bad_port()),
            None => Ok(default_port),
        };
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(bad_port)?;
                (host, parse_port(after.strip_prefix(':'))?)
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, parse_port(Some(port))?),
                None => (authority, default_port),
            },
        };
        if host.is_empty() {
            return Err(ApiError(format!("endpoint {endpoint:?}: no host")));
        }
        Ok(Api {
            tls,
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path: path.to_owned(),
            region: region.to_owned(),
            credentials,
        })
    }

    /// ResumeSession: the new token, or `None` when the service answered with none (the
    /// session has expired).
    pub async fn resume_session(&self, session_id: &str) -> Result<Option<String>, ApiError> {
        let body = self.call("ResumeSession", session_id).await?;
        let output: ResumeSessionOutput = serde_json::from_slice(&body)
            .map_err(|e| ApiError(format!("ResumeSession answer: {e}")))?;
        Ok(output.token_value.filter(|t| !t.is_empty()))
    }

    /// TerminateSession.
    pub async fn terminate_session(&self, session_id: &str) -> Result<(), ApiError> {
        self.call("TerminateSession", session_id).await.map(drop)
    }

    async fn call(&self, operation: &str, session_id: &str) -> Result<Bytes, ApiError> {
        let credentials = self.credentials.as_ref().ok_or_else(|| {
            ApiError("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned())
        })?;
        let body = serde_json::to_vec(&serde_json::json!({ "SessionId": session_id }))
            .expect("a string map serializes");
        let target = format!("AmazonSSM.{operation}");
        let host = self.authority.as_str();
        let signed = sigv4::sign(
            &sigv4::Request {
                host,
                path: &self.path,
                content_type: JSON_1_1,
                target: &target,
                body: &body,
            },
            credentials,
            &self.region,
            "ssm",
            SystemTime::now(),
        );
        let mut request = Request::post(self.path.as_str())
            .header(HOST, host)
            .header(USER_AGENT, format!("ssm-session/{VERSION} (rust; linux)"))
            .header(CONTENT_TYPE, JSON_1_1)
            .header(CONTENT_LENGTH, body.len())
            .header("x-amz-target", target.as_str());
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ApiError(format!("{operation}: {e}")))?;
        let exchange = async {
            let error = |e: &dyn std::fmt::Display| ApiError(format!("{operation} to {host}: {e}"));
            let stream = transport::connect(&self.host, self.port, self.tls)
                .await
                .map_err(|e| error(&e))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| error(&e))?;
            let connection = tokio::spawn(connection);
            let response = sender.send_request(request).await.map_err(|e| error(&e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| error(&e))?
                .to_bytes();
            connection.abort();
            if !status.is_success() {
                return Err(error(&format_args!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
            Ok(body)
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(ApiError(format!("{operation}: timed out"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let api = Api::new("http://127.0.0.1:4583", "us-east-1", None).unwrap();
        assert_eq!(
            (api.host.as_str(), api.port, api.path.as_str()),
            ("127.0.0.1", 4583, "/")
        );
        let api = Api::new("http://localhost/ssm", "us-east-1", None).unwrap();
        assert_eq!(
            (api.host.as_str(), api.port, api.path.as_str()),
            ("localhost", 80, "/ssm")
        );
        let api = Api::new("https://127.0.0.1:4584", "us-east-1", None).unwrap();
        assert_eq!(
            (api.tls, api.host.as_str(), api.port, api.authority.as_str()),
            (true, "127.0.0.1", 4584, "127.0.0.1:4584")
        );
        // Scheme-less means https, as in the SDK; the default ports follow the scheme.
        for endpoint in [
            "https://ssm.us-east-1.amazonaws.com",
            "ssm.us-east-1.amazonaws.com",
        ] {
            let api = Api::new(endpoint, "us-east-1", None).unwrap();
            assert_eq!(
                (api.tls, api.port, api.authority.as_str()),
                (true, 443, "ssm.us-east-1.amazonaws.com")
            );
        }
        let api = Api::new("http://[::1]:4583", "us-east-1", None).unwrap();
        assert_eq!((api.tls, api.host.as_str(), api.port), (false, "::1", 4583));
        assert!(Api::new("ftp://127.0.0.1", "r", None).is_err());
    }
}
