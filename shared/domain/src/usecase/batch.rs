//! Many creates in one request (`POST /v1/jobs:batch`), and their preview (`dryRun`): each item
//! is checked exactly as a single create would be, and for the ones that would be accepted the
//! preview says when each post could go out at the earliest, given what is left now of the
//! account's budgets (daily direct-post cap, pending drafts, TikTok's init window) and of the
//! stage's Ssemble render budget. The preview writes nothing and takes nothing.

use std::collections::BTreeMap;

use crate::budget::{BudgetKind, Window};
use crate::ids::{AccountId, JobId, PayloadHash, TenantId};
use crate::job::{Job, JobSource, PostMode, RenderRequest};
use crate::lifecycle::JobState;
use crate::ports::{Clock, JobFilter, JobStore, Ports, StoreError, StoredResponse};
use crate::request::NewJob;
use crate::time::UtcTime;

use super::{Core, CreateError, Created};

/// The most items one batch may hold.
pub const MAX_BATCH_ITEMS: usize = 100;

/// When an item of a previewed batch could publish at the earliest, and what it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPlan {
    /// The earliest moment the post could be sent to TikTok; a render adds its own time.
    pub earliest_at: UtcTime,
    /// The budgets that push it past its `scheduleAt` (e.g. `direct_posts_daily`), in the
    /// order they were met; empty when it can go at its schedule.
    pub waits_for: Vec<BudgetKind>,
    /// Whether a render must come first (a source to clip, not an existing render).
    pub renders_first: bool,
}

/// What is left of one budget now, and how it refills.
#[derive(Debug, Clone, Copy)]
struct Left {
    kind: BudgetKind,
    remaining: u32,
    window: Window,
}

impl Left {
    /// How long the `n`-th (0-based) unit asked from now waits: nothing while units are left,
    /// then one window per `limit` units beyond (a sliding window refills within a period).
    fn wait_for(&self, n: u32) -> Option<std::time::Duration> {
        if n < self.remaining {
            return None;
        }
        let over = n - self.remaining;
        let periods = over / self.window.limit.max(1) + 1;
        Some(self.window.period.saturating_mul(periods))
    }
}

