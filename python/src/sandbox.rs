//! The Python sandbox from Python: one program (`run_python`) or a program
//! against tests (`run_tests_*`), judged as `leafe-host exec` judges them.

use crate::{SandboxError, in_range, runtime};
use leafe_host::sandbox::tests_file::{IoTest, TestFile, TestOutcome, TestReport, run_tests};
use leafe_host::{PythonSandbox, RunLimits};
use leafe_judge::check::Compare;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Arc;

fn sandbox(py: Python<'_>) -> PyResult<Arc<PythonSandbox>> {
    py.detach(|| {
        let runtime = runtime().map_err(SandboxError::new_err)?;
        runtime
            .python()
            .map_err(|e| SandboxError::new_err(format!("{e:#}")))
    })
}

/// The limits of one run, checked against what the engine allows.
fn limits(
    sandbox: &PythonSandbox,
    wall_ms: i64,
    fuel: i64,
    memory_mb: i64,
    output_kb: i64,
) -> PyResult<RunLimits> {
    let max = sandbox.max;
    Ok(RunLimits {
        wall_ms: in_range("wall_ms", wall_ms, max.wall_ms)?,
        fuel: in_range("fuel", fuel, max.fuel)?,
        memory_bytes: (in_range("memory_mb", memory_mb, (max.memory_bytes >> 20) as u64)? as usize)
            << 20,
        output_bytes: (in_range("output_kb", output_kb, (max.output_bytes >> 10) as u64)? as usize)
            << 10,
    })
}

/// How one program run ended.
#[pyclass(module = "leafe", name = "RunResult", frozen, get_all)]
pub struct PyRunResult {
    /// `ok`, `runtime-error`, `time-limit`, `memory-limit`, `output-limit` or
    /// `sandbox-error`.
    verdict: String,
    /// The exit status; -1 when a limit or a trap stopped the program.
    exit_code: i32,
    stdout: String,
    stderr: String,
    /// Wasm fuel used (deterministic); None when a trap other than running
    /// out of fuel stopped the program.
    fuel_used: Option<u64>,
    wall_us: u64,
    /// The sha256 of the interpreter component that ran it (two builds
    /// differ in fuel counts and set orders).
    sandbox_sha256: String,
}

#[pymethods]
impl PyRunResult {
    /// Whether the program ran to its end with exit status 0.
    #[getter]
    fn ok(&self) -> bool {
        self.verdict == "ok" && self.exit_code == 0
    }

    /// Wall time in milliseconds.
    #[getter]
    fn wall_ms(&self) -> f64 {
        self.wall_us as f64 / 1000.0
    }

    /// The result as a dict (the fields of `leafe-host exec --json`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("verdict", &self.verdict)?;
        d.set_item("exit_code", self.exit_code)?;
        d.set_item("stdout", &self.stdout)?;
        d.set_item("stderr", &self.stderr)?;
        d.set_item("fuel_used", self.fuel_used)?;
        d.set_item("wall_us", self.wall_us)?;
        d.set_item("sandbox_sha256", &self.sandbox_sha256)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "RunResult(verdict={:?}, exit_code={}, stdout={:?}, stderr={:?}, fuel_used={}, wall_us={})",
            self.verdict,
            self.exit_code,
            leafe_judge::clip(&self.stdout, 60),
            leafe_judge::clip(&self.stderr, 60),
            self.fuel_used.map_or("None".to_string(), |f| f.to_string()),
            self.wall_us
        )
    }
}

/// Run `code` as `python3 program.py` with `stdin` in a fresh interpreter.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn run_python(
    py: Python<'_>,
    code: &str,
    stdin: &str,
    wall_ms: i64,
    fuel: i64,
    memory_mb: i64,
    output_kb: i64,
) -> PyResult<PyRunResult> {
    let sandbox = sandbox(py)?;
    let limits = limits(&sandbox, wall_ms, fuel, memory_mb, output_kb)?;
    let r = py.detach(|| sandbox.run(code, stdin, &limits));
    Ok(PyRunResult {
        verdict: r.verdict.to_string(),
        exit_code: r.exit_code,
        stdout: r.stdout,
        stderr: r.stderr,
        fuel_used: r.fuel_used,
        wall_us: r.wall_us,
        sandbox_sha256: sandbox.sha256.clone(),
    })
}

