//! The volumes an estimate assumes (`--assume-volume FILE`), stated at the
//! pipeline's sources; everything downstream is derived along its edges
//! ([`super::flow`]).
//!
//! ```yaml
//! buckets:                 # every bucket of the pipeline
//!   input:
//!     objectsPerDay: 10000 # written from outside the pipeline
//!     averageObjectKB: 4   # optional (default 4)
//!     storedGB: 20         # required
//! queues:
//!   jobs:
//!     messagesPerDay: 5000 # sent from outside the pipeline
//!     averageMessageKB: 1  # optional (default 1)
//! streams:
//!   events: {recordsPerSecond: 50, averageRecordKB: 1}
//! eventBuses:
//!   main: {eventsPerDay: 0, averageEventKB: 1}
//! rules:
//!   type-a: {share: 0.5}   # of its bus's events it matches (default 1/rules)
//! workflows:
//!   etl:
//!     executionsPerDay: 100
//!     mapItems: {Fan: 10}  # items of each Map state (default 1)
//!     expressMemoryMB: 64  # optional (default 64)
//!     logKBPerTransition: 1
//! tables:
//!   results: {storedGB: 5, averageItemKB: 1, readsPerDay: 0}
//! functions:
//!   processor:
//!     averageDurationMs: 150    # required
//!     invocationsPerDay: 0      # invocations from outside the pipeline
//!     readsPerInvocation: 1     # optional: objects read per invocation
//!     logKBPerInvocation: 1     # optional (default 1)
//! ```
//!
//! With a file, the figures nothing in the pipeline can derive are
//! required: `storedGB` of every bucket and table, `averageDurationMs` of
//! every function, and the per-day (per-second) volume of every source —
//! a bucket that triggers and no function writes, a queue a function
//! consumes and nothing sends to, a stream nothing puts to, a bus with
//! rules nothing puts to, a workflow nothing starts, a function nothing
//! invokes. Every other figure has a documented default. Without a file,
//! every figure is its default: a source receives [`SOURCE_PER_DAY`] a day
//! ([`SOURCE_RECORDS_PER_SECOND`] records a second for a stream).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::crd::DataPipelineSpec;

/// What a source receives a day when no file states it.
pub const SOURCE_PER_DAY: f64 = 10_000.0;
/// What a source stream receives a second when no file states it.
pub const SOURCE_RECORDS_PER_SECOND: f64 = 10.0;
/// A function's average duration when no file states it, ms.
pub const DEFAULT_DURATION_MS: f64 = 200.0;

/// Whether a figure was stated or is a default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// From the volumes file.
    Stated,
    /// The documented default.
    Default,
}

/// One figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    /// The number.
    pub value: f64,
    /// Where it came from.
    pub origin: Origin,
}

impl Figure {
    fn show(&self, what: &str) -> String {
        let n = super::number(self.value, if self.value.fract() == 0.0 { 0 } else { 2 });
        match self.origin {
            Origin::Stated => format!("{n} {what}"),
            Origin::Default => format!("{n} {what} (default)"),
        }
    }
}

/// A bucket's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Objects written a day from outside the pipeline.
    pub objects_per_day: Figure,
    /// Average object size, KB.
    pub average_object_kb: Figure,
    /// GB stored.
    pub stored_gb: Figure,
}

/// A queue's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Queue {
    /// Messages sent a day from outside the pipeline.
    pub messages_per_day: Figure,
    /// Average message size, KB.
    pub average_message_kb: Figure,
}

/// A stream's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    /// Records put a second from outside the pipeline.
    pub records_per_second: Figure,
    /// Average record size, KB.
    pub average_record_kb: Figure,
}

/// A bus's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Bus {
    /// Events put a day from outside the pipeline.
    pub events_per_day: Figure,
    /// Average event size, KB.
    pub average_event_kb: Figure,
}

/// A workflow's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Workflow {
    /// Executions started a day from outside the pipeline.
    pub executions_per_day: Figure,
    /// Items of each Map state, by state name (absent: 1).
    pub map_items: BTreeMap<String, Figure>,
    /// Memory an Express execution is billed for, MB.
    pub express_memory_mb: Figure,
    /// KB logged per state transition when logging is on.
    pub log_kb_per_transition: Figure,
}

/// A table's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// GB stored.
    pub stored_gb: Figure,
    /// Average item size, KB.
    pub average_item_kb: Figure,
    /// Reads a day from outside the pipeline.
    pub reads_per_day: Figure,
}

