//! Progress of long measurements (`bench`, `compare-compile-times`): a bar with the step, the
//! elapsed time and an estimate of what is left on a terminal; plain lines otherwise (CI logs).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Steps of a long command.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// `steps` steps, drawn on stderr when it is a terminal.
    pub fn new(steps: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "[{pos}/{len}] {wide_bar} {elapsed_precise} (about {eta} left) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar }
    }

    /// Step `what` begins: shown on the bar, or printed as a line when there is no terminal.
    pub fn step(&self, what: &str) {
        if self.bar.is_hidden() {
            eprintln!(
                "[{}/{}] {what}",
                self.bar.position() + 1,
                self.bar.length().unwrap_or(0)
            );
        }
        self.bar.set_message(what.to_owned());
    }

    /// The current step is done.
    pub fn done(&self) {
        self.bar.inc(1);
    }

    /// A line above the bar (or on its own without a terminal).
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Shows the message of the step in progress (a cargo line, say).
    pub fn message(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
