//! The data-channel endpoints (spec §2, §9.1) and the transcript endpoint.
//!
//! - `POST /v1/data-channel/{sessionId}` (CreateDataChannel, the agent): HTTP 201 with an XML
//!   `TokenValue` for a live session; HTTP 400 otherwise. An unknown session is refused here,
//!   never by accepting the websocket and closing it: the real agent re-dials that at once,
//!   ≈150 times a second (§3.5).
//! - `GET /v1/data-channel/{sessionId}`: the websocket of either end. The first text frame is
//!   the open frame; [`DataChannelOpen::from_json`] tells the client's from the agent's, and
//!   its token must be one issued to that end for that session (else the socket is closed with
//!   1008). Pings that come before it are answered and skipped.
//! - `GET /_emulator/sessions/{sessionId}/transcript`: the shell output relayed so far.

use std::fmt;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use ssm_protocol::message::Header;
use ssm_protocol::payload::{self, AgentSessionState, DataChannelOpen};
use ssm_protocol::{Message, MessageType};
use tokio::time::Instant;

use super::relay::{End, Next, Opcode, Relay, RelayEffect};
use crate::model::Emulator;

/// Close code for an open frame that is missing, malformed or carries a wrong token.
const CLOSE_POLICY: u16 = 1008;

/// How long a socket the service closed (a `close` fault) is still read for the peer's frames
/// and its close frame. A peer writes until it reads our close frame: the acks of the last
/// frames it got are on their way then, and losing one stalls the agent (§3.3 lost-ack race).
/// The plugin answers a close at once (§8.3), so this bounds only a peer that never answers.
/// Whether the real service relays frames that follow its close frame is UNCONFIRMED; RFC 6455
/// lets the closing end keep receiving until the peer's close, and both real peers tolerate it.
const CLOSE_HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The data-channel routes.
pub(crate) fn router(emu: Emulator) -> Router {
    Router::new()
        .route(
            "/v1/data-channel/{session_id}",
            post(create_data_channel).get(upgrade),
        )
        .route(
            "/_emulator/sessions/{session_id}/transcript",
            get(transcript),
        )
        .with_state(emu)
}

/// CreateDataChannel: a token for the agent's end of a live session.
async fn create_data_channel(
    State(emu): State<Emulator>,
    Path(session_id): Path<String>,
    _body: Bytes,
) -> Response {
    let token = emu.with_state(|state| {
        let live = state
            .sessions
            .get(&session_id)
            .is_some_and(|s| !s.status.is_final());
        if !live {
            return None;
        }
        let token = super::new_token(state);
        state
            .sessions
            .get_mut(&session_id)?
            .issue(End::Agent, token.clone());
        Some(token)
    });
    let xml = [(header::CONTENT_TYPE, "application/xml")];
    match token {
        Some(token) => {
            tracing::debug!(session_id, "CreateDataChannel");
            (
                StatusCode::CREATED,
                xml,
                format!(
                    "<CreateDataChannelResponse><MessageSchemaVersion>1.0</MessageSchemaVersion>\
                     <TokenValue>{token}</TokenValue></CreateDataChannelResponse>"
                ),
            )
                .into_response()
        }
        None => {
            tracing::info!(session_id, "CreateDataChannel for no live session: refused");
            (
                StatusCode::BAD_REQUEST,
                xml,
                format!(
                    "<ValidationException><Message>Session {session_id} does not exist or has \
                     ended</Message></ValidationException>"
                ),
            )
                .into_response()
        }
    }
}

