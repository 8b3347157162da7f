//! One client connection: handshake, then a read loop and a coalescing writer.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::{
    io::AsyncWriteExt,
    net::{UnixStream, unix::OwnedWriteHalf},
    sync::{mpsc, oneshot},
};
use tokio_util::{codec::FramedRead, sync::CancellationToken};
use weft_proto::{
    ClientFrame, ErrorCode, Identity, PROTOCOL_VERSION, ServerFrame,
    frame::{Delivery, codec},
    handshake::{Hello, HelloReply, Refusal},
};

use crate::{
    BrokerEvent, ClientKind, Shared, lock, now_ms, routes::SubError, tokens::TokenRefusal,
};

/// How long a closing connection's queued frames may take to write.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Largest batch of frames gathered into one `write()`.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

type Reader = FramedRead<tokio::net::unix::OwnedReadHalf, tokio_util::codec::LengthDelimitedCodec>;

pub(crate) async fn serve(shared: Arc<Shared>, conn: u64, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = FramedRead::new(read, codec(shared.config.max_frame_len));

    let (kind, identity) = match handshake(&shared, conn, &mut reader).await {
        Ok(accepted) => accepted,
        Err((reason, message)) => {
            tracing::warn!(
                conn,
                reason = reason.as_str(),
                "refused a client: {message}"
            );
            let reply = HelloReply::Refused {
                version: PROTOCOL_VERSION,
                reason,
                message,
            };
            let _ = write_frame(&mut write, &reply.encode()).await;
            let _ = write.shutdown().await;
            return;
        }
    };

    let accepted = HelloReply::Accepted {
        version: PROTOCOL_VERSION,
        identity: identity.clone(),
    };
    if write_frame(&mut write, &accepted.encode()).await.is_err() {
        lock(&shared.tokens).release(conn);
        return;
    }

    let (outbound, outbound_rx) = mpsc::channel(shared.config.outbound_queue_frames);
    let kill = CancellationToken::new();
    lock(&shared.routes).add_conn(conn, identity.clone(), outbound.clone(), kill.clone());
    if kind == ClientKind::App {
        let _ = shared
            .events
            .send(BrokerEvent::AppConnected(identity.clone()));
    }
    tracing::debug!(conn, %identity, ?kind, "client connected");
    let mut writer = tokio::spawn(write_loop(write, outbound_rx));

    let session = Session {
        shared: &shared,
        conn,
        kind,
        identity: &identity,
        outbound: &outbound,
    };
    let (reason, drain) = tokio::select! {
        reason = session.read_loop(&mut reader) => (reason, true),
        _ = kill.cancelled() => ("SlowConsumer: its outbound queue was full".to_owned(), false),
        _ = shared.shutdown.cancelled() => ("the shell is shutting down".to_owned(), true),
    };
    tracing::debug!(conn, %identity, "closing connection: {reason}");

    lock(&shared.routes).remove_conn(conn);
    lock(&shared.tokens).release(conn);
    let _ = outbound.try_send(Bytes::from(ServerFrame::Closing { reason }.encode()));
    drop(outbound);
    // A slow consumer is not waited for: its queue is dropped unwritten. Others get what
    // is queued, for as long as they keep reading.
    if !drain
        || tokio::time::timeout(DRAIN_TIMEOUT, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    if kind == ClientKind::App {
        let _ = shared.events.send(BrokerEvent::AppDisconnected(identity));
    }
}

async fn handshake(
    shared: &Shared,
    conn: u64,
    reader: &mut Reader,
) -> Result<(ClientKind, Identity), (Refusal, String)> {
    let first = tokio::time::timeout(shared.config.handshake_timeout, reader.next()).await;
    let body = match first {
        Err(_) => {
            return Err((
                Refusal::Malformed,
                "no handshake within the time limit".into(),
            ));
        }
        Ok(None) => return Err((Refusal::Malformed, "closed before the handshake".into())),
        Ok(Some(Err(e))) => return Err((Refusal::Malformed, format!("unreadable handshake: {e}"))),
        Ok(Some(Ok(body))) => body,
    };
    let (version, token) = Hello::decode(&body).map_err(|e| (Refusal::Malformed, e.to_string()))?;
    if version != PROTOCOL_VERSION {
        return Err((
            Refusal::VersionMismatch,
            format!(
                "the client speaks protocol version {version}; this broker speaks {PROTOCOL_VERSION}"
            ),
        ));
    }
    if shared.shutdown.is_cancelled() {
        return Err((Refusal::ShuttingDown, "the shell is shutting down".into()));
    }
    match lock(&shared.tokens).claim(&token, conn) {
        Ok((ClientKind::App, Some(identity))) => Ok((ClientKind::App, identity)),
        Ok((kind, _)) => Ok((kind, cli_identity(conn))),
        Err(TokenRefusal::Unknown) => Err((Refusal::BadToken, "the token is not valid".into())),
        Err(TokenRefusal::InUse) => Err((
            Refusal::TokenInUse,
            "the app token is already used by another connection".into(),
        )),
    }
}

fn cli_identity(conn: u64) -> Identity {
    Identity {
        app_id: weft_proto::CLI_APP_ID.to_owned(),
        instance_id: format!("{}-{conn}", weft_proto::CLI_APP_ID),
    }
}

struct Session<'a> {
    shared: &'a Shared,
    conn: u64,
    kind: ClientKind,
    identity: &'a Identity,
    outbound: &'a mpsc::Sender<Bytes>,
}

