//! Retries with exponential backoff and jitter, inside a total budget.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::AttemptError;
use crate::config::HttpSettings;
use crate::error::FetchError;

/// Exponential backoff with "full jitter": each delay is uniform in
/// [base/2, base], base doubling from `initial` up to `max`. The jitter keeps
/// a fleet that lost its server at the same moment from returning in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    seed: u64,
}

impl Backoff {
    /// Start at `initial`, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        Backoff {
            next: initial,
            max,
            seed: u64::from_le_bytes(seed) | 1,
        }
    }

    /// The next delay.
    pub fn delay(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let frac = 0.5 + (self.seed % 1000) as f64 / 2000.0;
        base.mul_f64(frac)
    }
}

/// The retry allowance of one command: a number of retries per request
/// (reset whenever an attempt makes progress) and a total time budget.
#[derive(Debug)]
pub struct RetryBudget {
    retries: u32,
    started: Instant,
    deadline: Instant,
    initial: Duration,
    max: Duration,
    /// Retries done so far, for reports.
    pub retried: u32,
}

impl RetryBudget {
    /// The budget from the HTTP settings, starting now.
    pub fn new(s: &HttpSettings) -> RetryBudget {
        RetryBudget {
            retries: s.retries,
            started: Instant::now(),
            deadline: Instant::now() + s.retry_budget,
            initial: s.backoff_initial,
            max: s.backoff_max,
            retried: 0,
        }
    }

    /// A fresh backoff sequence with the configured delays.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.initial, self.max)
    }

    /// Run `attempt` until it succeeds, fails for good, or the budget is
    /// spent. `attempt` gets the attempt number (0 first).
    pub fn run<T>(
        &mut self,
        what: &str,
        mut attempt: impl FnMut(u32) -> Result<T, AttemptError>,
    ) -> Result<T> {
        let mut backoff = self.backoff();
        let mut n = 0;
        loop {
            match attempt(n) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.wait(what, &e, n, &mut backoff)?;
                    n += 1;
                }
            }
        }
    }

    /// After attempt `n` failed with `e`: give up (the error to return), or
    /// log, sleep the backoff (or the server's Retry-After) and count the retry.
    pub fn wait(
        &mut self,
        what: &str,
        e: &AttemptError,
        n: u32,
        backoff: &mut Backoff,
    ) -> Result<()> {
        let delay = e
            .retry_after
            .unwrap_or_else(|| backoff.delay())
            .min(self.max);
        self.check(what, e, n, delay)?;
        tracing::warn!(
            "{what}: {} (retrying in {:.1}s)",
            e.message,
            delay.as_secs_f64()
        );
        // Sleep in steps that count as progress for the daemon's watchdog:
        // a retry is the agent working, not hanging.
        let until = std::time::Instant::now() + delay;
        loop {
            crate::util::heartbeat::beat();
            let now = std::time::Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_secs(1)));
        }
        self.retried += 1;
        Ok(())
    }

    /// Decide whether attempt `n`, which failed with `e`, may be retried
    /// after `delay`; the error to return if not.
    pub fn check(&self, what: &str, e: &AttemptError, n: u32, delay: Duration) -> Result<()> {
        if !e.retryable {
            return Err(FetchError(format!("{what}: {}", e.message)).into());
        }
        let tried = || {
            format!(
                "{} attempt{} over {}s",
                n + 1,
                if n == 0 { "" } else { "s" },
                self.started.elapsed().as_secs()
            )
        };
        const CHECK: &str = "check that the server is up and reachable from the device and that the URL is right (http.retries and http.retry_budget_secs set how long the agent keeps trying)";
        if n >= self.retries {
            return Err(FetchError(format!(
                "{what}: {} (gave up after {}); {CHECK}",
                e.message,
                tried()
            ))
            .into());
        }
        if Instant::now() + delay > self.deadline {
            return Err(FetchError(format!(
                "{what}: {} (the retry time budget is spent: {}); {CHECK}",
                e.message,
                tried()
            ))
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<Duration> = (0..8).map(|_| b.delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays[3] >= Duration::from_millis(400) && delays[3] <= Duration::from_millis(800));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(1000)));
        assert!(delays[7] >= Duration::from_millis(500));
    }
}
