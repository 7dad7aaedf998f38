//! The health poller: a loop beside the controllers, over the pipelines
//! their watch caches hold. Every second it counts pipelines by condition
//! (`sluice_pipelines`, `sluice_pipeline_ready`); every
//! `SLUICE_HEALTH_INTERVAL_SECONDS` (jittered ±10 %) it polls each
//! converged pipeline that is neither suspended nor being deleted, writes
//! `status.health` and the `Healthy` condition under its own field manager
//! (only when they change), publishes `Unhealthy` / `Recovered` on
//! transitions and sets the pipeline's gauges. A deleted pipeline's gauges
//! go with it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::Store,
};
use serde_json::json;
use tracing::{debug, warn};

use super::{Window, reasons};
use crate::{
    artifacts::Catalog,
    aws::Regions,
    config::OperatorConfig,
    crd::{DataPipeline, HealthStatus},
    events::{self, EventType, Recorder},
    metrics::{CENSUS_CONDITIONS, Metrics},
    naming::PipelineId,
    plan::{self, PlanContext},
    reconcile::{
        self,
        status::{self, HEALTHY, READY},
    },
};

/// Field manager of the health poller's status writes.
pub const FIELD_MANAGER: &str = "sluice-health";

/// How often the loop wakes to count pipelines and start due polls.
const TICK: Duration = Duration::from_secs(1);

/// Pipelines polled at once.
const CONCURRENCY: usize = 4;

/// What the poller needs from the operator.
#[derive(Clone)]
pub struct Poller {
    /// Kubernetes client.
    pub client: Client,
    /// Operator configuration.
    pub config: OperatorConfig,
    /// Built-in handler artifacts (planning needs them).
    pub catalog: Catalog,
    /// AWS clients, shared with the reconciler.
    pub regions: Arc<Regions>,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// The shards this replica holds: it polls their pipelines only.
    pub shards: Arc<crate::shards::Shards>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("interval", &self.config.health_interval)
            .field("window", &self.config.health_window)
            .finish_non_exhaustive()
    }
}

/// One pipeline the poller has seen.
#[derive(Debug)]
struct Seen {
    namespace: String,
    name: String,
    next_poll: Option<Instant>,
}

/// What a poll found.
enum Outcome {
    /// Not polled: the spec does not validate (the pipeline is Stalled).
    Skipped,
    /// Read and judged.
    Assessed {
        status: HealthStatus,
        healthy: bool,
        reason: String,
        message: String,
        gauges: crate::metrics::HealthGauges,
    },
    /// The figures could not be read.
    Unavailable(String),
}

fn is_suspended(dp: &DataPipeline) -> bool {
    dp.spec.suspend
}

fn is_deleting(dp: &DataPipeline) -> bool {
    dp.metadata.deletion_timestamp.is_some()
}

fn has_inventory(dp: &DataPipeline) -> bool {
    dp.status.as_ref().is_some_and(|s| !s.inventory.is_empty())
}

/// Whether Ready is True for the current generation.
pub fn ready_now(dp: &DataPipeline) -> bool {
    condition(dp, READY).is_some_and(|c| {
        c.status == "True"
            && (c.observed_generation.is_none() || c.observed_generation == dp.metadata.generation)
    })
}

fn condition<'a>(dp: &'a DataPipeline, type_: &str) -> Option<&'a Condition> {
    dp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// `(condition, status)` → number of pipelines.
pub fn census(pipelines: &[Arc<DataPipeline>]) -> BTreeMap<(String, String), i64> {
    let mut counts = BTreeMap::new();
    for dp in pipelines {
        for type_ in CENSUS_CONDITIONS {
            if let Some(c) = condition(dp, type_) {
                *counts
                    .entry((type_.to_owned(), c.status.clone()))
                    .or_insert(0) += 1;
            }
        }
    }
    counts
}

