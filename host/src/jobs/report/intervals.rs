//! Pass@k with honest uncertainty: each variant (a policy, a distilled
//! model) evaluated under several seeds on the same tasks, its Pass@k the
//! mean over seeds and tasks, with a 95% percentile-bootstrap interval that
//! resamples tasks (shared by all variants, so differences are paired) and
//! each variant's seeds. A difference whose interval includes zero is not a
//! finding.

use super::super::eval::{pass_at_k, read_results as eval_results};
use crate::util::rng::SplitMix;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Bootstrap resamples.
const RESAMPLES: usize = 2000;

/// One variant: its name and one eval directory per seed.
pub struct Variant {
    pub name: String,
    pub dirs: Vec<PathBuf>,
}

impl Variant {
    /// `NAME=DIR[,DIR...]`.
    pub fn parse(spec: &str) -> Result<Variant> {
        let (name, dirs) = spec
            .split_once('=')
            .filter(|(n, d)| !n.trim().is_empty() && !d.trim().is_empty())
            .with_context(|| format!("--variant {spec}: expected NAME=DIR[,DIR...]"))?;
        Ok(Variant {
            name: name.trim().to_string(),
            dirs: dirs.split(',').map(|d| PathBuf::from(d.trim())).collect(),
        })
    }
}

/// A variant's successes: `[seed][task]` = (samples, successes).
struct Loaded {
    name: String,
    seeds: Vec<Vec<(u32, u32)>>,
}

/// An estimate and its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn includes_zero(&self) -> bool {
        self.low <= 0.0 && self.high >= 0.0
    }
}

/// The intervals of every variant and every pair, per k.
pub struct Comparison {
    pub names: Vec<String>,
    pub seeds: Vec<usize>,
    pub tasks: usize,
    pub ks: Vec<u32>,
    /// `[variant][k]`.
    pub pass: Vec<Vec<Interval>>,
    /// (a, b, `[k]` of a - b) for every pair a < b.
    pub differences: Vec<(usize, usize, Vec<Interval>)>,
}

fn read_results(dir: &Path) -> Result<BTreeMap<u32, (u32, u32)>> {
    Ok(eval_results(dir)?
        .into_iter()
        .map(|r| (r.task, (r.samples, r.successes)))
        .collect())
}

/// Read every variant's evaluations and compare them.
pub fn compare(variants: &[Variant]) -> Result<Comparison> {
    if variants.is_empty() {
        bail!("name at least one --variant");
    }
    let mut tasks: Option<(Vec<u32>, PathBuf)> = None;
    let mut loaded = Vec::new();
    for v in variants {
        let mut seeds = Vec::new();
        for dir in &v.dirs {
            let results = read_results(dir)?;
            let ids: Vec<u32> = results.keys().copied().collect();
            match &tasks {
                None => tasks = Some((ids, dir.clone())),
                Some((first, from)) if *first != ids => bail!(
                    "{} evaluated other tasks than {}: paired intervals need the same tasks",
                    dir.display(),
                    from.display()
                ),
                Some(_) => {}
            }
            seeds.push(results.into_values().collect());
        }
        loaded.push(Loaded {
            name: v.name.clone(),
            seeds,
        });
    }
    let task_count = tasks.map(|(t, _)| t.len()).unwrap_or(0);
    let samples = loaded
        .iter()
        .flat_map(|v| v.seeds.iter().flatten().map(|(n, _)| *n))
        .min()
        .unwrap_or(0);
    let ks: Vec<u32> = std::iter::successors(Some(1u32), |k| k.checked_mul(2))
        .take_while(|k| *k <= samples)
        .collect();
    if ks.is_empty() {
        bail!("the evaluations have no samples");
    }
    // Pass@k of variant v over the drawn seeds and tasks.
    let value = |v: &Loaded, seeds: &[usize], tasks: &[usize], k: u32| -> f64 {
        let mut sum = 0.0;
        for s in seeds {
            for t in tasks {
                let (n, c) = v.seeds[*s][*t];
                sum += pass_at_k(n, c, k);
            }
        }
        sum / (seeds.len() * tasks.len()) as f64
    };
    let all_tasks: Vec<usize> = (0..task_count).collect();
    let mut rng = SplitMix::derive(0, &[task_count as u64, loaded.len() as u64]);
    // draws[b][v][k]: the resampled Pass@k.
    let mut draws: Vec<Vec<Vec<f64>>> = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let tasks: Vec<usize> = (0..task_count).map(|_| rng.below(task_count)).collect();
        let per_variant = loaded
            .iter()
            .map(|v| {
                let n = v.seeds.len();
                let seeds: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
                ks.iter().map(|k| value(v, &seeds, &tasks, *k)).collect()
            })
            .collect();
        draws.push(per_variant);
    }
    let interval = |mean: f64, mut xs: Vec<f64>| -> Interval {
        xs.sort_by(f64::total_cmp);
        let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
        Interval {
            mean,
            low: at(0.025),
            high: at(0.975),
        }
    };
    let point: Vec<Vec<f64>> = loaded
        .iter()
        .map(|v| {
            let seeds: Vec<usize> = (0..v.seeds.len()).collect();
            ks.iter()
                .map(|k| value(v, &seeds, &all_tasks, *k))
                .collect()
        })
        .collect();
    let pass = (0..loaded.len())
        .map(|v| {
            (0..ks.len())
                .map(|k| interval(point[v][k], draws.iter().map(|d| d[v][k]).collect()))
                .collect()
        })
        .collect();
    let mut differences = Vec::new();
    for a in 0..loaded.len() {
        for b in a + 1..loaded.len() {
            let per_k = (0..ks.len())
                .map(|k| {
                    interval(
                        point[a][k] - point[b][k],
                        draws.iter().map(|d| d[a][k] - d[b][k]).collect(),
                    )
                })
                .collect();
            differences.push((a, b, per_k));
        }
    }
    Ok(Comparison {
        names: loaded.iter().map(|v| v.name.clone()).collect(),
        seeds: loaded.iter().map(|v| v.seeds.len()).collect(),
        tasks: task_count,
        ks,
        pass,
        differences,
    })
}

