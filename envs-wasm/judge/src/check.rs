//! Judging `assert` tests so that a pass proves the test ran and held.
//!
//! A program that is trying to fool the judge can exit early with status 0,
//! turn a failing assert into a clean exit (trace hooks, exception hooks,
//! replaced streams), or return an object whose `__eq__` is always true.
//! "Exit status 0 after the assert line" trusts all of that. Instead:
//!
//! 1. The program runs with the test's *actual* side only: `assert f(x) == y`
//!    becomes `value = f(x)`, followed by a harness that turns the value into a
//!    Python literal of plain built-in types (reading subclasses through their
//!    base type's own methods, never the program's) and writes it on one line
//!    marked with a fresh token. No marker, a wrong token, or two markers: the
//!    program ended before the test completed, and the test fails.
//! 2. The *expected* side is never shown to the program: a second, trusted run
//!    without the program's code rebuilds the literal with `ast.literal_eval`
//!    and compares it with `y` there, by Python's `==` between built-in values.
//!
//! So a program passes a hidden test only by producing the right value. The
//! token stops accidental passes (an early exit writes no marker); the
//! program can read its own source, so the token alone is not a secret — the
//! expected value is. An assert that is not one `==` (e.g. `assert p(7)`)
//! has its condition's value checked instead, which must be a plain value
//! that is true; objects' own comparison methods still run there, so only
//! `==` tests are proof against faked comparisons. [`Compare::Python`] keeps
//! the plain semantics (the assert line itself, pass on exit status 0) for
//! reference studies; it can be gamed.

/// How assert tests are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// Plain values, compared outside the program (the default).
    Plain,
    /// The assert line run as it is: passes when the program exits 0.
    Python,
}

impl Compare {
    pub fn parse(text: &str) -> Result<Compare, String> {
        match text {
            "plain" => Ok(Compare::Plain),
            "python" => Ok(Compare::Python),
            other => Err(format!("compare must be plain or python, got '{other}'")),
        }
    }
}

/// What one assert line checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// `assert actual == expected`.
    Equal { actual: String, expected: String },
    /// Any other assert: its condition must be a true plain value.
    Truth { condition: String },
}

impl Check {
    /// The check of an `assert` line (its message, if any, dropped); `None`
    /// for a line that is not an assert.
    pub fn parse(line: &str) -> Option<Check> {
        let body = line.trim().strip_prefix("assert")?;
        if !body.starts_with([' ', '(', '\t']) {
            return None;
        }
        let body = strip_comment(body);
        let mut condition = top_level_split(body, ",").map_or(body, |(c, _)| c).trim();
        // `assert(x == y)`: the parentheses around the whole condition.
        while let Some(inner) = condition
            .strip_prefix('(')
            .and_then(|c| c.strip_suffix(')'))
            .filter(|inner| balanced(inner))
        {
            condition = inner.trim();
        }
        if condition.is_empty() {
            return None;
        }
        match top_level_split(condition, "==") {
            Some((a, e)) if is_simple_operand(a) && is_simple_operand(e) => Some(Check::Equal {
                actual: a.trim().to_string(),
                expected: e.trim().to_string(),
            }),
            _ => Some(Check::Truth {
                condition: condition.to_string(),
            }),
        }
    }

    /// The expression the program's run evaluates.
    fn evaluated(&self) -> &str {
        match self {
            Check::Equal { actual, .. } => actual,
            Check::Truth { condition } => condition,
        }
    }
}

/// `text` up to its comment, if it has one (outside string literals).
fn strip_comment(text: &str) -> &str {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => return &text[..i],
            b'\'' | b'"' => i = skip_string(bytes, i),
            _ => i += 1,
        }
    }
    text
}

/// Whether the brackets of `text` (outside strings) never close more than
/// they opened: `(a)(b)` stripped of its outer pair is not.
fn balanced(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0i32, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    depth == 0
}

/// Split `text` at the first top-level (outside brackets, strings and
/// comments) occurrence of `sep`, when there is exactly one.
fn top_level_split<'a>(text: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let found = top_level_positions(text, sep);
    match found.as_slice() {
        [at] => Some((&text[..*at], &text[*at + sep.len()..])),
        [at, ..] if sep == "," => Some((&text[..*at], &text[*at + 1..])),
        _ => None,
    }
}