impl Poller {
    /// Runs until the task is dropped.
    pub async fn run(self, stores: Vec<Store<DataPipeline>>) {
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let urls: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        loop {
            tokio::time::sleep(TICK).await;
            let pipelines: Vec<Arc<DataPipeline>> = stores.iter().flat_map(Store::state).collect();
            self.count(&pipelines);

            // Forget what is gone, with its series.
            let live: std::collections::HashSet<String> =
                pipelines.iter().filter_map(|dp| dp.uid()).collect();
            seen.retain(|uid, s| {
                let keep = live.contains(uid);
                if !keep {
                    self.metrics.forget_pipeline(&s.namespace, &s.name);
                }
                keep
            });

            let Some(interval) = self.config.health_interval else {
                continue;
            };
            let now = Instant::now();
            let mut due = Vec::new();
            for dp in &pipelines {
                let Some(uid) = dp.uid() else { continue };
                let entry = seen.entry(uid).or_insert_with(|| Seen {
                    namespace: dp.namespace().unwrap_or_default(),
                    name: dp.name_any(),
                    next_poll: None,
                });
                if is_deleting(dp) {
                    // Polling stops at deletion; the series go now.
                    entry.next_poll = None;
                    self.metrics
                        .pipeline_health(&entry.namespace, &entry.name, None, None);
                    continue;
                }
                if is_suspended(dp) {
                    entry.next_poll = None;
                    self.metrics
                        .pipeline_health(&entry.namespace, &entry.name, None, None);
                    let already =
                        condition(dp, HEALTHY).is_none_or(|c| c.reason == reasons::SUSPENDED);
                    if !already {
                        self.write(
                            dp,
                            None,
                            "Unknown",
                            reasons::SUSPENDED,
                            "health is not polled while spec.suspend is set",
                        )
                        .await;
                    }
                    continue;
                }
                if !has_inventory(dp) {
                    continue;
                }
                // Another replica's shard: its holder polls it.
                if !self.shards.holds(&entry.namespace) {
                    continue;
                }
                let next = *entry.next_poll.get_or_insert_with(|| {
                    // First poll of a pipeline: spread over one interval so
                    // that a restart does not poll every pipeline at once.
                    now + interval.mul_f64(rand::random::<f64>())
                });
                if next <= now {
                    let jitter = 0.9 + 0.2 * rand::random::<f64>();
                    entry.next_poll = Some(now + interval.mul_f64(jitter));
                    due.push(dp.clone());
                }
            }
            let this = &self;
            futures::stream::iter(due)
                .for_each_concurrent(CONCURRENCY, |dp| {
                    let urls = urls.clone();
                    async move { this.poll(&dp, &urls).await }
                })
                .await;
        }
    }

    fn count(&self, pipelines: &[Arc<DataPipeline>]) {
        self.metrics.census(&census(pipelines));
        for dp in pipelines {
            let (ns, name) = (dp.namespace().unwrap_or_default(), dp.name_any());
            if is_suspended(dp) {
                // Not Ready on purpose: no series, so no alert.
                self.metrics.forget_pipeline_ready(&ns, &name);
            } else {
                self.metrics.pipeline_ready(&ns, &name, ready_now(dp));
            }
        }
    }

    /// Polls one pipeline and records what it found.
    async fn poll(&self, dp: &DataPipeline, urls: &Mutex<HashMap<String, String>>) {
        let started = Instant::now();
        let (ns, name) = (dp.namespace().unwrap_or_default(), dp.name_any());
        let outcome = self.assess(dp, urls).await;
        let ok = !matches!(outcome, Outcome::Unavailable(_));
        match outcome {
            Outcome::Skipped => return,
            Outcome::Assessed {
                status,
                healthy,
                reason,
                message,
                gauges,
            } => {
                let state = if healthy { "True" } else { "False" };
                self.write(dp, Some(&status), state, &reason, &message)
                    .await;
                self.metrics
                    .pipeline_health(&ns, &name, Some(healthy), Some(&gauges));
            }
            Outcome::Unavailable(message) => {
                self.write(dp, None, "Unknown", reasons::UNAVAILABLE, &message)
                    .await;
                self.metrics.pipeline_health(&ns, &name, None, None);
            }
        }
        // Counted once the status is written, so a test that waits for the
        // count to move sees what the poll concluded.
        self.metrics
            .health_polled(ok, started.elapsed().as_secs_f64());
    }

    async fn assess(&self, dp: &DataPipeline, urls: &Mutex<HashMap<String, String>>) -> Outcome {
        if reconcile::validate(&dp.spec, &self.config, &self.catalog).is_err() {
            return Outcome::Skipped;
        }
        let region = dp.spec.region_or(&self.config.default_region);
        // As the identity that made the pipeline's resources (status): an
        // account role's clients once the reconciler has connected them.
        let made_as = dp
            .status
            .as_ref()
            .and_then(|s| s.account.as_ref())
            .and_then(|a| a.role_arn.as_deref());
        let aws = match made_as {
            Some(arn) => match self.regions.connected_role(arn, &region).await {
                Some(aws) => Ok(aws),
                None => {
                    return Outcome::Unavailable(format!(
                        "the account role {arn} is not connected yet (the pipeline's next \
                         reconcile connects it)"
                    ));
                }
            },
            None => self.regions.get(&region).await,
        };
        let aws = match aws {
            Ok(aws) => aws.for_pipeline(&dp.namespace().unwrap_or_default(), &dp.name_any()),
            Err(e) => return Outcome::Unavailable(unavailable(&e.to_string())),
        };
        let pid = PipelineId::of(
            dp,
            &self.config,
            &aws.account,
            &aws.region,
            plan::recorded_buckets(dp),
        );
        let plan = plan::plan(
            &dp.spec,
            PlanContext {
                id: &pid,
                catalog: &self.catalog,
                permissions_boundary: Some(&self.config.boundary_in(&aws.account)),
            },
        );
        let inventory = dp
            .status
            .as_ref()
            .map(|s| s.inventory.clone())
            .unwrap_or_default();
        let targets = super::targets(&dp.spec, &plan, &inventory);
        let window = Window(self.config.health_window);
        // The URL cache is held across awaits by no one: take it, lend it
        // to this poll, put it back.
        let mut known = match urls.lock() {
            Ok(mut urls) => std::mem::take(&mut *urls),
            Err(_) => HashMap::new(),
        };
        let observed = super::observe(&aws, &targets, window, &mut known).await;
        if let Ok(mut urls) = urls.lock() {
            urls.extend(known);
        }
        let observation = match observed {
            Ok(o) => o,
            Err(e) => return Outcome::Unavailable(unavailable(&e.to_string())),
        };
        let limits = dp.spec.health.clone().unwrap_or_default();
        let assessment = super::assess(&targets, &observation, &limits, &window);
        let (reason, message) = assessment.reason_and_message(&targets, &window);
        debug!(pipeline = %dp.name_any(), %reason, calls = super::calls_per_poll(&targets), "health polled");
        Outcome::Assessed {
            healthy: assessment.healthy(),
            status: assessment.status,
            reason,
            message,
            gauges: assessment.gauges,
        }
    }

