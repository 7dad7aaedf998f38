//! `kubectl sluice graph`: a pipeline as a picture a reviewer can read,
//! every edge labelled with what it grants.
//!
//! [`Diagram::build`] turns a checked pipeline ([`Checked`]: the spec and
//! the operator's own plan) into a pure model: one [`Node`] per bucket,
//! queue (dead-letter queues included, declared or the `<queue>-dlq` Sluice
//! creates), event bus (the account's default bus when something uses it),
//! rule, stream, table, workflow (a cluster of its states), schedule and
//! function; one [`Edge`] per trigger, rule target, `uses`, dead letter,
//! failure destination, schedule target, workflow trigger, idempotency
//! table and Task state. The permissions on an edge are read from the plan
//! (the roles' inline policies [`crate::iam`] derives, and the queue and
//! function resource policies), so the picture shows what the operator
//! would really grant. [`Diagram::mermaid`] and [`Diagram::dot`] render it;
//! `-o svg` pipes the dot text through Graphviz.
//!
//! Output is deterministic: node ids derive from kinds and logical names,
//! everything is sorted, and no AWS name appears (they depend on the
//! installation), so `docs/graphs/` can be checked for staleness.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Path, PathBuf},
    process::{Command as Process, Stdio},
};

use serde_json::Value;

use super::{
    OK, Outcome,
    args::{Args, Output},
    check::{self, Checked, Setup},
    load,
};
use crate::{
    crd::DataPipelineSpec,
    iam::actions,
    plan::{
        CodePlan, Plan,
        graph::{DEFAULT_BUS, Graph},
    },
};

/// The kinds of node, in the order they are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    /// An S3 bucket.
    Bucket,
    /// An EventBridge Scheduler schedule.
    Schedule,
    /// A Kinesis data stream.
    Stream,
    /// An EventBridge event bus (the pipeline's, or the account's default).
    EventBus,
    /// An EventBridge rule.
    Rule,
    /// An SQS queue.
    Queue,
    /// An SQS queue that receives what another queue could not deliver.
    DeadLetterQueue,
    /// A Lambda function.
    Function,
    /// A Step Functions state machine.
    Workflow,
    /// A state of a workflow (in the workflow's cluster).
    State,
    /// A DynamoDB table.
    Table,
}

impl NodeKind {
    /// What the node is, under its name.
    pub fn caption(self) -> &'static str {
        match self {
            NodeKind::Bucket => "S3 bucket",
            NodeKind::Schedule => "EventBridge Scheduler schedule",
            NodeKind::Stream => "Kinesis stream",
            NodeKind::EventBus => "EventBridge bus",
            NodeKind::Rule => "EventBridge rule",
            NodeKind::Queue => "SQS queue",
            NodeKind::DeadLetterQueue => "SQS dead-letter queue",
            NodeKind::Function => "Lambda function",
            NodeKind::Workflow => "Step Functions workflow",
            NodeKind::State => "state",
            NodeKind::Table => "DynamoDB table",
        }
    }

    /// The kind's class (Mermaid) and id prefix.
    fn class(self) -> &'static str {
        match self {
            NodeKind::Bucket => "bucket",
            NodeKind::Schedule => "schedule",
            NodeKind::Stream => "stream",
            NodeKind::EventBus => "bus",
            NodeKind::Rule => "rule",
            NodeKind::Queue => "queue",
            NodeKind::DeadLetterQueue => "dlq",
            NodeKind::Function => "fn",
            NodeKind::Workflow => "workflow",
            NodeKind::State => "state",
            NodeKind::Table => "table",
        }
    }

    /// Fill and stroke colours.
    fn colours(self) -> (&'static str, &'static str) {
        match self {
            NodeKind::Bucket => ("#e8f5e9", "#2e7d32"),
            NodeKind::Schedule => ("#fce4ec", "#ad1457"),
            NodeKind::Stream => ("#e3f2fd", "#1565c0"),
            NodeKind::EventBus => ("#fce4ec", "#ad1457"),
            NodeKind::Rule => ("#fdf2f8", "#ad1457"),
            NodeKind::Queue => ("#f3e5f5", "#6a1b9a"),
            NodeKind::DeadLetterQueue => ("#ffebee", "#c62828"),
            NodeKind::Function => ("#fff3e0", "#e65100"),
            NodeKind::Workflow => ("#ede7f6", "#4527a0"),
            NodeKind::State => ("#ffffff", "#4527a0"),
            NodeKind::Table => ("#e8eaf6", "#283593"),
        }
    }
}

/// One resource of the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Stable id: the kind's prefix and the logical name (`fn_router`,
    /// `queue_type_a_dlq`, `state_etl__Extract`).
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// Its logical name (a state's name).
    pub name: String,
    /// Further lines: a function's runtime and handler, a rule's pattern.
    pub details: Vec<String>,
    /// The id of the cluster it is drawn in (a workflow's).
    pub cluster: Option<String>,
}

impl Node {
    /// The lines of its label: name, caption, details.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.name.clone()];
        if self.kind != NodeKind::State {
            lines.push(self.kind.caption().to_owned());
        }
        lines.extend(self.details.iter().cloned());
        lines
    }
}

/// The kinds of edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// A bucket, queue or stream invokes a function.
    Trigger,
    /// A bucket sends its events to EventBridge (workflow triggers).
    Notification,
    /// A bus hands events to a rule.
    Route,
    /// A rule delivers to a queue, function or workflow.
    Target,
    /// A schedule runs its target.
    Schedule,
    /// A function reads or writes a resource (`uses`).
    Uses,
    /// A function claims events in its idempotency table.
    Idempotency,
    /// A workflow's Task state invokes a function.
    Invoke,
    /// A workflow starts at, or moves to, a state.
    Transition,
    /// A workflow's Catch moves to a state.
    Catch,
    /// A queue, or a schedule, moves what it could not deliver to a
    /// dead-letter queue.
    DeadLetter,
    /// A function's failed invocations or records go to a queue.
    OnFailure,
}

impl EdgeKind {
    /// Whether it carries failures (drawn dashed).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            EdgeKind::DeadLetter | EdgeKind::OnFailure | EdgeKind::Catch
        )
    }

    /// Whether it carries the pipeline's data (drawn bold).
    pub fn is_data_flow(self) -> bool {
        matches!(
            self,
            EdgeKind::Trigger
                | EdgeKind::Notification
                | EdgeKind::Route
                | EdgeKind::Target
                | EdgeKind::Schedule
        )
    }
}

/// A relation between two nodes, with what it grants.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// Id of the node it leaves.
    pub from: String,
    /// Id of the node it reaches.
    pub to: String,
    /// What kind of relation.
    pub kind: EdgeKind,
    /// What it is: `uses (write)`, `trigger (batch 10)`.
    pub what: String,
    /// The IAM actions the plan grants for it, sorted: on the role of the
    /// function, workflow or schedule, or in the resource policy named in
    /// [`Edge::what`].
    pub grants: Vec<String>,
    /// The data flows from `to` to `from` (a function reading a resource
    /// it uses): Graphviz lays it out from `to`, so sources stay on the
    /// left, with the arrow still on `to`.
    pub upstream: bool,
}

impl Edge {
    /// The label: what it is, then what it grants
    /// (`uses (readWrite): s3:GetObject, s3:PutObject`).
    pub fn label(&self) -> String {
        if self.grants.is_empty() {
            self.what.clone()
        } else {
            format!("{}: {}", self.what, self.grants.join(", "))
        }
    }

    /// The label as drawn: on one line when it is short, else what it is
    /// (wrapped) and then one action a line, so labels stay narrow between
    /// the columns of a left-to-right graph.
    pub fn lines(&self) -> Vec<String> {
        let label = self.label();
        if label.is_empty() {
            return Vec::new();
        }
        if label.chars().count() <= WRAP {
            return vec![label];
        }
        if self.grants.is_empty() {
            return wrap(&label, WRAP);
        }
        let mut lines = wrap(&format!("{}:", self.what), WRAP + 14);
        lines.extend(self.grants.iter().cloned());
        lines
    }
}

/// A group of nodes drawn together: a workflow and its states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Stable id (`cluster_etl`).
    pub id: String,
    /// Its title.
    pub label: String,
}

/// A pipeline as a graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagram {
    /// `DataPipeline namespace/name`.
    pub title: String,
    /// Nodes, sorted by kind, then id.
    pub nodes: Vec<Node>,
    /// Edges, sorted.
    pub edges: Vec<Edge>,
    /// Clusters, sorted by id.
    pub clusters: Vec<Cluster>,
}

