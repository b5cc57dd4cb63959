//! Time as the engine sees it. Engine logic never reads the system clock directly: it asks a
//! [`Clock`], which the CLI's `--now`, the tests and `simulate` can set.
//!
//! - [`SystemClock`]: the machine's clock; sleeping is a real tokio sleep.
//! - [`ManualClock`]: says what it is told; sleepers wake when [`ManualClock::set`] moves past
//!   their time (tests).
//! - [`VirtualClock`]: sleeping jumps the clock to the wake-up time at once (`simulate`: a month
//!   in well under a second).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of the current time that can also wait for a time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
        })
    }
}

/// A clock that says what it is told: `--now`, and tests.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            now: watch::Sender::new(now),
        }
    }

    /// Moves the clock to `now`, waking sleepers whose time has come.
    pub fn set(&self, now: DateTime<Utc>) {
        self.now.send_replace(now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|now| *now >= at).await;
        })
    }
}

/// A clock that jumps: sleeping moves it to the wake-up time at once. Time never goes back.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<DateTime<Utc>>,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        VirtualClock {
            now: Mutex::new(start),
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if at > *now {
            *now = at;
        }
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[tokio::test]
    async fn virtual_clock_jumps_and_never_goes_back() {
        let clock = VirtualClock::new(t("2026-12-01T00:00:00Z"));
        clock.sleep_until(t("2026-12-12T22:00:00Z")).await;
        assert_eq!(clock.now(), t("2026-12-12T22:00:00Z"));
        clock.sleep_until(t("2026-12-01T00:00:00Z")).await;
        assert_eq!(clock.now(), t("2026-12-12T22:00:00Z"));
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_set_past_their_time() {
        let clock = std::sync::Arc::new(ManualClock::new(t("2026-12-01T00:00:00Z")));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(t("2026-12-01T01:00:00Z")).await })
        };
        clock.set(t("2026-12-01T00:30:00Z"));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.set(t("2026-12-01T01:00:00Z"));
        sleeper.await.unwrap();
    }
}
