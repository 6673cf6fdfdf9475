//! The problems: MBPP (vendored, `data/mbpp.jsonl`) and CodeContests (the
//! `deepmind/code_contests` JSONL schema, from a user's file in the read-only
//! `/data` directory the host preopens, or the fixture in `data/`).

use leafe_judge::mbpp;
use serde::Deserialize;
use std::sync::OnceLock;

const MBPP: &str = include_str!("../data/mbpp.jsonl");
const CODECONTESTS_FIXTURE: &str = include_str!("../data/codecontests-fixture.jsonl");

/// Which benchmark this instance serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Benchmark {
    Mbpp,
    CodeContests,
}

/// One problem, in the form the environment needs.
#[derive(Clone, Debug)]
pub struct Problem {
    /// `mbpp/11`, or the contest problem's name.
    pub id: String,
    pub statement: String,
    pub tests: Tests,
    /// A reference solution in Python, where the dataset has one.
    pub reference: Option<String>,
    /// The dataset's time limit per test, in milliseconds.
    pub time_limit_ms: Option<u64>,
}

#[derive(Clone, Debug)]
pub enum Tests {
    /// MBPP: `assert` lines run after the solution; the first is shown.
    Asserts { setup: String, asserts: Vec<String> },
    /// CodeContests: stdin/stdout pairs; feedback comes from the public
    /// ones, the reward from the hidden ones.
    Io {
        public: Vec<(String, String)>,
        hidden: Vec<(String, String)>,
    },
}

/// The benchmark and where its problems are.
pub struct Dataset {
    pub benchmark: Benchmark,
    /// (split name, problems as JSON lines).
    splits: Vec<(String, Vec<String>)>,
}

