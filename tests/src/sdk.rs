//! aws-sdk-ssm with lean features (shared/crates.md §1.4): no aws-config, no TLS, a plain-HTTP
//! hyper client, static dummy credentials.

use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};

/// A client for the SSM API at `endpoint` (`http://127.0.0.1:<port>`) in `us-east-1`, with
/// `retries` (`RetryConfig::disabled()` for one attempt per call, or
/// `RetryConfig::standard().with_max_attempts(n)`).
pub fn client(endpoint: &str, retries: RetryConfig) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "ssm-e2e"))
        .endpoint_url(endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(retries)
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}
