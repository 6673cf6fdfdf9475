//! Reading `tree.jsonl` (and the journal's task files).
//!
//! One reader serves every consumer (`replay`, `export`, `report`, `run
//! --resume`): it checks the order of records, the format version and each
//! task's node ids and parents, so what it returns can be walked without
//! further checks. Anything else is an error naming the line.

use super::{FORMAT, Header, Node, Record, TaskEnd};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

/// A log read back, with where its complete part ends.
pub struct ReadLog {
    pub records: Vec<Record>,
    /// The bytes of each complete task (task-start to task-end), as written.
    pub task_bytes: BTreeMap<u32, Vec<u8>>,
    /// A torn last line was found (a crash mid-write).
    pub torn_tail: bool,
}

impl ReadLog {
    pub fn header(&self) -> Option<&Header> {
        match self.records.first() {
            Some(Record::Header(h)) => Some(h),
            _ => None,
        }
    }

    /// The nodes of each complete task, by task index.
    pub fn nodes_by_task(&self) -> std::collections::BTreeMap<u32, Vec<Node>> {
        let mut by_task: std::collections::BTreeMap<u32, Vec<Node>> = Default::default();
        for record in self.complete_records() {
            if let Record::Node(n) = record {
                by_task.entry(n.task).or_default().push(n.clone());
            }
        }
        by_task
    }

    /// The task whose records stop before its `task-end` (a run that was
    /// interrupted), if any.
    pub fn unfinished_task(&self) -> Option<u32> {
        let complete = self.complete_records().len();
        self.records[complete..].iter().find_map(|r| match r {
            Record::TaskStart { task } => Some(*task),
            _ => None,
        })
    }

    /// Records of completed tasks only.
    pub fn complete_records(&self) -> Vec<&Record> {
        let last_end = self
            .records
            .iter()
            .rposition(|r| matches!(r, Record::TaskEnd(_)));
        match last_end {
            Some(i) => self.records[..=i].iter().collect(),
            None => self.records.iter().take(1).collect(),
        }
    }
}

impl ReadLog {
    /// The `task-end` records, in log order.
    pub fn ends(&self) -> Vec<TaskEnd> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::TaskEnd(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Read and check a log. A line that is not valid JSON is an error naming
/// it, except a last line without its newline (torn by a crash), which is
/// reported in [`ReadLog::torn_tail`].
pub fn read(path: &Path) -> Result<ReadLog> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed = parse(&bytes, Expect::Header, path)?;
    if parsed.records.is_empty() {
        bail!("{} is empty or has no complete header line", path.display());
    }
    Ok(ReadLog {
        task_bytes: parsed.task_bytes(&bytes),
        records: parsed.records,
        torn_tail: parsed.torn_tail,
    })
}

/// Read and check one task's records as a run's journal keeps them
/// (`task-start`, its nodes, `task-end`, nothing else): the task's index.
pub fn read_task(path: &Path, bytes: &[u8]) -> Result<u32> {
    let parsed = parse(bytes, Expect::TaskStart, path)?;
    match (parsed.records.first(), parsed.records.last()) {
        (Some(Record::TaskStart { task }), Some(Record::TaskEnd(_)))
            if !parsed.torn_tail && parsed.task_ends == 1 =>
        {
            Ok(*task)
        }
        _ => bail!("{} does not hold exactly one whole task", path.display()),
    }
}

/// Records parsed from log bytes, with the byte span of each.
struct Parsed {
    records: Vec<Record>,
    spans: Vec<std::ops::Range<usize>>,
    torn_tail: bool,
    task_ends: usize,
}

impl Parsed {
    /// The bytes of each complete task, as written.
    fn task_bytes(&self, bytes: &[u8]) -> BTreeMap<u32, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut start = None;
        for (record, span) in self.records.iter().zip(&self.spans) {
            match record {
                Record::TaskStart { .. } => start = Some(span.start),
                Record::TaskEnd(e) => {
                    if let Some(from) = start.take() {
                        out.insert(e.task, bytes[from..span.end].to_vec());
                    }
                }
                _ => {}
            }
        }
        out
    }
}

