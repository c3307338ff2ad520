//! The table every subcommand prints: one row per figure, with its goal and whether it was met.

use std::fmt::Write as _;

/// Whether a figure meets its goal; `Info` rows carry context and have no goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    Info,
}

impl Verdict {
    pub fn of(met: bool) -> Self {
        if met { Self::Met } else { Self::Missed }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "MISSED",
            Self::Info => "-",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub benchmark: String,
    pub figure: String,
    pub goal: String,
    pub verdict: Verdict,
    pub parameters: String,
}

impl Row {
    pub fn new(
        benchmark: impl Into<String>,
        figure: impl Into<String>,
        goal: impl Into<String>,
        verdict: Verdict,
        parameters: impl Into<String>,
    ) -> Self {
        Self {
            benchmark: benchmark.into(),
            figure: figure.into(),
            goal: goal.into(),
            verdict,
            parameters: parameters.into(),
        }
    }

    pub fn info(
        benchmark: impl Into<String>,
        figure: impl Into<String>,
        parameters: impl Into<String>,
    ) -> Self {
        Self::new(benchmark, figure, "", Verdict::Info, parameters)
    }
}

/// Renders rows as a Markdown table (readable in a terminal and pasteable into the README).
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| benchmark | figure | goal | met | parameters |\n|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.benchmark,
            r.figure,
            r.goal,
            r.verdict.as_str(),
            r.parameters
        );
    }
    out
}
