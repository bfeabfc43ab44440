//! The retry settings the client connectors share (`backoff_ms`, `max_backoff_ms`,
//! `max_retries`, `timeout_ms`): their defaults, for `#[serde(default = "...")]`, and their
//! check; and [`Retrying`], the sink of a client connector that writes each batch through a
//! [`Link`], reconnecting and backing off between attempts.

use std::{fmt::Display, time::Duration};

use temblor_shim::{
    ErrorKind, Frames, PluginError, RVec, Value,
    sink::{Batch, BatchSink},
    tracing,
};

/// `backoff_ms`: the wait before the first retry.
#[must_use]
pub fn default_backoff_ms() -> u64 {
    100
}

/// `max_backoff_ms`: the longest wait between retries (the wait doubles up to it).
#[must_use]
pub fn default_max_backoff_ms() -> u64 {
    5000
}

/// `max_retries`: attempts after the first before a batch fails.
#[must_use]
pub fn default_max_retries() -> u32 {
    10
}

/// `timeout_ms`: for connecting and for each write.
#[must_use]
pub fn default_timeout_ms() -> u64 {
    5000
}

/// Checks what serde cannot: `backoff_ms` and `timeout_ms` at least 1, `max_backoff_ms` at
/// least `backoff_ms`.
///
/// # Errors
/// A `Config` error naming the field.
pub fn check(backoff_ms: u64, max_backoff_ms: u64, timeout_ms: u64) -> Result<(), PluginError> {
    if backoff_ms == 0 {
        return Err(PluginError::config("`backoff_ms` must be at least 1"));
    }
    if max_backoff_ms < backoff_ms {
        return Err(PluginError::config(format_args!(
            "`max_backoff_ms` ({max_backoff_ms}) must be at least `backoff_ms` ({backoff_ms})"
        )));
    }
    if timeout_ms == 0 {
        return Err(PluginError::config("`timeout_ms` must be at least 1"));
    }
    Ok(())
}

