//! The metrics and health endpoint: `/metrics` in the OpenMetrics text format and
//! `/health` as JSON, served over HTTP on a loopback address only.
//!
//! Nothing is kept here: every request reads the broker's counters and the supervisor's
//! view of the apps at that moment and renders them.

use std::{
    convert::Infallible,
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    str::FromStr,
};

use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, header};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};
use serde::Serialize;
use tokio::net::TcpListener;
use weft_broker::{BrokerHandle, JournalStats, LATENCY_BUCKETS, StatsSnapshot};
use weft_proto::frame::{AppInfo, AppState};
use weft_supervisor::Supervisor;

/// The port tried first when no address is given (Prometheus' default exporter range).
pub const DEFAULT_PORT: u16 = 9464;

/// Where the endpoint should listen, as given by `--metrics-addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsAddr {
    /// `127.0.0.1:9464`, or a free port when that one is taken.
    #[default]
    Default,
    /// Exactly this address (port 0: any free port).
    Exact(SocketAddr),
    /// No endpoint.
    Off,
}

/// `--metrics-addr` was not an address the endpoint may listen on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsAddrError {
    /// Neither `off`, a port, nor `IP:PORT`.
    #[error("`{0}` is not `off`, a port, or a loopback address and port like 127.0.0.1:9464")]
    Unparsable(String),
    /// The endpoint is for this machine only.
    #[error(
        "{0} is not a loopback address; the metrics endpoint listens only on this machine (127.0.0.1 or ::1)"
    )]
    NotLoopback(IpAddr),
}

impl FromStr for MetricsAddr {
    type Err = MetricsAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(MetricsAddr::Off);
        }
        let addr = match s.parse::<u16>() {
            Ok(port) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            Err(_) => s
                .parse::<SocketAddr>()
                .map_err(|_| MetricsAddrError::Unparsable(s.to_owned()))?,
        };
        if !addr.ip().is_loopback() {
            return Err(MetricsAddrError::NotLoopback(addr.ip()));
        }
        Ok(MetricsAddr::Exact(addr))
    }
}

impl fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsAddr::Default => write!(f, "127.0.0.1:{DEFAULT_PORT}"),
            MetricsAddr::Exact(addr) => write!(f, "{addr}"),
            MetricsAddr::Off => f.write_str("off"),
        }
    }
}

/// Binds the endpoint's socket; `None` when it is off.
pub async fn bind(addr: MetricsAddr) -> std::io::Result<Option<TcpListener>> {
    let listener = match addr {
        MetricsAddr::Off => return Ok(None),
        MetricsAddr::Exact(addr) => TcpListener::bind(addr).await?,
        MetricsAddr::Default => {
            bind_or_any_port(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                DEFAULT_PORT,
            ))
            .await?
        }
    };
    Ok(Some(listener))
}

/// Binds `preferred`, or a free port on its address when that one is taken.
async fn bind_or_any_port(preferred: SocketAddr) -> std::io::Result<TcpListener> {
    match TcpListener::bind(preferred).await {
        Ok(l) => Ok(l),
        Err(e) => {
            tracing::info!("{preferred} is not available ({e}); using a free port");
            TcpListener::bind(SocketAddr::new(preferred.ip(), 0)).await
        }
    }
}

/// What the endpoint reads on each request.
#[derive(Clone)]
pub struct Sources {
    /// The broker's counters.
    pub broker: BrokerHandle,
    /// The apps.
    pub supervisor: Supervisor,
}

/// Serves requests on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, sources: Sources) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("the metrics endpoint could not accept a connection: {e}");
                continue;
            }
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let sources = sources.clone();
                async move { Ok::<_, Infallible>(answer(&req, &sources)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!("a metrics connection ended: {e}");
            }
        });
    }
}

fn answer<B>(req: &Request<B>, sources: &Sources) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let text = render_metrics(
                &sources.broker.stats(),
                &sources.broker.journal_stats(),
                &sources.supervisor.apps(),
            );
            Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .body(Full::new(Bytes::from(text)))
                .expect("a response built from constant parts")
        }
        "/health" => {
            let report = HealthReport::of(&sources.supervisor.apps());
            let status = if report.status == Health::Failing {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            let body = serde_json::to_vec(&report).expect("the health report serializes");
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("a response built from constant parts")
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /health\n",
        ),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("a response built from constant parts")
}

