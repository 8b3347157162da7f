//! The host's side of the bus: carries the page's requests to the broker and the
//! broker's messages to the page. Runs on its own thread with a Tokio runtime; talks to
//! the window thread only through channels and the event-loop proxy.

use std::collections::HashMap;

use tokio::{sync::mpsc, task::JoinHandle};
use weft_client::{Client, ClientError};
use weft_proto::{Pattern, Topic, frame::PageStatus, launch::LaunchSpec};

use crate::{
    page_gate::PageRequest,
    page_script::{ToPage, batch_script},
    window::HostEvent,
};

/// Most items in one script sent to the page.
const MAX_BATCH: usize = 256;

/// What the window thread tells the bus side.
pub enum FromWindow {
    /// An accepted page request.
    Page(PageRequest),
    /// A new page load started: the old page's subscriptions end.
    PageStarted,
}

/// Somewhere to send events for the window thread.
pub trait WindowSink: Send + Sync + 'static {
    /// Delivers `event` to the window thread; false once that thread is gone.
    fn send(&self, event: HostEvent) -> bool;
}

/// Connects and serves until the connection ends or the window thread hangs up.
pub async fn run(
    spec: LaunchSpec,
    mut from_window: mpsc::UnboundedReceiver<FromWindow>,
    window: impl WindowSink,
) {
    let token = match spec.token() {
        Ok(t) => t,
        Err(e) => {
            window.send(HostEvent::Exit {
                code: 2,
                reason: e.to_string(),
            });
            return;
        }
    };
    let client = match Client::connect(&spec.socket, &token).await {
        Ok(c) => c,
        Err(e) => {
            window.send(HostEvent::Exit {
                code: 2,
                reason: format!("cannot connect to the bus: {e}"),
            });
            return;
        }
    };
    tracing::info!(identity = %client.identity(), "connected to the bus");

    let (to_page, to_page_rx) = mpsc::unbounded_channel::<ToPage>();
    let window = std::sync::Arc::new(window);
    tokio::spawn(flush_to_page(to_page_rx, window.clone()));

    let mut session = Session {
        client: client.clone(),
        to_page,
        subs: HashMap::new(),
        hello: false,
        loaded: false,
    };
    loop {
        tokio::select! {
            msg = from_window.recv() => match msg {
                Some(msg) => session.handle(msg).await,
                None => return,
            },
            reason = client.closed() => {
                window.send(HostEvent::Exit { code: 3, reason: format!("the bus connection ended: {reason}") });
                return;
            }
        }
    }
}

struct Session {
    client: Client,
    to_page: mpsc::UnboundedSender<ToPage>,
    /// Page subscription id → the task forwarding its messages.
    subs: HashMap<u64, JoinHandle<()>>,
    hello: bool,
    loaded: bool,
}

impl Session {
    async fn handle(&mut self, msg: FromWindow) {
        match msg {
            FromWindow::PageStarted => {
                for (_, task) in self.subs.drain() {
                    task.abort();
                }
                if self.hello || self.loaded {
                    self.hello = false;
                    self.loaded = false;
                    self.report(PageStatus::Loading).await;
                }
            }
            FromWindow::Page(PageRequest::Hello) => {
                self.hello = true;
            }
            FromWindow::Page(PageRequest::Ready) => {
                if self.hello && !self.loaded {
                    self.loaded = true;
                    self.report(PageStatus::Ready).await;
                }
            }
            FromWindow::Page(PageRequest::Publish { id, topic, data }) => {
                let result = match Topic::new(topic) {
                    Ok(topic) => self
                        .client
                        .publish(&topic, data)
                        .await
                        .map_err(client_error),
                    Err(e) => Err(("InvalidTopic", e.to_string())),
                };
                self.answer(id, result);
            }
            FromWindow::Page(PageRequest::Subscribe { id, sub, topic }) => {
                let result = self.subscribe(sub, topic).await;
                self.answer(id, result);
            }
            FromWindow::Page(PageRequest::Unsubscribe { id, sub }) => {
                let result = match self.subs.remove(&sub) {
                    Some(task) => {
                        task.abort();
                        Ok(())
                    }
                    None => Err(("UnknownSubscription", format!("no subscription {sub}"))),
                };
                self.answer(id, result);
            }
        }
    }

    async fn subscribe(&mut self, sub: u64, topic: String) -> Result<(), (&'static str, String)> {
        if self.subs.contains_key(&sub) {
            return Err((
                "DuplicateSubscription",
                format!("subscription {sub} exists"),
            ));
        }
        let pattern = Pattern::new(topic).map_err(|e| ("InvalidTopic", e.to_string()))?;
        let mut subscription = self.client.subscribe(pattern).await.map_err(client_error)?;
        let to_page = self.to_page.clone();
        let task = tokio::spawn(async move {
            while let Some(d) = subscription.next().await {
                if to_page.send(ToPage::message(sub, &d)).is_err() {
                    break;
                }
            }
        });
        self.subs.insert(sub, task);
        Ok(())
    }

    fn answer(&self, id: u64, result: Result<(), (&'static str, String)>) {
        let item = match result {
            Ok(()) => ToPage::ok(id),
            Err((code, message)) => ToPage::err(id, code, &message),
        };
        let _ = self.to_page.send(item);
    }

    async fn report(&self, status: PageStatus) {
        if let Err(e) = self.client.report_status(status).await {
            tracing::warn!("cannot report the page status: {e}");
        }
    }
}

fn client_error(e: ClientError) -> (&'static str, String) {
    (e.code(), e.to_string())
}

/// Sends everything queued for the page, one script per batch.
async fn flush_to_page(
    mut queue: mpsc::UnboundedReceiver<ToPage>,
    window: std::sync::Arc<impl WindowSink>,
) {
    let mut batch = Vec::new();
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if !window.send(HostEvent::Eval(batch_script(&batch))) {
            return;
        }
        batch.clear();
    }
}