/// The shell output relayed so far, as bytes.
async fn transcript(State(emu): State<Emulator>, Path(session_id): Path<String>) -> Response {
    match emu.session_transcript(&session_id) {
        Some(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such session\n").into_response(),
    }
}

/// `GET /v1/data-channel/{sessionId}`: the websocket.
async fn upgrade(
    State(emu): State<Emulator>,
    Path(session_id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| serve(emu, session_id, socket))
}

/// Runs one data-channel connection: the open frame, then the relay until the session ends,
/// a newer connection of the same end takes over, or the socket goes away.
pub(crate) async fn serve<S, E>(emu: Emulator, session_id: String, mut socket: S)
where
    S: Stream<Item = Result<WsMessage, E>> + Sink<WsMessage> + Unpin,
    E: fmt::Display,
{
    let Some((end, relay)) = accept_open_frame(&emu, &session_id, &mut socket).await else {
        let _ = socket
            .send(WsMessage::Close(Some(CloseFrame {
                code: CLOSE_POLICY,
                reason: "invalid open frame or token".into(),
            })))
            .await;
        return;
    };
    let connection = relay.attach(end);
    super::on_end_attached(&emu, &session_id, &relay);
    if end == End::Client && relay.take_agent_paused() {
        // §3.5 (b), §5: the client is back (its open frame accepted); the agent resumes.
        let start = publication_frame(&emu, MessageType::StartPublication);
        relay.apply(vec![RelayEffect::Inject {
            end: End::Agent,
            bytes: start,
        }]);
        tracing::debug!(session_id, "client back: start_publication to the agent");
    }
    tracing::info!(session_id, end = end.as_str(), "data channel open");
    let (mut sink, mut stream) = socket.split();
    let reading = read_loop(&emu, &relay, &session_id, end, &mut stream);
    tokio::pin!(reading);
    let written = tokio::select! {
        written = write_loop(&relay, end, connection, &mut sink) => Some(written),
        () = &mut reading => None,
    };
    if written == Some(WriterEnd::Disconnected) {
        // Our close frame is out; what the peer wrote before it read it still counts.
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE_LIMIT, &mut reading).await;
    }
    let current = relay.detach(end, connection);
    if current && !relay.is_closing() {
        super::on_end_gone(&emu, &session_id);
    }
    if current
        && end == End::Client
        && !relay.is_closing()
        && written == Some(WriterEnd::Disconnected)
    {
        // §3.5 (b), §5 RECOMMENDATION: the service closed the client's socket and expects
        // its ResumeSession; until then the agent sends and resends nothing, so output made
        // meanwhile cannot pile up in the relay or overflow the client's 10,000-frame
        // incoming buffer. Not when the client left by itself: a stdin/stdout client exits
        // on stdin EOF and the agent must still see the destination's EOF to end the
        // session (§7.5, verified with the real service), which a paused agent never reads.
        let pause = publication_frame(&emu, MessageType::PausePublication);
        relay.pause_agent(pause);
        tracing::debug!(
            session_id,
            "client closed by the service: pause_publication"
        );
    }
    tracing::info!(session_id, end = end.as_str(), "data channel closed");
}

/// A frame of the service's own for the agent (`pause_publication`, `start_publication`,
/// §5): unsequenced, with an empty payload (the agent reads only the type).
fn publication_frame(emu: &Emulator, message_type: MessageType) -> Vec<u8> {
    let id = emu.with_state(|s| s.uuid());
    let wall_ms = emu
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
        .max(1);
    Message::new(message_type, wall_ms, id).encode()
}

/// Reads the open frame and uses up its token. Returns the end it came from and the relay.
async fn accept_open_frame<S, E>(
    emu: &Emulator,
    session_id: &str,
    socket: &mut S,
) -> Option<(End, std::sync::Arc<Relay>)>
where
    S: Stream<Item = Result<WsMessage, E>> + Unpin,
    E: fmt::Display,
{
    let bytes: Vec<u8> = loop {
        match socket.next().await? {
            Ok(WsMessage::Text(text)) => break text.as_bytes().to_vec(),
            Ok(WsMessage::Binary(bytes)) => break bytes.to_vec(),
            // The plugin's first keepalive can come before its open frame (§2 item 4).
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => {}
            Ok(WsMessage::Close(_)) => return None,
            Err(e) => {
                tracing::debug!(session_id, error = %e, "data channel: read error before open");
                return None;
            }
        }
    };
    let open = match DataChannelOpen::from_json(&bytes) {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(session_id, error = %e, "data channel: malformed open frame");
            return None;
        }
    };
    let end = match open {
        DataChannelOpen::Client(_) => End::Client,
        DataChannelOpen::Agent(_) => End::Agent,
    };
    let accepted = emu.with_state(|state| {
        let session = state.sessions.get_mut(session_id)?;
        // An ended session still lets its client in with an unused token, to take the
        // `channel_closed` waiting for it; an agent has nothing to do there.
        if end == End::Agent && session.status.is_final() {
            return None;
        }
        session
            .take_token(end, open.token_value())
            .then(|| session.relay.clone())
    });
    if accepted.is_none() {
        tracing::warn!(
            session_id,
            end = end.as_str(),
            "data channel: unknown, used or wrong token"
        );
    }
    accepted.map(|relay| (end, relay))
}

/// Why a writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// A newer connection took the end over, or the session ended.
    Done,
    /// A fault closed the socket ([`Next::Disconnect`]): the peer's last frames are still read.
    Disconnected,
}

