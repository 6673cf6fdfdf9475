//! The branch-tree log, `tree.jsonl`: a header line, then for each task a
//! `task-start` line, one `node` line per environment state reached, and a
//! `task-end` line. No timestamps: the same run gives the same bytes.
//!
//! Lines are appended whole, task by task, in task order, and flushed to disk
//! at each task end; a crash loses at most the task in flight (and leaves at
//! most one torn last line), which `run --resume` drops and redoes.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// The version of this log format.
pub const FORMAT: u32 = 1;

/// What produced the log; `run --resume` refuses a different one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    /// `--env` as given: a built-in name or a path.
    pub env: String,
    pub env_name: String,
    pub env_version: String,
    pub component_sha256: String,
    pub split: String,
    pub tasks: Vec<u32>,
    pub seed: u64,
    pub options: Vec<(String, String)>,
    pub policy: String,
    pub noise: f64,
    /// `leafe`, `sample` or `refine` (logs from before methods existed are `leafe`).
    #[serde(default)]
    pub method: crate::explore::Method,
    /// `rule` or `llm` (absent in older logs: `rule`).
    #[serde(default = "rule")]
    pub reflector: String,
    /// Mid-rollout reflection every this many steps (0: only on failure).
    #[serde(default)]
    pub reflect_every: u32,
    pub budget: u32,
    pub max_depth: u32,
    pub snapshot_every: u32,
}

fn rule() -> String {
    "rule".into()
}

/// One environment state reached: the root of a task (after `reset`), or
/// the result of `action` taken in the parent state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub task: u32,
    pub id: u32,
    pub parent: Option<u32>,
    /// The rollout this node was reached in (0 = the first one).
    pub branch: u32,
    /// How many backtracks led to this rollout.
    pub depth: u32,
    pub action: Option<String>,
    pub observation: String,
    pub obs_sha256: String,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    pub success: bool,
    pub dead_end: Option<String>,
    /// Content address of the snapshot taken in this state, if one was.
    pub snapshot: Option<String>,
    /// On the first node of a revised rollout: the experience that led to it
    /// and the action it replaced at the parent state.
    pub experience: Option<String>,
    pub rejected: Option<String>,
}

/// What a task came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEnd {
    pub task: u32,
    pub solved: bool,
    /// Environment steps taken (all rollouts; replays for restores excluded).
    pub steps: u32,
    pub backtracks: u32,
    pub restores: u32,
    /// Steps re-executed because a state had no snapshot.
    pub replayed_steps: u32,
    /// Steps from the task start to each backtrack target: what
    /// reset-and-replay would have re-executed instead of restoring.
    pub replay_avoided_steps: u32,
    pub nodes: u32,
    /// Set when the environment failed and the task could not go on.
    pub error: Option<String>,
}

/// One line of `tree.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    Header(Header),
    TaskStart { task: u32 },
    Node(Node),
    TaskEnd(TaskEnd),
}

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

/// Read and check a log. A line that is not valid JSON is an error naming
/// it, except a last line without its newline (torn by a crash), which is
/// reported in [`ReadLog::torn_tail`].
pub fn read(path: &Path) -> Result<ReadLog> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = Vec::new();
    let (mut offset, mut complete_len, mut torn_tail) = (0usize, 0u64, false);
    let mut expect = Expect::Header;
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

/// The order records must come in.
#[derive(Clone, Copy)]
enum Expect {
    Header,
    TaskStart,
    InTask(u32),
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
            (Expect::TaskStart, Record::TaskStart { task }) => Expect::InTask(*task),
            (Expect::InTask(t), Record::Node(n)) if n.task == t => Expect::InTask(t),
            (Expect::InTask(t), Record::TaskEnd(e)) if e.task == t => Expect::TaskStart,
            (_, other) => bail!("unexpected record here: {}", kind(other)),
        })
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

/// Write `bytes` to `path` atomically: a temporary file renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