/// Widest line of a label, in characters, before it wraps.
const WRAP: usize = 30;

/// Most lines of an event pattern shown in a rule's node.
const PATTERN_LINES: usize = 6;

impl Diagram {
    /// The graph of a pipeline the operator's checks passed.
    pub fn build(checked: &Checked) -> Diagram {
        let mut b = Builder::new(&checked.pipeline.spec, &checked.plan, &checked.id);
        b.functions();
        b.queues();
        b.rules();
        b.workflows();
        b.schedules();
        b.resources();
        let mut nodes: Vec<Node> = b.nodes.into_values().collect();
        nodes.sort_by(|x, y| (x.kind, &x.id).cmp(&(y.kind, &y.id)));
        let mut edges = b.edges;
        edges.sort();
        edges.dedup();
        let mut clusters = b.clusters;
        clusters.sort_by(|x, y| x.id.cmp(&y.id));
        Diagram {
            title: format!("DataPipeline {}/{}", checked.id.namespace, checked.id.name),
            nodes,
            edges,
            clusters,
        }
    }

    /// The node of `id`.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The edges from `from` to `to`.
    pub fn edges_between(&self, from: &str, to: &str) -> Vec<&Edge> {
        self.edges
            .iter()
            .filter(|e| e.from == from && e.to == to)
            .collect()
    }

    /// A Mermaid flowchart, left to right.
    pub fn mermaid(&self) -> String {
        let mut out = format!(
            "%% {}: kubectl sluice graph (regenerate with make graphs)\nflowchart LR\n",
            mermaid_comment(&self.title)
        );
        for c in &self.clusters {
            out.push_str(&format!(
                "  subgraph {}[\"{}\"]\n    direction LR\n",
                c.id,
                mermaid_text(&c.label)
            ));
            for n in self
                .nodes
                .iter()
                .filter(|n| n.cluster.as_ref() == Some(&c.id))
            {
                out.push_str(&format!("    {}\n", mermaid_node(n)));
            }
            out.push_str("  end\n");
        }
        for n in self.nodes.iter().filter(|n| n.cluster.is_none()) {
            out.push_str(&format!("  {}\n", mermaid_node(n)));
        }
        for e in &self.edges {
            let arrow = if e.kind.is_failure() {
                "-.->"
            } else if e.kind.is_data_flow() {
                "==>"
            } else {
                "-->"
            };
            let lines = e.lines();
            if lines.is_empty() {
                out.push_str(&format!("  {} {arrow} {}\n", e.from, e.to));
            } else {
                let text = lines
                    .iter()
                    .map(|l| mermaid_text(l))
                    .collect::<Vec<_>>()
                    .join("<br/>");
                out.push_str(&format!("  {} {arrow}|\"{text}\"| {}\n", e.from, e.to));
            }
        }
        let mut by_class: BTreeMap<NodeKind, Vec<&str>> = BTreeMap::new();
        for n in &self.nodes {
            by_class.entry(n.kind).or_default().push(&n.id);
        }
        for (kind, ids) in by_class {
            let (fill, stroke) = kind.colours();
            out.push_str(&format!(
                "  classDef {} fill:{fill},stroke:{stroke},color:#212121\n  class {} {}\n",
                kind.class(),
                ids.join(","),
                kind.class()
            ));
        }
        out
    }

    /// Graphviz's language: left to right, a cluster per workflow.
    pub fn dot(&self) -> String {
        let mut out = format!(
            "// {}: kubectl sluice graph (regenerate with make graphs)\n\
             digraph \"{}\" {{\n  \
             graph [rankdir=LR, fontname=\"Helvetica\", fontsize=14, label=\"{}\", labelloc=t, \
             nodesep=0.25, ranksep=0.5, newrank=true, pad=0.3];\n  \
             node [fontname=\"Helvetica\", fontsize=11, style=\"filled\", margin=\"0.15,0.06\"];\n  \
             edge [fontname=\"Helvetica\", fontsize=9, color=\"#546e7a\", fontcolor=\"#37474f\"];\n",
            dot_comment(&self.title),
            dot_text(&self.title),
            dot_text(&self.title)
        );
        for c in &self.clusters {
            out.push_str(&format!(
                "  subgraph \"{}\" {{\n    label=\"{}\"; style=\"rounded,filled\"; fillcolor=\"#f6f3fc\"; \
                 color=\"#4527a0\"; fontsize=12;\n",
                dot_text(&c.id),
                dot_text(&c.label)
            ));
            for n in self
                .nodes
                .iter()
                .filter(|n| n.cluster.as_ref() == Some(&c.id))
            {
                out.push_str(&format!("    {}\n", dot_node(n)));
            }
            out.push_str("  }\n");
        }
        for n in self.nodes.iter().filter(|n| n.cluster.is_none()) {
            out.push_str(&format!("  {}\n", dot_node(n)));
        }
        for e in &self.edges {
            let mut attrs = Vec::new();
            let lines = e.lines();
            if !lines.is_empty() {
                attrs.push(format!("label=\"{}\"", dot_lines(&lines)));
            }
            if e.kind.is_failure() {
                attrs.push("style=dashed, color=\"#c62828\", fontcolor=\"#b71c1c\"".to_owned());
            } else if e.kind.is_data_flow() {
                attrs.push("penwidth=1.8, color=\"#37474f\"".to_owned());
            } else if matches!(e.kind, EdgeKind::Transition) {
                attrs.push("color=\"#4527a0\"".to_owned());
            }
            let (tail, head) = if e.upstream {
                attrs.push("dir=back".to_owned());
                (&e.to, &e.from)
            } else {
                (&e.from, &e.to)
            };
            out.push_str(&format!(
                "  \"{}\" -> \"{}\" [{}];\n",
                dot_text(tail),
                dot_text(head),
                attrs.join(", ")
            ));
        }
        out.push_str("}\n");
        out
    }
}

fn mermaid_node(n: &Node) -> String {
    let lines = n.lines();
    let mut text = format!("<b>{}</b>", mermaid_text(&lines[0]));
    for l in &lines[1..] {
        text.push_str("<br/>");
        text.push_str(&mermaid_text(l));
    }
    let (open, close) = match n.kind {
        NodeKind::Bucket => ("[/", "\\]"),
        NodeKind::Schedule => ("[\\", "/]"),
        NodeKind::Stream => ("[/", "/]"),
        NodeKind::EventBus => ("{{", "}}"),
        NodeKind::Rule => (">", "]"),
        NodeKind::Queue | NodeKind::DeadLetterQueue => ("[[", "]]"),
        NodeKind::Function => ("[", "]"),
        NodeKind::Workflow => ("([", "])"),
        NodeKind::State => ("(", ")"),
        NodeKind::Table => ("[(", ")]"),
    };
    format!("{}{open}\"{text}\"{close}", n.id)
}

fn dot_node(n: &Node) -> String {
    let (fill, stroke) = n.kind.colours();
    let shape = match n.kind {
        NodeKind::Bucket => "folder",
        NodeKind::Schedule => "tab",
        NodeKind::Stream => "parallelogram",
        NodeKind::EventBus => "hexagon",
        NodeKind::Rule => "cds",
        NodeKind::Queue | NodeKind::DeadLetterQueue => "box3d",
        NodeKind::Function => "box",
        NodeKind::Workflow => "box",
        NodeKind::State => "box",
        NodeKind::Table => "cylinder",
    };
    let margin = match n.kind {
        NodeKind::Rule => ", margin=\"0.3,0.1\"",
        _ => "",
    };
    let style = match n.kind {
        NodeKind::Workflow | NodeKind::State => "\"rounded,filled\"",
        NodeKind::Function => "\"filled,bold\"",
        _ => "filled",
    };
    format!(
        "\"{}\" [label=\"{}\", shape={shape}, style={style}, fillcolor=\"{fill}\", color=\"{stroke}\"{margin}];",
        dot_text(&n.id),
        dot_lines(&n.lines())
    )
}

/// Text inside a Mermaid quoted label: its entity codes for what would end
/// the string or read as markup.
pub fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Mermaid `%%` comment line holds anything but a line break.
fn mermaid_comment(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Text inside a Graphviz quoted string: backslashes and quotes escaped,
/// line breaks as spaces (lines are joined with `\n` by [`dot_lines`]).
pub fn dot_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn dot_lines(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| dot_text(l))
        .collect::<Vec<_>>()
        .join("\\n")
}