/// The dataset this instance was started for (from its WASI arguments:
/// `code mbpp` or `code codecontests [/data/FILE-or-DIR]`), read once.
/// Natively (unit tests, where the arguments are the test runner's) it is
/// MBPP.
pub fn dataset() -> Result<&'static Dataset, String> {
    static DATASET: OnceLock<Result<Dataset, String>> = OnceLock::new();
    DATASET
        .get_or_init(|| {
            let args: Vec<String> = if cfg!(target_arch = "wasm32") {
                std::env::args().skip(1).collect()
            } else {
                Vec::new()
            };
            Dataset::from_args(&args)
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Dataset {
    pub fn from_args(args: &[String]) -> Result<Dataset, String> {
        match args.first().map(String::as_str) {
            None | Some("mbpp") => Ok(Dataset::mbpp()),
            Some("codecontests") => match args.get(1) {
                None => Ok(Dataset::codecontests_text("test", CODECONTESTS_FIXTURE)),
                Some(path) => Dataset::codecontests_path(path),
            },
            Some(other) => Err(format!(
                "unknown benchmark '{other}' (this component serves mbpp and codecontests)"
            )),
        }
    }

    pub fn mbpp() -> Dataset {
        let splits = mbpp::SPLITS
            .iter()
            .map(|(name, _, _)| {
                let rows = mbpp::split_lines(MBPP, name)
                    .expect("the vendored MBPP file holds every standard split");
                (
                    name.to_string(),
                    rows.into_iter().map(str::to_string).collect(),
                )
            })
            .collect();
        Dataset {
            benchmark: Benchmark::Mbpp,
            splits,
        }
    }

    fn codecontests_text(split: &str, text: &str) -> Dataset {
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        Dataset {
            benchmark: Benchmark::CodeContests,
            splits: vec![(split.to_string(), rows)],
        }
    }

    /// A `.jsonl` file is the split `test`; a directory gives one split per
    /// `NAME.jsonl` in it.
    fn codecontests_path(path: &str) -> Result<Dataset, String> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let path = std::path::Path::new(path);
        if !path.is_dir() {
            return Ok(Dataset::codecontests_text("test", &read(path)?));
        }
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("cannot list {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("no .jsonl files in {}", path.display()));
        }
        let mut splits = Vec::new();
        for file in files {
            let name = file.file_stem().unwrap_or_default().to_string_lossy();
            let data = Dataset::codecontests_text(&name, &read(&file)?);
            splits.extend(data.splits);
        }
        Ok(Dataset {
            benchmark: Benchmark::CodeContests,
            splits,
        })
    }

    pub fn splits(&self) -> impl Iterator<Item = (&str, u32)> {
        self.splits
            .iter()
            .map(|(name, rows)| (name.as_str(), rows.len() as u32))
    }

    /// Problem `index` of `split` (both already checked by the SDK).
    pub fn problem(&self, split: &str, index: u32) -> Result<Problem, String> {
        let row = self
            .splits
            .iter()
            .find(|(name, _)| name == split)
            .and_then(|(_, rows)| rows.get(index as usize))
            .ok_or_else(|| format!("no problem {index} in split '{split}'"))?;
        let parsed = match self.benchmark {
            Benchmark::Mbpp => mbpp::Row::parse(row).map(Problem::from),
            Benchmark::CodeContests => serde_json::from_str::<ContestRow>(row)
                .map(Problem::from)
                .map_err(|e| e.to_string()),
        };
        parsed.map_err(|e| format!("problem {index} of split '{split}' is malformed: {e}"))
    }
}

impl From<mbpp::Row> for Problem {
    fn from(r: mbpp::Row) -> Problem {
        Problem {
            id: format!("mbpp/{}", r.task_id),
            tests: Tests::Asserts {
                setup: r.setup(),
                asserts: r.test_list.clone(),
            },
            reference: Some(r.solution()),
            statement: r.text,
            time_limit_ms: None,
        }
    }
}

/// The fields of `deepmind/code_contests` that matter here.
#[derive(Deserialize)]
struct ContestRow {
    name: String,
    description: String,
    #[serde(default)]
    public_tests: TestLists,
    #[serde(default)]
    private_tests: TestLists,
    #[serde(default)]
    generated_tests: TestLists,
    #[serde(default)]
    solutions: Solutions,
    #[serde(default)]
    time_limit: Option<Duration>,
}

#[derive(Default, Deserialize)]
struct TestLists {
    #[serde(default)]
    input: Vec<String>,
    #[serde(default)]
    output: Vec<String>,
}

impl TestLists {
    fn pairs(self) -> impl Iterator<Item = (String, String)> {
        self.input.into_iter().zip(self.output)
    }
}

#[derive(Default, Deserialize)]
struct Solutions {
    #[serde(default)]
    language: Vec<i64>,
    #[serde(default)]
    solution: Vec<String>,
}

#[derive(Deserialize)]
struct Duration {
    #[serde(default)]
    seconds: u64,
    #[serde(default)]
    nanos: u64,
}

/// `language` code of Python 3 in CodeContests.
const PYTHON3: i64 = 3;

impl From<ContestRow> for Problem {
    fn from(r: ContestRow) -> Problem {
        let public: Vec<(String, String)> = r.public_tests.pairs().collect();
        let mut hidden: Vec<(String, String)> = r
            .private_tests
            .pairs()
            .chain(r.generated_tests.pairs())
            .collect();
        if hidden.is_empty() {
            hidden = public.clone();
        }
        let reference = r
            .solutions
            .language
            .iter()
            .zip(&r.solutions.solution)
            .find(|(lang, _)| **lang == PYTHON3)
            .map(|(_, code)| code.clone());
        Problem {
            id: r.name,
            statement: r.description,
            tests: Tests::Io { public, hidden },
            reference,
            time_limit_ms: r
                .time_limit
                .map(|d| d.seconds * 1000 + d.nanos / 1_000_000)
                .filter(|ms| *ms > 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbpp_has_the_standard_splits() {
        let d = Dataset::mbpp();
        let splits: Vec<(&str, u32)> = d.splits().collect();
        assert_eq!(
            splits,
            vec![
                ("test", 500),
                ("train", 374),
                ("validation", 90),
                ("prompt", 10)
            ]
        );
        let p = d.problem("test", 0).unwrap();
        assert_eq!(p.id, "mbpp/11");
        assert_eq!(d.problem("train", 373).unwrap().id, "mbpp/974");
        match p.tests {
            Tests::Asserts { asserts, .. } => assert_eq!(asserts.len(), 3),
            Tests::Io { .. } => panic!("MBPP has assert tests"),
        }
    }

    #[test]
    fn the_codecontests_fixture_parses() {
        let d = Dataset::from_args(&["codecontests".into()]).unwrap();
        let (split, n) = d.splits().next().unwrap();
        assert_eq!(split, "test");
        assert!(n >= 5);
        for i in 0..n {
            let p = d.problem("test", i).unwrap();
            assert!(p.reference.is_some(), "{} has a Python solution", p.id);
            match p.tests {
                Tests::Io { public, hidden } => assert!(!public.is_empty() && !hidden.is_empty()),
                Tests::Asserts { .. } => panic!("CodeContests has stdin/stdout tests"),
            }
        }
        assert!(Dataset::from_args(&["nope".into()]).is_err());
    }
}
