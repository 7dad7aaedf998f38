//! Volumes propagated along the pipeline's edges, a month at a time: what
//! each source receives ([`super::volumes`]) flows to what it triggers,
//! and what each function handles flows to what it uses. Nodes are
//! visited in dependency order; a pipeline that feeds itself (a function
//! writing to the bucket that triggers it) has no finite volume and is
//! refused, naming the cycle.

use std::collections::{BTreeMap, BTreeSet};

use super::{DAYS_PER_MONTH, SECONDS_PER_MONTH, scheduler, stepfunctions, volumes::Volumes};
use crate::crd::{Access, DataPipelineSpec, StreamMode};

/// Shards an on-demand stream is assumed to have (its initial write
/// capacity of 4 MB/s).
pub const ON_DEMAND_SHARDS: f64 = 4.0;

/// A node of the pipeline's graph.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Bucket(String),
    Queue(String),
    Stream(String),
    Bus(String),
    Rule(String),
    Schedule(String),
    Workflow(String),
    Function(String),
}

impl Node {
    fn show(&self) -> String {
        match self {
            Node::Bucket(n) => format!("bucket {n}"),
            Node::Queue(n) => format!("queue {n}"),
            Node::Stream(n) => format!("stream {n}"),
            Node::Bus(n) => format!("event bus {n}"),
            Node::Rule(n) => format!("rule {n}"),
            Node::Schedule(n) => format!("schedule {n}"),
            Node::Workflow(n) => format!("workflow {n}"),
            Node::Function(n) => format!("function {n}"),
        }
    }
}

/// A queue's consumption by one function.
#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    /// The function.
    pub function: String,
    /// Batches (invocations) a month.
    pub batches: f64,
    /// Messages per batch on average.
    pub per_batch: f64,
    /// The trigger's batch size.
    pub batch_size: i32,
}

/// Everything a month of the stated volumes amounts to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flow {
    /// Objects written into each bucket.
    pub bucket_puts: BTreeMap<String, f64>,
    /// Objects read from each bucket.
    pub bucket_gets: BTreeMap<String, f64>,
    /// Objects of each bucket whose events go to EventBridge (workflow
    /// triggers).
    pub bucket_events: BTreeMap<String, f64>,
    /// Messages sent to each queue.
    pub queue_messages: BTreeMap<String, f64>,
    /// Each queue's consumers.
    pub queue_consumers: BTreeMap<String, Vec<Consumer>>,
    /// Records put on each stream.
    pub stream_records: BTreeMap<String, f64>,
    /// Functions reading each stream.
    pub stream_consumers: BTreeMap<String, usize>,
    /// Events put on each bus.
    pub bus_events: BTreeMap<String, f64>,
    /// Events each rule matches (and delivers to each of its targets).
    pub rule_matches: BTreeMap<String, f64>,
    /// Runs of each schedule.
    pub schedule_runs: BTreeMap<String, f64>,
    /// Executions of each workflow.
    pub workflow_executions: BTreeMap<String, f64>,
    /// Each workflow's longest successful path.
    pub workflow_paths: BTreeMap<String, stepfunctions::Path>,
    /// Invocations of each function.
    pub function_invocations: BTreeMap<String, f64>,
    /// Items (objects, messages, records, events) each function handles.
    pub function_items: BTreeMap<String, f64>,
    /// Write request units on each table.
    pub table_writes: BTreeMap<String, f64>,
    /// Read request units on each table.
    pub table_reads: BTreeMap<String, f64>,
    /// How volumes were derived, one sentence each.
    pub derivations: Vec<String>,
}

fn add(map: &mut BTreeMap<String, f64>, key: &str, n: f64) {
    *map.entry(key.to_owned()).or_default() += n;
}

fn get(map: &BTreeMap<String, f64>, key: &str) -> f64 {
    map.get(key).copied().unwrap_or(0.0)
}

/// How many KB-sized units an item of `kb` KB takes, in chunks of `chunk`.
pub fn chunks(kb: f64, chunk: f64) -> f64 {
    (kb / chunk).ceil().max(1.0)
}