fn dot_comment(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// `text` in lines of at most `width` characters, broken after spaces
/// and commas (a longer word stays whole).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut word = String::new();
    let flush_word = |line: &mut String, word: &mut String, lines: &mut Vec<String>| {
        if !line.is_empty() && line.chars().count() + word.trim_end().chars().count() > width {
            lines.push(line.trim_end().to_owned());
            line.clear();
        }
        line.push_str(word);
        word.clear();
    };
    for c in text.chars() {
        word.push(c);
        if c == ' ' || c == ',' {
            flush_word(&mut line, &mut word, &mut lines);
        }
    }
    flush_word(&mut line, &mut word, &mut lines);
    if !line.trim_end().is_empty() {
        lines.push(line.trim_end().to_owned());
    }
    lines
}

/// A logical name as an id: its letters and digits, `_` for the rest
/// (logical names are `[a-z0-9-]`, so distinct names stay distinct).
fn ident(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// What each role's inline policy grants: role logical name → resource →
/// actions.
type RoleGrants = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

struct Builder<'a> {
    spec: &'a DataPipelineSpec,
    plan: &'a Plan,
    graph: Graph<'a>,
    roles: RoleGrants,
    nodes: BTreeMap<String, Node>,
    edges: Vec<Edge>,
    clusters: Vec<Cluster>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

impl<'a> Builder<'a> {
    fn new(spec: &'a DataPipelineSpec, plan: &'a Plan, id: &'a crate::naming::PipelineId) -> Self {
        let mut roles = RoleGrants::new();
        for r in &plan.roles {
            let grants = roles.entry(r.logical.clone()).or_default();
            for s in r.policy["Statement"].as_array().into_iter().flatten() {
                if s["Effect"] != "Allow" {
                    continue;
                }
                let actions = strings(&s["Action"]);
                for resource in strings(&s["Resource"]) {
                    grants
                        .entry(resource)
                        .or_default()
                        .extend(actions.iter().cloned());
                }
            }
        }
        Builder {
            spec,
            plan,
            graph: Graph::new(spec, id),
            roles,
            nodes: BTreeMap::new(),
            edges: Vec::new(),
            clusters: Vec::new(),
        }
    }

    /// The actions `role`'s policy grants on `resources`, of those in
    /// `allowed` (the edge's kind of grant: a role may hold other grants on
    /// the same resource for other edges).
    fn granted(&self, role: &str, resources: &[String], allowed: &[&[&str]]) -> Vec<String> {
        let allowed: BTreeSet<&str> = allowed.iter().flat_map(|a| a.iter().copied()).collect();
        let Some(grants) = self.roles.get(role) else {
            return Vec::new();
        };
        resources
            .iter()
            .filter_map(|r| grants.get(r))
            .flatten()
            .filter(|a| allowed.contains(a.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn add_node(&mut self, id: String, kind: NodeKind, name: &str, details: Vec<String>) -> String {
        self.nodes.entry(id.clone()).or_insert_with(|| Node {
            id: id.clone(),
            kind,
            name: name.to_owned(),
            details,
            cluster: None,
        });
        id
    }

    fn edge(&mut self, from: &str, to: &str, kind: EdgeKind, what: String, grants: Vec<String>) {
        self.edges.push(Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            kind,
            what,
            grants,
            upstream: false,
        });
    }

    fn bucket(&mut self, name: &str) -> String {
        self.add_node(
            format!("bucket_{}", ident(name)),
            NodeKind::Bucket,
            name,
            Vec::new(),
        )
    }

    /// A queue's node; a dead-letter queue's when Sluice creates it for
    /// another queue, or a queue's redrive or a schedule's dead letter
    /// names it.
    fn queue(&mut self, name: &str) -> String {
        let generated = self
            .graph
            .queues
            .get(name)
            .and_then(|q| q.dead_letter_of.clone());
        let declared_dlq = self.spec.queues.iter().any(|q| {
            q.dead_letter
                .as_ref()
                .and_then(|d| d.queue.as_deref())
                .is_some_and(|d| d == name)
        }) || self
            .spec
            .schedules
            .iter()
            .any(|s| s.dead_letter.as_ref().is_some_and(|d| d.queue == name));
        let fifo = self.graph.queues.get(name).is_some_and(|q| q.fifo);
        let mut details = Vec::new();
        if fifo {
            details.push("FIFO".to_owned());
        }
        let kind = if let Some(of) = generated {
            details.push(format!("created for {of}"));
            NodeKind::DeadLetterQueue
        } else if declared_dlq {
            NodeKind::DeadLetterQueue
        } else {
            NodeKind::Queue
        };
        self.add_node(format!("queue_{}", ident(name)), kind, name, details)
    }

    fn bus(&mut self, name: &str) -> String {
        let details = if name == DEFAULT_BUS {
            vec!["the account's".to_owned()]
        } else {
            Vec::new()
        };
        self.add_node(
            format!("bus_{}", ident(name)),
            NodeKind::EventBus,
            name,
            details,
        )
    }

    fn stream(&mut self, name: &str) -> String {
        let details = self
            .plan
            .streams
            .iter()
            .find(|s| s.logical == name)
            .map(|s| match s.shards {
                Some(1) => vec!["1 shard".to_owned()],
                Some(n) => vec![format!("{n} shards")],
                None => vec!["on demand".to_owned()],
            })
            .unwrap_or_default();
        self.add_node(
            format!("stream_{}", ident(name)),
            NodeKind::Stream,
            name,
            details,
        )
    }

    fn table(&mut self, name: &str) -> String {
        self.add_node(
            format!("table_{}", ident(name)),
            NodeKind::Table,
            name,
            Vec::new(),
        )
    }

    fn function(&self, name: &str) -> String {
        format!("fn_{}", ident(name))
    }

    fn workflow(&self, name: &str) -> String {
        format!("workflow_{}", ident(name))
    }

    /// Every function, its triggers, uses, idempotency table and failure
    /// destination.
    fn functions(&mut self) {
        let spec = self.spec;
        for f in &spec.functions {
            let planned = self.plan.functions.iter().find(|p| p.logical == f.name);
            let mut details = Vec::new();
            match planned.map(|p| &p.code) {
                Some(CodePlan::Image { uri, architecture }) => {
                    details.push(format!("image {uri}"));
                    details.push(architecture.clone());
                }
                Some(code) => {
                    let handler = code.handler().unwrap_or_default();
                    let runtime = code.runtime().unwrap_or_default();
                    if code.builtin().is_some() {
                        details.push(format!("built-in: {handler}"));
                    } else {
                        details.push(format!("handler: {handler}"));
                    }
                    details.push(format!("{runtime}, {}", code.architecture()));
                }
                None => details.extend(f.builtin().map(|h| format!("built-in: {h}"))),
            }
            details.push(format!("{} MiB, {} s", f.memory_mib, f.timeout_seconds));
            let me = self.function(&f.name);
            self.add_node(me.clone(), NodeKind::Function, &f.name, details);
            let role = f.name.as_str();

            for t in &f.triggers {
                if let Some(b) = &t.bucket {
                    let node = self.bucket(&b.name);
                    let mut events: Vec<&str> = b.events.iter().map(|e| e.as_aws()).collect();
                    events.sort();
                    events.dedup();
                    let mut what = format!("trigger {}", events.join(" "));
                    let filter: Vec<String> = [("prefix", &b.prefix), ("suffix", &b.suffix)]
                        .into_iter()
                        .filter_map(|(k, v)| {
                            v.as_ref()
                                .filter(|v| !v.is_empty())
                                .map(|v| format!("{k} {v}"))
                        })
                        .collect();
                    if !filter.is_empty() {
                        what.push_str(&format!(" ({})", filter.join(", ")));
                    }
                    let arn = self.graph.buckets.get(&b.name).map(|n| n.arn.clone());
                    let resources: Vec<String> = arn.iter().map(|a| format!("{a}/*")).collect();
                    let grants = self.granted(role, &resources, &[actions::S3_GET_OBJECTS]);
                    self.edge(&node, &me, EdgeKind::Trigger, what, grants);
                }
                if let Some(q) = &t.queue {
                    let node = self.queue(&q.name);
                    let Some(queue) = self.graph.queues.get(&q.name) else {
                        continue;
                    };
                    let mapping = self
                        .plan
                        .event_source_mappings
                        .iter()
                        .find(|m| m.logical == f.name && m.source_arn == queue.node.arn);
                    let mut settings = vec![format!(
                        "batch {}",
                        mapping.map_or(q.batch_size, |m| m.batch_size)
                    )];
                    if q.batching_window_seconds > 0 {
                        settings.push(format!("window {} s", q.batching_window_seconds));
                    }
                    if let Some(c) = q.max_concurrency {
                        settings.push(format!("max concurrency {c}"));
                    }
                    if mapping.is_some_and(|m| m.report_batch_item_failures) {
                        settings.push("partial failures".to_owned());
                    }
                    let resources: Vec<String> = std::iter::once(queue.node.arn.clone())
                        .chain(queue.node.kms_key.clone())
                        .collect();
                    let grants = self.granted(
                        role,
                        &resources,
                        &[actions::SQS_CONSUME, actions::KMS_DECRYPT],
                    );
                    self.edge(
                        &node,
                        &me,
                        EdgeKind::Trigger,
                        format!("trigger ({})", settings.join(", ")),
                        grants,
                    );
                }
                if let Some(s) = &t.stream {
                    let node = self.stream(&s.name);
                    let Some(stream) = self.graph.streams.get(&s.name) else {
                        continue;
                    };
                    let mut settings = vec![
                        format!("batch {}", s.batch_size),
                        s.starting_position.as_aws().to_owned(),
                    ];
                    if s.batching_window_seconds > 0 {
                        settings.insert(1, format!("window {} s", s.batching_window_seconds));
                    }
                    if s.bisect_on_error {
                        settings.push("bisect on error".to_owned());
                    }
                    if s.maximum_retry_attempts >= 0 {
                        settings.push(format!("{} retries", s.maximum_retry_attempts));
                    }
                    let resources: Vec<String> = std::iter::once(stream.arn.clone())
                        .chain(stream.kms_key.clone())
                        .collect();
                    let grants = self.granted(
                        role,
                        &resources,
                        &[actions::KINESIS_CONSUME, actions::KMS_DECRYPT],
                    );
                    self.edge(
                        &node,
                        &me,
                        EdgeKind::Trigger,
                        format!("trigger ({})", settings.join(", ")),
                        grants,
                    );
                    if let Some(d) = &s.on_failure {
                        let what = format!("on failure (stream {})", s.name);
                        self.send(&me, role, &d.queue, EdgeKind::OnFailure, what);
                    }
                }
            }

            for u in &f.uses {
                let Some((kind, name)) = crate::plan::function::use_node(u) else {
                    continue;
                };
                let what = format!("uses ({})", u.access.as_str());
                let before = self.edges.len();
                match kind {
                    "bucket" => {
                        let node = self.bucket(name);
                        let arn = self.graph.buckets.get(name).map(|n| n.arn.clone());
                        let resources: Vec<String> = arn
                            .iter()
                            .flat_map(|a| [a.clone(), format!("{a}/*")])
                            .collect();
                        let mut allowed = Vec::new();
                        if u.access.reads() {
                            allowed.extend([actions::S3_GET_OBJECTS, actions::S3_LIST]);
                        }
                        if u.access.writes() {
                            allowed.push(actions::S3_PUT_OBJECTS);
                        }
                        let grants = self.granted(role, &resources, &allowed);
                        self.edge(&me, &node, EdgeKind::Uses, what, grants);
                    }
                    "queue" => self.send(&me, role, name, EdgeKind::Uses, what),
                    "eventBus" => {
                        let node = self.bus(name);
                        let resources: Vec<String> = self
                            .graph
                            .buses
                            .get(name)
                            .map(|n| n.arn.clone())
                            .into_iter()
                            .collect();
                        let grants = self.granted(role, &resources, &[actions::EVENTS_PUT]);
                        self.edge(&me, &node, EdgeKind::Uses, what, grants);
                    }
                    "table" => {
                        let node = self.table(name);
                        let Some(t) = self.graph.tables.get(name) else {
                            continue;
                        };
                        let resources: Vec<String> = [t.arn.clone(), format!("{}/index/*", t.arn)]
                            .into_iter()
                            .chain(t.kms_key.clone())
                            .collect();
                        let mut allowed = Vec::new();
                        if u.access.reads() {
                            allowed.extend([actions::DYNAMODB_READ, actions::KMS_DECRYPT]);
                        }
                        if u.access.writes() {
                            allowed.extend([actions::DYNAMODB_WRITE, actions::KMS_ENCRYPT]);
                        }
                        let grants = self.granted(role, &resources, &allowed);
                        self.edge(&me, &node, EdgeKind::Uses, what, grants);
                    }
                    "stream" => {
                        let node = self.stream(name);
                        let Some(s) = self.graph.streams.get(name) else {
                            continue;
                        };
                        let resources: Vec<String> = std::iter::once(s.arn.clone())
                            .chain(s.kms_key.clone())
                            .collect();
                        let allowed = if u.access == crate::crd::Access::Put {
                            [actions::KINESIS_PUT, actions::KMS_ENCRYPT]
                        } else {
                            [actions::KINESIS_READ, actions::KMS_DECRYPT]
                        };
                        let grants = self.granted(role, &resources, &allowed);
                        self.edge(&me, &node, EdgeKind::Uses, what, grants);
                    }
                    _ => {
                        let node = self.workflow(name);
                        let resources: Vec<String> = self
                            .graph
                            .workflows
                            .get(name)
                            .map(|n| n.arn.clone())
                            .into_iter()
                            .collect();
                        let grants = self.granted(role, &resources, &[actions::STATES_START]);
                        self.edge(&me, &node, EdgeKind::Uses, what, grants);
                    }
                }
                if u.access == crate::crd::Access::Read {
                    for e in &mut self.edges[before..] {
                        e.upstream = true;
                    }
                }
            }

            if let Some(i) = &f.idempotency {
                let node = self.table(&i.table);
                let resources: Vec<String> = self
                    .graph
                    .tables
                    .get(&i.table)
                    .map(|t| {
                        std::iter::once(t.arn.clone())
                            .chain(t.kms_key.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let grants = self.granted(
                    role,
                    &resources,
                    &[actions::DYNAMODB_IDEMPOTENCY, actions::KMS_ENCRYPT],
                );
                self.edge(
                    &me,
                    &node,
                    EdgeKind::Idempotency,
                    "idempotency".into(),
                    grants,
                );
            }

            if let Some(a) = &f.async_invocation
                && let Some(d) = &a.on_failure
            {
                let what = format!("on failure (async, {} retries)", a.maximum_retry_attempts);
                self.send(&me, role, &d.queue, EdgeKind::OnFailure, what);
            }
        }
    }

    /// An edge from `from` to the queue `queue` that `role` may send to.
    fn send(&mut self, from: &str, role: &str, queue: &str, kind: EdgeKind, what: String) {
        let node = self.queue(queue);
        let resources: Vec<String> = self
            .graph
            .queues
            .get(queue)
            .map(|q| {
                std::iter::once(q.node.arn.clone())
                    .chain(q.node.kms_key.clone())
                    .collect()
            })
            .unwrap_or_default();
        let grants = self.granted(role, &resources, &[actions::SQS_SEND, actions::KMS_ENCRYPT]);
        self.edge(from, &node, kind, what, grants);
    }

    /// Every queue, and each redrive to its dead-letter queue.
    fn queues(&mut self) {
        let by_arn: BTreeMap<String, String> = self
            .graph
            .queues
            .iter()
            .map(|(logical, q)| (q.node.arn.clone(), logical.clone()))
            .collect();
        for q in &self.plan.queues {
            let node = self.queue(&q.logical);
            if let Some(r) = &q.redrive
                && let Some(dlq) = by_arn.get(&r.dead_letter_arn)
            {
                let to = self.queue(dlq);
                self.edge(
                    &node,
                    &to,
                    EdgeKind::DeadLetter,
                    format!("dead letter after {} receives", r.max_receive_count),
                    Vec::new(),
                );
            }
        }
    }

    /// Every rule: the bus it listens on and its targets, with the queue
    /// policies, invoke permissions and start roles that let them deliver.
    fn rules(&mut self) {
        let spec = self.spec;
        for r in &spec.rules {
            let Some(rule) = self.graph.rules.get(&r.name).cloned() else {
                continue;
            };
            let mut details = pattern_lines(&r.pattern);
            if !r.enabled {
                details.push("disabled".to_owned());
            }
            let me = self.add_node(
                format!("rule_{}", ident(&r.name)),
                NodeKind::Rule,
                &r.name,
                details,
            );
            let bus = self.bus(r.event_bus.as_deref().unwrap_or(DEFAULT_BUS));
            self.edge(&bus, &me, EdgeKind::Route, String::new(), Vec::new());
            for t in &r.targets {
                if let Some(q) = &t.queue {
                    let node = self.queue(q);
                    let grants = self
                        .plan
                        .queues
                        .iter()
                        .find(|p| &p.logical == q)
                        .and_then(|p| p.policy.as_ref())
                        .map(|p| policy_actions_for(p, &rule.node.arn))
                        .unwrap_or_default();
                    self.edge(
                        &me,
                        &node,
                        EdgeKind::Target,
                        "target (queue policy)".into(),
                        grants,
                    );
                }
                if let Some(f) = &t.function {
                    let node = self.function(f);
                    let grants: Vec<String> = self
                        .plan
                        .permissions
                        .iter()
                        .filter(|p| &p.logical == f)
                        .flat_map(|p| &p.statements)
                        .filter(|s| {
                            s.principal == "events.amazonaws.com" && s.source_arn == rule.node.arn
                        })
                        .map(|_| "lambda:InvokeFunction".to_owned())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    self.edge(
                        &me,
                        &node,
                        EdgeKind::Target,
                        "target (invoke permission)".into(),
                        grants,
                    );
                }
                if let Some(w) = &t.workflow {
                    self.start(&me, w, "target");
                }
            }
        }
        // Buckets that start workflows send their events to the default
        // bus; a rule Sluice derives starts the workflow.
        for n in &self.plan.notifications {
            if n.eventbridge {
                let bucket = self.bucket(&n.logical);
                let bus = self.bus(DEFAULT_BUS);
                self.edge(
                    &bucket,
                    &bus,
                    EdgeKind::Notification,
                    "S3 events to EventBridge".into(),
                    Vec::new(),
                );
            }
        }
        for w in &spec.workflows {
            for t in &w.triggers {
                let Some(b) = &t.bucket else { continue };
                let logical = format!("{}-from-{}", w.name, b.name);
                if !self
                    .plan
                    .rules
                    .iter()
                    .any(|r| r.logical == logical && r.bus == DEFAULT_BUS)
                {
                    continue;
                }
                let mut details = vec![format!("Object Created in {}", b.name)];
                if let Some(p) = b.prefix.as_ref().filter(|p| !p.is_empty()) {
                    details.push(format!("key prefix {p}"));
                }
                if let Some(s) = b.suffix.as_ref().filter(|s| !s.is_empty()) {
                    details.push(format!("key suffix {s}"));
                }
                details.push(format!("Sluice's, for {}'s trigger", w.name));
                let me = self.add_node(
                    format!("wfrule_{}__{}", ident(&w.name), ident(&b.name)),
                    NodeKind::Rule,
                    &logical,
                    details,
                );
                let bus = self.bus(DEFAULT_BUS);
                self.edge(&bus, &me, EdgeKind::Route, String::new(), Vec::new());
                self.start(&me, &w.name, "trigger");
            }
        }
    }

    /// An edge from a rule to the workflow `w` it starts with the role
    /// EventBridge assumes.
    fn start(&mut self, from: &str, w: &str, what: &str) {
        let node = self.workflow(w);
        let role = crate::plan::graph::role_key("start", w);
        let resources: Vec<String> = self
            .graph
            .workflows
            .get(w)
            .map(|n| n.arn.clone())
            .into_iter()
            .collect();
        let grants = self.granted(&role, &resources, &[actions::STATES_START]);
        self.edge(
            from,
            &node,
            EdgeKind::Target,
            format!("{what} (role {role})"),
            grants,
        );
    }

    /// Every workflow as a cluster of its states, each Task state linked to
    /// the function it invokes.
    fn workflows(&mut self) {
        let spec = self.spec;
        for w in &spec.workflows {
            let cluster = format!("cluster_{}", ident(&w.name));
            self.clusters.push(Cluster {
                id: cluster.clone(),
                label: format!("workflow {}", w.name),
            });
            let mut details = vec![w.type_.as_aws().to_owned()];
            if w.logging != crate::crd::LoggingLevel::None {
                details.push(format!("logs {}", w.logging.as_aws()));
            }
            if w.tracing {
                details.push("X-Ray".to_owned());
            }
            let me = self.workflow(&w.name);
            self.add_node(me.clone(), NodeKind::Workflow, &w.name, details);
            if let Some(n) = self.nodes.get_mut(&me) {
                n.cluster = Some(cluster.clone());
            }
            let role = crate::plan::graph::role_key("workflow", &w.name);
            let mut states = Vec::new();
            collect_states(&w.definition, &mut states);
            let id_of = |name: &str| format!("state_{}__{}", ident(&w.name), ident(name));
            // State names are unique across a machine, but two may map to
            // one id (`a b` and `a_b`): the later one gets a suffix.
            let mut ids: BTreeMap<String, String> = BTreeMap::new();
            let mut taken: BTreeSet<String> = BTreeSet::new();
            for s in &states {
                let base = id_of(&s.name);
                let mut id = base.clone();
                let mut n = 2;
                while !taken.insert(id.clone()) {
                    id = format!("{base}_{n}");
                    n += 1;
                }
                ids.insert(s.name.clone(), id);
            }
            if let Some(start) = w.definition["StartAt"].as_str()
                && let Some(to) = ids.get(start)
            {
                self.edge(&me, to, EdgeKind::Transition, "start".into(), Vec::new());
            }
            for s in &states {
                let Some(id) = ids.get(&s.name).cloned() else {
                    continue;
                };
                self.add_node(id.clone(), NodeKind::State, &s.name, s.details.clone());
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.cluster = Some(cluster.clone());
                }
                for (to, kind, what) in &s.next {
                    if let Some(to) = ids.get(to) {
                        self.edge(&id, to, *kind, what.clone(), Vec::new());
                    }
                }
                if let Some(f) = &s.function {
                    let node = self.function(f);
                    let resources: Vec<String> = self
                        .graph
                        .functions
                        .get(f)
                        .map(|n| n.arn.clone())
                        .into_iter()
                        .collect();
                    let grants = self.granted(&role, &resources, &[actions::LAMBDA_INVOKE]);
                    self.edge(&id, &node, EdgeKind::Invoke, "invoke".into(), grants);
                }
            }
        }
    }

    /// Every schedule: its target and dead letter, with its role's grants.
    fn schedules(&mut self) {
        let spec = self.spec;
        for s in &spec.schedules {
            let mut details = vec![s.expression.trim().to_owned(), s.timezone.clone()];
            if let Some(r) = s.retry {
                details.push(format!(
                    "{} retries, {} s max age",
                    r.maximum_retry_attempts, r.maximum_event_age_seconds
                ));
            }
            if !s.enabled {
                details.push("disabled".to_owned());
            }
            let me = self.add_node(
                format!("schedule_{}", ident(&s.name)),
                NodeKind::Schedule,
                &s.name,
                details,
            );
            let role = crate::plan::graph::role_key("schedule", &s.name);
            if let Some(f) = &s.target.function {
                let node = self.function(f);
                let resources: Vec<String> = self
                    .graph
                    .functions
                    .get(f)
                    .map(|n| n.arn.clone())
                    .into_iter()
                    .collect();
                let grants = self.granted(&role, &resources, &[actions::LAMBDA_INVOKE]);
                self.edge(&me, &node, EdgeKind::Schedule, "runs".into(), grants);
            }
            if let Some(w) = &s.target.workflow {
                let node = self.workflow(w);
                let resources: Vec<String> = self
                    .graph
                    .workflows
                    .get(w)
                    .map(|n| n.arn.clone())
                    .into_iter()
                    .collect();
                let grants = self.granted(&role, &resources, &[actions::STATES_START]);
                self.edge(&me, &node, EdgeKind::Schedule, "starts".into(), grants);
            }
            if let Some(q) = &s.target.queue {
                self.send(&me, &role, q, EdgeKind::Schedule, "sends".into());
            }
            if let Some(d) = &s.dead_letter {
                self.send(
                    &me,
                    &role,
                    &d.queue,
                    EdgeKind::DeadLetter,
                    "dead letter".into(),
                );
            }
        }
    }

    /// Resources no edge reached: drawn alone.
    fn resources(&mut self) {
        let spec = self.spec;
        for b in &spec.buckets {
            self.bucket(&b.name);
        }
        for b in &spec.event_buses {
            self.bus(&b.name);
        }
        for s in &spec.streams {
            self.stream(&s.name);
        }
        for t in &spec.tables {
            self.table(&t.name);
        }
        for q in self.graph.queues.keys().cloned().collect::<Vec<_>>() {
            self.queue(&q);
        }
    }
}

/// The actions a resource policy allows to sources including `source_arn`
/// (an `ArnEquals aws:SourceArn` condition), or to anyone when it has no
/// such condition.
fn policy_actions_for(policy: &Value, source_arn: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for s in policy["Statement"].as_array().into_iter().flatten() {
        if s["Effect"] != "Allow" {
            continue;
        }
        let sources = strings(&s["Condition"]["ArnEquals"]["aws:SourceArn"]);
        if sources.is_empty() || sources.iter().any(|a| a == source_arn) {
            out.extend(strings(&s["Action"]));
        }
    }
    out.into_iter().collect()
}

/// An event pattern as lines `path: value | value` (matchers as JSON), at
/// most [`PATTERN_LINES`].
fn pattern_lines(pattern: &Value) -> Vec<String> {
    fn walk(path: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(fields) if !path.starts_with('$') => {
                for (k, v) in fields {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            Value::Array(values) => {
                let shown: Vec<String> = values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push(format!("{path}: {}", shown.join(" | ")));
            }
            other => out.push(format!("{path}: {other}")),
        }
    }
    let mut out = Vec::new();
    walk("", pattern, &mut out);
    out.sort();
    if out.len() > PATTERN_LINES {
        let more = out.len() - (PATTERN_LINES - 1);
        out.truncate(PATTERN_LINES - 1);
        out.push(format!("… and {more} more"));
    }
    out
}

/// A state of a workflow, with where it goes.
#[derive(Debug)]
struct StateInfo {
    name: String,
    details: Vec<String>,
    function: Option<String>,
    next: Vec<(String, EdgeKind, String)>,
}

/// The states of a machine (`definition`, with `StartAt` and `States`),
/// nested machines (Parallel branches, Map iterators) included.
fn collect_states(definition: &Value, out: &mut Vec<StateInfo>) {
    let Some(states) = definition["States"].as_object() else {
        return;
    };
    let mut names: Vec<&String> = states.keys().collect();
    names.sort();
    for name in names {
        let s = &states[name.as_str()];
        let kind = s["Type"].as_str().unwrap_or("?");
        let mut details = vec![kind.to_owned()];
        let mut next = Vec::new();
        if let Some(n) = s["Next"].as_str() {
            next.push((n.to_owned(), EdgeKind::Transition, String::new()));
        }
        if let Some(n) = s["Default"].as_str() {
            next.push((n.to_owned(), EdgeKind::Transition, "default".to_owned()));
        }
        for c in s["Choices"].as_array().into_iter().flatten() {
            if let Some(n) = c["Next"].as_str() {
                next.push((n.to_owned(), EdgeKind::Transition, "choice".to_owned()));
            }
        }
        for c in s["Catch"].as_array().into_iter().flatten() {
            if let Some(n) = c["Next"].as_str() {
                let errors = strings(&c["ErrorEquals"]).join(", ");
                next.push((n.to_owned(), EdgeKind::Catch, format!("catch {errors}")));
            }
        }
        if let Some(r) = s["Retry"].as_array().filter(|r| !r.is_empty()) {
            let attempts: Vec<String> = r
                .iter()
                .map(|r| r["MaxAttempts"].as_u64().unwrap_or(3).to_string())
                .collect();
            details.push(format!("retry {}×", attempts.join("/")));
        }
        if kind == "Fail"
            && let Some(e) = s["Error"].as_str()
        {
            details.push(e.to_owned());
        }
        let mut nested = Vec::new();
        for b in s["Branches"].as_array().into_iter().flatten() {
            nested.push(b);
        }
        for key in ["Iterator", "ItemProcessor"] {
            if s[key].is_object() {
                nested.push(&s[key]);
            }
        }
        for machine in nested {
            if let Some(start) = machine["StartAt"].as_str() {
                let what = if kind == "Map" { "each item" } else { "branch" };
                next.push((start.to_owned(), EdgeKind::Transition, what.to_owned()));
            }
            collect_states(machine, out);
        }
        out.push(StateInfo {
            name: name.clone(),
            details,
            function: task_function(s),
            next,
        });
    }
}

/// The logical name of the function a Task state runs, in either form
/// (see [`crate::asl`]).
fn task_function(task: &Value) -> Option<String> {
    let resource = task["Resource"].as_str()?;
    if let Some(name) = resource.strip_prefix(crate::asl::FUNCTION_PREFIX) {
        return Some(name.to_owned());
    }
    if resource.contains(":states:::lambda:invoke") {
        return task["Parameters"]["FunctionName"]
            .as_str()
            .map(str::to_owned);
    }
    None
}

/// Runs `graph`.
pub fn run(
    args: &Args,
    setup: &Setup,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Outcome, String> {
    if !args.files.is_empty() && !args.positional.is_empty() {
        return Err(format!(
            "graph takes -f FILE or a NAME, not both (got {})",
            args.positional.join(" ")
        ));
    }
    let format = args.output.unwrap_or(Output::Mermaid);
    if matches!(format, Output::Text | Output::Json) {
        return Err(format!("graph prints mermaid, dot or svg, not {format:?}"));
    }
    let manifest = match &args.positional[..] {
        [] => check::one_pipeline(load::read(&args.files)?, "graph")?,
        [name] => from_cluster(args.namespace.as_deref(), name)?,
        more => {
            return Err(format!(
                "graph draws one pipeline; {} names were given",
                more.len()
            ));
        }
    };
    let checked = check::check_or_explain(&manifest, setup, args)?;
    let diagram = Diagram::build(&checked);
    let stdout = match format {
        Output::Dot => diagram.dot(),
        Output::Svg => svg(&diagram.dot(), env)?,
        _ => diagram.mermaid(),
    };
    Ok(Outcome { stdout, code: OK })
}

/// The pipeline `name` as the cluster holds it (its spec, as applied).
fn from_cluster(namespace: Option<&str>, name: &str) -> Result<load::Manifest, String> {
    super::cluster::block_on(async {
        let (client, namespace) = super::cluster::connect(namespace).await?;
        let dp = super::cluster::pipeline(&client, &namespace, name).await?;
        Ok(load::Manifest {
            source: format!("DataPipeline {namespace}/{name}"),
            object: super::cluster::as_manifest(&dp),
        })
    })
}

/// What to do when Graphviz is missing.
pub const INSTALL_GRAPHVIZ: &str = "install Graphviz (apt-get install graphviz, or make tools-graphviz), or set SLUICE_DOT to its dot";

/// Graphviz's `dot`: `SLUICE_DOT`, else the first `dot` on the `PATH`.
pub fn find_dot(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    if let Some(dot) = env("SLUICE_DOT").filter(|v| !v.trim().is_empty()) {
        let path = PathBuf::from(dot);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "SLUICE_DOT={}: no such file; {INSTALL_GRAPHVIZ}",
                path.display()
            ))
        };
    }
    env("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join("dot"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!("-o svg renders with Graphviz's dot, not found on the PATH: {INSTALL_GRAPHVIZ}")
        })
}

/// `dot` text rendered as SVG by Graphviz.
pub fn svg(dot: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let program = find_dot(env)?;
    let mut child = Process::new(&program)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}; {INSTALL_GRAPHVIZ}", program.display()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| format!("{}: no standard input", program.display()))?;
    let text = dot.to_owned();
    // dot reads its whole input before it writes; a thread keeps a large
    // graph from filling both pipes at once anyway.
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    writer
        .join()
        .map_err(|_| format!("{}: writing its input failed", program.display()))?
        .map_err(|e| format!("{}: writing its input: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} -Tsvg failed ({}): {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{} wrote no UTF-8: {e}", program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{args, check::Setup, run};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repository root")
            .to_owned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    /// Every sample of config/samples/, by name, sorted.
    fn samples() -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(root().join("config/samples"))
            .expect("config/samples")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| {
                let name = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .expect("name")
                    .to_owned();
                (name, p)
            })
            .collect();
        out.sort();
        out
    }

    fn checked(yaml: &str) -> Checked {
        let manifests = load::parse("test.yaml", yaml).expect("yaml");
        let setup = Setup::new(no_env, None, None).expect("setup");
        check::check(&manifests[0], &setup, None, None).expect("a valid pipeline")
    }

    fn diagram(yaml: &str) -> Diagram {
        Diagram::build(&checked(yaml))
    }

    fn sample(name: &str) -> Diagram {
        diagram(
            &std::fs::read_to_string(root().join(format!("config/samples/{name}.yaml")))
                .expect("sample"),
        )
    }

    fn edge<'a>(d: &'a Diagram, from: &str, to: &str, kind: EdgeKind) -> &'a Edge {
        d.edges_between(from, to)
            .into_iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} edge {from} -> {to} in {:#?}", d.edges))
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The first line where `got` and the committed file differ.
    fn first_difference(want: &str, got: &str) -> String {
        let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
        for i in 0..w.len().max(g.len()) {
            if w.get(i) != g.get(i) {
                return format!(
                    "line {}:\n  committed: {:?}\n  drawn:     {:?}",
                    i + 1,
                    w.get(i),
                    g.get(i)
                );
            }
        }
        "same lines, different line ends".into()
    }

    #[test]
    fn the_graphs_in_docs_are_what_every_sample_draws() {
        let samples = samples();
        assert_eq!(samples.len(), 6, "one sample per pattern and own code");
        for (name, path) in &samples {
            for (format, ext) in [("mermaid", "mmd"), ("dot", "dot")] {
                let a = args::parse(&argv(&format!("graph -f {} -o {format}", path.display())))
                    .expect("args");
                let drawn = run(&a, &no_env).expect("draws").stdout;
                let file = root().join(format!("docs/graphs/{name}.{ext}"));
                let committed = std::fs::read_to_string(&file).unwrap_or_default();
                assert!(
                    committed == drawn,
                    "docs/graphs/{name}.{ext} is not what `kubectl sluice graph -o {format}` draws \
                     ({}); run `make graphs` and commit",
                    first_difference(&committed, &drawn)
                );
            }
        }
        // And nothing stale: every drawing is of a sample.
        let names: BTreeSet<String> = samples.into_iter().map(|(n, _)| n).collect();
        for entry in std::fs::read_dir(root().join("docs/graphs")).expect("docs/graphs") {
            let path = entry.expect("entry").path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            assert!(
                names.contains(stem),
                "{}: no such sample in config/samples/",
                path.display()
            );
        }
    }

    #[test]
    fn a_uses_edge_carries_the_actions_its_role_is_granted() {
        let d = sample("fan-out");
        let write = edge(&d, "fn_processor_a", "bucket_output", EdgeKind::Uses);
        assert_eq!(
            write.grants,
            strs(&["s3:AbortMultipartUpload", "s3:PutObject"])
        );
        assert_eq!(
            write.label(),
            "uses (write): s3:AbortMultipartUpload, s3:PutObject"
        );
        let read = edge(&d, "fn_processor_a", "bucket_input", EdgeKind::Uses);
        assert_eq!(read.grants, strs(&["s3:GetObject", "s3:ListBucket"]));
        assert!(read.upstream, "a read is laid out from the bucket");
        let put = edge(&d, "fn_router", "bus_main", EdgeKind::Uses);
        assert_eq!(put.label(), "uses (put): events:PutEvents");
        let consume = edge(&d, "queue_type_a", "fn_processor_a", EdgeKind::Trigger);
        assert_eq!(consume.grants, strs(actions::SQS_CONSUME));
        assert!(consume.what.contains("batch 10"), "{}", consume.what);
        let claims = edge(
            &d,
            "fn_processor_a",
            "table_processed",
            EdgeKind::Idempotency,
        );
        assert_eq!(claims.grants, strs(actions::DYNAMODB_IDEMPOTENCY));

        // readWrite: both, and the trigger on the same bucket only its own.
        let d = diagram(
            "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {name: rw}\nspec:\n\
             \x20 buckets: [{name: data}]\n\
             \x20 functions:\n\
             \x20   - name: f\n\
             \x20     handler: s3-json-transform\n\
             \x20     triggers: [{bucket: {name: data}}]\n\
             \x20     uses: [{bucket: data, access: readWrite, env: OUTPUT_BUCKET}]\n",
        );
        assert_eq!(
            edge(&d, "fn_f", "bucket_data", EdgeKind::Uses).label(),
            "uses (readWrite): s3:AbortMultipartUpload, s3:GetObject, s3:ListBucket, s3:PutObject"
        );
        assert_eq!(
            edge(&d, "bucket_data", "fn_f", EdgeKind::Trigger).grants,
            strs(&["s3:GetObject"])
        );
    }

    #[test]
    fn the_actions_are_read_from_the_plan_not_assumed() {
        let yaml =
            std::fs::read_to_string(root().join("config/samples/stream.yaml")).expect("sample");
        let mut c = checked(&yaml);
        let before = Diagram::build(&c);
        assert_eq!(
            edge(&before, "fn_processor", "table_results", EdgeKind::Uses).grants,
            strs(actions::DYNAMODB_WRITE)
        );
        // A plan whose role granted nothing would show nothing granted.
        for r in &mut c.plan.roles {
            r.policy = serde_json::json!({"Version": "2012-10-17", "Statement": []});
        }
        let after = Diagram::build(&c);
        let e = edge(&after, "fn_processor", "table_results", EdgeKind::Uses);
        assert!(e.grants.is_empty());
        assert_eq!(e.label(), "uses (write)");
    }

    #[test]
    fn a_generated_dead_letter_queue_appears_with_its_redrive() {
        let d = sample("fan-out");
        let dlq = d.node("queue_type_a_dlq").expect("type-a-dlq");
        assert_eq!(dlq.kind, NodeKind::DeadLetterQueue);
        assert_eq!(dlq.name, "type-a-dlq");
        let redrive = edge(&d, "queue_type_a", "queue_type_a_dlq", EdgeKind::DeadLetter);
        assert_eq!(redrive.label(), "dead letter after 3 receives");
        // Its consumer, and the router's failure destination.
        edge(&d, "queue_type_a_dlq", "fn_dead_letters", EdgeKind::Trigger);
        let failures = edge(
            &d,
            "fn_router",
            "queue_router_failures",
            EdgeKind::OnFailure,
        );
        assert_eq!(failures.grants, strs(&["sqs:SendMessage"]));

        // A declared dead-letter queue: no generated one.
        let d = diagram(
            "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {name: dl}\nspec:\n\
             \x20 queues:\n\
             \x20   - {name: work, deadLetter: {maxReceiveCount: 5, queue: parked}}\n\
             \x20   - {name: parked}\n",
        );
        assert_eq!(
            d.node("queue_parked").expect("parked").kind,
            NodeKind::DeadLetterQueue
        );
        assert_eq!(d.node("queue_work").expect("work").kind, NodeKind::Queue);
        assert!(d.node("queue_work_dlq").is_none());
        edge(&d, "queue_work", "queue_parked", EdgeKind::DeadLetter);
    }

    #[test]
    fn a_task_state_links_to_the_function_it_invokes() {
        let d = sample("orchestrated");
        assert_eq!(
            d.clusters,
            vec![Cluster {
                id: "cluster_etl".into(),
                label: "workflow etl".into()
            }]
        );
        for (state, function) in [
            ("Extract", "extract"),
            ("Transform", "transform"),
            ("Load", "load"),
            ("Notify", "notify"),
        ] {
            let id = format!("state_etl__{state}");
            let n = d.node(&id).expect("state");
            assert_eq!(n.cluster.as_deref(), Some("cluster_etl"));
            assert_eq!(n.details[0], "Task");
            let invoke = edge(&d, &id, &format!("fn_{function}"), EdgeKind::Invoke);
            assert_eq!(invoke.label(), "invoke: lambda:InvokeFunction");
        }
        let fail = d.node("state_etl__ProcessingFailed").expect("Fail");
        assert_eq!(fail.details, strs(&["Fail", "DataPipelineError"]));
        edge(
            &d,
            "workflow_etl",
            "state_etl__Extract",
            EdgeKind::Transition,
        );
        edge(
            &d,
            "state_etl__Extract",
            "state_etl__Transform",
            EdgeKind::Transition,
        );
        let catch = edge(
            &d,
            "state_etl__Extract",
            "state_etl__ProcessingFailed",
            EdgeKind::Catch,
        );
        assert_eq!(catch.label(), "catch States.ALL");
        // The bucket starts it through the default bus and a rule Sluice
        // derives, with the role EventBridge assumes.
        assert_eq!(
            d.node("bus_default").expect("default bus").kind,
            NodeKind::EventBus
        );
        edge(&d, "bucket_input", "bus_default", EdgeKind::Notification);
        edge(&d, "bus_default", "wfrule_etl__input", EdgeKind::Route);
        let start = edge(&d, "wfrule_etl__input", "workflow_etl", EdgeKind::Target);
        assert_eq!(
            start.label(),
            "trigger (role start:etl): states:StartExecution"
        );
    }

    #[test]
    fn rule_and_schedule_targets_show_the_policy_or_role_that_lets_them_deliver() {
        let d = diagram(
            r#"apiVersion: sluice.dev/v1alpha1
kind: DataPipeline
metadata: {name: targets}
spec:
  queues: [{name: inbox}, {name: missed}]
  functions:
    - {name: f, handler: notify}
  workflows:
    - name: flow
      definition:
        StartAt: Pick
        States:
          Pick:
            Type: Choice
            Choices: [{Variable: "$.go", BooleanEquals: true, Next: Run}]
            Default: Done
          Run:
            Type: Parallel
            Branches:
              - {StartAt: One, States: {One: {Type: Task, Resource: "function:f", End: true}}}
            End: true
          Done: {Type: Succeed}
  rules:
    - name: direct
      pattern: {detail-type: [ping]}
      targets: [{function: f}, {workflow: flow}]
  schedules:
    - name: hourly
      expression: rate(1 hour)
      target: {queue: inbox}
      deadLetter: {queue: missed}
"#,
        );
        assert_eq!(
            d.node("bus_default").expect("rule on the default bus").kind,
            NodeKind::EventBus
        );
        edge(&d, "bus_default", "rule_direct", EdgeKind::Route);
        assert_eq!(
            edge(&d, "rule_direct", "fn_f", EdgeKind::Target).label(),
            "target (invoke permission): lambda:InvokeFunction"
        );
        assert_eq!(
            edge(&d, "rule_direct", "workflow_flow", EdgeKind::Target).label(),
            "target (role start:flow): states:StartExecution"
        );
        assert_eq!(
            edge(&d, "schedule_hourly", "queue_inbox", EdgeKind::Schedule).label(),
            "sends: sqs:SendMessage"
        );
        assert_eq!(
            edge(&d, "schedule_hourly", "queue_missed", EdgeKind::DeadLetter).label(),
            "dead letter: sqs:SendMessage"
        );
        assert_eq!(
            d.node("queue_missed").expect("missed").kind,
            NodeKind::DeadLetterQueue
        );
        // Choice branches and a Parallel branch's nested Task.
        assert_eq!(
            edge(
                &d,
                "state_flow__Pick",
                "state_flow__Done",
                EdgeKind::Transition
            )
            .what,
            "default"
        );
        edge(
            &d,
            "state_flow__Pick",
            "state_flow__Run",
            EdgeKind::Transition,
        );
        edge(
            &d,
            "state_flow__Run",
            "state_flow__One",
            EdgeKind::Transition,
        );
        assert_eq!(
            edge(&d, "state_flow__One", "fn_f", EdgeKind::Invoke).grants,
            strs(&["lambda:InvokeFunction"])
        );
    }

    #[test]
    fn labels_are_escaped_for_mermaid_and_dot() {
        assert_eq!(
            mermaid_text(r#"say "hi" <b> | #1 & `x`"#),
            "say #quot;hi#quot; #lt;b#gt; #124; #35;1 #amp; #96;x#96;"
        );
        assert_eq!(dot_text(r#"say "hi" \n"#), r#"say \"hi\" \\n"#);
        assert_eq!(dot_text("two\nlines"), "two lines");
        let d = diagram(
            r#"apiVersion: sluice.dev/v1alpha1
kind: DataPipeline
metadata: {name: odd}
spec:
  functions: [{name: f, handler: notify}]
  workflows:
    - name: w
      definition:
        StartAt: 'Say "hi" <now> | #1 \ done'
        States:
          'Say "hi" <now> | #1 \ done': {Type: Task, Resource: "function:f", End: true}
"#,
        );
        let state = d
            .nodes
            .iter()
            .find(|n| n.kind == NodeKind::State)
            .expect("state");
        assert_eq!(state.id, "state_w__Say__hi___now_____1___done");
        let mermaid = d.mermaid();
        assert!(
            mermaid.contains("<b>Say #quot;hi#quot; #lt;now#gt; #124; #35;1 \\ done</b>"),
            "{mermaid}"
        );
        assert!(!mermaid.contains("\"hi\""), "{mermaid}");
        let dot = d.dot();
        assert!(
            dot.contains(r#"label="Say \"hi\" <now> | #1 \\ done\nTask""#),
            "{dot}"
        );
    }

    #[test]
    fn ids_are_stable_and_the_output_deterministic() {
        let a = sample("fan-out");
        let b = sample("fan-out");
        assert_eq!(a, b);
        assert_eq!(a.mermaid(), b.mermaid());
        assert_eq!(a.dot(), b.dot());
        let ids: Vec<&str> = a
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Function)
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "fn_dead_letters",
                "fn_processor_a",
                "fn_processor_b",
                "fn_processor_c",
                "fn_router"
            ]
        );
        let mut sorted = a.edges.clone();
        sorted.sort();
        assert_eq!(a.edges, sorted);
        let router = a.node("fn_router").expect("router");
        assert_eq!(
            router.lines(),
            strs(&[
                "router",
                "Lambda function",
                "built-in: router",
                "provided.al2023, x86_64",
                "256 MiB, 30 s"
            ])
        );
        // Own code shows its runtime and handler.
        let own = sample("own-code");
        assert_eq!(
            own.node("fn_summarize").expect("summarize").details[..2],
            strs(&["handler: handler.handler", "python3.12, x86_64"])
        );
    }

    #[test]
    fn long_labels_wrap_one_action_a_line() {
        let d = sample("stream");
        let e = edge(&d, "stream_events", "fn_processor", EdgeKind::Trigger);
        let lines = e.lines();
        assert_eq!(lines[0], "trigger (batch 100, window 60 s, LATEST,");
        assert_eq!(lines[2..], strs(actions::KINESIS_CONSUME)[..]);
        assert_eq!(wrap("a, b, c", 3), strs(&["a,", "b,", "c"]));
        assert_eq!(wrap("a, b, c", 4), strs(&["a,", "b, c"]));
        assert_eq!(
            wrap("averyveryverylongword x", 4),
            strs(&["averyveryverylongword", "x"])
        );
    }

    #[test]
    fn graph_refuses_what_it_cannot_draw_naming_why() {
        let e = |s: &str| {
            let a = args::parse(&argv(s)).expect("args");
            run(&a, &no_env).expect_err(s)
        };
        let dir = root().join("config/samples");
        let several = e(&format!("graph -f {}", dir.display()));
        assert!(
            several.contains("graph takes one DataPipeline; 6 were read"),
            "{several}"
        );
        assert!(e("graph one two").contains("one pipeline; 2 names were given"));
        assert!(e(&format!("graph one -f {}", dir.display())).contains("not both"));
        let sample = dir.join("fan-out.yaml");
        assert!(
            e(&format!("graph -f {} -o json", sample.display())).contains("mermaid, dot or svg")
        );
        let bad =
            std::env::temp_dir().join(format!("sluice-graph-bad-{}.yaml", std::process::id()));
        std::fs::write(
            &bad,
            "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {name: bad}\n\
             spec:\n  functions: [{name: f, handler: no-such-handler}]\n",
        )
        .expect("write");
        let refused = e(&format!("graph -f {}", bad.display()));
        std::fs::remove_file(&bad).ok();
        assert!(
            refused.contains("stalled by the operator (InvalidSpec)"),
            "{refused}"
        );
        assert!(refused.contains("spec.functions[0]"), "{refused}");
    }

    #[test]
    fn svg_without_graphviz_says_how_to_install_it() {
        let missing = |k: &str| match k {
            "SLUICE_DOT" => Some("/nonexistent/dot".to_owned()),
            _ => None,
        };
        let e = svg("digraph {}", &missing).expect_err("no dot");
        assert!(e.contains("SLUICE_DOT=/nonexistent/dot"), "{e}");
        assert!(e.contains("apt-get install graphviz"), "{e}");
        assert!(e.contains("make tools-graphviz"), "{e}");
        let empty_path = |k: &str| (k == "PATH").then(|| "/nonexistent".to_owned());
        let e = find_dot(&empty_path).expect_err("not on the PATH");
        assert!(e.contains("not found on the PATH"), "{e}");
        assert!(e.contains("apt-get install graphviz"), "{e}");
    }
}