/// A function's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// Average duration, ms.
    pub average_duration_ms: Figure,
    /// Invocations a day from outside the pipeline.
    pub invocations_per_day: Figure,
    /// Objects read per invocation from each bucket it reads (absent: one
    /// per item it handles).
    pub reads_per_invocation: Option<Figure>,
    /// KB logged per invocation.
    pub log_kb_per_invocation: Figure,
}

/// Every figure of an estimate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Volumes {
    /// By bucket.
    pub buckets: BTreeMap<String, Bucket>,
    /// By queue (dead-letter queues Sluice creates included).
    pub queues: BTreeMap<String, Queue>,
    /// By stream.
    pub streams: BTreeMap<String, Stream>,
    /// By bus.
    pub buses: BTreeMap<String, Bus>,
    /// Share of its bus's events each rule matches.
    pub rules: BTreeMap<String, Figure>,
    /// By workflow.
    pub workflows: BTreeMap<String, Workflow>,
    /// By table.
    pub tables: BTreeMap<String, Table>,
    /// By function.
    pub functions: BTreeMap<String, Function>,
}

/// Which nodes something in the pipeline feeds.
#[derive(Debug, Default)]
pub struct Fed {
    buckets: BTreeSet<String>,
    triggering_buckets: BTreeSet<String>,
    queues: BTreeSet<String>,
    consumed_queues: BTreeSet<String>,
    streams: BTreeSet<String>,
    buses: BTreeSet<String>,
    workflows: BTreeSet<String>,
    functions: BTreeSet<String>,
}

impl Fed {
    /// What feeds what in `spec`.
    pub fn of(spec: &DataPipelineSpec) -> Fed {
        let mut fed = Fed::default();
        for f in &spec.functions {
            for t in &f.triggers {
                if let Some(b) = &t.bucket {
                    fed.triggering_buckets.insert(b.name.clone());
                }
                if let Some(q) = &t.queue {
                    fed.consumed_queues.insert(q.name.clone());
                }
                if let Some(d) = t.stream.as_ref().and_then(|s| s.on_failure.as_ref()) {
                    fed.queues.insert(d.queue.clone());
                }
            }
            if !f.triggers.is_empty() {
                fed.functions.insert(f.name.clone());
            }
            for u in &f.uses {
                if let Some(b) = &u.bucket
                    && !matches!(u.access, crate::crd::Access::Read)
                {
                    fed.buckets.insert(b.clone());
                }
                if let Some(q) = &u.queue {
                    fed.queues.insert(q.clone());
                }
                if let Some(s) = &u.stream
                    && matches!(u.access, crate::crd::Access::Put)
                {
                    fed.streams.insert(s.clone());
                }
                if let Some(e) = &u.event_bus {
                    fed.buses.insert(e.clone());
                }
                if let Some(w) = &u.workflow {
                    fed.workflows.insert(w.clone());
                }
            }
            if let Some(d) = f
                .async_invocation
                .as_ref()
                .and_then(|a| a.on_failure.as_ref())
            {
                fed.queues.insert(d.queue.clone());
            }
        }
        for q in &spec.queues {
            if let Some(d) = &q.dead_letter {
                fed.queues
                    .insert(d.queue.clone().unwrap_or_else(|| format!("{}-dlq", q.name)));
            }
        }
        for r in &spec.rules {
            for t in &r.targets {
                t.queue.iter().for_each(|q| {
                    fed.queues.insert(q.clone());
                });
                t.function.iter().for_each(|f| {
                    fed.functions.insert(f.clone());
                });
                t.workflow.iter().for_each(|w| {
                    fed.workflows.insert(w.clone());
                });
            }
        }
        for s in &spec.schedules {
            s.target.queue.iter().for_each(|q| {
                fed.queues.insert(q.clone());
            });
            s.target.function.iter().for_each(|f| {
                fed.functions.insert(f.clone());
            });
            s.target.workflow.iter().for_each(|w| {
                fed.workflows.insert(w.clone());
            });
            if let Some(d) = &s.dead_letter {
                fed.queues.insert(d.queue.clone());
            }
        }
        for w in &spec.workflows {
            if !w.triggers.is_empty() {
                fed.workflows.insert(w.name.clone());
            }
            for f in crate::asl::referenced_functions(&w.definition) {
                fed.functions.insert(f);
            }
        }
        fed
    }
}

/// One field of the file, read and checked.
struct Reader<'a> {
    file: Option<&'a Value>,
    problems: Vec<String>,
}

