//! One client connection: handshake, then a read loop and a coalescing writer.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::{
    io::AsyncWriteExt,
    net::{UnixStream, unix::OwnedWriteHalf},
};
use tokio_util::sync::CancellationToken;
use weft_proto::{
    Identity, PROTOCOL_VERSION, ServerFrame,
    handshake::{Hello, HelloReply, Refusal},
};
use weft_wire::{FrameReader, frame_queue};

use crate::{
    BrokerEvent, ClientKind, DeferredWakes, Shared, access::BusAccess, lock, session::Session,
    stats::Tally, tokens::TokenRefusal,
};

/// How long a closing connection's queued frames may take to write.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) type Reader = FrameReader<tokio::net::unix::OwnedReadHalf>;

pub(crate) async fn serve(shared: Arc<Shared>, conn: u64, stream: UnixStream) {
    let peer = stream
        .peer_cred()
        .ok()
        .map(|cred| (cred.pid().unwrap_or(0), cred.uid()));
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, shared.config.max_frame_len);

    let (kind, identity, access) = match handshake(&shared, conn, &mut reader).await {
        Ok(accepted) => accepted,
        Err((reason, message)) => {
            tracing::warn!(
                conn,
                reason = reason.as_str(),
                ?peer,
                "refused a client: {message}"
            );
            let _ = shared.events.send(BrokerEvent::Refused {
                reason: reason.as_str(),
                message: message.clone(),
                peer,
            });
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

    let (outbound, outbound_rx) = frame_queue(shared.config.outbound_queue_bytes);
    let kill = CancellationToken::new();
    lock(&shared.routes).add_conn(conn, identity.clone(), outbound.clone(), kill.clone());
    if kind == ClientKind::App {
        let _ = shared
            .events
            .send(BrokerEvent::AppConnected(identity.clone()));
    }
    tracing::debug!(conn, %identity, ?kind, "client connected");
    let mut writer = tokio::spawn(outbound_rx.run(write));

    let sender_encoded = weft_proto::fast_path::encode_identity(&identity);
    let session = Session {
        shared: &shared,
        shared_arc: Arc::downgrade(&shared),
        conn,
        kind,
        identity: &identity,
        access: &access,
        denials: Default::default(),
        sender: Arc::new(identity.clone()),
        sender_encoded: &sender_encoded,
        outbound: &outbound,
        wakes: DeferredWakes::default(),
        tally: Tally::default(),
        durable_burst: Default::default(),
    };
    let (reason, slow) = tokio::select! {
        reason = session.read_loop(&mut reader) => (reason, false),
        _ = kill.cancelled() => ("SlowConsumer: its outbound queue was full".to_owned(), true),
        _ = shared.shutdown.cancelled() => ("the shell is shutting down".to_owned(), false),
    };
    // Whatever it routed before it stopped goes out, and is counted.
    session.wakes.wake_all();
    session.tally.flush(&shared.stats);
    tracing::debug!(conn, %identity, "closing connection: {reason}");

    lock(&shared.routes).remove_conn(conn);
    shared.consumers.detach_conn(conn);
    lock(&shared.tokens).release(conn);
    let gone = lock(&shared.calls).connection_gone(conn);
    shared.provider_gone(gone);
    // A slow consumer's backlog is dropped unwritten, so that the reason can reach it
    // behind at most the batch already on its way. Others get what is queued.
    if slow {
        outbound.discard_waiting();
    }
    let _ = outbound.push(&ServerFrame::Closing { reason }.encode());
    outbound.close();
    // Written for as long as the client keeps reading, up to a limit.
    if tokio::time::timeout(DRAIN_TIMEOUT, &mut writer)
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
) -> Result<(ClientKind, Identity, BusAccess), (Refusal, String)> {
    let first = tokio::time::timeout(shared.config.handshake_timeout, reader.next_frame()).await;
    let body = match first {
        Err(_) => {
            return Err((
                Refusal::Malformed,
                "no handshake within the time limit".into(),
            ));
        }
        Ok(Ok(None)) => return Err((Refusal::Malformed, "closed before the handshake".into())),
        Ok(Err(e)) => return Err((Refusal::Malformed, format!("unreadable handshake: {e}"))),
        Ok(Ok(Some(body))) => body,
    };
    let (version, token) = Hello::decode(body).map_err(|e| (Refusal::Malformed, e.to_string()))?;
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
        Ok((ClientKind::App, Some(identity), access)) => Ok((ClientKind::App, identity, access)),
        Ok((kind, _, access)) => Ok((kind, cli_identity(conn), access)),
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

async fn write_frame(write: &mut OwnedWriteHalf, body: &[u8]) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(4 + body.len());
    put_frame(&mut buf, body);
    write.write_all(&buf).await
}

fn put_frame(buf: &mut BytesMut, body: &[u8]) {
    buf.put_u32(body.len() as u32);
    buf.put_slice(body);
}
