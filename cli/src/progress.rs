//! Progress of long work on stderr: a bar on a terminal (indicatif), and
//! otherwise a plain line at each tenth, so a log shows how far a run got
//! without a line per step. Nothing goes to stdout, where `--json`
//! documents and generated text are written.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One task's progress.
pub struct Bar {
    label: String,
    shown: Shown,
}

enum Shown {
    /// A bar redrawn in place on the terminal.
    Drawn(ProgressBar),
    /// Plain lines; the last tenth printed.
    Plain(Mutex<u64>),
}

impl Bar {
    /// Progress of `label` over `total` units.
    pub fn new(label: &str, total: u64) -> Self {
        let shown = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
            {
                bar.set_style(style.progress_chars("#> "));
            }
            bar.set_prefix(label.to_string());
            Shown::Drawn(bar)
        } else {
            Shown::Plain(Mutex::new(0))
        };
        Bar {
            label: label.to_string(),
            shown,
        }
    }

    /// `done` of `total` units are finished; `message` names the current one.
    pub fn set(&self, done: u64, total: u64, message: &str) {
        match &self.shown {
            Shown::Drawn(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(message.to_string());
            }
            Shown::Plain(last) => {
                let tenth = done.saturating_mul(10) / total.max(1);
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if tenth > *last {
                    *last = tenth;
                    eprintln!("{}: {}% ({done}/{total})", self.label, tenth * 10);
                }
            }
        }
    }

    /// Removes the bar (plain lines stay).
    pub fn finish(&self) {
        if let Shown::Drawn(bar) = &self.shown {
            bar.finish_and_clear();
        }
    }
}

/// Progress for the model crate's long work (loading weights, writing and
/// converting checkpoints): one bar per stage it reports.
pub fn for_model() -> glmhal_model::Progress {
    let current: Mutex<Option<(String, Bar)>> = Mutex::new(None);
    glmhal_model::Progress::new(move |stage, done, total| {
        let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_none_or(|(s, _)| s != stage) {
            if let Some((_, old)) = current.take() {
                old.finish();
            }
            *current = Some((stage.to_string(), Bar::new(stage, total)));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set(done, total, "");
            if done >= total {
                bar.finish();
            }
        }
        if done >= total {
            *current = None;
        }
    })
}
