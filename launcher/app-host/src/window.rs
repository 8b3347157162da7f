//! The window thread: one tao window, one wry webview, and the glue between the page
//! and the bus thread.

use std::{cell::RefCell, rc::Rc, sync::Arc};

use anyhow::Context;
use tao::{
    dpi::{LogicalPosition, LogicalSize},
    event::{Event, WindowEvent},
    event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy},
    platform::unix::WindowExtUnix,
    window::WindowBuilder,
};
use tokio::sync::mpsc;
use weft_proto::{
    frame::PageViolation,
    launch::{LaunchSpec, MonitorArea, SavedWindow, StartPage, WindowBounds},
};
use wry::{PageLoadEvent, WebContext, WebViewBuilder, WebViewBuilderExtUnix};

use crate::{
    bus::{self, FromWindow, WindowSink},
    channel_bar::ChannelBar,
    child_windows::ChildWindows,
    content, navigation,
    page_gate::{PageGate, WindowOp},
    page_queue::{InFlight, PageBacklog},
    page_script::{self, ToPage, batch_script},
    placement, window_control,
};

/// Events for the window thread.
#[derive(Debug)]
pub enum HostEvent {
    /// Run this script in the page.
    Eval {
        /// The script.
        script: String,
        /// Its length, released from the in-flight count when it has run.
        len: usize,
        /// The page generation it was reserved in.
        generation: u64,
    },
    /// Open the web inspector on the page.
    OpenInspector,
    /// The shell saves a layout: report the window and page for snapshot `request`.
    Save {
        /// The snapshot request.
        request: u64,
    },
    /// Do something to the window, or ask about it; answer the page's request `id`
    /// (none when the shell asked).
    Window {
        /// The page's request id.
        id: Option<u64>,
        /// What.
        op: WindowOp,
    },
    /// Run probe `id` in the page (see [`crate::page_probe`]).
    Probe {
        /// The probe.
        id: u64,
    },
    /// Refuse the page's request `id`: too many of its requests are waiting.
    Refuse {
        /// The page's request id.
        id: u64,
    },
    /// Show the app's FDC3 user channel (or none) in the window's channel strip.
    UserChannel(Option<crate::channel_bar::ShownChannel>),
    /// Close the window and exit the process with `code`.
    Exit {
        /// Process exit code.
        code: i32,
        /// Why, for the log.
        reason: String,
    },
}

impl WindowSink for EventLoopProxy<HostEvent> {
    fn send(&self, event: HostEvent) -> bool {
        self.send_event(event).is_ok()
    }
}