    /// Writes `status.health` and `Healthy` when they changed, and publishes
    /// the event of a transition.
    async fn write(
        &self,
        dp: &DataPipeline,
        health: Option<&HealthStatus>,
        state: &str,
        reason: &str,
        message: &str,
    ) {
        let previous = dp
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let before = condition(dp, HEALTHY);
        let healthy = status::healthy(&previous, state, reason, message, dp.metadata.generation);
        let same_condition = before.is_some_and(|b| {
            b.status == healthy.status
                && b.reason == healthy.reason
                && b.message == healthy.message
                && b.observed_generation == healthy.observed_generation
        });
        let old_health = dp.status.as_ref().and_then(|s| s.health.as_ref());
        // Unknown keeps the last figures: they are what was last known.
        let new_health = health.or(old_health);
        if same_condition && old_health == new_health {
            return;
        }
        if !self.shards.holds(&dp.namespace().unwrap_or_default()) {
            debug!(pipeline = %dp.name_any(), "not the shard's holder: health status not written");
            return;
        }
        let api: Api<DataPipeline> =
            Api::namespaced(self.client.clone(), &dp.namespace().unwrap_or_default());
        let mut patch_status = json!({ "conditions": [healthy] });
        if let Some(h) = new_health {
            patch_status["health"] = json!(h);
        }
        let patch = json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "DataPipeline",
            "status": patch_status,
        });
        self.metrics.kube_write("health_status");
        if let Err(e) = api
            .patch_status(
                &dp.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            warn!(pipeline = %dp.name_any(), error = %e, "cannot write health status");
            return;
        }
        self.publish_transition(dp, before, state, reason, message)
            .await;
    }

    async fn publish_transition(
        &self,
        dp: &DataPipeline,
        before: Option<&Condition>,
        state: &str,
        reason: &str,
        message: &str,
    ) {
        let before = before.map(|c| (c.status.as_str(), c.reason.as_str()));
        if let Some(e) = transition_event(before, state, reason, message) {
            events::publish(
                &self.recorder,
                &self.metrics,
                dp,
                e.type_,
                e.reason,
                &e.action,
                &e.note,
            )
            .await;
        }
    }
}

/// The event of a change of the `Healthy` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionEvent {
    /// Warning or Normal.
    pub type_: EventType,
    /// `Unhealthy`, `Recovered` or `HealthUnavailable`.
    pub reason: &'static str,
    /// What it is about: the condition reason turned to or recovered from,
    /// so that events about different problems are different series.
    pub action: String,
    /// The condition's message.
    pub note: String,
}

/// Which event, if any, a change of `Healthy` from `before` (`(status,
/// reason)`) to `(state, reason)` publishes: turning False (or False for
/// another reason), turning True from False, and becoming unreadable.
/// Anything else — the same verdict again, Suspended, the first True —
/// publishes nothing.
pub fn transition_event(
    before: Option<(&str, &str)>,
    state: &str,
    reason: &str,
    message: &str,
) -> Option<TransitionEvent> {
    match state {
        "False" if before != Some(("False", reason)) => Some(TransitionEvent {
            type_: EventType::Warning,
            reason: events::reasons::UNHEALTHY,
            action: reason.to_owned(),
            note: message.to_owned(),
        }),
        "True" => {
            let (was, from) = before?;
            (was == "False").then(|| TransitionEvent {
                type_: EventType::Normal,
                reason: events::reasons::RECOVERED,
                action: from.to_owned(),
                note: format!("healthy again after {from}: {message}"),
            })
        }
        "Unknown" if reason == reasons::UNAVAILABLE && before.is_none_or(|(_, r)| r != reason) => {
            Some(TransitionEvent {
                type_: EventType::Warning,
                reason: events::reasons::HEALTH_UNAVAILABLE,
                action: "Health".to_owned(),
                note: message.to_owned(),
            })
        }
        _ => None,
    }
}

