//! Progress reporting: a progress bar on a terminal, JSON lines with
//! `--json`, nothing otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::json;

/// Where progress goes.
pub enum Progress {
    /// Nothing.
    Quiet,
    /// An indicatif bar on stderr.
    Bar(Option<indicatif::ProgressBar>),
    /// JSON lines on stdout.
    Json {
        /// When the last progress line was printed (rate limit).
        last: Option<Instant>,
    },
}

impl Progress {
    /// Choose from the flags and whether stderr is a terminal.
    pub fn new(json: bool) -> Progress {
        if json {
            Progress::Json { last: None }
        } else if std::io::stderr().is_terminal() {
            Progress::Bar(None)
        } else {
            Progress::Quiet
        }
    }

    /// An event with fields, as one JSON line (JSON mode only).
    pub fn event(&mut self, event: &str, fields: serde_json::Value) {
        if let Progress::Json { .. } = self {
            let mut v = json!({ "event": event });
            if let (Some(o), Some(f)) = (v.as_object_mut(), fields.as_object()) {
                o.extend(f.clone());
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{v}");
            let _ = out.flush();
        }
    }

    /// An image starts: `done` of `total` bytes already in place.
    pub fn begin(&mut self, class: &str, done: u64, total: u64) {
        match self {
            Progress::Bar(bar) => {
                let b = indicatif::ProgressBar::new(total);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_message(class.to_string());
                b.set_position(done);
                *bar = Some(b);
            }
            Progress::Json { .. } => {
                self.event(
                    "image",
                    json!({"class": class, "written": done, "size": total}),
                );
            }
            Progress::Quiet => {}
        }
    }

    /// Bytes written so far in the current image.
    pub fn update(&mut self, class: &str, written: u64, total: u64) {
        crate::util::heartbeat::beat();
        match self {
            Progress::Bar(Some(b)) => b.set_position(written),
            Progress::Json { last }
                if last.is_none_or(|l| l.elapsed() >= Duration::from_millis(500)) =>
            {
                *last = Some(Instant::now());
                self.event(
                    "progress",
                    json!({"class": class, "written": written, "size": total}),
                );
            }
            _ => {}
        }
    }

    /// The current image is done.
    pub fn finish(&mut self, class: &str, total: u64) {
        match self {
            Progress::Bar(bar) => {
                if let Some(b) = bar.take() {
                    b.finish();
                }
            }
            Progress::Json { .. } => {
                self.event("image-done", json!({"class": class, "size": total}));
            }
            Progress::Quiet => {}
        }
    }
}