/// Byte offsets of `sep` at bracket depth 0 outside string literals; for
/// `==`, not part of `<=`, `>=`, `!=` or a longer run of `=`.
fn top_level_positions(text: &str, sep: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut i, mut found) = (0i32, 0usize, Vec::new());
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ if depth == 0 && text[i..].starts_with(sep) => {
                let before = i.checked_sub(1).map(|j| bytes[j]);
                let after = bytes.get(i + sep.len()).copied();
                let part_of_other = sep == "=="
                    && (matches!(before, Some(b'<' | b'>' | b'!' | b'=')) || after == Some(b'='));
                if !part_of_other {
                    found.push(i);
                }
                i += sep.len();
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The index just past the string literal that starts at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let triple = bytes.get(start..start + 3) == Some(&[quote; 3][..]);
    let (close, mut i): (&[u8], usize) = if triple {
        (&bytes[start..start + 3], start + 3)
    } else {
        (&bytes[start..start + 1], start + 1)
    };
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i..].starts_with(close) {
            return i + close.len();
        }
        i += 1;
    }
    bytes.len()
}

/// An operand of a lone `==`: no other comparison or boolean operator at the
/// top level (`a == b or c` is not `a == (b or c)`).
fn is_simple_operand(text: &str) -> bool {
    if text.trim().is_empty() {
        return false;
    }
    let symbols = ["<", ">", "!="];
    if symbols
        .iter()
        .any(|s| !top_level_positions(text, s).is_empty())
    {
        return false;
    }
    let words = [" and ", " or ", " not ", " in ", " is ", " if ", "lambda "];
    let padded = format!(" {} ", text.trim());
    !words
        .iter()
        .any(|w| !top_level_positions(&padded, w).is_empty())
}

/// The line prefix that carries a run's result.
fn marker(token: &str) -> String {
    format!("@@leafe-check {token} ")
}

/// The harness after the program: the value as a literal of plain types, on
/// one marked line of the real stdout.
const HARNESS: &str = r#"
def __leafe_report(__leafe_value, __leafe_mark):
    import builtins as b, sys
    def lit(v, depth):
        if depth > 100:
            raise ValueError('the value is nested more than 100 levels deep')
        t = b.type(v)
        m = t.__mro__
        if v is None:
            return 'None'
        if t is b.bool:
            return 'True' if v else 'False'
        if b.int in m:
            return b.int.__repr__(v)
        if b.float in m:
            r = b.float.__repr__(v)
            if r == 'nan':
                raise ValueError('the value holds a NaN, which equals nothing')
            return {'inf': '1e999', '-inf': '-1e999'}.get(r, r)
        if b.complex in m:
            r = b.complex.__repr__(v)
            if 'nan' in r or 'inf' in r:
                raise ValueError('the value holds a complex NaN or infinity')
            return r
        if b.str in m:
            return b.str.__repr__(v)
        if b.bytes in m:
            return b.bytes.__repr__(v)
        if b.tuple in m:
            items = [lit(x, depth + 1) for x in b.tuple.__iter__(v)]
            return '(' + ', '.join(items) + (',' if b.len(items) == 1 else '') + ')'
        if b.list in m:
            return '[' + ', '.join([lit(x, depth + 1) for x in b.list.__iter__(v)]) + ']'
        if b.dict in m:
            pairs = [lit(k, depth + 1) + ': ' + lit(x, depth + 1) for k, x in b.dict.items(v)]
            return '{' + ', '.join(pairs) + '}'
        for base in (b.set, b.frozenset):
            if base in m:
                items = [lit(x, depth + 1) for x in base.__iter__(v)]
                return '{' + ', '.join(items) + '}' if items else 'set()'
        raise TypeError('a ' + b.str(t.__name__) + ' object is not a plain value')
    try:
        text = 'value ' + lit(__leafe_value, 0)
    except BaseException as e:
        text = 'not-plain ' + b.str.__str__(b.type(e).__name__) + ': ' + b.str(e)
    out = sys.__stdout__
    out.write('\n' + __leafe_mark + text.replace('\n', ' ') + '\n')
    out.flush()
"#;

