//! Child processes (the real clients and servers tests run), signals and waiting.

use std::{
    io::{BufRead as _, BufReader, Lines, Write as _},
    process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

pub use nix::sys::signal::Signal;

/// Sends `signal` to process `pid` (what `kill -TERM PID` does, without a `kill` process).
///
/// # Panics
/// When the process does not exist (any more).
pub fn signal(pid: u32, signal: Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid"));
    nix::sys::signal::kill(pid, signal).unwrap_or_else(|e| panic!("kill -{signal} {pid}: {e}"));
}

/// Polls `done` every 10 ms until it is true; false when `timeout` passed first.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` to exit, at most `timeout`.
///
/// # Panics
/// When its status cannot be read.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    status
}

/// A child process, killed and reaped when dropped (a failed test leaves nothing behind).
#[derive(Debug)]
pub struct Spawned(pub Child);

impl Spawned {
    /// Starts `command`.
    ///
    /// # Panics
    /// When it cannot start, naming it.
    pub fn spawn(command: &mut Command) -> Self {
        Self(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("start {command:?} (is it installed?): {e}")),
        )
    }

    /// Starts `command` with its stdout piped; the first line it prints, parsed (a server
    /// printing its port once it listens), and the lines that follow.
    ///
    /// # Panics
    /// When it cannot start or its first line is not a `T`.
    pub fn reporting<T: std::str::FromStr>(
        command: &mut Command,
    ) -> (Self, T, Lines<BufReader<ChildStdout>>) {
        let mut me = Self::spawn(command.stdout(Stdio::piped()));
        let mut lines = BufReader::new(me.0.stdout.take().expect("stdout")).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("{command:?} printed nothing"));
        let Ok(value) = first.trim().parse() else {
            panic!("{command:?} printed {first:?} first");
        };
        (me, value, lines)
    }

    /// Its process id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Waits for it to exit on its own, at most `timeout`; true when it exited with success.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        wait_exit(&mut self.0, timeout).is_some_and(|s| s.success())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process written to through its stdin (a `socat -` client, a shell reading commands),
/// killed and reaped when dropped.
#[derive(Debug)]
pub struct Fed {
    child: Spawned,
    stdin: Option<ChildStdin>,
}

impl Fed {
    /// Starts `command` with its stdin piped and its stdout dropped.
    ///
    /// # Panics
    /// When it cannot start.
    pub fn spawn(command: &mut Command) -> Self {
        let mut child = Spawned::spawn(command.stdin(Stdio::piped()).stdout(Stdio::null()));
        let stdin = child.0.stdin.take();
        Self { child, stdin }
    }

    /// Writes `bytes` to its stdin, flushed.
    ///
    /// # Panics
    /// When stdin is closed or the write fails.
    pub fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes its stdin and waits (10 s at most) for it to exit with success.
    ///
    /// # Panics
    /// When it does not.
    pub fn close(&mut self) {
        drop(self.stdin.take());
        assert!(
            self.child.wait(Duration::from_secs(10)),
            "the process did not exit, or failed, after its stdin closed"
        );
    }
}

/// netcat-openbsd (`nc.openbsd` on Debian, where `nc` may be another netcat).
#[must_use]
pub fn netcat() -> &'static str {
    let openbsd = Command::new("nc.openbsd")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if openbsd.is_ok() { "nc.openbsd" } else { "nc" }
}