impl Reader<'_> {
    /// The entry `section.name` of the file, checking its fields against
    /// `fields`.
    fn entry(&mut self, section: &str, name: &str, fields: &[&str]) -> Option<Value> {
        let e = self.file?.get(section)?.get(name)?.clone();
        match e.as_object() {
            Some(o) => {
                for k in o.keys() {
                    if !fields.contains(&k.as_str()) {
                        self.problems.push(format!(
                            "volumes.{section}.{name}.{k}: unknown field; expected one of {}",
                            fields.join(", ")
                        ));
                    }
                }
                Some(e)
            }
            None => {
                self.problems.push(format!(
                    "volumes.{section}.{name}: expected a mapping of {}",
                    fields.join(", ")
                ));
                None
            }
        }
    }

    /// A number ≥ 0 (at most `max`), stated or defaulted; missing and
    /// `required` (with a file) is a problem naming the field.
    #[allow(clippy::too_many_arguments)]
    fn figure(
        &mut self,
        entry: &Option<Value>,
        at: &str,
        field: &str,
        required: Option<&str>,
        default: f64,
        max: Option<f64>,
    ) -> Figure {
        match entry.as_ref().and_then(|e| e.get(field)) {
            Some(v) => match v.as_f64() {
                Some(n) if n.is_finite() && n >= 0.0 && max.is_none_or(|m| n <= m) => Figure {
                    value: n,
                    origin: Origin::Stated,
                },
                _ => {
                    self.problems.push(format!(
                        "volumes.{at}.{field}: {v}: expected a number from 0{}",
                        max.map_or(String::new(), |m| format!(" to {m}"))
                    ));
                    Figure {
                        value: default,
                        origin: Origin::Default,
                    }
                }
            },
            None => {
                if let (Some(why), Some(_)) = (required, self.file) {
                    self.problems
                        .push(format!("volumes.{at}.{field}: missing; state {why}"));
                }
                Figure {
                    value: default,
                    origin: Origin::Default,
                }
            }
        }
    }
}