/// Propagates `volumes` through `spec`.
pub fn flow(spec: &DataPipelineSpec, volumes: &Volumes) -> Result<Flow, String> {
    let mut edges: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
    let mut nodes: BTreeSet<Node> = BTreeSet::new();
    let mut edge = |from: Node, to: Node| {
        edges.entry(from).or_default().insert(to);
    };
    spec.buckets.iter().for_each(|b| {
        nodes.insert(Node::Bucket(b.name.clone()));
    });
    volumes.queues.keys().for_each(|q| {
        nodes.insert(Node::Queue(q.clone()));
    });
    spec.streams.iter().for_each(|s| {
        nodes.insert(Node::Stream(s.name.clone()));
    });
    spec.event_buses.iter().for_each(|b| {
        nodes.insert(Node::Bus(b.name.clone()));
    });
    spec.rules.iter().for_each(|r| {
        nodes.insert(Node::Rule(r.name.clone()));
    });
    spec.schedules.iter().for_each(|s| {
        nodes.insert(Node::Schedule(s.name.clone()));
    });
    spec.workflows.iter().for_each(|w| {
        nodes.insert(Node::Workflow(w.name.clone()));
    });
    spec.functions.iter().for_each(|f| {
        nodes.insert(Node::Function(f.name.clone()));
    });
    for f in &spec.functions {
        let me = Node::Function(f.name.clone());
        for t in &f.triggers {
            if let Some(b) = &t.bucket {
                edge(Node::Bucket(b.name.clone()), me.clone());
            }
            if let Some(q) = &t.queue {
                edge(Node::Queue(q.name.clone()), me.clone());
            }
            if let Some(s) = &t.stream {
                edge(Node::Stream(s.name.clone()), me.clone());
            }
        }
        for u in &f.uses {
            if let Some(b) = &u.bucket
                && u.access != Access::Read
            {
                edge(me.clone(), Node::Bucket(b.clone()));
            }
            if let Some(q) = &u.queue {
                edge(me.clone(), Node::Queue(q.clone()));
            }
            if let Some(s) = &u.stream
                && u.access == Access::Put
            {
                edge(me.clone(), Node::Stream(s.clone()));
            }
            if let Some(e) = &u.event_bus {
                edge(me.clone(), Node::Bus(e.clone()));
            }
            if let Some(w) = &u.workflow {
                edge(me.clone(), Node::Workflow(w.clone()));
            }
        }
    }
    for r in &spec.rules {
        let me = Node::Rule(r.name.clone());
        if let Some(bus) = &r.event_bus {
            edge(Node::Bus(bus.clone()), me.clone());
        }
        for t in &r.targets {
            t.queue
                .iter()
                .for_each(|q| edge(me.clone(), Node::Queue(q.clone())));
            t.function
                .iter()
                .for_each(|f| edge(me.clone(), Node::Function(f.clone())));
            t.workflow
                .iter()
                .for_each(|w| edge(me.clone(), Node::Workflow(w.clone())));
        }
    }
    for s in &spec.schedules {
        let me = Node::Schedule(s.name.clone());
        s.target
            .queue
            .iter()
            .for_each(|q| edge(me.clone(), Node::Queue(q.clone())));
        s.target
            .function
            .iter()
            .for_each(|f| edge(me.clone(), Node::Function(f.clone())));
        s.target
            .workflow
            .iter()
            .for_each(|w| edge(me.clone(), Node::Workflow(w.clone())));
    }
    for w in &spec.workflows {
        let me = Node::Workflow(w.name.clone());
        for t in &w.triggers {
            if let Some(b) = &t.bucket {
                edge(Node::Bucket(b.name.clone()), me.clone());
            }
        }
        for f in crate::asl::referenced_functions(&w.definition) {
            edge(me.clone(), Node::Function(f));
        }
    }
    let order = topological(&nodes, &edges)?;

    let mut fl = Flow::default();
    for node in order {
        match node {
            Node::Bucket(b) => bucket(spec, volumes, &b, &mut fl),
            Node::Queue(q) => queue(spec, volumes, &q, &mut fl),
            Node::Stream(s) => stream(spec, volumes, &s, &mut fl),
            Node::Bus(e) => bus(spec, volumes, &e, &mut fl),
            Node::Rule(r) => rule(spec, &r, &mut fl),
            Node::Schedule(s) => schedule(spec, &s, &mut fl)?,
            Node::Workflow(w) => workflow(spec, volumes, &w, &mut fl),
            Node::Function(f) => function(spec, volumes, &f, &mut fl),
        }
    }
    Ok(fl)
}

