//! [`FakeSsemble`]: Ssemble's render API, answering from per-method scripts and recording every
//! call.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use reelay_domain::job::{Clip, RenderRequest};
use reelay_domain::lifecycle::ErrorClass;
use reelay_domain::upstream::{RenderApi, RenderProgress, UpstreamError};
use reelay_domain::{RequestId, UtcTime};

use crate::clock::ManualClock;
use crate::hook::{Fault, Hook, HookSlot, calls};
use crate::tiktok::Recorded;

/// What `find_call_bound` answers unless told otherwise.
pub const DEFAULT_FIND_CALL_BOUND: u32 = 3;

/// Ssemble, scripted. Each method answers with the next prepared result a test pushed for it, or
/// when there is none with a default:
///
/// - `submit`: a fresh 24-hex `requestId`, remembered as a render with its request and webhook URL
///   (a scripted `Ok` id is remembered the same way);
/// - `find_submitted`: the latest remembered render of an equal request created at or after
///   `since` (what Ssemble's list would show), else `None`;
/// - `render_progress`: the render's progress as set by [`FakeSsemble::complete`],
///   [`FakeSsemble::fail`] or [`FakeSsemble::set_progress`], else `Pending`;
/// - `render_clips`: the clips [`FakeSsemble::complete`] set, else one default clip
///   ([`default_clip`]).
///
/// Every call that reaches Ssemble is recorded; one a hook failed before it left is not.
#[derive(Debug, Clone)]
pub struct FakeSsemble {
    inner: Arc<Mutex<SsembleState>>,
    clock: ManualClock,
    hook: HookSlot,
}

/// One call Ssemble received.
#[derive(Debug, Clone, PartialEq)]
pub enum SsembleCall {
    Submit {
        request: RenderRequest,
        /// Carries the job's webhook token: what Ssemble would call back.
        webhook_url: String,
        /// The requestId answered (also when the answer was lost on the way back).
        request_id: Option<RequestId>,
    },
    FindSubmitted {
        since: UtcTime,
        found: Option<RequestId>,
    },
    RenderProgress {
        request_id: RequestId,
    },
    RenderClips {
        request_id: RequestId,
    },
}

impl SsembleCall {
    /// The method's name, as in [`crate::hook::calls`] without the port.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Submit { .. } => "submit",
            Self::FindSubmitted { .. } => "find_submitted",
            Self::RenderProgress { .. } => "render_progress",
            Self::RenderClips { .. } => "render_clips",
        }
    }
}

/// A render Ssemble knows.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeRender {
    pub request_id: RequestId,
    /// `None` for a render set up by id only (a job created from an existing render).
    pub request: Option<RenderRequest>,
    pub webhook_url: Option<String>,
    pub created_at: UtcTime,
    pub progress: RenderProgress,
    pub clips: Option<Vec<Clip>>,
}

#[derive(Debug)]
struct SsembleState {
    submit: VecDeque<Result<RequestId, UpstreamError>>,
    find: VecDeque<Result<Option<RequestId>, UpstreamError>>,
    progress: VecDeque<Result<RenderProgress, UpstreamError>>,
    clips: VecDeque<Result<Option<Vec<Clip>>, UpstreamError>>,
    renders: BTreeMap<RequestId, FakeRender>,
    find_call_bound: u32,
    counter: u64,
    calls: Vec<Recorded<SsembleCall>>,
}

/// The clip a completed render has when none was set: 30 s, viral score 80.
pub fn default_clip(request_id: &RequestId) -> Clip {
    Clip {
        short_id: format!("clip-{request_id}"),
        video_url: format!("https://cdn.ssemble.test/{request_id}/0.mp4"),
        duration_secs: Some(30.0),
        viral_score: Some(80.0),
    }
}

