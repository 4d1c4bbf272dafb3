//! Agent-link faults: `agentLink` (the whole link of an agent is cut, "proxy loss") and
//! `sessionService` (ssmmessages unreachable, "VPC endpoint missing").
//!
//! An unreachable endpoint looks to an agent like a TCP connection that dies: behind a proxy
//! whose upstream is gone, the tunnel closes with no HTTP answer; a websocket whose path
//! broke ends with no Close frame. So a cut works on TCP connections, not on HTTP answers:
//!
//! - every connection of the plain listener is a [`LinkIo`], which can be aborted from
//!   anywhere: its reads and writes fail, and its socket is reset (SO_LINGER 0) when dropped;
//! - the [`gate`] middleware sees every request, tells the agent-facing ones (which
//!   [`AgentService`], which instance) and tags the connection with them. If a link rule cuts
//!   that agent off that service, it aborts the connection instead of answering. Both real
//!   clients and agent-sim see a connection reset, and retry as they do for a dead network;
//! - adding a link rule aborts every tagged connection it cuts: open control channels and the
//!   agent ends of data channels drop without a Close frame (the service sees them go exactly
//!   as when an agent's network dies, and what follows is the service's usual answer: the node
//!   is disconnected, PingStatus turns ConnectionLost after the grace, StartSession answers
//!   TargetNotConnected, undelivered commands turn Delayed and later DeliveryTimedOut).
//!
//! When the rule ends (its `durationMs` passed, or it was removed) nothing is done: the agents'
//! own retries bring them back.
//!
//! Requests served without a [`LinkIo`] under them (the TLS listener, `oneshot` in tests) are
//! refused with a response whose body fails at once, which makes hyper drop the connection
//! before the head is flushed (best effort; the plain listener is exact).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::rules::FaultRule;
use crate::model::Emulator;

/// The largest agent request body the gate reads to find the instance id: axum's own default
/// body limit, which the API applies after it anyway (agent bodies are a few kB).
const AGENT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The agent-facing services, as AWS names their endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentService {
    /// `ssm`: UpdateInstanceInformation and ListInstanceAssociations.
    Ssm,
    /// `ec2messages`: MDS polling.
    Ec2Messages,
    /// `ssmmessages`: CreateControlChannel, CreateDataChannel and both websockets.
    SsmMessages,
}

/// One accepted connection: whether it was aborted, who waits on it, and which agents used it.
#[derive(Debug, Default)]
pub struct Link {
    aborted: AtomicBool,
    /// The tasks waiting to read and to write, woken by an abort.
    wakers: Mutex<[Option<Waker>; 2]>,
    /// The agent-facing services and instances of the requests it carried.
    tags: Mutex<Vec<(AgentService, String)>>,
}