fn percent(i: &Interval) -> String {
    format!(
        "{:.1} [{:.1}, {:.1}]",
        100.0 * i.mean,
        100.0 * i.low,
        100.0 * i.high
    )
}

/// The comparison as Markdown: Pass@k with intervals, then every pairwise
/// difference, those whose interval includes zero marked as no finding.
pub fn markdown(c: &Comparison) -> String {
    let mut md = format!(
        "Pass@k in %, mean over seeds and {} tasks, with 95% intervals (percentile bootstrap \
         over tasks and seeds, {RESAMPLES} resamples).\n\n| variant | seeds |",
        c.tasks
    );
    for k in &c.ks {
        let _ = write!(md, " pass@{k} |");
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---|".repeat(c.ks.len()));
    md.push('\n');
    for (v, name) in c.names.iter().enumerate() {
        let _ = write!(md, "| {name} | {} |", c.seeds[v]);
        for i in &c.pass[v] {
            let _ = write!(md, " {} |", percent(i));
        }
        md.push('\n');
    }
    if c.differences.is_empty() {
        return md;
    }
    md.push_str(
        "\nDifferences in points (paired over tasks); \"no finding\" where the interval includes \
         zero.\n\n| difference |",
    );
    for k in &c.ks {
        let _ = write!(md, " pass@{k} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(c.ks.len()));
    md.push('\n');
    for (a, b, per_k) in &c.differences {
        let _ = write!(md, "| {} − {} |", c.names[*a], c.names[*b]);
        for i in per_k {
            let mark = if i.includes_zero() { " no finding" } else { "" };
            let _ = write!(md, " {}{mark} |", percent(i));
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::super::super::eval::TaskResult;
    use super::*;
    use crate::tree::rundir::RESULTS;

    /// An eval directory whose task `t` had `successes(t)` of 4 samples.
    fn eval_dir(root: &Path, name: &str, tasks: u32, successes: impl Fn(u32) -> u32) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let lines: Vec<String> = (0..tasks)
            .map(|task| {
                serde_json::to_string(&TaskResult {
                    task,
                    samples: 4,
                    successes: successes(task),
                    steps: 0,
                    errors: 0,
                    first_error: None,
                    busy_seconds: 0.0,
                })
                .unwrap()
            })
            .collect();
        std::fs::write(dir.join(RESULTS), lines.join("\n")).unwrap();
        dir
    }

    #[test]
    fn intervals_cover_tasks_and_seeds_and_mark_non_findings() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let variant = |name: &str, dirs: Vec<PathBuf>| Variant {
            name: name.into(),
            dirs,
        };
        let good = variant(
            "good",
            vec![
                eval_dir(root, "g0", 20, |_| 4),
                eval_dir(root, "g1", 20, |_| 4),
            ],
        );
        let bad = variant(
            "bad",
            vec![
                eval_dir(root, "b0", 20, |_| 0),
                eval_dir(root, "b1", 20, |_| 0),
            ],
        );
        // One success in one task of one seed: no better than `bad` for sure.
        let lucky = variant(
            "lucky",
            vec![
                eval_dir(root, "l0", 20, |t| u32::from(t == 0)),
                eval_dir(root, "l1", 20, |_| 0),
            ],
        );
        // Half the tasks solved every time: its interval is about the tasks.
        let half = variant("half", vec![eval_dir(root, "h0", 20, |t| 4 * (t % 2))]);
        let c = compare(&[good, bad, lucky, half]).unwrap();
        assert_eq!(c.ks, [1, 2, 4]);
        assert_eq!((c.pass[0][0].low, c.pass[0][0].high), (1.0, 1.0));
        assert_eq!(c.pass[1][0].mean, 0.0);
        let half = c.pass[3][0];
        assert_eq!(half.mean, 0.5);
        assert!(half.low < 0.4 && half.high > 0.6, "{half:?}");
        let diff = |a: usize, b: usize| {
            c.differences
                .iter()
                .find(|(x, y, _)| (*x, *y) == (a, b))
                .map(|d| d.2[0])
                .unwrap()
        };
        assert!(!diff(0, 1).includes_zero() && diff(0, 1).mean == 1.0);
        assert!(diff(1, 2).includes_zero(), "{:?}", diff(1, 2));
        let md = markdown(&c);
        assert!(md.contains("| good | 2 | 100.0 [100.0, 100.0] |"), "{md}");
        assert!(
            md.contains("| bad − lucky |") && md.contains("no finding"),
            "{md}"
        );

        // Other tasks cannot be paired; a bad spec is a clear error.
        let other = variant("other", vec![eval_dir(root, "o0", 19, |_| 0)]);
        let first = variant("first", vec![root.join("g0")]);
        let err = compare(&[first, other]).err().unwrap().to_string();
        assert!(err.contains("other tasks"), "{err}");
        assert!(Variant::parse("nameonly").is_err());
        assert_eq!(Variant::parse("a=x,y").unwrap().dirs.len(), 2);
    }
}
