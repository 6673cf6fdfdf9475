//! Tests of a program, run in the sandbox and judged: `assert` files and
//! stdin/stdout pairs (the library side of `leafe-host exec --tests`).

use super::{PythonSandbox, RunLimits, RunResult, Verdict};
use crate::util::rng::fresh_token;
use anyhow::{Context, Result, bail};
use leafe_judge::check::{AssertJudge, Compare, Ran};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A test file's tests.
#[derive(Clone, Debug, PartialEq)]
pub enum TestFile {
    /// `assert` lines, each run after the program and the set-up lines.
    Asserts { setup: String, asserts: Vec<String> },
    /// stdin/stdout pairs.
    Io(Vec<IoTest>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IoTest {
    pub input: String,
    pub output: String,
}

/// CodeContests' form: parallel `input` and `output` lists.
#[derive(Deserialize)]
struct IoLists {
    input: Vec<String>,
    output: Vec<String>,
}

impl TestFile {
    /// `.jsonl`: one `{"input": ..., "output": ...}` a line; `.json`: a list
    /// of such objects, or `{"input": [...], "output": [...]}`; anything
    /// else: a Python file whose `assert` lines are the tests.
    pub fn read(path: &Path) -> Result<TestFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the tests {}", path.display()))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let tests = match ext {
            "jsonl" => {
                let mut tests = Vec::new();
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    tests.push(serde_json::from_str(line).with_context(|| {
                        format!(
                            "{}:{}: expected {{\"input\": ..., \"output\": ...}}",
                            path.display(),
                            i + 1
                        )
                    })?);
                }
                TestFile::Io(tests)
            }
            "json" => {
                if let Ok(tests) = serde_json::from_str::<Vec<IoTest>>(&text) {
                    TestFile::Io(tests)
                } else {
                    let lists: IoLists = serde_json::from_str(&text).with_context(|| {
                        format!(
                            "{}: expected a list of {{\"input\", \"output\"}} objects or \
                             {{\"input\": [...], \"output\": [...]}}",
                            path.display()
                        )
                    })?;
                    if lists.input.len() != lists.output.len() {
                        bail!(
                            "{}: {} inputs but {} outputs",
                            path.display(),
                            lists.input.len(),
                            lists.output.len()
                        );
                    }
                    TestFile::Io(
                        lists
                            .input
                            .into_iter()
                            .zip(lists.output)
                            .map(|(input, output)| IoTest { input, output })
                            .collect(),
                    )
                }
            }
            _ => {
                let (setup, asserts) = leafe_judge::parse_assert_file(&text);
                TestFile::Asserts { setup, asserts }
            }
        };
        let count = match &tests {
            TestFile::Asserts { asserts, .. } => asserts.len(),
            TestFile::Io(tests) => tests.len(),
        };
        if count == 0 {
            bail!(
                "{} has no tests (assert lines, or input/output pairs in .json/.jsonl)",
                path.display()
            );
        }
        Ok(tests)
    }
}

/// One test's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestOutcome {
    /// 1-based.
    pub test: usize,
    /// The assert line, or the input (clipped).
    pub name: String,
    pub passed: bool,
    /// `pass`, `fail`, `wrong-answer` or the sandbox verdict.
    pub verdict: String,
    /// Why it failed: the exception, the first differing line, the limit.
    pub detail: Option<String>,
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    pub wall_us: u64,
}

/// A program's report on a test file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    pub passed: usize,
    pub total: usize,
    pub tests: Vec<TestOutcome>,
}

