//! The reconciler: on every schedule tick, [`Core::reconcile`] moves the due work forward within
//! the run's time. This crate only runs it and counts the run, what it failed to move and what
//! became unknown.

pub mod config;
pub mod wiring;

use reelay_aws::metrics;
use reelay_domain::UtcTime;
use reelay_domain::ports::Ports;
use reelay_domain::usecase::Core;
/// What a run did (the domain's; re-exported as the handler's answer).
pub use reelay_domain::usecase::RunReport;

/// The name this function's metrics carry.
pub const FUNCTION: &str = "reconciler";

/// What the function runs on, built once per cold start ([`wiring::live`]).
#[derive(Debug)]
pub struct Deps<P> {
    pub core: Core<P>,
}

impl<P> Deps<P> {
    /// The same function over other ports (a local runner decorates them with its kill switch).
    pub fn map_ports<Q>(self, f: impl FnOnce(P) -> Q) -> Deps<Q> {
        Deps {
            core: self.core.map_ports(f),
        }
    }
}

/// One tick, ending before `deadline` (the invocation's).
pub async fn handler<P: Ports>(deps: &Deps<P>, deadline: UtcTime) -> RunReport {
    let report = deps.core.reconcile(deadline).await;
    metrics::emit(FUNCTION, "PublishUnknown", report.became_unknown as u64);
    metrics::emit(FUNCTION, "ReconcileFailed", report.failed as u64);
    metrics::emit(FUNCTION, "ReconcileDue", report.due as u64);
    metrics::emit(FUNCTION, "ReconcileMoved", report.moved as u64);
    metrics::emit(FUNCTION, "RendersConfirmed", report.rendered as u64);
    metrics::emit(FUNCTION, "RendersFailed", report.render_failed as u64);
    metrics::emit(FUNCTION, "ReconcileLag", report.lag_ms);
    // Every completed run, also an idle one: the missed-run alarm breaches on its absence.
    metrics::emit(FUNCTION, "ReconcilerRun", 1);
    report
}