impl<P: Ports> Core<P> {
    /// Checks every item as `create_job` would and plans the accepted ones; nothing is written.
    /// Items keep their order; a refusal is the error a create would have answered.
    pub async fn preview_batch(
        &self,
        tenant: &TenantId,
        items: &[NewJob],
    ) -> Result<Vec<Result<PostPlan, CreateError>>, StoreError> {
        let now = self.ports.clock().now();
        let mut checked = Vec::with_capacity(items.len());
        for item in items {
            checked.push(match self.admit(tenant, item).await {
                Ok(_) => Ok(()),
                Err(CreateError::Store(e)) => return Err(e),
                Err(e) => Err(e),
            });
        }
        // The stage's Ssemble create budget, as much of it as this tenant may use (its fair
        // share and what it may borrow), is shared by every render of the batch; items of one
        // source share one render (fan-out), so they need one create.
        let ssemble: Vec<Left> = self
            .create_budget_left(tenant)
            .await?
            .into_iter()
            .map(|(kind, remaining, window)| Left {
                kind,
                remaining,
                window,
            })
            .collect();
        let mut sources: Vec<(&RenderRequest, u32)> = Vec::new();
        // Per account: its budgets, and how many of the batch's posts it has met so far, in the
        // order they are scheduled.
        let mut order: Vec<usize> = (0..items.len()).filter(|i| checked[*i].is_ok()).collect();
        order.sort_by_key(|i| (items[*i].schedule_at.unwrap_or(now), *i));
        let mut accounts: BTreeMap<AccountId, [Left; 3]> = BTreeMap::new();
        let mut used: BTreeMap<(AccountId, BudgetKind), u32> = BTreeMap::new();
        let mut renders = 0u32;
        let mut plans: BTreeMap<usize, PostPlan> = BTreeMap::new();
        for i in order {
            let item = &items[i];
            let account = &item.account_id;
            if !accounts.contains_key(account) {
                let scope = crate::account::Account::message_group(tenant, account);
                let left = self
                    .left(
                        &scope,
                        &[
                            BudgetKind::TikTokInit,
                            BudgetKind::DirectPostsDaily,
                            BudgetKind::PendingDrafts,
                        ],
                    )
                    .await?;
                let [init, daily, drafts] = left[..] else {
                    continue;
                };
                accounts.insert(account.clone(), [init, daily, drafts]);
            }
            let Some([init, daily, drafts]) = accounts.get(account).copied() else {
                continue;
            };
            let cap = match item.post.mode {
                PostMode::Direct => daily,
                PostMode::Draft => drafts,
            };
            let mut earliest = item.schedule_at.unwrap_or(now).max(now);
            if item.next_slot {
                earliest = earliest.max(
                    self.next_slot(tenant, account, item.post.mode, None)
                        .await?,
                );
            }
            let mut waits_for = Vec::new();
            let renders_first = matches!(item.source, JobSource::Render(_));
            let mut needs: Vec<(Left, u32)> = Vec::new();
            if let JobSource::Render(source) = &item.source {
                let n = match sources.iter().find(|(s, _)| *s == source) {
                    Some((_, n)) => *n,
                    None => {
                        sources.push((source, renders));
                        renders += 1;
                        renders - 1
                    }
                };
                needs.extend(ssemble.iter().map(|l| (*l, n)));
            }
            for left in [init, cap] {
                let n = used.entry((account.clone(), left.kind)).or_default();
                needs.push((left, *n));
                *n += 1;
            }
            for (left, n) in needs {
                if let Some(wait) = left.wait_for(n) {
                    earliest = earliest.max(now.plus(wait));
                    waits_for.push(left.kind);
                }
            }
            plans.insert(
                i,
                PostPlan {
                    earliest_at: earliest,
                    waits_for,
                    renders_first,
                },
            );
        }
        Ok(checked
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.and_then(|()| {
                    plans
                        .remove(&i)
                        .ok_or(CreateError::Store(StoreError::Corrupt(
                            "an accepted item was not planned".into(),
                        )))
                })
            })
            .collect())
    }

    /// Creates a batch's items in order, each exactly as `create_job` does (its own key, its own
    /// answer; `None` is an item the adapter refused already). A later item that renders the same
    /// source (and range and options) as an earlier item created now is that item's fan-out
    /// child: it shares its render, so one source sent to many accounts in one batch costs one
    /// Ssemble create. An item whose first answer is replayed (a retried batch) is a parent too:
    /// `replayed_id` reads the job's id from that answer (its shape is the adapter's), one read
    /// finds the job; if it cannot, a new item of that source renders by itself — a second
    /// credit, never a second post.
    pub async fn create_batch(
        &self,
        tenant: &TenantId,
        items: Vec<Option<(NewJob, PayloadHash)>>,
        answer: impl Fn(&Job) -> StoredResponse + Send + Sync,
        replayed_id: impl Fn(&StoredResponse) -> Option<JobId> + Send + Sync,
    ) -> Vec<Option<Result<Created, CreateError>>> {
        let mut parents: Vec<(RenderRequest, JobId)> = Vec::new();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some((mut parsed, fingerprint)) = item else {
                out.push(None);
                continue;
            };
            let request = match &parsed.source {
                JobSource::Render(r) => Some(r.clone()),
                JobSource::Rendered { .. } => None,
            };
            if let Some(r) = &request {
                parsed.fan_out_parent = parents
                    .iter()
                    .find(|(p, _)| p == r)
                    .map(|(_, id)| id.clone());
            }
            let result = Box::pin(self.create_job(tenant, parsed, &fingerprint, &answer)).await;
            if let Some(r) = request {
                // A job that renders `r` itself (not a child) is the parent of later items.
                let renders = |j: &Job| {
                    j.fan_out_parent.is_none()
                        && matches!(&j.source, JobSource::Render(source) if *source == r)
                };
                let parent = match &result {
                    Ok(Created::New { job, .. }) => renders(job).then(|| job.id.clone()),
                    Ok(Created::Replay(stored)) => match replayed_id(stored) {
                        Some(id) => match self.owned_job(tenant, &id).await {
                            Ok(job) => job.filter(|j| renders(j)).map(|j| j.id),
                            Err(e) => {
                                tracing::warn!(error.message = %e, "a replayed item's job could not be read; it is no parent");
                                None
                            }
                        },
                        None => None,
                    },
                    Err(_) => None,
                };
                if let Some(id) = parent {
                    parents.push((r, id));
                }
            }
            out.push(Some(result));
        }
        out
    }

    /// The account's next free slot for a post of `mode` within its daily cap
    /// (`scheduleAt: "next_slot"`): now if the cap has room after the account's jobs not yet
    /// published (but `moving`, the job a PATCH reschedules), else when the window has refilled
    /// enough — the preview's rule for a post sent now behind those jobs.
    pub(crate) async fn next_slot(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        mode: PostMode,
        moving: Option<&JobId>,
    ) -> Result<UtcTime, StoreError> {
        let now = self.ports.clock().now();
        let kind = match mode {
            PostMode::Direct => BudgetKind::DirectPostsDaily,
            PostMode::Draft => BudgetKind::PendingDrafts,
        };
        let scope = crate::account::Account::message_group(tenant, account);
        let Some(left) = self.left(&scope, &[kind]).await?.first().copied() else {
            return Ok(now);
        };
        // Counting past ten windows' worth changes nothing a client can use.
        let bound = left
            .remaining
            .saturating_add(left.window.limit.saturating_mul(10));
        let mut ahead = 0u32;
        for state in [
            JobState::Received,
            JobState::Rendering,
            JobState::Ready,
            JobState::PublishQueued,
        ] {
            let filter = JobFilter {
                account_id: Some(account.clone()),
                state: Some(state),
            };
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .ports
                    .jobs()
                    .list(tenant, &filter, cursor.as_deref(), 100)
                    .await?;
                let same_mode = page
                    .jobs
                    .iter()
                    .filter(|j| j.post.mode == mode && Some(&j.id) != moving)
                    .count();
                ahead = ahead.saturating_add(u32::try_from(same_mode).unwrap_or(u32::MAX));
                match page.next_cursor {
                    Some(next) if ahead < bound => cursor = Some(next),
                    _ => break,
                }
            }
        }
        Ok(left.wait_for(ahead).map_or(now, |wait| now.plus(wait)))
    }

    /// What takes of `kinds` in `scope` would leave now, without taking (one read).
    async fn left(&self, scope: &str, kinds: &[BudgetKind]) -> Result<Vec<Left>, StoreError> {
        Ok(self
            .peek_budgets(scope, kinds)
            .await?
            .into_iter()
            .map(|(kind, window, admission)| Left {
                kind,
                remaining: admission.units_left(),
                window,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_unit_waits_one_window_per_limit_beyond_what_is_left() {
        let left = Left {
            kind: BudgetKind::TikTokInit,
            remaining: 2,
            window: Window::new(6, Duration::from_secs(60)),
        };
        assert_eq!(left.wait_for(0), None);
        assert_eq!(left.wait_for(1), None);
        assert_eq!(left.wait_for(2), Some(Duration::from_secs(60)));
        assert_eq!(left.wait_for(7), Some(Duration::from_secs(60)));
        assert_eq!(left.wait_for(8), Some(Duration::from_secs(120)));
    }
}
