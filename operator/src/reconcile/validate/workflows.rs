//! Workflows (Step Functions state machines).
//!
//! | AWS rule (CreateStateMachine / UpdateStateMachine) | Where | Reference |
//! |---|---|---|
//! | A definition is at most 1,048,576 characters | `asl::validate` | Step Functions quotas |
//! | StartAt, Next, Default, Choices[].Next and Catch[].Next name states; every state reachable and ending | `asl::validate` | Amazon States Language |
//! | State names unique across the whole machine, Parallel branches and Map iterators/ItemProcessor included | `asl::validate` | Amazon States Language, "States" |
//! | A state name has at most 80 characters (not bytes) | `asl::validate` | Amazon States Language, "States" |
//! | `States.ALL` alone in its `ErrorEquals`, in the last retrier or catcher | `asl::validate` | Amazon States Language, "Retrying after an error", "Fallback states" |
//! | A Task's `HeartbeatSeconds` below its `TimeoutSeconds` | `asl::validate` | Amazon States Language, "Task" |
//! | Express workflows use no `.sync` or `.waitForTaskToken` integration | here (`asl::express_problems`) | "Choosing workflow type", "Service integration patterns" |
//! | A free-form definition nests at most [`MAX_FREE_FORM_DEPTH`](crate::crd::MAX_FREE_FORM_DEPTH) levels | admission and here | Sluice's own limit |

use super::{Declared, check_depth};
use crate::crd::{DataPipelineSpec, WorkflowType};

pub(super) fn validate_workflows(
    spec: &DataPipelineSpec,
    buckets: &Declared<'_>,
    functions: &Declared<'_>,
    problems: &mut Vec<String>,
) {
    for (i, w) in spec.workflows.iter().enumerate() {
        let at = format!("spec.workflows[{i}]");
        if check_depth(&format!("{at}.definition"), &w.definition, problems) {
            problems.extend(crate::asl::validate(
                &format!("{at}.definition"),
                &w.definition,
                &functions.0,
            ));
            if w.type_ == WorkflowType::Express {
                problems.extend(crate::asl::express_problems(
                    &format!("{at}.definition"),
                    &w.definition,
                ));
            }
        }
        for (j, t) in w.triggers.iter().enumerate() {
            if let Some(b) = &t.bucket
                && !buckets.has(&b.name)
            {
                problems.push(format!(
                    "{at}.triggers[{j}].bucket.name: {:?} is not declared in spec.buckets ({})",
                    b.name,
                    buckets.hint()
                ));
            }
        }
    }
}