/// Declares a client connector's config struct: the fields written in it, then the retry
/// settings every client shares, `backoff_ms`, `max_backoff_ms` and `timeout_ms`, with the
/// defaults above; ending in `with max_retries`, also `max_retries` and a `policy()` method that
/// checks them into a [`Policy`]. The body's last field ends with a comma.
/// ```ignore
/// temblor_net::client_config! {
///     /// The connector's `config`.
///     #[derive(Deserialize, Debug, Clone)]
///     #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
///     pub struct Config {
///         /// The server's `host:port`.
///         pub url: String,
///     }
///     with max_retries
/// }
/// ```
#[macro_export]
macro_rules! client_config {
    (@struct $(#[$attr:meta])* $vis:vis struct $name:ident { $($body:tt)* } { $($more:tt)* }) => {
        $(#[$attr])*
        $vis struct $name {
            $($body)*
            /// The wait before the first retry, in milliseconds.
            #[serde(default = "temblor_net::retry::default_backoff_ms")]
            pub backoff_ms: u64,
            /// The longest wait between retries, in milliseconds.
            #[serde(default = "temblor_net::retry::default_max_backoff_ms")]
            pub max_backoff_ms: u64,
            /// The timeout for connecting and for each write, in milliseconds.
            #[serde(default = "temblor_net::retry::default_timeout_ms")]
            pub timeout_ms: u64,
            $($more)*
        }
    };
    ($(#[$attr:meta])* $vis:vis struct $name:ident { $($body:tt)* } with max_retries) => {
        $crate::client_config!(@struct $(#[$attr])* $vis struct $name { $($body)* } {
            /// Attempts after the first before a batch fails.
            #[serde(default = "temblor_net::retry::default_max_retries")]
            pub max_retries: u32,
        });

        impl $name {
            /// The retry settings, checked.
            ///
            /// # Errors
            /// A `Config` error naming the field.
            pub fn policy(&self) -> Result<$crate::retry::Policy, ::temblor_shim::PluginError> {
                $crate::retry::Policy::new(
                    self.backoff_ms,
                    self.max_backoff_ms,
                    self.max_retries,
                    self.timeout_ms,
                )
            }
        }
    };
    ($(#[$attr:meta])* $vis:vis struct $name:ident { $($body:tt)* }) => {
        $crate::client_config!(@struct $(#[$attr])* $vis struct $name { $($body)* } {});
    };
}

/// How a [`Retrying`] sink tries again: `backoff` before the first retry, doubling up to
/// `max_backoff`, and `max_retries` retries before a batch fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The wait before the first retry.
    pub backoff: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
    /// Attempts after the first before a batch fails.
    pub max_retries: u32,
}

impl Policy {
    /// The policy of the config's `backoff_ms`, `max_backoff_ms` and `max_retries`, checked
    /// with its `timeout_ms` (see [`check`]).
    ///
    /// # Errors
    /// A `Config` error naming the field.
    pub fn new(
        backoff_ms: u64,
        max_backoff_ms: u64,
        max_retries: u32,
        timeout_ms: u64,
    ) -> Result<Self, PluginError> {
        check(backoff_ms, max_backoff_ms, timeout_ms)?;
        Ok(Self {
            backoff: Duration::from_millis(backoff_ms),
            max_backoff: Duration::from_millis(max_backoff_ms),
            max_retries,
        })
    }
}

/// The connection of a client connector's sink, which [`Retrying`] writes batches through.
pub trait Link: Send + 'static {
    /// Why an attempt failed.
    type Error: Display;

    /// What it writes to, for the log and errors (the `url`, the socket's path).
    fn target(&self) -> String;

    /// Opens a connection (replacing the one there is).
    ///
    /// # Errors
    /// Connecting failed.
    fn connect(&mut self) -> Result<(), Self::Error>;

    /// Writes the frames from `*next` on (with their `meta`), connecting first when there is
    /// no connection or the server has closed it; `*next` follows what was written.
    ///
    /// # Errors
    /// Connecting or writing failed.
    fn attempt(
        &mut self,
        frames: &Frames,
        meta: &[Value],
        next: &mut usize,
    ) -> Result<(), Self::Error>;

    /// Drops the connection after a failed attempt: the next one connects again.
    fn disconnect(&mut self);

    /// The sink's `flush`. The default has nothing to do: every attempt writes and flushes
    /// before it returns.
    ///
    /// # Errors
    /// Flushing failed.
    fn flush(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// A sink writing through a [`Link`]: a failed attempt drops the connection, waits (the
/// engine's thread waits here: backpressure) and tries again from the first frame not written,
/// up to the policy's retries; then the batch fails, with the frames written listed in
/// `delivered`.
#[derive(Debug)]
pub struct Retrying<L> {
    /// The connection.
    pub link: L,
    policy: Policy,
}

impl<L: Link> Retrying<L> {
    /// A sink on `link`, which tries to connect once now (a server not up yet is no error: the
    /// first batch tries again).
    pub fn new(mut link: L, policy: Policy) -> Self {
        if let Err(e) = link.connect() {
            tracing::warn!(
                to = %link.target(),
                error = %e,
                "server not reachable yet; the first batch tries again"
            );
        }
        Self { link, policy }
    }
}

impl<L: Link> BatchSink for Retrying<L> {
    fn write(&mut self, batch: Batch<'_>, delivered: &mut RVec<u32>) -> Result<(), PluginError> {
        let Batch { frames, meta } = batch;
        let mut next = 0;
        let mut backoff =
            crate::backoff::Backoff::new(self.policy.backoff, self.policy.max_backoff);
        let mut retry = 0;
        loop {
            let Err(e) = self.link.attempt(frames, meta, &mut next) else {
                return Ok(());
            };
            self.link.disconnect();
            if retry == self.policy.max_retries {
                let to = self.link.target();
                tracing::error!(
                    to = %to,
                    attempts = retry + 1,
                    written = next,
                    frames = frames.len(),
                    error = %e,
                    "giving up on a batch"
                );
                delivered.extend((0..next).filter_map(|i| u32::try_from(i).ok()));
                return Err(PluginError::new(
                    ErrorKind::Io,
                    format_args!(
                        "cannot write to {to} after {} attempts ({next} of {} frames written): {e}",
                        retry + 1,
                        frames.len()
                    ),
                ));
            }
            retry += 1;
            let wait = backoff.next_wait();
            tracing::warn!(
                to = %self.link.target(),
                retry,
                backoff_ms = wait.as_millis() as u64,
                error = %e,
                "writing failed; reconnecting"
            );
            std::thread::sleep(wait);
        }
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        self.link.flush()
    }
}

temblor_shim::batch_sink!(impl<L: Link> for Retrying<L>);

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_shim::Sink;

    /// A link that writes one frame per attempt, then fails, `fails` times at the most.
    #[derive(Default)]
    struct Flaky {
        fails: usize,
        attempts: usize,
        connects: usize,
        disconnects: usize,
    }

    impl Link for Flaky {
        type Error = String;

        fn target(&self) -> String {
            "flaky:1".to_owned()
        }

        fn connect(&mut self) -> Result<(), String> {
            self.connects += 1;
            Err("not up yet".to_owned())
        }

        fn attempt(
            &mut self,
            frames: &Frames,
            _: &[Value],
            next: &mut usize,
        ) -> Result<(), String> {
            self.attempts += 1;
            if self.attempts > self.fails {
                *next = frames.len();
                return Ok(());
            }
            *next = (*next + 1).min(frames.len());
            Err(format!("broke after frame {next}"))
        }

        fn disconnect(&mut self) {
            self.disconnects += 1;
        }
    }

    fn policy(max_retries: u32) -> Policy {
        Policy::new(1, 2, max_retries, 1).unwrap()
    }

    #[test]
    fn a_batch_goes_on_from_the_first_frame_not_written_until_the_retries_run_out() {
        let frames: Frames = [&b"a"[..], b"b", b"c", b"d"].into_iter().collect();
        let mut sink = Retrying::new(
            Flaky {
                fails: 2,
                ..Flaky::default()
            },
            policy(2),
        );
        assert_eq!(sink.link.connects, 1, "the constructor tried once");
        let mut delivered = RVec::new();
        assert!(sink.push_batch(&frames, &[], &mut delivered).is_ok());
        assert!(delivered.is_empty());
        assert_eq!((sink.link.attempts, sink.link.disconnects), (3, 2));

        let mut sink = Retrying::new(
            Flaky {
                fails: 9,
                ..Flaky::default()
            },
            policy(2),
        );
        let e = sink.push_batch(&frames, &[], &mut delivered).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io);
        assert_eq!(
            e.message,
            "cannot write to flaky:1 after 3 attempts (3 of 4 frames written): broke after frame 3"
        );
        assert_eq!(delivered.as_slice(), [0, 1, 2]);
        assert!(sink.push(&Frames::new()).is_ok(), "nothing to write");
        assert_eq!(sink.link.attempts, 3);
        assert!(Sink::flush(&mut sink).is_ok());
    }

    #[test]
    fn a_policy_is_checked() {
        assert_eq!(
            policy(3),
            Policy {
                backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
                max_retries: 3,
            }
        );
        assert!(Policy::new(0, 1, 1, 1).is_err());
    }

    #[test]
    fn each_bad_value_is_named() {
        assert!(check(100, 5000, 5000).is_ok());
        assert!(check(1, 1, 1).is_ok());
        for ((b, m, t), says) in [
            ((0, 5000, 5000), "`backoff_ms` must be at least 1"),
            (
                (100, 50, 5000),
                "`max_backoff_ms` (50) must be at least `backoff_ms` (100)",
            ),
            ((100, 5000, 0), "`timeout_ms` must be at least 1"),
        ] {
            let e = check(b, m, t).unwrap_err();
            assert_eq!(e.kind, temblor_shim::ErrorKind::Config);
            assert_eq!(e.message, says);
        }
    }
}
