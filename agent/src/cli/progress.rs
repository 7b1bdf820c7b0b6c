//! The CLI's renderer of a flow's events: a one-line progress bar on a
//! terminal, JSON lines with `--json`, nothing otherwise.
//!
//! The bar is a few lines of our own rather than a progress-bar crate: it
//! redraws one line on stderr at most a few times a second, which is all an
//! install needs, and it keeps the device binary small.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::events::Events;

/// The terminal bar's state for one image.
pub struct Bar {
    class: String,
    total: u64,
    started: Instant,
    start_bytes: u64,
    last: Option<Instant>,
}

/// Where progress goes.
pub enum Progress {
    /// Nothing.
    Quiet,
    /// A bar on stderr (a terminal).
    Bar(Option<Bar>),
    /// JSON lines on stdout.
    Json {
        /// When the last progress line was printed (rate limit).
        last: Option<Instant>,
    },
}

/// `n` bytes in binary units, as the bar shows them.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Bar {
    fn draw(&mut self, written: u64, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .last
                .is_some_and(|l| now - l < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(now);
        const WIDTH: u64 = 30;
        let filled = (written.min(self.total) * WIDTH)
            .checked_div(self.total)
            .unwrap_or(WIDTH) as usize;
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (written.saturating_sub(self.start_bytes)) as f64 / secs
        } else {
            0.0
        };
        let eta = if rate > 0.0 {
            format!(
                "{}s",
                (self.total.saturating_sub(written) as f64 / rate).round() as u64
            )
        } else {
            "-".into()
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{:>8} [{}{}] {}/{} {}/s eta {eta}\x1b[K",
            self.class,
            "=".repeat(filled),
            " ".repeat(WIDTH as usize - filled),
            human(written),
            human(self.total),
            human(rate as u64),
        );
        let _ = err.flush();
    }
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
        self.line(event, &fields)
    }

    fn line(&mut self, event: &str, fields: &serde_json::Value) {
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
}

impl Events for Progress {
    fn step(&mut self, name: &str, fields: &serde_json::Value) {
        self.line(name, fields)
    }

    fn warn(&mut self, message: &str) {
        match self {
            Progress::Json { .. } => self.line("warning", &json!({ "message": message })),
            Progress::Bar(bar) => {
                // Below the bar, which is drawn again at the next update.
                if bar.is_some() {
                    eprintln!();
                }
                eprintln!("warning: {message}");
            }
            Progress::Quiet => eprintln!("warning: {message}"),
        }
    }

    fn image_begin(&mut self, class: &str, done: u64, total: u64) {
        match self {
            Progress::Bar(bar) => {
                let mut b = Bar {
                    class: class.to_string(),
                    total,
                    started: Instant::now(),
                    start_bytes: done,
                    last: None,
                };
                b.draw(done, true);
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

    fn image_progress(&mut self, class: &str, written: u64, total: u64) {
        match self {
            Progress::Bar(Some(b)) => b.draw(written, false),
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

    fn image_done(&mut self, class: &str, total: u64) {
        match self {
            Progress::Bar(bar) => {
                if let Some(mut b) = bar.take() {
                    b.draw(total, true);
                    eprintln!();
                }
            }
            Progress::Json { .. } => {
                self.event("image-done", json!({"class": class, "size": total}));
            }
            Progress::Quiet => {}
        }
    }
}

/// On Ctrl-C (SIGINT) during an install: end the progress line,
/// say that nothing is lost and how to go on, and exit 130. Stopping at any
/// instant is safe (every durable step is, as after a power cut); only the
/// words were missing.
pub fn on_interrupt_say_how_to_resume() {
    extern "C" fn said(_: libc::c_int) {
        const MSG: &[u8] = b"\ninterrupted: nothing is lost; `updater apply` again resumes from the last checkpoint\n";
        // Only async-signal-safe calls here: write(2) and _exit(2).
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(130);
        }
    }
    let handler = said as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installing a handler that only calls async-signal-safe
    // functions.
    unsafe {
        libc::signal(libc::SIGINT, handler);
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
