//! The figures a benchmark reports, each with its baseline from the same run.

use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub baseline: Option<f64>,
    /// `baseline / value` for times (how many times faster), `value /
    /// baseline` for rates.
    pub ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub figures: Vec<Figure>,
}

impl BenchReport {
    pub(crate) fn time(&mut self, name: &str, value: Duration, baseline: Duration) {
        let (v, b) = (value.as_secs_f64() * 1e6, baseline.as_secs_f64() * 1e6);
        self.figures.push(Figure {
            name: name.into(),
            value: v,
            unit: "µs".into(),
            baseline: Some(b),
            ratio: Some(b / v),
        });
    }
    pub(crate) fn rate(&mut self, name: &str, value: f64, unit: &str, baseline: Option<f64>) {
        let ratio = baseline.map(|b| value / b);
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            baseline,
            ratio,
        });
    }

    pub fn table(&self) -> String {
        let mut t = format!(
            "{:<62} {:>16} {:>12} {:>7}\n",
            "measure", "value", "baseline", "ratio"
        );
        for f in &self.figures {
            let base = f.baseline.map(|b| format!("{b:.1}")).unwrap_or_default();
            let ratio = f.ratio.map(|r| format!("{r:.2}x")).unwrap_or_default();
            t.push_str(&format!(
                "{:<62} {:>16} {:>12} {:>7}\n",
                f.name,
                format!("{:.1} {}", f.value, f.unit),
                base,
                ratio
            ));
        }
        t
    }
}
