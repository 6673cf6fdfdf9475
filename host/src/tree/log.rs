//! Writing and reading `tree.jsonl`.
//!
//! One reader serves every consumer (`replay`, `export`, `report`, `run
//! --resume`): it checks the order of records, the format version and each
//! task's node ids and parents, so what it returns can be walked without
//! further checks. Anything else is an error naming the line.

use super::{FORMAT, Header, Node, Record, TaskEnd};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::Path;

/// Append records to a log, one JSON object per line.
pub struct LogWriter {
    file: std::io::BufWriter<std::fs::File>,
}

impl LogWriter {
    /// Open `path` for appending (creating it).
    pub fn append(path: &Path) -> Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} for writing", path.display()))?;
        Ok(LogWriter {
            file: std::io::BufWriter::new(file),
        })
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .context("cannot write the tree log")
    }

    /// Flush and ask the OS to put the bytes on disk.
    pub fn sync(&mut self) -> Result<()> {
        self.file.flush().context("cannot write the tree log")?;
        self.file
            .get_ref()
            .sync_data()
            .context("cannot sync the tree log")
    }
}

/// A log read back, with where its complete part ends.
pub struct ReadLog {
    pub records: Vec<Record>,
    /// Byte length of the prefix that ends with the last complete task.
    pub complete_len: u64,
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
    let mut records = Vec::new();
    let (mut offset, mut complete_len, mut torn_tail) = (0usize, 0u64, false);
    let mut expect = Expect::Header;
    let mut tasks_seen = std::collections::BTreeSet::new();
    for (number, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let number = number + 1;
        offset += line.len();
        let Some(body) = line.strip_suffix(b"\n") else {
            torn_tail = true;
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
        if matches!(record, Record::TaskEnd(_)) || matches!(record, Record::Header(_)) {
            complete_len = offset as u64;
        }
        records.push(record);
    }
    if records.is_empty() {
        bail!("{} is empty or has no complete header line", path.display());
    }
    Ok(ReadLog {
        records,
        complete_len,
        torn_tail,
    })
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