/// Opens the window and runs until the app is closed or told to stop. Never returns on
/// success: the event loop exits the process.
pub fn run(spec: LaunchSpec) -> anyhow::Result<()> {
    let event_loop = EventLoopBuilder::<HostEvent>::with_user_event().build();
    let proxy = event_loop.create_proxy();
    watch_signals(proxy.clone())?;

    let (to_bus, from_window) = mpsc::unbounded_channel();
    let bus_spec = spec.clone();
    let bus_proxy = proxy.clone();
    let in_flight = Arc::new(InFlight::default());
    let bus_in_flight = in_flight.clone();
    let backlog = Arc::new(PageBacklog::default());
    let bus_backlog = backlog.clone();
    std::thread::Builder::new()
        .name("weft-app-bus".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cannot start the bus runtime");
            runtime.block_on(bus::run(
                bus_spec,
                from_window,
                bus_proxy,
                bus_in_flight,
                bus_backlog,
            ));
        })
        .context("starting the bus thread")?;

    // A restored window goes back on its monitor, or fully on the nearest one.
    let monitors = monitor_areas(event_loop.available_monitors());
    let initial = match &spec.placement {
        Some(saved) => Some(placement::place(saved, &monitors)),
        None => spec.bounds,
    };
    let mut window = WindowBuilder::new().with_title(&spec.title);
    if let Some(b) = initial {
        window = window
            .with_position(LogicalPosition::new(b.x, b.y))
            .with_inner_size(LogicalSize::new(b.width, b.height));
    }
    if spec.placement.as_ref().is_some_and(|p| p.maximized) {
        window = window.with_maximized(true);
    }
    let window = window.build(&event_loop).context("opening the window")?;
    if spec.placement.as_ref().is_some_and(|p| p.minimized) {
        window.set_minimized(true);
    }
    // Where the window is when neither maximised nor minimised: what a snapshot keeps.
    let mut normal_bounds = initial;

    let start_url = match &spec.start {
        StartPage::Remote { url } => url.clone(),
        StartPage::Local { path, .. } => content::url_for(path),
    };
    let gate = Rc::new(RefCell::new(PageGate::new(&start_url)));
    let mut web_context = WebContext::new(Some(spec.web_data_dir.clone()));
    let mut builder = WebViewBuilder::new_with_web_context(&mut web_context)
        .with_initialization_script(page_script::init_script(
            &spec.identity,
            spec.app_state.as_deref(),
        ))
        .with_devtools(true)
        .with_url(&start_url);

    if let StartPage::Local { root, .. } = &spec.start {
        let root = std::fs::canonicalize(root)
            .with_context(|| format!("opening the app folder {}", root.display()))?;
        let server = content::ContentServer::new(root, &spec.origins);
        builder = builder.with_custom_protocol(content::SCHEME.into(), move |_, request| {
            server.serve(&request)
        });
    }

    let ipc_gate = gate.clone();
    let ipc_bus = to_bus.clone();
    let ipc_backlog = backlog.clone();
    let ipc_proxy = proxy.clone();
    builder = builder.with_ipc_handler(move |request| {
        let page_url = request.uri().to_string();
        match ipc_gate.borrow_mut().accept(&page_url, request.body()) {
            Ok(req) if !req.takes_backlog_place() || ipc_backlog.try_take() => {
                let _ = ipc_bus.send(FromWindow::Page(req));
            }
            Ok(req) => {
                tracing::warn!("the page has too many calls waiting; refusing one");
                if let Some(id) = req.id() {
                    let _ = ipc_proxy.send_event(HostEvent::Refuse { id });
                }
            }
            Err(why) => {
                tracing::warn!(page = page_url, "dropped a page message: {why}");
                let _ = ipc_bus.send(FromWindow::Violation(PageViolation::BridgeMessageDropped {
                    reason: why.to_string(),
                    page: page_url,
                }));
            }
        }
    });

    // Pages and frames stay on the app's origins; so do child windows, and other new
    // windows never open inside Weft.
    let mut origins = spec.origins.clone();
    if let Some(own) = navigation::origin_of(&start_url)
        && !origins.contains(&own)
    {
        origins.insert(0, own);
    }
    let nav_bus = to_bus.clone();
    let nav_origins = origins.clone();
    builder = builder.with_navigation_handler(move |url| {
        if navigation::allowed(&nav_origins, &url) {
            return true;
        }
        tracing::warn!(url, "blocked a navigation outside the app's origins");
        let _ = nav_bus.send(FromWindow::Violation(PageViolation::NavigationBlocked {
            url,
        }));
        false
    });
    let children = ChildWindows::new(
        &spec.title,
        origins.clone(),
        spec.new_windows_in_browser,
        to_bus.clone(),
    );
    let opener = children.clone();
    builder =
        builder.with_new_window_req_handler(move |url, features| opener.request(url, features));

    let load_gate = gate.clone();
    let load_bus = to_bus.clone();
    let load_in_flight = in_flight.clone();
    builder = builder.with_on_page_load_handler(move |event, url| {
        if let PageLoadEvent::Started = event {
            tracing::debug!(url, "page load started");
            load_gate.borrow_mut().page_started();
            load_in_flight.page_started();
            let _ = load_bus.send(FromWindow::PageStarted);
        }
    });

    let vbox = window
        .default_vbox()
        .context("the window has no GTK container for the webview")?;
    let bar_bus = to_bus.clone();
    let channel_bar = ChannelBar::new(vbox, move || {
        let _ = bar_bus.send(FromWindow::ChooseChannel);
    });
    let webview = builder.build_gtk(vbox).context("creating the webview")?;
    reload_when_the_web_process_dies(&webview);

    // The shell knows where the window is from the start (the intent resolver shows
    // over it), also when the launch gave no bounds.
    let mut reported = spec.bounds;
    if reported.is_none()
        && let Some(bounds) = current_bounds(&window)
    {
        reported = Some(bounds);
        let _ = to_bus.send(FromWindow::Window(bounds));
    }
    let probe_bus = to_bus.clone();
    event_loop.run(move |event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        match event {
            Event::UserEvent(HostEvent::Eval {
                script,
                len,
                generation,
            }) => {
                let in_flight = in_flight.clone();
                let done = move |_: String| in_flight.release(len, generation);
                if let Err(e) = webview.evaluate_script_with_callback(&script, done) {
                    tracing::warn!("cannot run a script in the page: {e}");
                }
            }
            Event::UserEvent(HostEvent::UserChannel(channel)) => {
                channel_bar.show(channel.as_ref());
            }
            Event::UserEvent(HostEvent::Save { request }) => {
                let monitors = monitor_areas(window.available_monitors());
                let now = current_bounds(&window).or(normal_bounds);
                let saved = normal_bounds.map(|bounds| SavedWindow {
                    bounds,
                    monitor: now.and_then(|b| placement::monitor_of(&b, &monitors).cloned()),
                    maximized: window.is_maximized(),
                    minimized: window.is_minimized(),
                });
                let _ = to_bus.send(FromWindow::SaveStarted {
                    request,
                    url: webview.url().unwrap_or_default(),
                    window: saved,
                });
                if let Err(e) = webview.evaluate_script(&batch_script(&[ToPage::save(request)])) {
                    tracing::warn!("cannot ask the page for its state: {e}");
                }
            }
            Event::UserEvent(HostEvent::Window { id, op }) => {
                children.follow(&op);
                let answer = window_control::apply(&window, op);
                if let Some(id) = id
                    && let Ok(answer) = serde_json::value::to_raw_value(&answer)
                    && let Err(e) =
                        webview.evaluate_script(&batch_script(&[ToPage::value(id, &answer)]))
                {
                    tracing::warn!("cannot run a script in the page: {e}");
                }
            }
            Event::UserEvent(HostEvent::OpenInspector) => {
                tracing::info!("opening the web inspector");
                webview.open_devtools();
            }
            Event::UserEvent(HostEvent::Probe { id }) => {
                let visible = window.is_visible() && !window.is_minimized();
                let answer = probe_bus.clone();
                let answered = move |_: String| {
                    let _ = answer.send(FromWindow::ProbeAnswered { id, visible });
                };
                if let Err(e) = webview.evaluate_script_with_callback("0", answered) {
                    tracing::warn!("cannot probe the page: {e}");
                }
            }
            Event::UserEvent(HostEvent::Refuse { id }) => {
                let refusal = ToPage::err(
                    id,
                    "Backpressure",
                    "too many calls are waiting; retry later",
                );
                if let Err(e) = webview.evaluate_script(&batch_script(&[refusal])) {
                    tracing::warn!("cannot run a script in the page: {e}");
                }
            }
            Event::UserEvent(HostEvent::Exit { code, reason }) => {
                tracing::info!(code, "exiting: {reason}");
                *control_flow = ControlFlow::ExitWithCode(code);
            }
            Event::WindowEvent {
                event: WindowEvent::CloseRequested,
                ..
            } => {
                tracing::info!("the window was closed");
                *control_flow = ControlFlow::Exit;
            }
            Event::WindowEvent {
                event: WindowEvent::Moved(_) | WindowEvent::Resized(_),
                ..
            } => {
                // The shell keeps the latest, so that a restart puts the window back.
                if let Some(bounds) = current_bounds(&window)
                    && reported != Some(bounds)
                {
                    reported = Some(bounds);
                    let _ = to_bus.send(FromWindow::Window(bounds));
                    if !window.is_maximized() && !window.is_minimized() {
                        normal_bounds = Some(bounds);
                    }
                }
            }
            _ => {}
        }
    });
}