/// Run `program` on every test of `tests`, `jobs` at a time. Assert tests
/// are judged so that a pass proves the test ran and held (see
/// [`leafe_judge::check`]), unless `compare` is [`Compare::Python`].
pub fn run_tests(
    sandbox: &PythonSandbox,
    program: &str,
    tests: &TestFile,
    limits: &RunLimits,
    jobs: usize,
    compare: Compare,
) -> TestReport {
    let tests: Vec<TestOutcome> = match tests {
        TestFile::Asserts { setup, asserts } => {
            let tokens = asserts.iter().map(|_| fresh_token()).collect();
            let judge = AssertJudge::new(program, setup, asserts, compare, tokens);
            let programs: Vec<(String, String)> = judge
                .programs()
                .into_iter()
                .map(|p| (p, String::new()))
                .collect();
            let runs = super::run_many(sandbox, &programs, limits, jobs);
            let ran: Vec<Ran> = runs.iter().map(ran).collect();
            let compared = judge
                .comparison(&ran)
                .map(|trusted| sandbox.run(&trusted, "", limits));
            let outcomes = judge.outcomes(&ran, compared.as_ref().map(|c| c.stdout.as_str()));
            runs.iter()
                .zip(outcomes)
                .enumerate()
                .map(|(i, (run, outcome))| {
                    let name = asserts[i].clone();
                    match run.verdict {
                        Verdict::Ok => test_outcome(i + 1, name, run, outcome.passed, outcome.why),
                        _ => judge_run(i + 1, name, run, None),
                    }
                })
                .collect()
        }
        TestFile::Io(tests) => {
            let programs: Vec<(String, String)> = tests
                .iter()
                .map(|t| (program.to_string(), t.input.clone()))
                .collect();
            let runs = super::run_many(sandbox, &programs, limits, jobs);
            runs.iter()
                .enumerate()
                .map(|(i, run)| {
                    let name = format!(
                        "input {:?}",
                        leafe_judge::clip(tests[i].input.trim_end(), 60)
                    );
                    judge_run(i + 1, name, run, Some(tests[i].output.as_str()))
                })
                .collect()
        }
    };
    TestReport {
        passed: tests.iter().filter(|t| t.passed).count(),
        total: tests.len(),
        tests,
    }
}

fn ran(run: &RunResult) -> Ran<'_> {
    Ran {
        finished: run.verdict == Verdict::Ok,
        exit_code: run.exit_code,
        stdout: &run.stdout,
    }
}

fn test_outcome(
    test: usize,
    name: String,
    run: &RunResult,
    passed: bool,
    why: Option<String>,
) -> TestOutcome {
    TestOutcome {
        test,
        name,
        passed,
        verdict: if passed { "pass" } else { "fail" }.to_string(),
        detail: why.map(|w| leafe_judge::clip(&w, 300)),
        exit_code: run.exit_code,
        fuel_used: run.fuel_used,
        wall_us: run.wall_us,
    }
}

/// A stdin/stdout test (`expected`), or an assert test whose run did not
/// finish: judged by the run's verdict, exit status and output.
fn judge_run(test: usize, name: String, run: &RunResult, expected: Option<&str>) -> TestOutcome {
    let ended_cleanly = run.verdict == Verdict::Ok && run.exit_code == 0;
    let last_error_line = || {
        let line = run.stderr.trim_end().lines().last().unwrap_or("").trim();
        (!line.is_empty()).then(|| leafe_judge::clip(line, 200))
    };
    let (passed, verdict, detail) = match (ended_cleanly, expected) {
        // An assert test is judged by its report, not by how it exited.
        (true, None) => (
            false,
            "fail".to_string(),
            Some("the program ended before the test completed".to_string()),
        ),
        (true, Some(expected)) => match leafe_judge::first_difference(expected, &run.stdout) {
            None => (true, "pass".to_string(), None),
            Some((line, want, got)) => (
                false,
                "wrong-answer".to_string(),
                Some(format!(
                    "line {line}: expected {:?}, got {:?}",
                    leafe_judge::clip(&want, 80),
                    leafe_judge::clip(&got, 80)
                )),
            ),
        },
        (false, _) if matches!(run.verdict, Verdict::Ok | Verdict::RuntimeError) => {
            let detail = last_error_line().or(Some(format!("exit status {}", run.exit_code)));
            (false, "fail".to_string(), detail)
        }
        (false, _) => (false, run.verdict.to_string(), last_error_line()),
    };
    TestOutcome {
        test,
        name,
        passed,
        verdict,
        detail,
        exit_code: run.exit_code,
        fuel_used: run.fuel_used,
        wall_us: run.wall_us,
    }
}