impl Link {
    /// Makes every read and write fail from now on and wakes whoever waits.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut *lock(&self.wakers));
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    fn tag(&self, service: AgentService, instance_id: &str) {
        let mut tags = lock(&self.tags);
        if !tags.iter().any(|(s, i)| *s == service && i == instance_id) {
            tags.push((service, instance_id.to_owned()));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every live connection of the plain listener, by number.
#[derive(Debug, Clone, Default)]
pub struct Links {
    inner: Arc<LinksInner>,
}

#[derive(Debug, Default)]
struct LinksInner {
    next: AtomicU64,
    live: Mutex<HashMap<u64, Weak<Link>>>,
}

impl Links {
    fn register(&self) -> (u64, Arc<Link>) {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let link = Arc::new(Link::default());
        lock(&self.inner.live).insert(id, Arc::downgrade(&link));
        (id, link)
    }

    fn forget(&self, id: u64) {
        lock(&self.inner.live).remove(&id);
    }

    /// Aborts every connection one of whose tags `cut` accepts; returns how many.
    pub fn abort_where(&self, cut: impl Fn(AgentService, &str) -> bool) -> usize {
        let links: Vec<Arc<Link>> = lock(&self.inner.live)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        let mut aborted = 0;
        for link in links {
            let hit = lock(&link.tags).iter().any(|(s, i)| cut(*s, i));
            if hit {
                link.abort();
                aborted += 1;
            }
        }
        aborted
    }
}

/// The plain TCP listener, with every connection a [`LinkIo`] of `links`.
#[derive(Debug)]
pub struct LinkListener {
    tcp: TcpListener,
    links: Links,
}

impl LinkListener {
    /// Wraps `tcp`; its connections join `links`.
    pub fn new(tcp: TcpListener, links: Links) -> LinkListener {
        LinkListener { tcp, links }
    }
}

impl Listener for LinkListener {
    type Io = LinkIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (LinkIo, SocketAddr) {
        let (stream, addr) = Listener::accept(&mut self.tcp).await;
        set_nodelay(&stream);
        let (id, link) = self.links.register();
        let io = LinkIo {
            stream,
            id,
            link,
            links: self.links.clone(),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// One connection of the plain listener, abortable through its [`Link`].
#[derive(Debug)]
pub struct LinkIo {
    stream: TcpStream,
    id: u64,
    link: Arc<Link>,
    links: Links,
}

impl LinkIo {
    /// The error every read and write gets after an abort. The socket is set to reset on
    /// close, so the peer sees the connection die rather than end.
    fn aborted(&self) -> io::Error {
        reset_on_close(&self.stream);
        io::Error::from(io::ErrorKind::ConnectionAborted)
    }

    fn park(&self, slot: usize, cx: &Context<'_>) {
        lock(&self.link.wakers)[slot] = Some(cx.waker().clone());
    }
}

/// SO_LINGER 0: dropping the socket sends RST. With a zero timeout close never blocks, which
/// is what tokio's deprecation warns about.
#[allow(deprecated)]
pub(crate) fn reset_on_close(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

impl Drop for LinkIo {
    fn drop(&mut self) {
        self.links.forget(self.id);
    }
}

impl AsyncRead for LinkIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.link.is_aborted() {
            return Poll::Ready(Err(this.aborted()));
        }
        this.park(0, cx);
        // An abort between the check and the park would find no waker: check again.
        if this.link.is_aborted() {
            return Poll::Ready(Err(this.aborted()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LinkIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.link.is_aborted() {
            return Poll::Ready(Err(this.aborted()));
        }
        this.park(1, cx);
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.link.is_aborted() {
            return Poll::Ready(Err(this.aborted()));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.link.is_aborted() {
            return Poll::Ready(Err(this.aborted()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// The request extension (through [`ConnectInfo`]) that names a request's connection.
#[derive(Debug, Clone)]
pub struct LinkConn(Arc<Link>);

impl Connected<IncomingStream<'_, LinkListener>> for LinkConn {
    fn connect_info(stream: IncomingStream<'_, LinkListener>) -> LinkConn {
        LinkConn(stream.io().link.clone())
    }
}

/// The middleware in front of every route: tags agent-facing requests' connections and
/// refuses those a link rule cuts off.
pub(crate) async fn gate(State(emu): State<Emulator>, request: Request, next: Next) -> Response {
    let (request, place) = agent_place(&emu, request).await;
    let Some((service, instance_id)) = place else {
        return next.run(request).await;
    };
    let link = request
        .extensions()
        .get::<ConnectInfo<LinkConn>>()
        .map(|c| c.0.0.clone());
    // Tag before asking the rules: a rule added in between then finds the tag and aborts.
    if let Some(link) = &link {
        link.tag(service, &instance_id);
    }
    if !emu.faults().refuses_agent(service, &instance_id) {
        return next.run(request).await;
    }
    tracing::debug!(instance_id, ?service, path = %request.uri().path(), "fault: agent link cut, connection dropped");
    if let Some(link) = &link {
        link.abort();
    }
    dropped()
}

/// A response whose body fails at once: hyper then drops the connection without answering.
fn dropped() -> Response {
    let failed = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(io::Error::from(io::ErrorKind::ConnectionAborted))
    });
    Body::from_stream(failed).into_response()
}

/// Which agent-facing service and instance `request` is for, if it is an agent's. Reads (and
/// puts back) the body of the agent's JSON calls to find the instance.
async fn agent_place(
    emu: &Emulator,
    request: Request,
) -> (Request, Option<(AgentService, String)>) {
    let path = request.uri().path();
    if let Some(instance_id) = path.strip_prefix("/v1/control-channel/") {
        let place = (AgentService::SsmMessages, instance_id.to_owned());
        return (request, Some(place));
    }
    if let Some(session_id) = path.strip_prefix("/v1/data-channel/") {
        // CreateDataChannel is the agent's; of the two websockets, the agent's upgrade is the
        // SigV4-signed one (§9.1), the client's carries no Authorization.
        let agent = request.method() == Method::POST
            || request.headers().contains_key(header::AUTHORIZATION);
        let target = agent
            .then(|| emu.with_state(|s| s.sessions.get(session_id).map(|s| s.target.clone())))
            .flatten();
        return (request, target.map(|t| (AgentService::SsmMessages, t)));
    }
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let service = if target.starts_with(crate::mds::TARGET_PREFIX) {
        AgentService::Ec2Messages
    } else if matches!(
        target,
        "AmazonSSM.UpdateInstanceInformation" | "AmazonSSM.ListInstanceAssociations"
    ) {
        AgentService::Ssm
    } else {
        return (request, None);
    };
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, AGENT_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let instance_id = instance_of_body(&bytes);
    let request = Request::from_parts(parts, Body::from(bytes));
    (request, instance_id.map(|i| (service, i)))
}

/// The instance an agent's JSON body is about: `InstanceId` (ssm), `Destination` (GetMessages,
/// GetEndpoint) or the last dot field of `MessageId` (`aws.ssm.<commandId>.<instanceId>`).
fn instance_of_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Body {
        instance_id: Option<String>,
        destination: Option<String>,
        message_id: Option<String>,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    body.instance_id.or(body.destination).or_else(|| {
        body.message_id
            .and_then(|m| m.rsplit_once('.').map(|(_, i)| i.to_owned()))
    })
}

impl Emulator {
    /// What adding link rule `id` does at once: aborts the connections it cuts, and starts
    /// the timer that removes it after its `durationMs`.
    pub(crate) fn on_link_rule_added(&self, id: &str, rule: &FaultRule) {
        let (FaultRule::AgentLink(link) | FaultRule::SessionService(link)) = rule else {
            return;
        };
        let faults = self.faults();
        let aborted = faults
            .links()
            .abort_where(|service, instance_id| faults.link_rule_cuts(id, service, instance_id));
        tracing::info!(id, aborted, "fault: agent connections cut");
        if let Some(ms) = link.duration_ms {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::warn!(
                    id,
                    "durationMs needs the emulator's tokio runtime: rule stays"
                );
                return;
            };
            let (emu, id) = (self.downgrade(), id.to_owned());
            runtime.spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if let Some(emu) = emu.upgrade()
                    && emu.remove_fault(&id)
                {
                    tracing::info!(id, "fault: agent link restored (duration over)");
                }
            });
        }
    }
}

/// Turns Nagle's algorithm off on an accepted connection, as Go's net package does for every
/// connection of the real service's peers: small frames (keystrokes, acks) must not wait for
/// the peer's delayed ACK (≈40 ms on Linux loopback, twice per session start).
pub(crate) fn set_nodelay(stream: &tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_of_an_agent_body_is_found_where_each_call_puts_it() {
        let of = |s: &str| instance_of_body(s.as_bytes());
        assert_eq!(
            of(r#"{"InstanceId":"i-0123456789abcdef0","AgentName":"amazon-ssm-agent"}"#),
            Some("i-0123456789abcdef0".into())
        );
        assert_eq!(
            of(r#"{"Destination":"mi-0123456789abcdef0","MessagesRequestId":"x"}"#),
            Some("mi-0123456789abcdef0".into())
        );
        assert_eq!(
            of(r#"{"MessageId":"aws.ssm.c0ffee.i-0123456789abcdef0"}"#),
            Some("i-0123456789abcdef0".into())
        );
        assert_eq!(of("not json"), None);
    }

    #[test]
    fn abort_hits_only_tagged_connections() {
        let links = Links::default();
        let (_, a) = links.register();
        let (_, b) = links.register();
        a.tag(AgentService::SsmMessages, "i-1");
        b.tag(AgentService::Ssm, "i-2");
        let n = links.abort_where(|s, i| s == AgentService::SsmMessages && i == "i-1");
        assert_eq!(n, 1);
        assert!(a.is_aborted());
        assert!(!b.is_aborted());
    }
}