fn topological(
    nodes: &BTreeSet<Node>,
    edges: &BTreeMap<Node, BTreeSet<Node>>,
) -> Result<Vec<Node>, String> {
    let mut incoming: BTreeMap<&Node, usize> = nodes.iter().map(|n| (n, 0)).collect();
    for to in edges.values().flatten() {
        *incoming.entry(to).or_default() += 1;
    }
    let mut ready: Vec<&Node> = incoming
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    ready.reverse();
    let mut order = Vec::new();
    while let Some(n) = ready.pop() {
        order.push(n.clone());
        for to in edges.get(n).into_iter().flatten() {
            if let Some(c) = incoming.get_mut(to) {
                *c -= 1;
                if *c == 0 {
                    ready.push(to);
                }
            }
        }
    }
    if order.len() < incoming.len() {
        let stuck: Vec<String> = incoming
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(n, _)| n.show())
            .collect();
        return Err(format!(
            "the pipeline feeds itself ({}): a cycle has no finite volume to price",
            stuck.join(", ")
        ));
    }
    Ok(order)
}

fn bucket(spec: &DataPipelineSpec, v: &Volumes, b: &str, fl: &mut Flow) {
    let ext = v.buckets.get(b).map_or(0.0, |x| x.objects_per_day.value) * DAYS_PER_MONTH;
    add(&mut fl.bucket_puts, b, ext);
    let objects = get(&fl.bucket_puts, b);
    for f in &spec.functions {
        if f.triggers
            .iter()
            .any(|t| t.bucket.as_ref().is_some_and(|x| x.name == b))
        {
            add(&mut fl.function_invocations, &f.name, objects);
            add(&mut fl.function_items, &f.name, objects);
            fl.derivations.push(format!(
                "function {}: one invocation per object created in bucket {b} (every object matches the trigger's filter; no retries)",
                f.name
            ));
        }
    }
    for w in &spec.workflows {
        if w.triggers
            .iter()
            .any(|t| t.bucket.as_ref().is_some_and(|x| x.name == b))
        {
            add(&mut fl.workflow_executions, &w.name, objects);
            add(&mut fl.bucket_events, b, objects);
            fl.derivations.push(format!(
                "workflow {}: one execution per object created in bucket {b} (S3's event on the default bus, matched by the rule Sluice derives)",
                w.name
            ));
        }
    }
}

fn queue(spec: &DataPipelineSpec, v: &Volumes, q: &str, fl: &mut Flow) {
    let ext = v.queues.get(q).map_or(0.0, |x| x.messages_per_day.value) * DAYS_PER_MONTH;
    add(&mut fl.queue_messages, q, ext);
    let messages = get(&fl.queue_messages, q);
    let consumers: Vec<_> = spec
        .functions
        .iter()
        .filter_map(|f| {
            f.triggers
                .iter()
                .filter_map(|t| t.queue.as_ref())
                .find(|t| t.name == q)
                .map(|t| (f.name.clone(), t.batch_size))
        })
        .collect();
    let share = messages / consumers.len().max(1) as f64;
    for (f, batch) in consumers {
        let batches = share / f64::from(batch.max(1));
        add(&mut fl.function_invocations, &f, batches);
        add(&mut fl.function_items, &f, share);
        fl.queue_consumers
            .entry(q.to_owned())
            .or_default()
            .push(Consumer {
                function: f.clone(),
                batches,
                per_batch: f64::from(batch.max(1)),
                batch_size: batch,
            });
        fl.derivations.push(format!(
            "function {f}: messages of queue {q} / batch size {batch} invocations (full batches: the fewest; smaller batches at low rates mean more)"
        ));
    }
}