fn parse(bytes: &[u8], mut expect: Expect, path: &Path) -> Result<Parsed> {
    let mut parsed = Parsed {
        records: Vec::new(),
        spans: Vec::new(),
        torn_tail: false,
        task_ends: 0,
    };
    let mut offset = 0usize;
    let mut tasks_seen = std::collections::BTreeSet::new();
    for (number, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let number = number + 1;
        let start = offset;
        offset += line.len();
        let Some(body) = line.strip_suffix(b"\n") else {
            parsed.torn_tail = true;
            break;
        };
        let record: Record = serde_json::from_slice(body).with_context(|| {
            format!(
                "{} line {number} is corrupt (not a leafe tree record)",
                path.display()
            )
        })?;
        expect = expect
            .next(&record)
            .with_context(|| format!("{} line {number}", path.display()))?;
        if let Record::TaskStart { task } = record
            && !tasks_seen.insert(task)
        {
            bail!(
                "{} line {number}: task {task} appears a second time",
                path.display()
            );
        }
        parsed.task_ends += usize::from(matches!(record, Record::TaskEnd(_)));
        parsed.records.push(record);
        parsed.spans.push(start..offset);
    }
    Ok(parsed)
}

/// The order records must come in, and the next node id of the task in hand.
#[derive(Clone, Copy)]
enum Expect {
    Header,
    TaskStart,
    InTask { task: u32, next_id: u32 },
}

impl Expect {
    fn next(self, record: &Record) -> Result<Expect> {
        Ok(match (self, record) {
            (Expect::Header, Record::Header(h)) => {
                if h.format != FORMAT {
                    bail!(
                        "log format {} is not the supported format {FORMAT}",
                        h.format
                    );
                }
                Expect::TaskStart
            }
            (Expect::Header, _) => bail!("the log must start with a header record"),
            (Expect::TaskStart, Record::TaskStart { task }) => Expect::InTask {
                task: *task,
                next_id: 0,
            },
            (Expect::InTask { task, next_id }, Record::Node(n)) if n.task == task => {
                check_node(n, next_id)?;
                Expect::InTask {
                    task,
                    next_id: next_id + 1,
                }
            }
            (Expect::InTask { task, next_id }, Record::TaskEnd(e)) if e.task == task => {
                if next_id == 0 {
                    bail!("task {task} ends without its root node");
                }
                Expect::TaskStart
            }
            (_, other) => bail!("unexpected record here: {}", kind(other)),
        })
    }
}

/// Node ids count from 0 within a task, in order; the root (id 0) alone has
/// no parent, and every parent comes before its child. This is what lets
/// every consumer walk a path to the root without checks of its own.
fn check_node(n: &Node, expected_id: u32) -> Result<()> {
    if n.id != expected_id {
        bail!(
            "task {} node {}: expected node id {expected_id} (ids count from 0 in order, \
             without gaps or duplicates)",
            n.task,
            n.id
        );
    }
    match n.parent {
        None if n.id == 0 => Ok(()),
        None => bail!(
            "task {} node {}: only the root may lack a parent",
            n.task,
            n.id
        ),
        Some(p) if n.id == 0 => bail!("task {} root node has a parent ({p})", n.task),
        Some(p) if p >= n.id => bail!(
            "task {} node {}: parent {p} is not an earlier node",
            n.task,
            n.id
        ),
        Some(_) => Ok(()),
    }
}

fn kind(r: &Record) -> &'static str {
    match r {
        Record::Header(_) => "a second header",
        Record::TaskStart { .. } => "task-start inside a task",
        Record::Node(_) => "a node outside its task",
        Record::TaskEnd(_) => "task-end without its task",
    }
}