/// Where the window is, in logical pixels: outer position and inner size, as a launch
/// spec gives them.
pub fn current_bounds(window: &tao::window::Window) -> Option<WindowBounds> {
    let scale = window.scale_factor();
    let position = window.outer_position().ok()?.to_logical::<i32>(scale);
    let size = window.inner_size().to_logical::<u32>(scale);
    (size.width > 0 && size.height > 0).then_some(WindowBounds {
        x: position.x,
        y: position.y,
        width: size.width,
        height: size.height,
    })
}

/// The monitors, in logical pixels.
fn monitor_areas(monitors: impl Iterator<Item = tao::monitor::MonitorHandle>) -> Vec<MonitorArea> {
    monitors
        .map(|m| {
            let scale = m.scale_factor();
            let position = m.position().to_logical::<i32>(scale);
            let size = m.size().to_logical::<u32>(scale);
            MonitorArea {
                name: m.name(),
                x: position.x,
                y: position.y,
                width: size.width,
                height: size.height,
                // Scale factors are small positive numbers (1.0, 1.25, 2.0).
                scale_percent: (scale * 100.0).round().clamp(1.0, 10_000.0) as u32,
            }
        })
        .collect()
}

/// A page whose WebKit web process dies (a crash, the kernel's OOM killer, a kill) is
/// loaded again in place: the host, its window and its bus connection live on, and the
/// page comes back through the normal load (page gate reset, bridge hello, `Ready`).
fn reload_when_the_web_process_dies(webview: &wry::WebView) {
    use webkit2gtk::WebViewExt;
    use wry::WebViewExtUnix;
    webview
        .webview()
        .connect_web_process_terminated(|view, reason| {
            tracing::error!(
                ?reason,
                "the page's web process ended; loading the page again"
            );
            view.reload();
        });
}

/// SIGTERM and SIGINT close the app gracefully.
fn watch_signals(proxy: EventLoopProxy<HostEvent>) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("weft-app-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _ = proxy.send_event(HostEvent::Exit {
                    code: 0,
                    reason: format!("received signal {sig}"),
                });
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}