fn stream(spec: &DataPipelineSpec, v: &Volumes, s: &str, fl: &mut Flow) {
    let ext = v.streams.get(s).map_or(0.0, |x| x.records_per_second.value) * SECONDS_PER_MONTH;
    add(&mut fl.stream_records, s, ext);
    let records = get(&fl.stream_records, s);
    let shards = spec
        .streams
        .iter()
        .find(|x| x.name == s)
        .map_or(1.0, |x| match x.mode {
            StreamMode::Provisioned => f64::from(x.shards.unwrap_or(1)),
            StreamMode::OnDemand => ON_DEMAND_SHARDS,
        });
    let mut n = 0;
    for f in &spec.functions {
        for t in f.triggers.iter().filter_map(|t| t.stream.as_ref()) {
            if t.name != s {
                continue;
            }
            n += 1;
            let window = f64::from(t.batching_window_seconds.max(1));
            let pollers = shards * f64::from(t.parallelization_factor.max(1));
            let full = records / f64::from(t.batch_size.max(1));
            let by_window = records.min(pollers * SECONDS_PER_MONTH / window);
            let invocations = full.max(by_window);
            add(&mut fl.function_invocations, &f.name, invocations);
            add(&mut fl.function_items, &f.name, records);
            fl.derivations.push(format!(
                "function {}: stream {s}'s records in batches of up to {} or every {}s per shard (x{} shards x{} parallelization), whichever comes first: max(records / batch, min(records, shards x parallelization x seconds / window))",
                f.name,
                t.batch_size,
                window,
                shards,
                t.parallelization_factor.max(1)
            ));
        }
    }
    fl.stream_consumers.insert(s.to_owned(), n);
}

fn bus(spec: &DataPipelineSpec, v: &Volumes, e: &str, fl: &mut Flow) {
    let ext = v.buses.get(e).map_or(0.0, |x| x.events_per_day.value) * DAYS_PER_MONTH;
    add(&mut fl.bus_events, e, ext);
    let events = get(&fl.bus_events, e);
    for r in spec
        .rules
        .iter()
        .filter(|r| r.event_bus.as_deref() == Some(e))
    {
        let share = v.rules.get(&r.name).map_or(1.0, |s| s.value);
        add(&mut fl.rule_matches, &r.name, events * share);
    }
}

fn rule(spec: &DataPipelineSpec, r: &str, fl: &mut Flow) {
    let matches = get(&fl.rule_matches, r);
    let Some(rule) = spec.rules.iter().find(|x| x.name == r) else {
        return;
    };
    for t in &rule.targets {
        if let Some(q) = &t.queue {
            add(&mut fl.queue_messages, q, matches);
        }
        if let Some(f) = &t.function {
            add(&mut fl.function_invocations, f, matches);
            add(&mut fl.function_items, f, matches);
        }
        if let Some(w) = &t.workflow {
            add(&mut fl.workflow_executions, w, matches);
        }
    }
}

fn schedule(spec: &DataPipelineSpec, s: &str, fl: &mut Flow) -> Result<(), String> {
    let Some(sched) = spec.schedules.iter().find(|x| x.name == s) else {
        return Ok(());
    };
    let runs = if sched.enabled {
        scheduler::runs_per_month(&sched.expression)
            .map_err(|e| format!("spec.schedules {s}: {e}"))?
    } else {
        0.0
    };
    fl.schedule_runs.insert(s.to_owned(), runs);
    if let Some(f) = &sched.target.function {
        add(&mut fl.function_invocations, f, runs);
        add(&mut fl.function_items, f, runs);
    }
    if let Some(w) = &sched.target.workflow {
        add(&mut fl.workflow_executions, w, runs);
    }
    if let Some(q) = &sched.target.queue {
        add(&mut fl.queue_messages, q, runs);
    }
    fl.derivations.push(format!(
        "schedule {s}: {} runs a month from {}{}",
        super::number(runs, 2),
        sched.expression,
        scheduler::explain(&sched.expression)
    ));
    Ok(())
}