/// How healthy an app, or the whole shell, is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Working, or stopped on purpose.
    Ok,
    /// On its way to working: starting, restarting or stopping.
    Degraded,
    /// Needs someone's attention: not responding, crashed, or failed.
    Failing,
}

impl Health {
    fn of(state: AppState) -> Self {
        match state {
            AppState::Ready | AppState::Stopped => Health::Ok,
            AppState::Starting | AppState::Restarting | AppState::Stopping => Health::Degraded,
            AppState::NotResponding | AppState::Crashed | AppState::Failed => Health::Failing,
        }
    }
}

/// The body of `/health`: HTTP 503 when `status` is failing, else 200.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    /// The worst of the apps' health (ok with no apps).
    pub status: Health,
    /// Each app instance.
    pub apps: Vec<AppHealth>,
}

/// One app instance in [`HealthReport`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppHealth {
    /// Its app id.
    pub app_id: String,
    /// Its instance id.
    pub instance_id: String,
    /// Its state, as `weft ps` names it.
    pub state: &'static str,
    /// Its health.
    pub status: Health,
    /// Restarts so far.
    pub restarts: u32,
    /// How its process last ended, if it has.
    pub exit: Option<String>,
}

impl HealthReport {
    /// The health of `apps`.
    pub fn of(apps: &[AppInfo]) -> Self {
        let apps: Vec<AppHealth> = apps
            .iter()
            .map(|a| AppHealth {
                app_id: a.app_id.clone(),
                instance_id: a.instance_id.clone(),
                state: a.state.as_str(),
                status: Health::of(a.state),
                restarts: a.restarts,
                exit: a.exit.clone(),
            })
            .collect();
        let status = apps.iter().map(|a| a.status).max().unwrap_or(Health::Ok);
        Self { status, apps }
    }
}

/// Every app state, for the state-set gauge (one series per state, 1 for the current).
const STATES: [AppState; 8] = [
    AppState::Starting,
    AppState::Ready,
    AppState::NotResponding,
    AppState::Stopping,
    AppState::Stopped,
    AppState::Crashed,
    AppState::Restarting,
    AppState::Failed,
];