/// Writes what the relay queued for `end` until the session ends or the end is replaced.
///
/// A frame is taken off the queue only once the socket is ready for it, so a socket that goes
/// away loses no queued frame: what the old connection could not take waits for the next one.
async fn write_loop<S>(relay: &Relay, end: End, connection: u64, sink: &mut S) -> WriterEnd
where
    S: Sink<WsMessage> + Unpin,
{
    loop {
        let notified = relay.wake(end).notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if futures_util::future::poll_fn(|cx| sink.poll_ready_unpin(cx))
            .await
            .is_err()
        {
            // The socket is gone; the reader sees it too.
            return std::future::pending().await;
        }
        match relay.next(end, connection, Instant::now()) {
            Next::Send(bytes, opcode) => {
                let message = match opcode {
                    Opcode::Binary => WsMessage::Binary(bytes.into()),
                    Opcode::Text => match String::from_utf8(bytes) {
                        Ok(text) => WsMessage::Text(text.into()),
                        Err(e) => WsMessage::Binary(e.into_bytes().into()),
                    },
                };
                if sink.start_send_unpin(message).is_err() || sink.flush().await.is_err() {
                    // The socket is gone; the reader sees it too.
                    return std::future::pending().await;
                }
            }
            Next::HoldUntil(when) => {
                tokio::select! {
                    () = tokio::time::sleep_until(when) => {}
                    () = &mut notified => {}
                }
            }
            Next::Wait => notified.await,
            Next::Replaced => {
                let _ = sink.send(WsMessage::Close(None)).await;
                return WriterEnd::Done;
            }
            Next::Disconnect(code, reason) => {
                tracing::info!(
                    code,
                    reason,
                    end = end.as_str(),
                    "fault: closing the socket"
                );
                let close = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                let _ = sink.send(WsMessage::Close(Some(close))).await;
                return WriterEnd::Disconnected;
            }
            Next::Close => {
                let _ = sink
                    .send(WsMessage::Close(Some(CloseFrame {
                        code: 1000,
                        reason: "session ended".into(),
                    })))
                    .await;
                return WriterEnd::Done;
            }
        }
    }
}

/// Reads `end`'s socket until it goes away, handing every data frame to the relay (and
/// consuming the agent's `agent_session_state`), and recording the session's data activity.
async fn read_loop<S, E>(emu: &Emulator, relay: &Relay, session_id: &str, end: End, stream: &mut S)
where
    S: Stream<Item = Result<WsMessage, E>> + Unpin,
    E: fmt::Display,
{
    let activity = emu.with_state(|s| s.sessions.get(session_id).map(|s| s.activity.clone()));
    loop {
        let (bytes, opcode) = match stream.next().await {
            Some(Ok(WsMessage::Binary(bytes))) => (bytes.to_vec(), Opcode::Binary),
            Some(Ok(WsMessage::Text(text))) => (text.as_bytes().to_vec(), Opcode::Text),
            // Answered by the websocket layer underneath; never forwarded.
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            Some(Ok(WsMessage::Close(_))) | None => return,
            Some(Err(e)) => {
                tracing::debug!(session_id, end = end.as_str(), error = %e, "data channel read error");
                return;
            }
        };
        if end == End::Agent
            && let Ok(header) = Header::parse(&bytes)
            && header.message_type == MessageType::AgentSessionState
        {
            relay.count_session_state();
            match payload::from_json_bytes::<AgentSessionState>(header.payload(&bytes)) {
                Ok(state) => super::on_agent_session_state(emu, session_id, &state.session_state),
                Err(e) => tracing::warn!(session_id, error = %e, "malformed agent_session_state"),
            }
            continue;
        }
        if let Some(activity) = &activity {
            activity.record(end, &bytes, || emu.now());
        }
        relay.forward(end, bytes, opcode);
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use futures_util::FutureExt;

    use super::*;
    use crate::sessions::relay::PassThrough;

    /// A socket that is gone: it takes nothing.
    struct Gone;

    impl Sink<WsMessage> for Gone {
        type Error = ();
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Err(()))
        }
        fn start_send(self: Pin<&mut Self>, _: WsMessage) -> Result<(), ()> {
            Err(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Err(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_socket_that_is_gone_takes_no_frame_off_the_queue() {
        let relay = Relay::new("s".into(), Arc::new(PassThrough));
        let old = relay.attach(End::Client);
        relay.forward(End::Agent, vec![1, 2, 3], Opcode::Binary);
        // The writer of the dead socket stops at once and waits for its reader to notice.
        assert!(
            write_loop(&relay, End::Client, old, &mut Gone)
                .now_or_never()
                .is_none()
        );
        assert!(relay.detach(End::Client, old));
        let new = relay.attach(End::Client);
        assert!(matches!(
            relay.next(End::Client, new, Instant::now()),
            Next::Send(bytes, Opcode::Binary) if bytes == [1, 2, 3]
        ));
    }
}
