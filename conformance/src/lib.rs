//! The reference client (`ssm-session`, argv-compatible with session-manager-plugin) and, later,
//! the conformance suites that check other clients and agents against the spec (issue #4).
//!
//! - [`argv`]: the plugin's positional command line (§8.1) and our version number.
//! - [`session`]: one session: data channel, reliable stream (client role), the shell handler
//!   and the reconnect path (§2, §3, §4.3, §6, §8.3).
//! - [`port`]: port forwarding after the handshake: Properties, version rules, the local listener, the smux v1 client (§4.2, §7).
//! - [`api`]: ResumeSession / TerminateSession over AWS JSON 1.1 (§8.2), signed by [`sigv4`].
//! - [`terminal`]: cbreak mode and the terminal size (§6.1).
//! - [`transport`]: TCP or TLS connections for the websocket and the API, and the certificates
//!   trusted (system roots, `AWS_CA_BUNDLE`, `SSL_CERT_FILE`, §8.4).
//!
//! Section numbers (§) refer to `shared/spec/ssm-protocol.md`.

pub mod api;
pub mod argv;
pub mod port;
pub mod session;
pub mod sigv4;
pub mod terminal;
pub mod transport;
