//! Live progress of the followed jobs: counts per state and per account, redrawn in place on a
//! terminal, one compact line at a time otherwise (CI logs, pipes).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use reelay_aws::DynamoStore;
use reelay_domain::ports::{JobStore, StoreError};
use reelay_domain::{AuditEvent, Job, JobId, JobState};

use crate::demo::TrackedJob;

/// A followed job and what the store says about it now.
#[derive(Debug, Clone)]
pub struct Observed {
    pub tracked: TrackedJob,
    pub job: Option<Job>,
}

impl Observed {
    pub fn state(&self) -> Option<JobState> {
        self.job.as_ref().map(|j| j.state)
    }

    /// Held with no time to resume: waits for a person (re-authorisation, an operator), and
    /// says why. Promise 2 allows this; it is not a lost job.
    pub fn parked(&self) -> bool {
        self.job.as_ref().is_some_and(|j| {
            !j.state.is_terminal() && j.hold.as_ref().is_some_and(|h| h.until.is_none())
        })
    }

    /// Nothing more will happen without a person: terminal, published, (for a draft) in the
    /// creator's inbox, or visibly parked.
    pub fn settled(&self) -> bool {
        if self.parked() {
            return true;
        }
        match self.state() {
            None => false,
            Some(s) if s.is_terminal() => true,
            Some(JobState::PublishComplete) => true,
            Some(JobState::Submitted) => self.tracked.draft,
            Some(_) => false,
        }
    }

    /// Reached TikTok (posted, or delivered to the inbox for a draft).
    pub fn published(&self) -> bool {
        matches!(
            self.state(),
            Some(JobState::PublishComplete | JobState::PubliclyAvailable)
        ) || (self.tracked.draft && self.state() == Some(JobState::Submitted))
    }
}

/// A job's whole audit trail, oldest first (every page of [`JobStore::audit_page`]).
pub async fn audit_trail<J: JobStore>(jobs: &J, id: &JobId) -> Result<Vec<AuditEvent>, StoreError> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = jobs.audit_page(id, after, 1_000).await?;
        events.extend(page.events);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(events),
        }
    }
}

/// Reads every followed job once.
pub async fn observe(
    jobs: &DynamoStore,
    tracked: &[TrackedJob],
) -> Result<Vec<Observed>, StoreError> {
    let mut out = Vec::with_capacity(tracked.len());
    for t in tracked {
        let job = match JobId::parse(t.job_id.clone()) {
            Ok(id) => jobs.get(&id).await?,
            Err(_) => None,
        };
        out.push(Observed {
            tracked: t.clone(),
            job,
        });
    }
    Ok(out)
}

fn short(state: Option<JobState>) -> &'static str {
    state.map_or("missing", |s| s.as_str())
}

/// The display: a header, the counts per state, one line per account.
pub fn render(observed: &[Observed], elapsed: Duration) -> Vec<String> {
    let mut per_state: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut per_account: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
    for o in observed {
        let state = if o.parked() {
            "parked"
        } else {
            short(o.state())
        };
        *per_state.entry(state).or_default() += 1;
        per_account
            .entry(o.tracked.account_id.as_str())
            .or_default()
            .push(state);
    }
    let settled = observed.iter().filter(|o| o.settled()).count();
    let mut lines = vec![format!(
        "[{:>5.1}s] {settled}/{} jobs settled",
        elapsed.as_secs_f64(),
        observed.len()
    )];
    let states: Vec<String> = JobState::ALL
        .iter()
        .filter_map(|s| {
            per_state
                .get(s.as_str())
                .map(|n| format!("{}={n}", s.as_str()))
        })
        .chain(
            ["parked", "missing"]
                .iter()
                .filter_map(|k| per_state.get(k).map(|n| format!("{k}={n}"))),
        )
        .collect();
    lines.push(format!("  states:  {}", states.join("  ")));
    for (account, states) in per_account {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in states {
            *counts.entry(s).or_default() += 1;
        }
        let list: Vec<String> = counts.iter().map(|(s, n)| format!("{s}={n}")).collect();
        lines.push(format!("  {account:<16} {}", list.join(" ")));
    }
    lines
}

/// Redraws in place on a terminal; prints one line per update otherwise.
///
/// On a terminal the whole screen is redrawn (the lines printed before the display, then the
/// display): the functions share this process's stdout (the publisher writes its CloudWatch
/// metric lines there, as on Lambda), and a cursor-relative redraw would smear over them.
#[derive(Debug)]
pub struct Display {
    tty: bool,
    preamble: Vec<String>,
}

impl Display {
    /// `preamble`: what was printed before the display and stays above it.
    pub fn new(preamble: Vec<String>) -> Self {
        Self {
            tty: std::io::stdout().is_terminal(),
            preamble,
        }
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }

    pub fn draw(&mut self, lines: &[String]) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            // Home, clear the screen, then everything again.
            let _ = write!(out, "\x1b[H\x1b[2J");
            for l in self.preamble.iter().chain(lines) {
                let _ = writeln!(out, "{l}");
            }
        } else {
            let _ = writeln!(out, "{}", lines.join(" |"));
        }
        let _ = out.flush();
    }
}

/// Follows `tracked` until every job settled or `deadline` (from `started`) passed, redrawing
/// the display (on a terminal every `tick`, otherwise only when a state changed): the jobs as
/// last observed, and whether the deadline ended the wait.
pub async fn follow(
    store: &DynamoStore,
    tracked: &[TrackedJob],
    display: &mut Display,
    started: Instant,
    deadline: Duration,
) -> Result<(Vec<Observed>, bool), StoreError> {
    let tick = if display.is_tty() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    let mut last_state = Vec::new();
    loop {
        let observed = observe(store, tracked).await?;
        let lines = render(&observed, started.elapsed());
        let states: Vec<_> = observed.iter().map(Observed::state).collect();
        let all_settled = observed.iter().all(Observed::settled);
        let late = started.elapsed() >= deadline;
        if display.is_tty() || states != last_state || all_settled || late {
            display.draw(&lines);
        }
        last_state = states;
        if all_settled || late {
            return Ok((observed, late && !all_settled));
        }
        tokio::time::sleep(tick).await;
    }
}