/// The program for one test: the solution, the set-up code, the evaluated
/// expression and the harness that reports it under `token`.
pub fn check_program(solution: &str, setup: &str, check: &Check, token: &str) -> String {
    let mut program = String::new();
    program.push_str(solution.trim_end());
    program.push_str("\n\n");
    if !setup.trim().is_empty() {
        program.push_str(setup.trim_end());
        program.push('\n');
    }
    program.push_str("__leafe_value = (\n");
    program.push_str(check.evaluated());
    program.push_str("\n)\n");
    program.push_str(HARNESS);
    program.push_str(&format!(
        "__leafe_report(__leafe_value, {:?})\n",
        marker(token)
    ));
    program
}

/// What a program's run reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported {
    /// The value, as a literal of plain types.
    Value(String),
    /// The value could not be read as plain types, and why.
    NotPlain(String),
    /// No marker with the token: the program ended before the test completed.
    Missing,
    /// More than one marker with the token.
    Repeated,
}

/// The report in `stdout` under `token`, and `stdout` without it.
pub fn read_report(stdout: &str, token: &str) -> (Reported, String) {
    let mark = marker(token);
    let mut found = Vec::new();
    let mut rest = String::with_capacity(stdout.len());
    for line in stdout.split_inclusive('\n') {
        match line.trim_end_matches('\n').strip_prefix(&mark) {
            Some(report) => found.push(report.to_string()),
            None => rest.push_str(line),
        }
    }
    // The harness starts its line with a newline of its own.
    if !found.is_empty() && rest.ends_with('\n') {
        rest.pop();
    }
    let reported = match found.as_slice() {
        [] => Reported::Missing,
        [one] => match (one.strip_prefix("value "), one.strip_prefix("not-plain ")) {
            (Some(value), _) => Reported::Value(value.to_string()),
            (_, Some(why)) => Reported::NotPlain(why.to_string()),
            _ => Reported::Missing,
        },
        _ => Reported::Repeated,
    };
    (reported, rest)
}

const EXPECTED_PRELUDE: &str = r#"import ast as __leafe_ast, builtins as __leafe_builtins
class __LeafeNames(dict):
    # The expected side may name built-ins and standard modules.
    def __missing__(self, name):
        if hasattr(__leafe_builtins, name):
            return getattr(__leafe_builtins, name)
        try:
            return __import__(name)
        except ImportError:
            raise NameError(name) from None
__leafe_ns = __LeafeNames()
"#;

/// The trusted program that compares reported values with the expected
/// sides: the set-up code and the tests, never the program. `items` are
/// (test number, check, reported literal).
pub fn expected_program(setup: &str, items: &[(usize, &Check, &str)]) -> String {
    let mut program = String::from(EXPECTED_PRELUDE);
    // The set-up may need the program's own definitions (MBPP builds trees
    // of the solution's `Node` class): what fails of it is left out, and an
    // expected side that needed it fails to compare.
    program.push_str(&format!(
        "try:\n    exec(compile({}, 'setup', 'exec'), __leafe_ns, __leafe_ns)\nexcept BaseException:\n    pass\n",
        py_str(setup)
    ));
    for (number, check, reported) in items {
        let test = match check {
            Check::Equal { expected, .. } => format!(
                "__leafe_ast.literal_eval({}) == eval(compile({}, 'expected', 'eval'), \
                 __leafe_ns, __leafe_ns)",
                py_str(reported),
                py_str(expected)
            ),
            Check::Truth { .. } => {
                format!(
                    "__leafe_builtins.bool(__leafe_ast.literal_eval({}))",
                    py_str(reported)
                )
            }
        };
        program.push_str(&format!(
            "try:\n    __leafe_r = ({test}) is True\n    print('@@leafe-expected {number}', \
             'pass' if __leafe_r else 'fail')\nexcept BaseException as e:\n    \
             print('@@leafe-expected {number}', 'error', type(e).__name__ + ': ' + \
             str(e).replace(chr(10), ' '))\n"
        ));
    }
    program
}

/// A Python string literal of `text`.
fn py_str(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serialises")
}

/// The trusted run's answer for test `number`: `Ok(true)` held, `Ok(false)`
/// did not, `Err(why)` could not be compared.
pub fn read_expected(stdout: &str, number: usize) -> Result<bool, String> {
    let prefix = format!("@@leafe-expected {number} ");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .ok_or("the comparison did not run")?;
    match line {
        "pass" => Ok(true),
        "fail" => Ok(false),
        other => Err(other.strip_prefix("error ").unwrap_or(other).to_string()),
    }
}

