//! The printed result: one row per figure with its goal and whether it was met, and one line of
//! parameters per benchmark. Verdicts compare measured values with the goals; the goals
//! never feed back into any parameter.

use std::fmt::Write as _;

#[derive(Debug, Clone)]
pub struct Row {
    pub bench: String,
    pub figure: String,
    pub value: String,
    pub goal: String,
    /// `Some(true)` met, `Some(false)` missed, `None` for context figures without a goal.
    pub met: Option<bool>,
    /// What limits a missed goal (or a caveat on the figure).
    pub note: String,
}

impl Row {
    pub fn info(bench: &str, figure: &str, value: String) -> Self {
        Self {
            bench: bench.into(),
            figure: figure.into(),
            value,
            goal: "-".into(),
            met: None,
            note: String::new(),
        }
    }

    pub fn goal(bench: &str, figure: &str, value: String, goal: &str, met: bool) -> Self {
        Self {
            bench: bench.into(),
            figure: figure.into(),
            value,
            goal: goal.into(),
            met: Some(met),
            note: String::new(),
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

/// One benchmark's outcome: its rows and the parameters it ran with.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub rows: Vec<Row>,
    pub params: Vec<String>,
}

pub fn render(sections: &[Section], header: &[String]) -> String {
    let rows: Vec<&Row> = sections.iter().flat_map(|s| s.rows.iter()).collect();
    let w = |f: &dyn Fn(&Row) -> usize, title: &str| {
        rows.iter()
            .map(|r| f(r))
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let wb = w(&|r| r.bench.len(), "benchmark");
    let wf = w(&|r| r.figure.len(), "figure");
    let wv = w(&|r| r.value.len(), "value");
    let wg = w(&|r| r.goal.len(), "goal");
    let mut out = String::new();
    for h in header {
        let _ = writeln!(out, "{h}");
    }
    let _ = writeln!(
        out,
        "\n{:wb$}  {:wf$}  {:>wv$}  {:wg$}  {:7}  note",
        "benchmark", "figure", "value", "goal", "verdict"
    );
    let _ = writeln!(out, "{}", "-".repeat(wb + wf + wv + wg + 24));
    for r in &rows {
        let verdict = match r.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        let _ = writeln!(
            out,
            "{:wb$}  {:wf$}  {:>wv$}  {:wg$}  {:7}  {}",
            r.bench, r.figure, r.value, r.goal, verdict, r.note
        );
    }
    let _ = writeln!(out, "\nparameters:");
    for s in sections {
        for p in &s.params {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

pub fn secs(ms: f64) -> String {
    format!("{:.3} s", ms / 1000.0)
}

pub fn opt_secs(ms: Option<f64>) -> String {
    ms.map_or_else(|| "n/a".into(), secs)
}
