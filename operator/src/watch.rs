//! How the operator's watches of the API server retry.

use std::time::Duration;

/// The backoff of every watch the operator runs (the pipelines', and the
/// guardrails' SluicePolicies and namespaces): 250 ms doubling to 1 s,
/// each wait jittered up to twice as long, so at most 2 s. Not kube's
/// `default_backoff`, which grows to 30 s (client-go's reflector values):
/// after an API server restart the watches were still waiting out that
/// backoff long after it was back, and a pipeline created then took 32 s
/// to converge. A watch failing for as long as the API server is down
/// costs one cheap request per one to two seconds, from one replica.
pub fn backoff() -> kube::runtime::watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(1))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn watches_back_off_for_at_most_two_seconds() {
        let waits: Vec<Duration> = super::backoff().take(50).collect();
        assert_eq!(waits.len(), 50, "never gives up");
        assert!(waits[0] >= Duration::from_millis(250), "{waits:?}");
        assert!(waits[0] < Duration::from_millis(500), "{waits:?}");
        assert!(
            waits.iter().all(|w| *w < Duration::from_secs(2)),
            "{waits:?}"
        );
        assert!(
            waits[10..].iter().all(|w| *w >= Duration::from_secs(1)),
            "{waits:?}"
        );
    }
}