/// One assert test's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub passed: bool,
    /// Why it failed, in a sentence (`None` when it passed).
    pub why: Option<String>,
    /// The value the program produced, as a literal (when it got that far).
    pub got: Option<String>,
}

/// How a test run ended, as the judge needs it.
#[derive(Clone, Debug)]
pub struct Ran<'a> {
    /// The sandbox verdict was `ok` (the program ran to an end of its own).
    pub finished: bool,
    pub exit_code: i32,
    pub stdout: &'a str,
}

/// The outcome of a test whose run reported `reported`, given the trusted
/// comparison's answer (`None` while it has not run).
pub fn outcome(
    check: &Check,
    ran: &Ran,
    token: &str,
    compared: Option<&str>,
    number: usize,
) -> Outcome {
    let fail = |why: String, got: Option<String>| Outcome {
        passed: false,
        why: Some(why),
        got,
    };
    let (reported, _) = read_report(ran.stdout, token);
    if !ran.finished {
        return fail(format!("exit status {}", ran.exit_code), None);
    }
    match reported {
        Reported::Value(value) => match compared.map(|out| read_expected(out, number)) {
            Some(Ok(true)) => Outcome {
                passed: true,
                why: None,
                got: Some(value),
            },
            Some(Ok(false)) => {
                let why = match check {
                    Check::Equal { expected, .. } => format!("expected {expected}, got {value}"),
                    Check::Truth { .. } => format!("the condition was {value}"),
                };
                fail(why, Some(value))
            }
            Some(Err(e)) => fail(
                format!("the result could not be compared: {e}"),
                Some(value),
            ),
            None => fail("the result was not compared".into(), Some(value)),
        },
        Reported::NotPlain(why) => fail(
            format!("the result is not made of plain values ({why})"),
            None,
        ),
        Reported::Repeated => fail("the test reported more than one result".into(), None),
        Reported::Missing if ran.exit_code == 0 => {
            fail("the program ended before the test completed".into(), None)
        }
        Reported::Missing => fail(format!("exit status {}", ran.exit_code), None),
    }
}

/// One program judged against assert tests, in two rounds of sandbox runs:
/// [`AssertJudge::programs`] (one per test), then at most one trusted
/// [`AssertJudge::comparison`], then [`AssertJudge::outcomes`].
pub struct AssertJudge {
    solution: String,
    setup: String,
    lines: Vec<String>,
    checks: Vec<Check>,
    tokens: Vec<String>,
    compare: Compare,
}

impl AssertJudge {
    /// `tokens`: one fresh token per test (unknown to whoever wrote `solution`).
    pub fn new(
        solution: &str,
        setup: &str,
        asserts: &[String],
        compare: Compare,
        tokens: Vec<String>,
    ) -> AssertJudge {
        assert_eq!(asserts.len(), tokens.len(), "one token per test");
        let checks = asserts
            .iter()
            .map(|line| {
                Check::parse(line).unwrap_or_else(|| Check::Truth {
                    condition: line.trim().to_string(),
                })
            })
            .collect();
        AssertJudge {
            solution: solution.to_string(),
            setup: setup.to_string(),
            lines: asserts.to_vec(),
            checks,
            tokens,
            compare,
        }
    }

    /// The program of each test, to run in a fresh sandbox each.
    pub fn programs(&self) -> Vec<String> {
        self.checks
            .iter()
            .zip(&self.tokens)
            .zip(&self.lines)
            .map(|((check, token), line)| match self.compare {
                Compare::Plain => check_program(&self.solution, &self.setup, check, token),
                Compare::Python => crate::assert_program(&self.solution, &self.setup, line),
            })
            .collect()
    }

    /// The trusted program that compares what the runs reported with the
    /// expected sides, if any run reported a value.
    pub fn comparison(&self, runs: &[Ran]) -> Option<String> {
        if self.compare == Compare::Python {
            return None;
        }
        let reported: Vec<(usize, &Check, String)> = self
            .checks
            .iter()
            .zip(&self.tokens)
            .zip(runs)
            .enumerate()
            .filter_map(
                |(i, ((check, token), ran))| match read_report(ran.stdout, token).0 {
                    Reported::Value(v) if ran.finished => Some((i + 1, check, v)),
                    _ => None,
                },
            )
            .collect();
        if reported.is_empty() {
            return None;
        }
        let items: Vec<(usize, &Check, &str)> = reported
            .iter()
            .map(|(n, c, v)| (*n, *c, v.as_str()))
            .collect();
        Some(expected_program(&self.setup, &items))
    }