impl SsembleState {
    fn render(&mut self, id: &RequestId, now: UtcTime) -> &mut FakeRender {
        self.renders
            .entry(id.clone())
            .or_insert_with(|| FakeRender {
                request_id: id.clone(),
                request: None,
                webhook_url: None,
                created_at: now,
                progress: RenderProgress::Pending,
                clips: None,
            })
    }

    fn fresh_id(&mut self) -> Result<RequestId, UpstreamError> {
        self.counter += 1;
        let raw = format!(
            "{:024x}",
            0x665a_1b2c_0000_0000_0000_0000u128 + u128::from(self.counter)
        );
        RequestId::parse(raw).map_err(|e| UpstreamError {
            class: ErrorClass::Permanent,
            code: "fake_invalid_request_id".into(),
            message: e.to_string(),
            log_id: None,
            retry_at: None,
            outcome_unknown: false,
        })
    }
}

impl FakeSsemble {
    /// A Ssemble whose times (creations, call records) are read from `clock`.
    pub fn new(clock: ManualClock) -> Self {
        Self {
            inner: Arc::new(Mutex::new(SsembleState {
                submit: VecDeque::new(),
                find: VecDeque::new(),
                progress: VecDeque::new(),
                clips: VecDeque::new(),
                renders: BTreeMap::new(),
                find_call_bound: DEFAULT_FIND_CALL_BOUND,
                counter: 0,
                calls: Vec::new(),
            })),
            clock,
            hook: HookSlot::default(),
        }
    }

    /// This fake (same scripts, records and renders) with `hook` awaited before every call.
    pub fn with_hook(&self, hook: Arc<dyn Hook>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            clock: self.clock.clone(),
            hook: HookSlot::new(hook),
        }
    }

    fn state(&self) -> MutexGuard<'_, SsembleState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- scripts and render states ----

    /// A scripted `Ok` id is remembered as a render of the submitted request.
    pub fn push_submit(&self, answer: Result<RequestId, UpstreamError>) -> &Self {
        self.state().submit.push_back(answer);
        self
    }

    pub fn push_find_submitted(&self, answer: Result<Option<RequestId>, UpstreamError>) -> &Self {
        self.state().find.push_back(answer);
        self
    }

    pub fn push_render_progress(&self, answer: Result<RenderProgress, UpstreamError>) -> &Self {
        self.state().progress.push_back(answer);
        self
    }

    pub fn push_render_clips(&self, answer: Result<Option<Vec<Clip>>, UpstreamError>) -> &Self {
        self.state().clips.push_back(answer);
        self
    }

    pub fn set_find_call_bound(&self, bound: u32) -> &Self {
        self.state().find_call_bound = bound;
        self
    }

    /// The render (known or not) is completed with `clips`.
    pub fn complete(&self, request_id: &RequestId, clips: Vec<Clip>) -> &Self {
        let now = self.clock.now();
        let mut s = self.state();
        let r = s.render(request_id, now);
        r.progress = RenderProgress::Completed;
        r.clips = Some(clips);
        drop(s);
        self
    }

    /// The render (known or not) failed with Ssemble's free-text `reason`.
    pub fn fail(&self, request_id: &RequestId, reason: &str) -> &Self {
        self.set_progress(
            request_id,
            RenderProgress::Failed {
                reason: reason.to_owned(),
            },
        )
    }

    pub fn set_progress(&self, request_id: &RequestId, progress: RenderProgress) -> &Self {
        let now = self.clock.now();
        self.state().render(request_id, now).progress = progress;
        self
    }

    // ---- records ----

    pub fn calls(&self) -> Vec<Recorded<SsembleCall>> {
        self.state().calls.clone()
    }

    /// How many calls of `method` (see [`SsembleCall::name`]) Ssemble received.
    pub fn count(&self, method: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| c.call.name() == method)
            .count()
    }

    pub fn renders(&self) -> Vec<FakeRender> {
        self.state().renders.values().cloned().collect()
    }

    pub fn render(&self, request_id: &RequestId) -> Option<FakeRender> {
        self.state().renders.get(request_id).cloned()
    }

    /// The webhook URL the render was created with (its last path segment is `<job>.<token>`).
    pub fn webhook_url(&self, request_id: &RequestId) -> Option<String> {
        self.state()
            .renders
            .get(request_id)
            .and_then(|r| r.webhook_url.clone())
    }

    async fn enter(&self, call: &'static str) -> Result<Option<Fault>, UpstreamError> {
        self.hook
            .pass(call)
            .await
            .map_err(|fault| fault.upstream_error(call))
    }
}