/// One test's outcome.
#[pyclass(module = "leafe", name = "TestOutcome", frozen, get_all)]
pub struct PyTestOutcome {
    /// 1-based.
    test: usize,
    /// The assert line, or the input (clipped).
    name: String,
    passed: bool,
    /// `pass`, `fail`, `wrong-answer` or a sandbox verdict.
    verdict: String,
    /// Why it failed: the exception, the first differing line, the limit.
    detail: Option<String>,
    exit_code: i32,
    fuel_used: Option<u64>,
    wall_us: u64,
}

#[pymethods]
impl PyTestOutcome {
    fn __repr__(&self) -> String {
        format!(
            "TestOutcome(test={}, passed={}, verdict={:?}, name={:?})",
            self.test,
            if self.passed { "True" } else { "False" },
            self.verdict,
            leafe_judge::clip(&self.name, 60)
        )
    }
}

/// A program's report on its tests.
#[pyclass(module = "leafe", name = "TestReport", frozen, get_all)]
pub struct PyTestReport {
    passed: usize,
    total: usize,
    tests: Vec<Py<PyTestOutcome>>,
}

#[pymethods]
impl PyTestReport {
    /// Whether every test passed.
    #[getter]
    fn all_passed(&self) -> bool {
        self.passed == self.total
    }

    fn __repr__(&self) -> String {
        format!("TestReport(passed={}, total={})", self.passed, self.total)
    }
}

fn report(py: Python<'_>, report: TestReport) -> PyResult<PyTestReport> {
    let tests = report
        .tests
        .into_iter()
        .map(|t: TestOutcome| {
            Py::new(
                py,
                PyTestOutcome {
                    test: t.test,
                    name: t.name,
                    passed: t.passed,
                    verdict: t.verdict,
                    detail: t.detail,
                    exit_code: t.exit_code,
                    fuel_used: t.fuel_used,
                    wall_us: t.wall_us,
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyTestReport {
        passed: report.passed,
        total: report.total,
        tests,
    })
}

/// Run `code` against tests: `asserts` (with `setup` run first) when
/// `pairs` is None, else stdin/stdout `pairs`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn run_tests_native(
    py: Python<'_>,
    code: &str,
    setup: String,
    asserts: Vec<String>,
    pairs: Option<Vec<(String, String)>>,
    compare: &str,
    jobs: i64,
    wall_ms: i64,
    fuel: i64,
    memory_mb: i64,
    output_kb: i64,
) -> PyResult<PyTestReport> {
    let compare = Compare::parse(compare).map_err(PyValueError::new_err)?;
    let jobs = in_range("jobs", jobs, i64::MAX as u64)? as usize;
    let tests = match pairs {
        Some(pairs) => TestFile::Io(
            pairs
                .into_iter()
                .map(|(input, output)| IoTest { input, output })
                .collect(),
        ),
        None => TestFile::Asserts { setup, asserts },
    };
    let sandbox = sandbox(py)?;
    let limits = limits(&sandbox, wall_ms, fuel, memory_mb, output_kb)?;
    let r = py.detach(|| run_tests(&sandbox, code, &tests, &limits, jobs, compare));
    report(py, r)
}

/// Parse an assert file's text: (set-up lines, assert lines).
#[pyfunction]
fn parse_assert_file(text: &str) -> (String, Vec<String>) {
    leafe_judge::parse_assert_file(text)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRunResult>()?;
    m.add_class::<PyTestOutcome>()?;
    m.add_class::<PyTestReport>()?;
    m.add_function(wrap_pyfunction!(run_python, m)?)?;
    m.add_function(wrap_pyfunction!(run_tests_native, m)?)?;
    m.add_function(wrap_pyfunction!(parse_assert_file, m)?)?;
    Ok(())
}
