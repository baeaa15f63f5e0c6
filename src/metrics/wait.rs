//! How long a future waited: the time between its polls, when it was
//! suspended on something outside (for the milter's evaluator: DNS
//! answers), as opposed to the time spent running in its polls.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::time::Duration;

use tokio::time::Instant;

use super::{Command, Metrics};

/// Runs `future`, a step of the evaluator that waits only for DNS, and
/// records how long it waited as `command`'s DNS wait (with metrics on).
pub(crate) async fn dns_step<F: Future>(
    metrics: Option<&Metrics>,
    command: Command,
    future: F,
) -> F::Output {
    match metrics {
        Some(metrics) => {
            let (output, waited) = waited(future).await;
            metrics.dns_wait(command, waited);
            output
        }
        None => future.await,
    }
}

/// `future`'s output, and how long it was suspended between its first
/// and last poll.
pub(crate) async fn waited<F: Future>(future: F) -> (F::Output, Duration) {
    let mut future = pin!(future);
    let mut pending_since: Option<Instant> = None;
    let mut waited = Duration::ZERO;
    let output = poll_fn(|cx| {
        if let Some(since) = pending_since.take() {
            waited += since.elapsed();
        }
        let poll = future.as_mut().poll(cx);
        if poll.is_pending() {
            pending_since = Some(Instant::now());
        }
        poll
    })
    .await;
    (output, waited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn time_spent_suspended_is_counted_and_a_ready_future_waited_nothing() {
        let ((), none) = waited(async {}).await;
        assert_eq!(none, Duration::ZERO);
        let ((), slept) = waited(async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        })
        .await;
        assert_eq!(slept, Duration::from_millis(50));
    }
}