fn finish<T>(
    after: Option<Fault>,
    call: &'static str,
    answer: Result<T, UpstreamError>,
) -> Result<T, UpstreamError> {
    match after {
        Some(fault) => Err(fault.upstream_error(call)),
        None => answer,
    }
}

impl RenderApi for FakeSsemble {
    async fn submit(
        &self,
        request: &RenderRequest,
        webhook_url: &str,
    ) -> Result<RequestId, UpstreamError> {
        let after = self.enter(calls::RENDER_SUBMIT).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            let answer = match s.submit.pop_front() {
                Some(a) => a,
                None => s.fresh_id(),
            };
            if let Ok(id) = &answer {
                let r = s.render(id, now);
                r.request = Some(request.clone());
                r.webhook_url = Some(webhook_url.to_owned());
                r.created_at = now;
            }
            s.calls.push(Recorded {
                at: now,
                call: SsembleCall::Submit {
                    request: request.clone(),
                    webhook_url: webhook_url.to_owned(),
                    request_id: answer.as_ref().ok().cloned(),
                },
            });
            answer
        };
        finish(after, calls::RENDER_SUBMIT, answer)
    }

    async fn find_submitted(
        &self,
        request: &RenderRequest,
        since: UtcTime,
    ) -> Result<Option<RequestId>, UpstreamError> {
        let after = self.enter(calls::RENDER_FIND_SUBMITTED).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            let answer = match s.find.pop_front() {
                Some(a) => a,
                None => Ok(s
                    .renders
                    .values()
                    .filter(|r| r.request.as_ref() == Some(request) && r.created_at >= since)
                    .max_by_key(|r| r.created_at)
                    .map(|r| r.request_id.clone())),
            };
            s.calls.push(Recorded {
                at: now,
                call: SsembleCall::FindSubmitted {
                    since,
                    found: answer.as_ref().ok().cloned().flatten(),
                },
            });
            answer
        };
        finish(after, calls::RENDER_FIND_SUBMITTED, answer)
    }

    fn find_call_bound(&self) -> u32 {
        self.state().find_call_bound
    }

    async fn render_progress(
        &self,
        request_id: &RequestId,
    ) -> Result<RenderProgress, UpstreamError> {
        let after = self.enter(calls::RENDER_PROGRESS).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            s.calls.push(Recorded {
                at: now,
                call: SsembleCall::RenderProgress {
                    request_id: request_id.clone(),
                },
            });
            match s.progress.pop_front() {
                Some(a) => a,
                None => Ok(s
                    .renders
                    .get(request_id)
                    .map_or(RenderProgress::Pending, |r| r.progress.clone())),
            }
        };
        finish(after, calls::RENDER_PROGRESS, answer)
    }

    async fn render_clips(
        &self,
        request_id: &RequestId,
    ) -> Result<Option<Vec<Clip>>, UpstreamError> {
        let after = self.enter(calls::RENDER_CLIPS).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            s.calls.push(Recorded {
                at: now,
                call: SsembleCall::RenderClips {
                    request_id: request_id.clone(),
                },
            });
            match s.clips.pop_front() {
                Some(a) => a,
                None => Ok(Some(
                    s.renders
                        .get(request_id)
                        .and_then(|r| r.clips.clone())
                        .unwrap_or_else(|| vec![default_clip(request_id)]),
                )),
            }
        };
        finish(after, calls::RENDER_CLIPS, answer)
    }
}