impl Session<'_> {
    /// Serves frames until the client leaves or misbehaves; returns why the loop ended.
    async fn read_loop(&self, reader: &mut Reader) -> String {
        loop {
            let body = match reader.next().await {
                None => return "the client disconnected".into(),
                Some(Err(e)) => return format!("unreadable frame: {e}"),
                Some(Ok(body)) => body,
            };
            let frame = match ClientFrame::decode(&body) {
                Ok(frame) => frame,
                Err(e) => return format!("Malformed: {e}"),
            };
            let reply = self.handle(frame).await;
            if let Some(reply) = reply
                && self
                    .outbound
                    .send(Bytes::from(reply.encode()))
                    .await
                    .is_err()
            {
                return "the writer stopped".into();
            }
        }
    }

    async fn handle(&self, frame: ClientFrame) -> Option<ServerFrame> {
        match frame {
            ClientFrame::Publish {
                req,
                topic,
                payload,
            } => {
                let delivery = Delivery {
                    id: self.shared.message_id(),
                    ts_ms: now_ms(),
                    topic,
                    sender: self.identity.clone(),
                    payload,
                };
                self.route(delivery);
                Some(ServerFrame::Ok { req })
            }
            ClientFrame::Subscribe { req, sub, pattern } => {
                let result = lock(&self.shared.routes).subscribe(self.conn, sub, pattern);
                Some(sub_reply(req, sub, result))
            }
            ClientFrame::Unsubscribe { req, sub } => {
                let result = lock(&self.shared.routes).unsubscribe(self.conn, sub);
                Some(sub_reply(req, sub, result))
            }
            ClientFrame::ReportStatus { req, status } => {
                if self.kind != ClientKind::App {
                    return Some(not_permitted(req, "only app hosts report page status"));
                }
                let event = BrokerEvent::PageStatus(self.identity.clone(), status);
                let _ = self.shared.events.send(event);
                Some(ServerFrame::Ok { req })
            }
            ClientFrame::Control { req, request } => {
                if self.kind != ClientKind::Cli {
                    return Some(not_permitted(
                        req,
                        "only the command line controls the shell",
                    ));
                }
                let (reply, answer) = oneshot::channel();
                let event = BrokerEvent::Control {
                    from: self.identity.clone(),
                    request,
                    reply,
                };
                if self.shared.events.send(event).is_err() {
                    return Some(error(
                        req,
                        ErrorCode::ShuttingDown,
                        "the shell is not listening",
                    ));
                }
                Some(match answer.await {
                    Ok(Ok(reply)) => ServerFrame::ControlReply { req, reply },
                    Ok(Err(message)) => error(req, ErrorCode::ControlFailed, &message),
                    Err(_) => error(
                        req,
                        ErrorCode::ShuttingDown,
                        "the shell dropped the request",
                    ),
                })
            }
        }
    }

    /// Queues `delivery` for every subscriber of its topic. A subscriber whose queue is
    /// full is disconnected rather than waited for.
    fn route(&self, delivery: Delivery) {
        let mut routes = lock(&self.shared.routes);
        for target in routes.targets(&delivery.topic) {
            let Some(conn) = routes.conn(target.conn) else {
                continue;
            };
            let frame = ServerFrame::Deliver {
                sub: target.sub,
                message: delivery.clone(),
            };
            match conn.outbound.try_send(Bytes::from(frame.encode())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !conn.kill.is_cancelled() {
                        tracing::warn!(
                            conn = target.conn,
                            identity = %conn.identity,
                            "disconnecting a slow consumer: its outbound queue is full"
                        );
                        conn.kill.cancel();
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

fn sub_reply(req: u64, sub: u64, result: Result<(), SubError>) -> ServerFrame {
    match result {
        Ok(()) => ServerFrame::Ok { req },
        Err(SubError::Duplicate) => error(
            req,
            ErrorCode::DuplicateSubscription,
            &format!("subscription id {sub} is already in use on this connection"),
        ),
        Err(SubError::Unknown) => error(
            req,
            ErrorCode::UnknownSubscription,
            &format!("no subscription with id {sub} on this connection"),
        ),
    }
}

fn not_permitted(req: u64, message: &str) -> ServerFrame {
    error(req, ErrorCode::NotPermitted, message)
}

fn error(req: u64, code: ErrorCode, message: &str) -> ServerFrame {
    ServerFrame::Error {
        req,
        code,
        message: message.to_owned(),
    }
}

async fn write_frame(write: &mut OwnedWriteHalf, body: &[u8]) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(4 + body.len());
    put_frame(&mut buf, body);
    write.write_all(&buf).await
}

fn put_frame(buf: &mut BytesMut, body: &[u8]) {
    buf.put_u32(body.len() as u32);
    buf.put_slice(body);
}

/// Writes queued frames, gathering everything already waiting (up to
/// [`WRITE_BATCH_BYTES`]) into one `write()`. Ends when every sender is gone.
async fn write_loop(mut write: OwnedWriteHalf, mut queue: mpsc::Receiver<Bytes>) {
    let mut buf = BytesMut::with_capacity(WRITE_BATCH_BYTES);
    while let Some(first) = queue.recv().await {
        put_frame(&mut buf, &first);
        while buf.len() < WRITE_BATCH_BYTES {
            match queue.try_recv() {
                Ok(body) => put_frame(&mut buf, &body),
                Err(_) => break,
            }
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
    }
    let _ = write.shutdown().await;
}