    /// Each test's outcome. Runs that did not finish (an exception, a limit)
    /// fail with "exit status N"; callers describe those from the run.
    pub fn outcomes(&self, runs: &[Ran], compared: Option<&str>) -> Vec<Outcome> {
        self.checks
            .iter()
            .zip(&self.tokens)
            .zip(runs)
            .enumerate()
            .map(|(i, ((check, token), ran))| match self.compare {
                Compare::Python => Outcome {
                    passed: ran.finished && ran.exit_code == 0,
                    why: (!(ran.finished && ran.exit_code == 0))
                        .then(|| format!("exit status {}", ran.exit_code)),
                    got: None,
                },
                Compare::Plain => outcome(check, ran, token, compared, i + 1),
            })
            .collect()
    }

    /// The program's own stdout of test `i`, without the harness's report.
    pub fn program_stdout(&self, i: usize, stdout: &str) -> String {
        read_report(stdout, &self.tokens[i]).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_asserts_at_their_one_equality() {
        let eq = |a: &str, e: &str| {
            Some(Check::Equal {
                actual: a.into(),
                expected: e.into(),
            })
        };
        assert_eq!(Check::parse("assert f(1) == 2"), eq("f(1)", "2"));
        assert_eq!(
            Check::parse("assert f('==', [1, (2)])==('a,b', \"==\") , 'msg'"),
            eq("f('==', [1, (2)])", "('a,b', \"==\")")
        );
        assert_eq!(Check::parse("assert(g(x)==[1,2])"), eq("g(x)", "[1,2]"));
        assert_eq!(Check::parse("assert (f(1)) == (2)"), eq("(f(1))", "(2)"));
        assert_eq!(
            Check::parse("assert f(1) <= 2 == x"),
            Some(Check::Truth {
                condition: "f(1) <= 2 == x".into()
            })
        );
        assert_eq!(
            Check::parse("assert f(1) == 1 or f(1) == 2"),
            Some(Check::Truth {
                condition: "f(1) == 1 or f(1) == 2".into()
            })
        );
        assert_eq!(
            Check::parse("assert not f(1)"),
            Some(Check::Truth {
                condition: "not f(1)".into()
            })
        );
        assert_eq!(
            Check::parse("assert f('''a#\n==''') == 'x' # c == d"),
            eq("f('''a#\n==''')", "'x'")
        );
        assert_eq!(Check::parse("x = 1"), None);
        assert_eq!(Check::parse("asserted = 1"), None);
    }

    #[test]
    fn reads_exactly_one_marked_report() {
        let out = "hello\n\n@@leafe-check T value [1, 2]\n";
        assert_eq!(
            read_report(out, "T"),
            (Reported::Value("[1, 2]".into()), "hello\n".into())
        );
        assert_eq!(read_report("hello\n", "T").0, Reported::Missing);
        assert_eq!(read_report(out, "U").0, Reported::Missing);
        let twice = format!("{out}{out}");
        assert_eq!(read_report(&twice, "T").0, Reported::Repeated);
        assert_eq!(
            read_report("@@leafe-check T not-plain TypeError: x\n", "T").0,
            Reported::NotPlain("TypeError: x".into())
        );
    }

    #[test]
    fn an_early_exit_is_told_from_a_failure() {
        let check = Check::parse("assert f(1) == 2").unwrap();
        let ran = |finished, exit_code| Ran {
            finished,
            exit_code,
            stdout: "",
        };
        let o = outcome(&check, &ran(true, 0), "T", None, 1);
        assert_eq!(
            o.why.as_deref(),
            Some("the program ended before the test completed")
        );
        let o = outcome(&check, &ran(true, 1), "T", None, 1);
        assert_eq!(o.why.as_deref(), Some("exit status 1"));
        let done = Ran {
            finished: true,
            exit_code: 0,
            stdout: "\n@@leafe-check T value 3\n",
        };
        let o = outcome(&check, &done, "T", Some("@@leafe-expected 1 fail\n"), 1);
        assert_eq!(o.why.as_deref(), Some("expected 2, got 3"));
        assert!(outcome(&check, &done, "T", Some("@@leafe-expected 1 pass\n"), 1).passed);
    }
}
