//! The code benchmarks, MBPP and CodeContests, as one environment component.
//!
//! A task is one problem. An action is a Python program (a fenced
//! ```` ```python ```` block, or bare code); the environment runs it against
//! the problem's tests in the host's Python sandbox (`leafe:env/sandbox`),
//! one fresh interpreter per test, and answers with the feedback a
//! programmer would get: which tests failed, the failing assert or the
//! input with expected and actual output, the exception and the end of its
//! traceback, timeouts. Reward = the fraction of hidden tests passed;
//! success = all of them pass; the episode ends when it succeeds.
//!
//! The instance serves the benchmark its WASI arguments name (the host
//! passes them for the built-ins `mbpp` and `codecontests`); see [`dataset`].
//! Observations are deterministic: they never include wall-clock times, and
//! programs are limited by fuel (deterministic) before the wall clock.

pub mod dataset;

use dataset::{Benchmark, Problem, Tests};
use leafe_guest::sandbox::{self, Limits, RunResult, Verdict};
use leafe_guest::{EnvError, EnvInfo, Environment, Rng, Step, Task, Value, json};
use leafe_judge::check::{AssertJudge, Compare, Ran};
use serde::{Deserialize, Serialize};

/// Fuel per MBPP test: about 10-15 s of Python in the sandbox, which is what
/// the slowest reference solution (task 123, 3.8 s natively) needs with room
/// to spare. Task option `test-fuel` changes it.
const FUEL_PER_TEST: u64 = 100_000_000_000;
/// Wall-clock backstop per run (task option `test-wall-ms`).
const WALL_MS_PER_TEST: u32 = 30_000;
/// Fuel per millisecond of a CodeContests time limit: the sandbox runs
/// about 7 G fuel/s; the factor 5 allows for Python in wasm being slower
/// than the languages the limits were set for.
const FUEL_PER_LIMIT_MS: u64 = 7_000_000 * 5;
const OUTPUT_BYTES: u32 = 64 << 10;
const MEMORY_BYTES: u64 = 256 << 20;
/// How many failing tests the feedback details.
const DETAILED_FAILURES: usize = 3;

/// The episode: which problem, and how the attempts went.
#[derive(Serialize, Deserialize)]
pub struct Code {
    split: String,
    index: u32,
    /// Per-test limits from the task options (`None`: the defaults).
    test_fuel: Option<u64>,
    test_wall_ms: Option<u32>,
    /// `compare=python`: the assert lines as they are (gameable, for
    /// reference studies); otherwise plain values compared outside the program.
    compare_python: bool,
    /// `feedback=all`: details of failing hidden tests too.
    feedback_all: bool,
    /// Seeds the per-run tokens of the judge's reports.
    token_seed: u64,
    attempts: u32,
    best_reward: f64,
    solved: bool,
}

impl Code {
    fn problem(&self) -> Result<Problem, String> {
        dataset::dataset()?.problem(&self.split, self.index)
    }
}

fn action_hint(benchmark: Benchmark) -> &'static str {
    match benchmark {
        Benchmark::Mbpp => {
            "Answer with a complete Python 3 program in a ```python block that defines the \
             function the problem asks for, with the name and arguments the example test uses. \
             It is run against the example test and hidden assert tests; you get the example's \
             result (expected value, your value, the traceback) and how many hidden tests \
             failed back, and may submit a corrected program."
        }
        Benchmark::CodeContests => {
            "Answer with a complete Python 3 program in a ```python block that reads the input \
             from stdin and prints the answer to stdout. It is run on the public examples \
             (whose results you see) and on hidden tests; you may submit a corrected program."
        }
    }
}

