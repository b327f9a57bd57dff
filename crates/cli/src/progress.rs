//! A progress bar on stderr that appears only on a terminal and only for work longer than a
//! second, so piped output and quick runs stay clean.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-counting bar, hidden until the work has run for a second.
pub struct Bar {
    bar: ProgressBar,
    start: Instant,
    shown: Mutex<bool>,
}

impl Bar {
    /// A hidden bar labelled `label` that counts bytes.
    pub fn new(label: &str) -> Bar {
        Bar::with_template(
            label,
            "{msg:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
    }

    /// A hidden bar labelled `label` that counts items (images, sentences, tensors).
    pub fn items(label: &str) -> Bar {
        Bar::with_template(label, "{msg:>12} [{bar:40}] {pos}/{len} eta {eta}")
    }

    fn with_template(label: &str, template: &str) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        Bar {
            bar,
            start: Instant::now(),
            shown: Mutex::new(false),
        }
    }

    /// Records progress; shows the bar once a second has passed (on a terminal only).
    pub fn update(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
        if self.start.elapsed() > Duration::from_secs(1) {
            let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
            if !*shown {
                *shown = true;
                // indicatif draws nothing when stderr is not a terminal.
                self.bar.set_draw_target(ProgressDrawTarget::stderr());
            }
        }
    }

    /// Removes the bar from the screen.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
