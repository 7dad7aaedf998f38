//! SQS queues: dead-letter queues, visibility timeouts and FIFO sources.
//!
//! | AWS rule | Where | Reference |
//! |---|---|---|
//! | A dead-letter queue is of its queue's type (FIFO or standard) | here | SQS Developer Guide, "Using dead-letter queues" |
//! | A redrive chain ends (no cycles) | here | RedrivePolicy |
//! | A queue a function consumes has a visibility timeout of at least the function's timeout | here | Lambda, "Using Lambda with Amazon SQS" |
//! | A FIFO queue source takes no batching window | here | CreateEventSourceMapping, MaximumBatchingWindowInSeconds |
//! | A FIFO queue source takes at most 10 messages a batch | `validate_function` | CreateEventSourceMapping, BatchSize |
//! | A rule's FIFO queue target has content-based deduplication | `events.rs` | PutTargets, SqsParameters |

use std::collections::{BTreeMap, BTreeSet};

use super::Declared;
use crate::{crd::DataPipelineSpec, plan::graph::dead_letter_name};

pub(super) fn validate_queues(
    spec: &DataPipelineSpec,
    queues: &Declared<'_>,
    fifo: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    let own: BTreeMap<&str, &crate::crd::QueueSpec> =
        spec.queues.iter().map(|q| (q.name.as_str(), q)).collect();
    for (i, q) in spec.queues.iter().enumerate() {
        let at = format!("spec.queues[{i}]");
        if let Some(d) = &q.dead_letter {
            let derived = dead_letter_name(&q.name);
            match &d.queue {
                None => {
                    if own.contains_key(derived.as_str()) {
                        problems.push(format!(
                            "{at}.deadLetter: Sluice creates the dead-letter queue {derived:?}, \
                             but a queue of that name is declared; name it in deadLetter.queue \
                             or rename the other queue"
                        ));
                    }
                }
                Some(target) if target == &q.name => problems.push(format!(
                    "{at}.deadLetter.queue: a queue cannot be its own dead-letter queue"
                )),
                Some(target) => match own.get(target.as_str()) {
                    None => problems.push(format!(
                        "{at}.deadLetter.queue: {target:?} is not declared in spec.queues ({})",
                        queues.hint()
                    )),
                    Some(t) if t.fifo != q.fifo => problems.push(format!(
                        "{at}.deadLetter.queue: {target:?} is {} but {:?} is {}; a queue's \
                         dead-letter queue must be of the same type",
                        if t.fifo { "FIFO" } else { "standard" },
                        q.name,
                        if q.fifo { "FIFO" } else { "standard" },
                    )),
                    Some(_) => {}
                },
            }
        }
        // A redrive chain must end: no cycles through named dead-letter queues.
        let mut seen = BTreeSet::from([q.name.as_str()]);
        let mut next = q.dead_letter.as_ref().and_then(|d| d.queue.as_deref());
        while let Some(n) = next {
            if !seen.insert(n) {
                problems.push(format!(
                    "{at}.deadLetter.queue: the dead-letter queues of {:?} form a cycle through {n:?}",
                    q.name
                ));
                break;
            }
            next = own
                .get(n)
                .and_then(|x| x.dead_letter.as_ref())
                .and_then(|d| d.queue.as_deref());
        }
        // Lambda refuses a queue source whose visibility timeout is shorter
        // than the function's timeout.
        if let Some(visibility) = q.visibility_timeout_seconds
            && let Some(longest) = crate::plan::queue::longest_consumer_timeout(spec, &q.name)
            && visibility < longest
        {
            problems.push(format!(
                "{at}.visibilityTimeoutSeconds: {visibility} is shorter than the {longest} s \
                 timeout of a function it triggers; Lambda requires at least the function's \
                 timeout (AWS advises 6 ×); leave it out to derive it"
            ));
        }
    }
    // Lambda's mapping from a FIFO queue takes no batching window
    // (MaximumBatchingWindowInSeconds is for standard queues only). The
    // trigger is the function's; checked here, with the queue rules.
    for (i, f) in spec.functions.iter().enumerate() {
        for (j, t) in f.triggers.iter().enumerate() {
            if let Some(q) = &t.queue
                && fifo.contains(q.name.as_str())
                && q.batching_window_seconds > 0
            {
                problems.push(format!(
                    "spec.functions[{i}].triggers[{j}].queue.batchingWindowSeconds: {} s, but \
                     {:?} is a FIFO queue and Lambda takes no batching window from one; \
                     leave it out (at most 10 messages a batch)",
                    q.batching_window_seconds, q.name
                ));
            }
        }
    }
}