impl Environment for Code {
    const OPTIONS: &'static [&'static str] = &["test-fuel", "test-wall-ms", "compare", "feedback"];

    fn info() -> EnvInfo {
        let data = match dataset::dataset() {
            Ok(data) => data,
            Err(e) => return EnvInfo::new("code", "0.2.0", &format!("unusable: {e}")),
        };
        let name = match data.benchmark {
            Benchmark::Mbpp => "mbpp",
            Benchmark::CodeContests => "codecontests",
        };
        let mut info = EnvInfo::new(name, "0.2.0", action_hint(data.benchmark)).max_steps(4);
        for (split, n) in data.splits() {
            info = info.split(split, n);
        }
        info
    }

    fn reset(task: &Task) -> Result<(Self, String), EnvError> {
        let positive = |key: &str, v: u64| {
            if v == 0 {
                Err(EnvError::BadTask(format!("option {key} must be positive")))
            } else {
                Ok(v)
            }
        };
        let test_fuel = match task.option("test-fuel") {
            Some(_) => Some(positive("test-fuel", task.option_or("test-fuel", 0u64)?)?),
            None => None,
        };
        let test_wall_ms = match task.option("test-wall-ms") {
            Some(_) => {
                Some(positive("test-wall-ms", task.option_or("test-wall-ms", 0u32)?.into())? as u32)
            }
            None => None,
        };
        let compare = Compare::parse(task.option("compare").unwrap_or("plain"))
            .map_err(|e| EnvError::BadTask(format!("option {e}")))?;
        let feedback_all = match task.option("feedback").unwrap_or("public") {
            "public" => false,
            "all" => true,
            other => {
                return Err(EnvError::BadTask(format!(
                    "option feedback must be public or all, got '{other}'"
                )));
            }
        };
        let code = Code {
            split: task.split.clone(),
            index: task.index,
            test_fuel,
            test_wall_ms,
            compare_python: compare == Compare::Python,
            feedback_all,
            token_seed: Rng::for_task(task).next_u64(),
            attempts: 0,
            best_reward: 0.0,
            solved: false,
        };
        let problem = code.problem().map_err(EnvError::Internal)?;
        Ok((code, first_observation(&problem)))
    }

    fn step(&mut self, action: &str) -> Step {
        let problem = match self.problem() {
            Ok(p) => p,
            Err(e) => return Step::new(format!("environment error: {e}"), 0.0).terminated(),
        };
        let program = leafe_judge::extract_program(action);
        if program.trim().is_empty() {
            return Step::new(
                "No program found. Answer with a Python program in a ```python block.",
                0.0,
            )
            .invalid_action()
            .success(false);
        }
        self.attempts += 1;
        let mut limits = limits_for(&problem);
        limits.fuel = self.test_fuel.unwrap_or(limits.fuel);
        limits.wall_ms = self.test_wall_ms.unwrap_or(limits.wall_ms);
        let report = judge(&problem, &program, &limits, self);
        let reward = report.hidden_passed as f64 / report.hidden_total.max(1) as f64;
        let success = report.hidden_total > 0 && report.hidden_passed == report.hidden_total;
        self.best_reward = self.best_reward.max(reward);
        self.solved |= success;
        let step = Step::new(report.feedback, reward)
            .success(success)
            .with_info("passed", json!(report.hidden_passed))
            .with_info("total", json!(report.hidden_total))
            .with_info("verdicts", Value::from(report.verdicts))
            .with_info("fuel", json!(report.fuel));
        if success { step.terminated() } else { step }
    }

    /// The dataset's reference solution, until the problem is solved.
    fn expert_action(&self) -> Option<String> {
        if self.solved {
            return None;
        }
        let reference = self.problem().ok()?.reference?;
        Some(format!("```python\n{}\n```", reference.trim_end()))
    }
}

leafe_guest::export_environment!(Code);

fn first_observation(problem: &Problem) -> String {
    match &problem.tests {
        Tests::Asserts { asserts, .. } => {
            let example = asserts.first().map(String::as_str).unwrap_or("");
            format!(
                "{}\nYour code should pass this test:\n{example}\n",
                problem.statement.trim()
            )
        }
        Tests::Io { public, .. } => {
            let mut text = problem.statement.trim().to_string();
            if let Some(ms) = problem.time_limit_ms {
                text.push_str(&format!("\n\nTime limit: {} ms per test.", ms));
            }
            if let Some((input, output)) = public.first() {
                text.push_str(&format!(
                    "\n\nExample input:\n{}\nExample output:\n{}\n",
                    input.trim_end(),
                    output.trim_end()
                ));
            }
            text
        }
    }
}

/// The outcome of judging one program.
struct Report {
    feedback: String,
    hidden_passed: usize,
    hidden_total: usize,
    /// The verdict of each hidden test: `pass`, `fail` or a sandbox verdict.
    verdicts: Vec<String>,
    /// Fuel of all runs; `None` when a run's count was not exact.
    fuel: Option<u64>,
}

fn limits_for(problem: &Problem) -> Limits {
    let fuel = problem
        .time_limit_ms
        .map(|ms| (ms * FUEL_PER_LIMIT_MS).min(FUEL_PER_TEST * 2))
        .unwrap_or(FUEL_PER_TEST);
    Limits {
        fuel,
        wall_ms: WALL_MS_PER_TEST,
        memory_bytes: MEMORY_BYTES,
        output_bytes: OUTPUT_BYTES,
    }
}

