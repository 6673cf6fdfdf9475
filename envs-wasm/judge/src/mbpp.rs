//! MBPP's rows and standard splits, read the same way by the code
//! environment (which embeds the data) and the host's sandbox benchmark
//! (which reads the environment's own copy).

use serde::Deserialize;

/// The standard splits: (name, first task_id, last task_id). The data file
/// holds the rows in task_id order, task `i` on line `i`.
pub const SPLITS: &[(&str, u32, u32)] = &[
    ("test", 11, 510),
    ("train", 601, 974),
    ("validation", 511, 600),
    ("prompt", 1, 10),
];

/// One row of `mbpp.jsonl`.
#[derive(Clone, Debug, Deserialize)]
pub struct Row {
    pub task_id: u32,
    pub text: String,
    /// The reference solution.
    pub code: String,
    #[serde(default)]
    pub test_setup_code: String,
    pub test_list: Vec<String>,
}

impl Row {
    pub fn parse(line: &str) -> Result<Row, String> {
        serde_json::from_str(line).map_err(|e| format!("not an MBPP row: {e}"))
    }

    /// The reference solution with Unix line ends.
    pub fn solution(&self) -> String {
        self.code.replace("\r\n", "\n")
    }

    /// The set-up code with Unix line ends.
    pub fn setup(&self) -> String {
        self.test_setup_code.replace("\r\n", "\n")
    }
}

/// The lines of `split` in the MBPP file `jsonl`, or `None` for a split that
/// is not one of [`SPLITS`] (or a file too short for it).
pub fn split_lines<'a>(jsonl: &'a str, split: &str) -> Option<Vec<&'a str>> {
    let (_, first, last) = SPLITS.iter().find(|(name, _, _)| *name == split)?;
    let lines: Vec<&str> = jsonl.lines().collect();
    lines
        .get((*first - 1) as usize..*last as usize)
        .map(<[&str]>::to_vec)
}
