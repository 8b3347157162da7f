//! Where a restored window goes: back on the monitor it was saved on when that monitor
//! is still there as it was; otherwise on the nearest monitor, at the same place
//! relative to it, shrunk and moved until it is fully on screen. Pure, so that every
//! case is tested without a display. Logical pixels throughout (HiDPI scale factors
//! are the desktop's business).

use weft_proto::launch::{MonitorArea, SavedWindow, WindowBounds};

/// The monitor holding most of `bounds`; the nearest when none holds any of it.
pub fn monitor_of<'a>(
    bounds: &WindowBounds,
    monitors: &'a [MonitorArea],
) -> Option<&'a MonitorArea> {
    monitors
        .iter()
        .max_by_key(|m| overlap(bounds, m))
        .filter(|m| overlap(bounds, m) > 0)
        .or_else(|| nearest(bounds, monitors))
}

/// The bounds to open a saved window at, on today's `monitors`.
pub fn place(saved: &SavedWindow, monitors: &[MonitorArea]) -> WindowBounds {
    let b = saved.bounds;
    if monitors.is_empty() {
        return b;
    }
    let same = saved.monitor.as_ref().and_then(|was| {
        monitors.iter().find(|m| {
            m.x == was.x
                && m.y == was.y
                && m.width == was.width
                && m.height == was.height
                && (was.name.is_none() || m.name == was.name)
        })
    });
    if let Some(m) = same {
        return fit(b, m);
    }
    // Gone or changed: the same-named monitor if it is still there, else the nearest
    // to where the window was; keep its place relative to the monitor's corner.
    let target = saved
        .monitor
        .as_ref()
        .and_then(|was| {
            was.name
                .as_ref()
                .and_then(|name| monitors.iter().find(|m| m.name.as_ref() == Some(name)))
        })
        .or_else(|| nearest(&b, monitors))
        .expect("there is a monitor");
    let (x, y) = match &saved.monitor {
        Some(was) => (
            target.x.saturating_add(b.x.saturating_sub(was.x)),
            target.y.saturating_add(b.y.saturating_sub(was.y)),
        ),
        None => (b.x, b.y),
    };
    fit(WindowBounds { x, y, ..b }, target)
}

/// `b` shrunk to fit `m` and moved until it lies fully inside it.
fn fit(b: WindowBounds, m: &MonitorArea) -> WindowBounds {
    let width = b.width.min(m.width).max(1);
    let height = b.height.min(m.height).max(1);
    let right = (m.x as i64 + m.width as i64 - width as i64).max(m.x as i64);
    let bottom = (m.y as i64 + m.height as i64 - height as i64).max(m.y as i64);
    let clamp = |v: i32, low: i32, high: i64| (v as i64).clamp(low as i64, high) as i32;
    WindowBounds {
        x: clamp(b.x, m.x, right),
        y: clamp(b.y, m.y, bottom),
        width,
        height,
    }
}

fn overlap(b: &WindowBounds, m: &MonitorArea) -> i64 {
    let span = |start: i32, len: u32, m_start: i32, m_len: u32| {
        (start as i64 + len as i64).min(m_start as i64 + m_len as i64)
            - (start as i64).max(m_start as i64)
    };
    let w = span(b.x, b.width, m.x, m.width);
    let h = span(b.y, b.height, m.y, m.height);
    if w <= 0 || h <= 0 { 0 } else { w * h }
}