/// The verdict word of a run that did not pass: a sandbox limit or error.
fn verdict_word(run: &RunResult) -> &'static str {
    match run.verdict {
        Verdict::Ok | Verdict::RuntimeError => "fail",
        other => other.as_str(),
    }
}

fn judge(problem: &Problem, program: &str, limits: &Limits, code: &Code) -> Report {
    match &problem.tests {
        Tests::Asserts { setup, asserts } => judge_asserts(program, setup, asserts, limits, code),
        Tests::Io { public, hidden } => {
            judge_io(program, public, hidden, limits, code.feedback_all)
        }
    }
}

/// The judge's token for test `test` of the current attempt: deterministic
/// (observations must be), and never shown to the program.
fn token(code: &Code, test: usize) -> String {
    let mut rng = Rng::new(code.token_seed ^ (u64::from(code.attempts) << 32) ^ test as u64);
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// MBPP: the first assert is public (the prompt shows it); the others are
/// hidden, and their feedback says only how many failed unless
/// `feedback=all`.
fn judge_asserts(
    program: &str,
    setup: &str,
    asserts: &[String],
    limits: &Limits,
    code: &Code,
) -> Report {
    let compare = if code.compare_python {
        Compare::Python
    } else {
        Compare::Plain
    };
    let tokens = (0..asserts.len()).map(|i| token(code, i)).collect();
    let judge = AssertJudge::new(program, setup, asserts, compare, tokens);
    let runs: Vec<RunResult> = judge
        .programs()
        .iter()
        .map(|p| sandbox::run_python(p, "", limits))
        .collect();
    let ran: Vec<Ran> = runs
        .iter()
        .map(|r| Ran {
            finished: r.verdict == Verdict::Ok,
            exit_code: r.exit_code,
            stdout: &r.stdout,
        })
        .collect();
    let compared = judge
        .comparison(&ran)
        .map(|trusted| sandbox::run_python(&trusted, "", limits));
    let outcomes = judge.outcomes(&ran, compared.as_ref().map(|c| c.stdout.as_str()));
    let fuel = runs
        .iter()
        .chain(&compared)
        .map(|r| r.fuel_used)
        .sum::<Option<u64>>();

    let mut lines = Vec::new();
    let mut verdicts = Vec::new();
    let (mut passed, mut detailed, mut hidden_failed) = (0, 0, 0);
    for (i, (run, outcome)) in runs.iter().zip(&outcomes).enumerate() {
        if outcome.passed {
            passed += 1;
            verdicts.push("pass".to_string());
            if i == 0 || code.feedback_all {
                lines.push(format!("test {}: passed", i + 1));
            }
            continue;
        }
        verdicts.push(verdict_word(run).to_string());
        if i > 0 && !code.feedback_all {
            hidden_failed += 1;
            continue;
        }
        let why = match run.verdict {
            Verdict::Ok => format!("failed: {}", outcome.why.as_deref().unwrap_or("")),
            _ => describe_failure(run),
        };
        lines.push(format!("test {}: {why}", i + 1));
        if detailed < DETAILED_FAILURES {
            detailed += 1;
            lines.push(format!("  {}", leafe_judge::clip(&asserts[i], 300)));
            let tail = leafe_judge::traceback_tail(&run.stderr, 4);
            if !tail.is_empty() {
                lines.push(indent(&tail));
            }
        }
    }
    if asserts.len() > 1 && !code.feedback_all {
        lines.push(format!(
            "hidden tests: {hidden_failed} of {} failed",
            asserts.len() - 1
        ));
    }
    let header = format!("{passed}/{} tests passed.", asserts.len());
    Report {
        feedback: format!("{header}\n{}", lines.join("\n")),
        hidden_passed: passed,
        hidden_total: asserts.len(),
        verdicts,
        fuel,
    }
}

fn describe_failure(run: &RunResult) -> String {
    match run.verdict {
        Verdict::Ok if run.exit_code != 0 => format!("failed (exit status {})", run.exit_code),
        Verdict::Ok | Verdict::RuntimeError => {
            let last = run.stderr.trim_end().lines().last().unwrap_or("").trim();
            if last.is_empty() {
                "failed".to_string()
            } else {
                format!("failed: {}", leafe_judge::clip(last, 200))
            }
        }
        Verdict::TimeLimit => "time limit exceeded".to_string(),
        Verdict::MemoryLimit => "memory limit exceeded".to_string(),
        Verdict::OutputLimit => "output limit exceeded".to_string(),
        Verdict::SandboxError => format!(
            "could not be run: {}",
            leafe_judge::clip(run.stderr.trim(), 200)
        ),
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run `program` on one stdin/stdout test: (passed, the run).
fn run_io(program: &str, input: &str, expected: &str, limits: &Limits) -> (bool, RunResult) {
    let run = sandbox::run_python(program, input, limits);
    let ok = run.verdict == Verdict::Ok
        && run.exit_code == 0
        && leafe_judge::outputs_match(expected, &run.stdout);
    (ok, run)
}

fn judge_io(
    program: &str,
    public: &[(String, String)],
    hidden: &[(String, String)],
    limits: &Limits,
    feedback_all: bool,
) -> Report {
    let mut lines = Vec::new();
    let mut fuel = Some(0u64);
    let mut public_passed = 0;
    for (i, (input, expected)) in public.iter().enumerate() {
        let (ok, run) = run_io(program, input, expected, limits);
        fuel = fuel.zip(run.fuel_used).map(|(a, b)| a + b);
        if ok {
            public_passed += 1;
            lines.push(format!("example {}: passed", i + 1));
            continue;
        }
        lines.push(format!("example {}: {}", i + 1, describe_io_failure(&run)));
        if i < DETAILED_FAILURES {
            lines.extend(io_details(input, expected, &run));
        }
    }
    let mut verdicts = Vec::new();
    let mut hidden_passed = 0;
    let mut hidden_detailed = 0;
    for (i, (input, expected)) in hidden.iter().enumerate() {
        let (ok, run) = run_io(program, input, expected, limits);
        fuel = fuel.zip(run.fuel_used).map(|(a, b)| a + b);
        if ok {
            hidden_passed += 1;
            verdicts.push("pass".to_string());
            continue;
        }
        verdicts.push(verdict_word(&run).to_string());
        if feedback_all && hidden_detailed < DETAILED_FAILURES {
            hidden_detailed += 1;
            lines.push(format!(
                "hidden test {}: {}",
                i + 1,
                describe_io_failure(&run)
            ));
            lines.extend(io_details(input, expected, &run));
        }
    }
    let header = format!(
        "{public_passed}/{} examples passed; {hidden_passed}/{} hidden tests passed.",
        public.len(),
        hidden.len()
    );
    Report {
        feedback: format!("{header}\n{}", lines.join("\n")),
        hidden_passed,
        hidden_total: hidden.len(),
        verdicts,
        fuel,
    }
}

/// The input, the expected output and what the program did instead.
fn io_details(input: &str, expected: &str, run: &RunResult) -> Vec<String> {
    let mut lines = vec![
        format!("  input:\n{}", indent(&leafe_judge::clip(input, 400))),
        format!("  expected:\n{}", indent(&leafe_judge::clip(expected, 400))),
    ];
    match leafe_judge::first_difference(expected, &run.stdout) {
        Some((line, _, got)) if run.verdict == Verdict::Ok && run.exit_code == 0 => {
            lines.push(format!(
                "  got:\n{}\n  (first difference on line {line}: {:?})",
                indent(&leafe_judge::clip(&run.stdout, 400)),
                leafe_judge::clip(&got, 100)
            ));
        }
        _ => {
            let tail = leafe_judge::traceback_tail(&run.stderr, 4);
            if !tail.is_empty() {
                lines.push(indent(&tail));
            }
        }
    }
    lines
}

fn describe_io_failure(run: &RunResult) -> String {
    match run.verdict {
        Verdict::Ok if run.exit_code == 0 => "wrong answer".to_string(),
        _ => describe_failure(run),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leafe_guest::Harness;

    #[test]
    fn mbpp_observation_shows_the_first_test() {
        let mut h = Harness::<Code>::new();
        let obs = h.reset(&Task::new("test", 0, 0)).unwrap();
        assert!(
            obs.contains("Your code should pass this test:\nassert"),
            "{obs}"
        );
        let expert = h.expert_action().unwrap();
        assert!(expert.starts_with("```python\n"), "{expert}");
    }

    #[test]
    fn an_answer_without_code_is_format_feedback() {
        let mut h = Harness::<Code>::new();
        h.reset(&Task::new("test", 0, 0)).unwrap();
        let r = h.step("```python\n```").unwrap();
        assert!(r.info.contains("\"invalid-action\":true"), "{}", r.info);
        assert!(!r.terminated);
    }

    #[test]
    fn outside_the_host_there_is_no_sandbox_and_nothing_passes() {
        let mut h = Harness::<Code>::new();
        h.reset(&Task::new("test", 0, 0)).unwrap();
        let r = h.step("def f(): pass").unwrap();
        assert_eq!(r.reward, 0.0);
        assert!(
            r.observation.contains("could not be run"),
            "{}",
            r.observation
        );
    }
}
