//! AWS Signature Version 4 for the two JSON 1.1 calls `ssm-session` makes (spec §8.2).
//!
//! Only what those calls need: a `POST` with a body, the headers session-manager-plugin signs
//! (`content-length;content-type;host;x-amz-date;x-amz-target`, plus `x-amz-security-token` when
//! there is a session token), no query string. The emulator does not verify signatures yet, but a
//! real-looking and correct `Authorization` keeps the client usable against anything that does.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Static credentials, as the SDK's environment provider reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, sent as `X-Amz-Security-Token` and signed.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`;
    /// `None` when either of the first two is missing or empty.
    pub fn from_env() -> Option<Credentials> {
        let get = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Some(Credentials {
            access_key_id: get("AWS_ACCESS_KEY_ID")?,
            secret_access_key: get("AWS_SECRET_ACCESS_KEY")?,
            session_token: get("AWS_SESSION_TOKEN"),
        })
    }
}

/// One request to sign. Header values are used as given (no trimming is needed for ours).
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// `host[:port]` exactly as the `Host` header carries it.
    pub host: &'a str,
    /// The URI path, `/` for the SSM API.
    pub path: &'a str,
    /// `Content-Type`.
    pub content_type: &'a str,
    /// `X-Amz-Target`, e.g. `AmazonSSM.ResumeSession`.
    pub target: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// The headers to add to the request: `X-Amz-Date`, `X-Amz-Security-Token` (if any) and
/// `Authorization`, lower-case names.
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Vec<(&'static str, String)> {
    let amz_date = amz_date(now);
    let date = &amz_date[..8];
    let mut canonical_headers = vec![
        ("content-length", request.body.len().to_string()),
        ("content-type", request.content_type.to_owned()),
        ("host", request.host.to_owned()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(token) = &credentials.session_token {
        canonical_headers.push(("x-amz-security-token", token.clone()));
    }
    canonical_headers.push(("x-amz-target", request.target.to_owned()));
    let signed_headers = canonical_headers
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical = format!("POST\n{}\n\n", request.path);
    for (name, value) in &canonical_headers {
        canonical.push_str(&format!("{name}:{value}\n"));
    }
    canonical.push_str(&format!(
        "\n{signed_headers}\n{}",
        hex(&Sha256::digest(request.body))
    ));
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&credentials.secret_access_key, date, region, service);
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let mut headers = vec![("x-amz-date", amz_date)];
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token", token.clone()));
    }
    headers.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, \
             Signature={signature}",
            credentials.access_key_id
        ),
    ));
    headers
}

/// The SigV4 signing key: HMAC chain over date, region, service and `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_are_utc_compact() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(amz_date(at(0)), "19700101T000000Z");
        // 2026-11-22T22:41:34Z, the StartSession of the recorded shell trace.
        assert_eq!(amz_date(at(1_795_387_294)), "20261122T224134Z");
        assert_eq!(amz_date(at(951_782_400)), "20000229T000000Z");
    }

    /// The signing key of the AWS documentation's worked example (IAM, 2015-08-30).
    #[test]
    fn signing_key_matches_the_aws_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    /// A whole request, checked against botocore 1.44.5's `SigV4Auth` for the same input.
    #[test]
    fn resume_session_signature_matches_botocore() {
        let credentials = Credentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "secret".to_owned(),
            session_token: Some("tok".to_owned()),
        };
        let request = Request {
            host: "127.0.0.1:4583",
            path: "/",
            content_type: "application/x-amz-json-1.1",
            target: "AmazonSSM.ResumeSession",
            body: br#"{"SessionId":"sess-1"}"#,
        };
        let at = UNIX_EPOCH + Duration::from_secs(1_795_439_823);
        let headers = sign(&request, &credentials, "us-east-1", "ssm", at);
        assert_eq!(
            headers,
            vec![
                ("x-amz-date", "20261123T131703Z".to_owned()),
                ("x-amz-security-token", "tok".to_owned()),
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/ssm/aws4_request, \
                     SignedHeaders=content-length;content-type;host;x-amz-date;\
                     x-amz-security-token;x-amz-target, \
                     Signature=57870b5cbf3894e0202ef51dfd801e43e13f6779eb07ca346e2afd0b3ee3bdf3"
                        .to_owned()
                ),
            ]
        );
    }
}