/// Renders the broker's counters and the apps in the OpenMetrics text format.
pub fn render_metrics(stats: &StatsSnapshot, journal: &JournalStats, apps: &[AppInfo]) -> String {
    let mut registry = Registry::with_prefix("weft");
    registry.register_collector(Box::new(Snapshot {
        stats: stats.clone(),
        journal: journal.clone(),
        apps: apps.to_vec(),
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

/// One moment's figures, encoded by the registry.
#[derive(Debug)]
struct Snapshot {
    stats: StatsSnapshot,
    journal: JournalStats,
    apps: Vec<AppInfo>,
}

type Labels = Vec<(&'static str, String)>;

fn app_labels(a: &AppInfo) -> Labels {
    vec![
        ("app_id", a.app_id.clone()),
        ("instance_id", a.instance_id.clone()),
    ]
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let s = &self.stats;
        for (name, help, value) in [
            (
                "bus_messages_published",
                "Messages accepted for routing (publishes, sends, requests, dispatches, responses)",
                s.published,
            ),
            (
                "bus_messages_delivered",
                "Copies of messages queued for their recipients",
                s.delivered,
            ),
            (
                "bus_messages_dropped",
                "Copies of messages not queued because the recipient's queue was full or closing",
                s.dropped,
            ),
            (
                "bus_messages_unrouted",
                "Published messages no subscription matched",
                s.unrouted,
            ),
            (
                "bus_slow_consumer_disconnects",
                "Connections cut off because their outbound queue was full",
                s.slow_consumer_disconnects,
            ),
        ] {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }

        self.journal_figures(&mut encoder)?;
        ConstGauge::new(s.connections.len() as i64).encode(encoder.encode_descriptor(
            "bus_connections",
            "Authenticated bus connections",
            None,
            MetricType::Gauge,
        )?)?;
        let mut family = encoder.encode_descriptor(
            "bus_queue",
            "Bytes waiting in each connection's outbound queue",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for c in &s.connections {
            let labels: Labels = vec![
                ("app_id", c.identity.app_id.clone()),
                ("instance_id", c.identity.instance_id.clone()),
            ];
            ConstGauge::new(c.queued_bytes as i64).encode(family.encode_family(&labels)?)?;
        }

        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(s.latency_counts.iter().copied())
            .collect();
        encoder
            .encode_descriptor(
                "bus_routing_latency",
                "Time to route a message to its subscribers' queues (one message in 64 per connection is timed)",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                s.latency_sum.as_secs_f64(),
                s.latency_counts.iter().sum(),
                &buckets,
                None,
            )?;

        let mut family = encoder.encode_descriptor(
            "app_state",
            "1 for the state each app instance is in, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for a in &self.apps {
            for state in STATES {
                let mut labels = app_labels(a);
                labels.push(("state", state.as_str().to_owned()));
                ConstGauge::new(i64::from(a.state == state))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "app_restarts",
            "Times the supervisor started the app again after its process ended",
            None,
            MetricType::Counter,
        )?;
        for a in &self.apps {
            ConstCounter::new(u64::from(a.restarts))
                .encode(family.encode_family(&app_labels(a))?)?;
        }
        self.app_gauges(&mut encoder)
    }
}

impl Snapshot {
    /// The dead-letter queue and each durable stream.
    fn journal_figures(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let j = &self.journal;
        ConstGauge::new(j.dead_letters as i64).encode(encoder.encode_descriptor(
            "dlq_messages",
            "Messages in the dead-letter queue",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(j.dead_letters_lost).encode(encoder.encode_descriptor(
            "dlq_lost",
            "Dead letters that could not be kept (no journal, or too many at once)",
            None,
            MetricType::Counter,
        )?)?;
        type Read = fn(&weft_broker::DurableInfo) -> i64;
        let per_stream: [(&str, &str, Option<Unit>, Read); 3] = [
            (
                "journal_last_seq",
                "The last sequence number stored in each durable stream",
                None,
                |s| s.last_seq as i64,
            ),
            (
                "journal",
                "Bytes each durable stream takes on disk",
                Some(Unit::Bytes),
                |s| s.bytes as i64,
            ),
            (
                "journal_damaged",
                "Damaged places found in each durable stream (skipped and quarantined)",
                None,
                |s| s.damaged as i64,
            ),
        ];
        for (name, help, unit, read) in per_stream {
            let mut family =
                encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            for stream in &j.streams {
                let labels: Labels = vec![("stream", stream.pattern.clone())];
                ConstGauge::new(read(stream)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    /// The per-app figures that are known only while an app runs.
    fn app_gauges(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        type Read = fn(&AppInfo) -> Option<f64>;
        let gauges: [(&str, &str, Option<Unit>, Read); 5] = [
            (
                "app_cpu_percent",
                "CPU use of the app's process tree over the last second, in percent of one core",
                None,
                |a| a.cpu_percent.map(f64::from),
            ),
            (
                "app_memory_pss",
                "Proportional set size of the app's process tree",
                Some(Unit::Bytes),
                |a| a.memory_pss_kb.map(|kb| kb as f64 * 1024.0),
            ),
            (
                "app_memory_limit",
                "The app's memory limit",
                Some(Unit::Bytes),
                |a| a.memory_limit_mb.map(|mb| mb as f64 * 1024.0 * 1024.0),
            ),
            (
                "app_uptime",
                "Time since the app's current process started",
                Some(Unit::Seconds),
                |a| a.uptime_secs.map(|s| s as f64),
            ),
            (
                "app_heartbeat_age",
                "Time since the app's host last reported",
                Some(Unit::Seconds),
                |a| a.heartbeat_age_ms.map(|ms| ms as f64 / 1000.0),
            ),
        ];
        for (name, help, unit, read) in gauges {
            let mut family =
                encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            for a in &self.apps {
                if let Some(value) = read(a) {
                    ConstGauge::new(value).encode(family.encode_family(&app_labels(a))?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weft_broker::ConnectionStats;
    use weft_proto::Identity;

    use super::*;

    fn app(id: &str, state: AppState) -> AppInfo {
        AppInfo {
            app_id: id.into(),
            instance_id: format!("{id}-1"),
            title: id.into(),
            url: "weft://localhost/x.html".into(),
            pid: Some(42),
            state,
            exit: None,
            restarts: 3,
            bounds: None,
            uptime_secs: Some(12),
            cpu_percent: Some(1.5),
            memory_pss_kb: Some(2048),
            heartbeat_age_ms: Some(500),
            memory_limit_mb: None,
            limits_enforced_by: None,
        }
    }

    #[test]
    fn addresses_parse_and_only_loopback_is_allowed() {
        assert_eq!("off".parse(), Ok(MetricsAddr::Off));
        assert_eq!(
            "0".parse(),
            Ok(MetricsAddr::Exact("127.0.0.1:0".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:9000".parse(),
            Ok(MetricsAddr::Exact("[::1]:9000".parse().unwrap()))
        );
        assert_eq!(
            "0.0.0.0:9464".parse::<MetricsAddr>(),
            Err(MetricsAddrError::NotLoopback("0.0.0.0".parse().unwrap()))
        );
        let err = "localhost:x".parse::<MetricsAddr>().unwrap_err();
        assert!(err.to_string().contains("`localhost:x`"), "{err}");
    }

    #[tokio::test]
    async fn a_taken_port_falls_back_to_a_free_one() {
        let holder = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taken = holder.local_addr().unwrap();
        let listener = bind_or_any_port(taken).await.unwrap();
        let got = listener.local_addr().unwrap();
        assert_eq!(got.ip(), taken.ip());
        assert_ne!(got.port(), taken.port());
        assert_ne!(got.port(), 0);
        assert!(bind(MetricsAddr::Off).await.unwrap().is_none());
    }

    #[test]
    fn the_worst_app_decides_the_health() {
        let ok = HealthReport::of(&[app("a", AppState::Ready), app("b", AppState::Stopped)]);
        assert_eq!(ok.status, Health::Ok);
        let starting = HealthReport::of(&[app("a", AppState::Ready), app("b", AppState::Starting)]);
        assert_eq!(starting.status, Health::Degraded);
        let failed = HealthReport::of(&[app("a", AppState::Failed), app("b", AppState::Starting)]);
        assert_eq!(failed.status, Health::Failing);
        assert_eq!(failed.apps[0].status, Health::Failing);
        assert_eq!(HealthReport::of(&[]).status, Health::Ok);
    }

    #[test]
    fn metrics_carry_the_counters_and_one_state_per_app() {
        let mut latency_counts = vec![0; LATENCY_BUCKETS.len() + 1];
        latency_counts[2] = 4;
        let stats = StatsSnapshot {
            published: 7,
            delivered: 9,
            dropped: 1,
            unrouted: 2,
            slow_consumer_disconnects: 1,
            latency_counts,
            latency_sum: Duration::from_micros(20),
            connections: vec![ConnectionStats {
                identity: Identity::new_instance("chart"),
                queued_bytes: 128,
            }],
        };
        let journal = JournalStats {
            streams: vec![weft_broker::DurableInfo {
                pattern: "orders.#".into(),
                fsync: "always".into(),
                first_seq: 1,
                last_seq: 42,
                bytes: 4096,
                damaged: 0,
            }],
            dead_letters: 3,
            dead_letters_lost: 0,
        };
        let text = render_metrics(&stats, &journal, &[app("chart", AppState::Failed)]);
        for line in [
            "weft_bus_messages_published_total 7",
            "weft_dlq_messages 3",
            "weft_journal_last_seq{stream=\"orders.#\"} 42",
            "weft_journal_bytes{stream=\"orders.#\"} 4096",
            "weft_bus_messages_delivered_total 9",
            "weft_bus_messages_dropped_total 1",
            "weft_bus_routing_latency_seconds_count 4",
            "weft_bus_routing_latency_seconds_bucket{le=\"0.000005\"} 4",
            "weft_app_state{app_id=\"chart\",instance_id=\"chart-1\",state=\"failed\"} 1",
            "weft_app_state{app_id=\"chart\",instance_id=\"chart-1\",state=\"ready\"} 0",
            "weft_app_restarts_total{app_id=\"chart\",instance_id=\"chart-1\"} 3",
            "weft_app_memory_pss_bytes{app_id=\"chart\",instance_id=\"chart-1\"} 2097152.0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