fn workflow(spec: &DataPipelineSpec, v: &Volumes, w: &str, fl: &mut Flow) {
    let ext = v
        .workflows
        .get(w)
        .map_or(0.0, |x| x.executions_per_day.value)
        * DAYS_PER_MONTH;
    add(&mut fl.workflow_executions, w, ext);
    let executions = get(&fl.workflow_executions, w);
    let Some(wf) = spec.workflows.iter().find(|x| x.name == w) else {
        return;
    };
    let items = v
        .workflows
        .get(w)
        .map(|x| {
            x.map_items
                .iter()
                .map(|(k, f)| (k.clone(), f.value))
                .collect()
        })
        .unwrap_or_default();
    let path = stepfunctions::path(&wf.definition, &items);
    for (f, n) in &path.tasks {
        add(&mut fl.function_invocations, f, executions * n);
        add(&mut fl.function_items, f, executions * n);
    }
    fl.derivations.push(format!(
        "workflow {w}: {} state transitions and {} per execution on its longest successful path ({}; no retries, no Catch taken)",
        super::short(path.transitions),
        if path.tasks.is_empty() {
            "no function invocations".to_owned()
        } else {
            path.tasks
                .iter()
                .map(|(f, n)| format!("{} x {f}", super::short(*n)))
                .collect::<Vec<_>>()
                .join(", ")
        },
        path.states.join(" -> ")
    ));
    fl.workflow_paths.insert(w.to_owned(), path);
}

fn function(spec: &DataPipelineSpec, v: &Volumes, f: &str, fl: &mut Flow) {
    let Some(func) = spec.functions.iter().find(|x| x.name == f) else {
        return;
    };
    let fv = v.functions.get(f);
    let ext = fv.map_or(0.0, |x| x.invocations_per_day.value) * DAYS_PER_MONTH;
    add(&mut fl.function_invocations, f, ext);
    add(&mut fl.function_items, f, ext);
    let items = get(&fl.function_items, f);
    let invocations = get(&fl.function_invocations, f);
    let mut read: BTreeSet<&str> = func
        .triggers
        .iter()
        .filter_map(|t| t.bucket.as_ref().map(|b| b.name.as_str()))
        .collect();
    for u in &func.uses {
        if let Some(b) = &u.bucket {
            if matches!(u.access, Access::Read | Access::ReadWrite) {
                read.insert(b);
            }
            if matches!(u.access, Access::Write | Access::ReadWrite) {
                add(&mut fl.bucket_puts, b, items);
            }
        }
        if let Some(q) = &u.queue {
            add(&mut fl.queue_messages, q, items);
        }
        if let Some(s) = &u.stream
            && u.access == Access::Put
        {
            add(&mut fl.stream_records, s, items);
        }
        if let Some(e) = &u.event_bus {
            add(&mut fl.bus_events, e, items);
        }
        if let Some(w) = &u.workflow {
            add(&mut fl.workflow_executions, w, items);
        }
        if let Some(t) = &u.table {
            let kb = v.tables.get(t).map_or(1.0, |x| x.average_item_kb.value);
            if matches!(u.access, Access::Write | Access::ReadWrite) {
                add(&mut fl.table_writes, t, items * chunks(kb, 1.0));
            }
            if matches!(u.access, Access::Read | Access::ReadWrite) {
                add(&mut fl.table_reads, t, items * chunks(kb, 4.0));
            }
        }
    }
    let reads = match fv.and_then(|x| x.reads_per_invocation) {
        Some(r) => invocations * r.value,
        None => items,
    };
    for b in read {
        add(&mut fl.bucket_gets, b, reads);
    }
    if let Some(i) = &func.idempotency {
        add(&mut fl.table_writes, &i.table, 2.0 * items);
        fl.derivations.push(format!(
            "function {f}: 2 writes to table {} per item it handles (the idempotency claim and its completion; no duplicates)",
            i.table
        ));
    }
    if let Some(r) = fv.and_then(|x| x.reads_per_invocation) {
        fl.derivations.push(format!(
            "function {f}: {} objects read per invocation from each bucket it reads (stated)",
            super::short(r.value)
        ));
    }
}

/// The flow's figures rounded, for tests.
#[cfg(test)]
pub fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
