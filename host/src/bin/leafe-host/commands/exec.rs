//! `leafe-host exec`.

use super::Ctx;
use crate::args::default_jobs;
use anyhow::{Context, Result};
use clap::Args;
use leafe_host::sandbox::tests_file::{TestFile, TestReport, run_tests};
use leafe_host::{EngineOptions, RunResult, Runtime};
use leafe_judge::check::Compare;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExecCmd {
    /// The Python program; `-` reads it from standard input.
    program: PathBuf,
    /// A file to give the program as its standard input.
    #[arg(long, value_name = "FILE", conflicts_with = "tests")]
    stdin: Option<PathBuf>,
    /// Run the program against tests and print a report: a Python file
    /// whose `assert` lines are the tests (its other lines are set-up), or
    /// stdin/stdout pairs: .jsonl with one {"input": ..., "output": ...} a
    /// line, or .json with {"input": [...], "output": [...]}.
    #[arg(long, value_name = "FILE")]
    tests: Option<PathBuf>,
    /// Bytes kept of stdout, and separately of stderr, in KiB.
    #[arg(long, default_value_t = 64)]
    output_kb: usize,
    /// Print one JSON object (verdict, exit_code, stdout, stderr, fuel_used,
    /// wall_us; with --tests: passed, total, tests).
    #[arg(long)]
    json: bool,
    /// Tests run in parallel.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// How assert tests are judged: `plain` (the value of `x` in `assert x ==
    /// y` is reported as plain built-in values and compared outside the
    /// program, so early exits and objects with a rigged `__eq__` fail) or
    /// `python` (the assert line as it is; passes on exit status 0).
    #[arg(long, value_name = "HOW", default_value = "plain", value_parser = parse_compare)]
    compare: Compare,
}

fn parse_compare(text: &str) -> Result<Compare, String> {
    Compare::parse(text)
}

impl ExecCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let limits = ctx.engine.run_limits(&ctx.options, self.output_kb)?;
        if self.jobs == 0 {
            anyhow::bail!("--jobs must be at least 1");
        }
        let jobs = crate::args::jobs(self.jobs);
        let source = if self.program.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
                .context("cannot read the program from stdin")?
        } else {
            std::fs::read_to_string(&self.program)
                .with_context(|| format!("cannot read {}", self.program.display()))?
        };
        let tests = self.tests.as_deref().map(TestFile::read).transpose()?;
        let stdin = match &self.stdin {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
            None => String::new(),
        };
        // One program needs one slot: reserving the default pool costs a
        // one-shot run more than it saves.
        let runtime = Runtime::new(EngineOptions {
            pool_instances: if tests.is_some() { 256 } else { 2 },
            ..ctx.options.clone()
        })?;
        let sandbox = runtime.python()?;
        match tests {
            Some(tests) => {
                let report = run_tests(&sandbox, &source, &tests, &limits, jobs, self.compare);
                if self.json {
                    println!("{}", with_sandbox(&report, &sandbox.sha256)?);
                } else {
                    print!("{}", report_text(&report));
                }
            }
            None => {
                let run = sandbox.run(&source, &stdin, &limits);
                if self.json {
                    println!("{}", with_sandbox(&run, &sandbox.sha256)?);
                } else {
                    std::io::stdout().write_all(run.stdout.as_bytes())?;
                    std::io::stderr().write_all(run.stderr.as_bytes())?;
                    if !run.stderr.is_empty() && !run.stderr.ends_with('\n') {
                        eprintln!();
                    }
                    eprintln!("{}", run_line(&run));
                }
            }
        }
        Ok(())
    }
}

/// `value` as JSON with `sandbox_sha256`: which build of the interpreter
/// gave the verdict (two builds differ in fuel counts).
fn with_sandbox(value: &impl serde::Serialize, sha256: &str) -> Result<String> {
    let mut json = serde_json::to_value(value)?;
    if let Some(object) = json.as_object_mut() {
        object.insert("sandbox_sha256".into(), sha256.into());
    }
    Ok(serde_json::to_string(&json)?)
}

/// The report as text, one line per test.
fn report_text(report: &TestReport) -> String {
    let mut out = String::new();
    for t in &report.tests {
        out.push_str(&format!(
            "test {:<3} {:<13} {}\n",
            t.test,
            if t.passed { "pass" } else { t.verdict.as_str() },
            leafe_judge::clip(&t.name, 100)
        ));
        if let Some(detail) = &t.detail {
            out.push_str(&format!("         {detail}\n"));
        }
    }
    out.push_str(&format!("passed {}/{}\n", report.passed, report.total));
    out
}

/// The one-line account of a run, for stderr.
fn run_line(run: &RunResult) -> String {
    format!(
        "verdict: {} · exit code {} · fuel {} · {:.1} ms",
        run.verdict,
        run.exit_code,
        run.fuel_used
            .map_or("not counted (stopped by a trap)".to_string(), |f| f
                .to_string()),
        run.wall_us as f64 / 1000.0
    )
}