impl Volumes {
    /// The figures of `spec` (its queues as planned: `queues`, dead-letter
    /// queues included) from `file` (parsed YAML), or every default when
    /// there is none. Errors name each field.
    pub fn resolve(
        spec: &DataPipelineSpec,
        queues: &[String],
        file: Option<&Value>,
    ) -> Result<Volumes, String> {
        let fed = Fed::of(spec);
        let mut r = Reader {
            file,
            problems: Vec::new(),
        };
        if let Some(f) = file {
            check_names(f, spec, queues, &mut r.problems);
        }
        let src = |is: bool, per: f64| if is { per } else { 0.0 };
        let mut v = Volumes::default();
        for b in &spec.buckets {
            let n = &b.name;
            let e = r.entry(
                "buckets",
                n,
                &["objectsPerDay", "averageObjectKB", "storedGB"],
            );
            let source = fed.triggering_buckets.contains(n) && !fed.buckets.contains(n);
            let at = format!("buckets.{n}");
            v.buckets.insert(
                n.clone(),
                Bucket {
                    objects_per_day: r.figure(
                        &e,
                        &at,
                        "objectsPerDay",
                        source.then_some("the objects written into it a day"),
                        src(source, SOURCE_PER_DAY),
                        None,
                    ),
                    average_object_kb: r.figure(&e, &at, "averageObjectKB", None, 4.0, None),
                    stored_gb: r.figure(&e, &at, "storedGB", Some("the GB it holds"), 10.0, None),
                },
            );
        }
        for n in queues {
            let e = r.entry("queues", n, &["messagesPerDay", "averageMessageKB"]);
            let source = fed.consumed_queues.contains(n) && !fed.queues.contains(n);
            let at = format!("queues.{n}");
            v.queues.insert(
                n.clone(),
                Queue {
                    messages_per_day: r.figure(
                        &e,
                        &at,
                        "messagesPerDay",
                        source.then_some("the messages sent to it a day"),
                        src(source, SOURCE_PER_DAY),
                        None,
                    ),
                    average_message_kb: r.figure(&e, &at, "averageMessageKB", None, 1.0, None),
                },
            );
        }
        for s in &spec.streams {
            let n = &s.name;
            let e = r.entry("streams", n, &["recordsPerSecond", "averageRecordKB"]);
            let source = !fed.streams.contains(n);
            let at = format!("streams.{n}");
            v.streams.insert(
                n.clone(),
                Stream {
                    records_per_second: r.figure(
                        &e,
                        &at,
                        "recordsPerSecond",
                        source.then_some("the records put on it a second"),
                        src(source, SOURCE_RECORDS_PER_SECOND),
                        None,
                    ),
                    average_record_kb: r.figure(
                        &e,
                        &at,
                        "averageRecordKB",
                        source.then_some("its records' average size in KB"),
                        1.0,
                        None,
                    ),
                },
            );
        }
        for b in &spec.event_buses {
            let n = &b.name;
            let e = r.entry("eventBuses", n, &["eventsPerDay", "averageEventKB"]);
            let has_rules = spec
                .rules
                .iter()
                .any(|x| x.event_bus.as_deref() == Some(n.as_str()));
            let source = has_rules && !fed.buses.contains(n);
            let at = format!("eventBuses.{n}");
            v.buses.insert(
                n.clone(),
                Bus {
                    events_per_day: r.figure(
                        &e,
                        &at,
                        "eventsPerDay",
                        source.then_some("the events put on it a day"),
                        src(source, SOURCE_PER_DAY),
                        None,
                    ),
                    average_event_kb: r.figure(&e, &at, "averageEventKB", None, 1.0, None),
                },
            );
        }
        for rule in &spec.rules {
            let n = &rule.name;
            let e = r.entry("rules", n, &["share"]);
            let siblings = spec
                .rules
                .iter()
                .filter(|x| x.event_bus == rule.event_bus)
                .count()
                .max(1);
            let share = r.figure(
                &e,
                &format!("rules.{n}"),
                "share",
                None,
                1.0 / siblings as f64,
                Some(1.0),
            );
            v.rules.insert(n.clone(), share);
        }
        for w in &spec.workflows {
            let n = &w.name;
            let e = r.entry(
                "workflows",
                n,
                &[
                    "executionsPerDay",
                    "mapItems",
                    "expressMemoryMB",
                    "logKBPerTransition",
                ],
            );
            let source = !fed.workflows.contains(n);
            let at = format!("workflows.{n}");
            let mut map_items = BTreeMap::new();
            if let Some(m) = e.as_ref().and_then(|e| e.get("mapItems")) {
                match m.as_object() {
                    Some(o) => {
                        for (state, _) in o {
                            let f = r.figure(
                                &Some(m.clone()),
                                &format!("{at}.mapItems"),
                                state,
                                None,
                                1.0,
                                None,
                            );
                            map_items.insert(state.clone(), f);
                        }
                    }
                    None => r.problems.push(format!(
                        "volumes.{at}.mapItems: expected a mapping of Map state name to items"
                    )),
                }
            }
            v.workflows.insert(
                n.clone(),
                Workflow {
                    executions_per_day: r.figure(
                        &e,
                        &at,
                        "executionsPerDay",
                        source.then_some("the executions started a day"),
                        src(source, SOURCE_PER_DAY),
                        None,
                    ),
                    map_items,
                    express_memory_mb: r.figure(&e, &at, "expressMemoryMB", None, 64.0, None),
                    log_kb_per_transition: r.figure(&e, &at, "logKBPerTransition", None, 1.0, None),
                },
            );
        }
        for t in &spec.tables {
            let n = &t.name;
            let e = r.entry("tables", n, &["storedGB", "averageItemKB", "readsPerDay"]);
            let at = format!("tables.{n}");
            v.tables.insert(
                n.clone(),
                Table {
                    stored_gb: r.figure(&e, &at, "storedGB", Some("the GB it holds"), 1.0, None),
                    average_item_kb: r.figure(&e, &at, "averageItemKB", None, 1.0, None),
                    reads_per_day: r.figure(&e, &at, "readsPerDay", None, 0.0, None),
                },
            );
        }
        for f in &spec.functions {
            let n = &f.name;
            let e = r.entry(
                "functions",
                n,
                &[
                    "averageDurationMs",
                    "invocationsPerDay",
                    "readsPerInvocation",
                    "logKBPerInvocation",
                ],
            );
            let source = !fed.functions.contains(n);
            let at = format!("functions.{n}");
            let reads = e
                .as_ref()
                .and_then(|x| x.get("readsPerInvocation"))
                .is_some()
                .then(|| r.figure(&e, &at, "readsPerInvocation", None, 1.0, None));
            v.functions.insert(
                n.clone(),
                Function {
                    average_duration_ms: r.figure(
                        &e,
                        &at,
                        "averageDurationMs",
                        Some("its average duration in milliseconds"),
                        DEFAULT_DURATION_MS,
                        None,
                    ),
                    invocations_per_day: r.figure(
                        &e,
                        &at,
                        "invocationsPerDay",
                        source.then_some(
                            "its invocations a day (nothing in the pipeline invokes it)",
                        ),
                        src(source, SOURCE_PER_DAY),
                        None,
                    ),
                    reads_per_invocation: reads,
                    log_kb_per_invocation: r.figure(&e, &at, "logKBPerInvocation", None, 1.0, None),
                },
            );
        }
        if r.problems.is_empty() {
            Ok(v)
        } else {
            Err(r.problems.join("\n"))
        }
    }