fn unavailable(error: &str) -> String {
    format!(
        "cannot read runtime health: {error}; the operator needs cloudwatch:GetMetricData and \
         sqs:GetQueueUrl, sqs:GetQueueAttributes (config/iam/operator-policy.json)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DataPipelineStatus;
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

    fn pipeline(conditions: &[(&str, &str, Option<i64>)], generation: i64) -> Arc<DataPipeline> {
        let mut dp = DataPipeline::new("p", serde_json::from_str("{}").expect("spec"));
        dp.metadata.generation = Some(generation);
        dp.status = Some(DataPipelineStatus {
            conditions: conditions
                .iter()
                .map(|(t, s, g)| Condition {
                    type_: (*t).into(),
                    status: (*s).into(),
                    reason: "R".into(),
                    message: "m".into(),
                    observed_generation: *g,
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..Default::default()
        });
        Arc::new(dp)
    }

    #[test]
    fn pipelines_are_counted_by_condition_and_status() {
        let all = [
            pipeline(
                &[("Ready", "True", Some(1)), ("Healthy", "False", Some(1))],
                1,
            ),
            pipeline(
                &[("Ready", "True", Some(1)), ("Healthy", "True", Some(1))],
                1,
            ),
            pipeline(
                &[("Ready", "False", Some(2)), ("Stalled", "True", Some(2))],
                2,
            ),
        ];
        let c = census(&all);
        let get = |t: &str, s: &str| c.get(&(t.to_owned(), s.to_owned())).copied();
        assert_eq!(get("Ready", "True"), Some(2));
        assert_eq!(get("Ready", "False"), Some(1));
        assert_eq!(get("Stalled", "True"), Some(1));
        assert_eq!(get("Healthy", "False"), Some(1));
        assert_eq!(get("Reconciling", "True"), None);
    }

    #[test]
    fn events_mark_transitions_only() {
        let unhealthy = transition_event(
            Some(("True", "WithinThresholds")),
            "False",
            "DeadLetters",
            "3 messages",
        )
        .expect("an event");
        assert_eq!(unhealthy.reason, "Unhealthy");
        assert_eq!(unhealthy.action, "DeadLetters");
        assert_eq!(unhealthy.type_, EventType::Warning);
        // The same problem again: nothing; another problem: a new event.
        assert_eq!(
            transition_event(
                Some(("False", "DeadLetters")),
                "False",
                "DeadLetters",
                "4 messages"
            ),
            None
        );
        assert!(
            transition_event(
                Some(("False", "DeadLetters")),
                "False",
                "FunctionErrors",
                "m"
            )
            .is_some()
        );
        let recovered = transition_event(
            Some(("False", "DeadLetters")),
            "True",
            "WithinThresholds",
            "all fine",
        )
        .expect("an event");
        assert_eq!(recovered.reason, "Recovered");
        assert_eq!(recovered.action, "DeadLetters");
        assert_eq!(recovered.note, "healthy again after DeadLetters: all fine");
        // First True, True again, True after Unknown: nothing to tell.
        assert_eq!(
            transition_event(None, "True", "WithinThresholds", "m"),
            None
        );
        assert_eq!(
            transition_event(
                Some(("True", "WithinThresholds")),
                "True",
                "WithinThresholds",
                "m"
            ),
            None
        );
        assert_eq!(
            transition_event(
                Some(("Unknown", "Suspended")),
                "True",
                "WithinThresholds",
                "m"
            ),
            None
        );
        // Unreadable once is worth a warning; still unreadable is not.
        assert!(
            transition_event(
                Some(("True", "WithinThresholds")),
                "Unknown",
                "HealthUnavailable",
                "m"
            )
            .is_some()
        );
        assert_eq!(
            transition_event(
                Some(("Unknown", "HealthUnavailable")),
                "Unknown",
                "HealthUnavailable",
                "m"
            ),
            None
        );
        assert_eq!(
            transition_event(
                Some(("True", "WithinThresholds")),
                "Unknown",
                "Suspended",
                "m"
            ),
            None
        );
    }

    #[test]
    fn ready_counts_only_for_the_current_generation() {
        assert!(ready_now(&pipeline(&[("Ready", "True", Some(3))], 3)));
        assert!(!ready_now(&pipeline(&[("Ready", "True", Some(2))], 3)));
        assert!(!ready_now(&pipeline(&[("Ready", "Unknown", Some(3))], 3)));
    }
}