/// The monitor whose area is closest to the centre of `b`.
fn nearest<'a>(b: &WindowBounds, monitors: &'a [MonitorArea]) -> Option<&'a MonitorArea> {
    let cx = b.x as i64 + b.width as i64 / 2;
    let cy = b.y as i64 + b.height as i64 / 2;
    monitors.iter().min_by_key(|m| {
        let dx = (m.x as i64 - cx)
            .max(0)
            .max(cx - (m.x as i64 + m.width as i64));
        let dy = (m.y as i64 - cy)
            .max(0)
            .max(cy - (m.y as i64 + m.height as i64));
        (dx as i128) * (dx as i128) + (dy as i128) * (dy as i128)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn monitor(name: &str, x: i32, y: i32, width: u32, height: u32) -> MonitorArea {
        MonitorArea {
            name: Some(name.into()),
            x,
            y,
            width,
            height,
            scale_percent: 100,
        }
    }

    fn bounds(x: i32, y: i32, width: u32, height: u32) -> WindowBounds {
        WindowBounds {
            x,
            y,
            width,
            height,
        }
    }

    fn saved(b: WindowBounds, on: Option<MonitorArea>) -> SavedWindow {
        SavedWindow {
            bounds: b,
            monitor: on,
            maximized: false,
            minimized: false,
        }
    }

    fn two() -> Vec<MonitorArea> {
        vec![
            monitor("DP-1", 0, 0, 1920, 1080),
            monitor("DP-2", 1920, 0, 1280, 1024),
        ]
    }

    #[test]
    fn a_window_goes_back_where_it_was_when_its_monitor_is_there() {
        let b = bounds(2100, 100, 800, 600);
        assert_eq!(place(&saved(b, Some(two()[1].clone())), &two()), b);
        assert_eq!(
            monitor_of(&b, &two()).unwrap().name.as_deref(),
            Some("DP-2")
        );
    }

    #[test]
    fn a_window_of_a_monitor_that_is_gone_lands_fully_on_the_nearest() {
        let one = vec![monitor("DP-1", 0, 0, 1920, 1080)];
        let placed = place(
            &saved(bounds(3000, 700, 800, 600), Some(two()[1].clone())),
            &one,
        );
        // Same place relative to the corner (1080, 700), then moved fully on screen.
        assert_eq!(placed, bounds(1080, 480, 800, 600));
        // Larger than the monitor: shrunk to it.
        let placed = place(
            &saved(bounds(1950, 10, 2400, 1300), Some(two()[1].clone())),
            &one,
        );
        assert_eq!(placed, bounds(0, 0, 1920, 1080));
        // Saved without a monitor, off every screen: onto the nearest.
        let placed = place(&saved(bounds(-900, 200, 400, 300), None), &two());
        assert_eq!(placed, bounds(0, 200, 400, 300));
    }

    #[test]
    fn a_changed_resolution_keeps_the_monitor_and_fits_the_window() {
        let smaller = vec![
            monitor("DP-1", 0, 0, 1920, 1080),
            monitor("DP-2", 1920, 0, 1024, 768),
        ];
        let placed = place(
            &saved(bounds(2700, 500, 600, 400), Some(two()[1].clone())),
            &smaller,
        );
        assert_eq!(placed, bounds(2344, 368, 600, 400));
    }

    proptest! {
        /// Whatever was saved and whatever monitors there are now, the window lands
        /// fully on one of them.
        #[test]
        fn every_placement_is_fully_on_a_monitor(
            x in any::<i32>(), y in any::<i32>(), w in 1u32.., h in 1u32..,
            layout in prop::collection::vec((-3000i32..6000, -2000i32..3000, 200u32..4000, 200u32..3000), 1..4),
            saved_on in prop::option::of(0usize..4),
        ) {
            let monitors: Vec<MonitorArea> = layout
                .iter()
                .enumerate()
                .map(|(i, (mx, my, mw, mh))| monitor(&format!("M{i}"), *mx, *my, *mw, *mh))
                .collect();
            let on = saved_on.map(|i| monitor(&format!("M{i}"), 0, 0, 1920, 1080));
            let p = place(&saved(bounds(x, y, w, h), on), &monitors);
            prop_assert!(monitors.iter().any(|m| {
                p.x >= m.x && p.y >= m.y
                    && p.x + p.width as i32 <= m.x + m.width as i32
                    && p.y + p.height as i32 <= m.y + m.height as i32
            }), "{p:?} is not inside any of {monitors:?}");
        }
    }
}