    /// Every figure, one line per resource, defaults marked.
    pub fn assumptions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (n, b) in &self.buckets {
            out.push(format!(
                "bucket {n}: {} written a day from outside the pipeline, average {}, {} stored",
                b.objects_per_day.show("objects"),
                b.average_object_kb.show("KB"),
                b.stored_gb.show("GB"),
            ));
        }
        for (n, q) in &self.queues {
            out.push(format!(
                "queue {n}: {} sent a day from outside the pipeline, average {}",
                q.messages_per_day.show("messages"),
                q.average_message_kb.show("KB"),
            ));
        }
        for (n, s) in &self.streams {
            out.push(format!(
                "stream {n}: {} put a second from outside the pipeline, average {}",
                s.records_per_second.show("records"),
                s.average_record_kb.show("KB"),
            ));
        }
        for (n, b) in &self.buses {
            out.push(format!(
                "event bus {n}: {} put a day from outside the pipeline, average {}",
                b.events_per_day.show("events"),
                b.average_event_kb.show("KB"),
            ));
        }
        for (n, s) in &self.rules {
            out.push(format!(
                "rule {n}: matches {} of its bus's events",
                s.show("(share)")
            ));
        }
        for (n, w) in &self.workflows {
            let maps = w
                .map_items
                .iter()
                .map(|(s, f)| format!(", Map state {s}: {}", f.show("items")))
                .collect::<String>();
            out.push(format!(
                "workflow {n}: {} started a day from outside the pipeline{maps}, Express memory {}, {} logged per transition when logging is ALL",
                w.executions_per_day.show("executions"),
                w.express_memory_mb.show("MB"),
                w.log_kb_per_transition.show("KB"),
            ));
        }
        for (n, t) in &self.tables {
            out.push(format!(
                "table {n}: {} stored, average item {}, {} a day from outside the pipeline",
                t.stored_gb.show("GB"),
                t.average_item_kb.show("KB"),
                t.reads_per_day.show("reads"),
            ));
        }
        for (n, f) in &self.functions {
            let reads = f.reads_per_invocation.map_or(String::new(), |r| {
                format!(
                    ", {} per invocation from each bucket it reads",
                    r.show("objects read")
                )
            });
            out.push(format!(
                "function {n}: average duration {}, {} a day from outside the pipeline{reads}, {} logged per invocation",
                f.average_duration_ms.show("ms"),
                f.invocations_per_day.show("invocations"),
                f.log_kb_per_invocation.show("KB"),
            ));
        }
        out
    }
}

/// Sections and names of the file that the pipeline does not have.
fn check_names(
    file: &Value,
    spec: &DataPipelineSpec,
    queues: &[String],
    problems: &mut Vec<String>,
) {
    let Some(o) = file.as_object() else {
        if !file.is_null() {
            problems.push("volumes: expected a mapping of sections (buckets, queues, streams, eventBuses, rules, workflows, tables, functions)".into());
        }
        return;
    };
    let names = |section: &str| -> Option<Vec<String>> {
        Some(match section {
            "buckets" => spec.buckets.iter().map(|x| x.name.clone()).collect(),
            "queues" => queues.to_vec(),
            "streams" => spec.streams.iter().map(|x| x.name.clone()).collect(),
            "eventBuses" => spec.event_buses.iter().map(|x| x.name.clone()).collect(),
            "rules" => spec.rules.iter().map(|x| x.name.clone()).collect(),
            "workflows" => spec.workflows.iter().map(|x| x.name.clone()).collect(),
            "tables" => spec.tables.iter().map(|x| x.name.clone()).collect(),
            "functions" => spec.functions.iter().map(|x| x.name.clone()).collect(),
            _ => return None,
        })
    };
    for (section, entries) in o {
        let Some(known) = names(section) else {
            problems.push(format!(
                "volumes.{section}: unknown section; expected buckets, queues, streams, eventBuses, rules, workflows, tables or functions"
            ));
            continue;
        };
        if entries.is_null() {
            continue;
        }
        let Some(entries) = entries.as_object() else {
            problems.push(format!("volumes.{section}: expected a mapping by name"));
            continue;
        };
        for name in entries.keys() {
            if !known.contains(name) {
                problems.push(format!(
                    "volumes.{section}.{name}: the pipeline has no such {}; it has {}",
                    section.trim_end_matches('s'),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
    }
}
