//! Answering the shell's snapshot requests: the window thread gives the page's URL and
//! window, the page its own state (`weft.workspace.onSave`), and the report goes out
//! when both are in — or, if the page does not answer in time, without its state.

use std::time::{Duration, Instant};

use weft_proto::launch::{MAX_APP_STATE, SavedApp, SavedWindow};

/// How long the page's save hook may take.
pub const PAGE_ANSWER_DEADLINE: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct Pending {
    request: u64,
    url: String,
    window: Option<SavedWindow>,
    deadline: Instant,
}

/// Snapshot requests waiting for their page's answer.
#[derive(Debug, Default)]
pub struct PendingSaves {
    pending: Vec<Pending>,
}

impl PendingSaves {
    /// The window thread's part of `request` is in; the page has been asked.
    pub fn started(
        &mut self,
        request: u64,
        url: String,
        window: Option<SavedWindow>,
        now: Instant,
    ) {
        self.pending.retain(|p| p.request != request);
        self.pending.push(Pending {
            request,
            url,
            window,
            deadline: now + PAGE_ANSWER_DEADLINE,
        });
    }

    /// The page answered `request`: the report, if the request is still waiting.
    pub fn answered(
        &mut self,
        request: u64,
        app_state: Option<String>,
        error: Option<String>,
    ) -> Option<SavedApp> {
        let i = self.pending.iter().position(|p| p.request == request)?;
        let p = self.pending.remove(i);
        let (app_state, error) = match app_state {
            Some(state) if state.len() > MAX_APP_STATE => (
                None,
                Some(format!(
                    "onSave returned {} KiB; at most {} KiB is kept",
                    state.len() / 1024,
                    MAX_APP_STATE / 1024
                )),
            ),
            state => (state, error),
        };
        Some(SavedApp {
            url: p.url,
            window: p.window,
            app_state,
            app_state_error: error,
        })
    }

    /// The requests whose page did not answer in time, reported without its state.
    pub fn expired(&mut self, now: Instant) -> Vec<(u64, SavedApp)> {
        let (late, waiting) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.deadline <= now);
        self.pending = waiting;
        late.into_iter()
            .map(|p: Pending| {
                (
                    p.request,
                    SavedApp {
                        url: p.url,
                        window: p.window,
                        app_state: None,
                        app_state_error: Some(format!(
                            "the page did not answer within {} s",
                            PAGE_ANSWER_DEADLINE.as_secs()
                        )),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_has_the_window_part_and_the_page_answer_or_says_why_not() {
        let now = Instant::now();
        let mut saves = PendingSaves::default();
        saves.started(1, "weft://localhost/a.html".into(), None, now);
        saves.started(2, "weft://localhost/b.html".into(), None, now);
        let one = saves
            .answered(1, Some(r#"{"tab":2}"#.into()), None)
            .unwrap();
        assert_eq!(one.url, "weft://localhost/a.html");
        assert_eq!(one.app_state.as_deref(), Some(r#"{"tab":2}"#));
        assert!(saves.answered(1, None, None).is_none(), "answered once");
        assert!(saves.answered(9, None, None).is_none(), "never asked");
        assert!(saves.expired(now + Duration::from_secs(1)).is_empty());
        let late = saves.expired(now + PAGE_ANSWER_DEADLINE);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].0, 2);
        assert!(late[0].1.app_state.is_none());
        assert!(
            late[0]
                .1
                .app_state_error
                .as_deref()
                .unwrap()
                .contains("did not answer")
        );
        assert!(
            saves.answered(2, None, None).is_none(),
            "a late answer is dropped"
        );
        saves.started(3, "u".into(), None, now);
        let big = format!("\"{}\"", "x".repeat(MAX_APP_STATE));
        let refused = saves.answered(3, Some(big), None).unwrap();
        assert!(refused.app_state.is_none());
        assert!(refused.app_state_error.unwrap().contains("at most 256 KiB"));
    }
}
