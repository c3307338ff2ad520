//! [`FakeTikTok`]: TikTok's Content Posting API, token refresh and OAuth, answering from
//! per-method scripts and recording every call.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reelay_domain::compliance::CreatorInfo;
use reelay_domain::job::{Clip, PostMode, PostSettings, PrivacyLevel};
use reelay_domain::lifecycle::{ErrorClass, PublishStatus};
use reelay_domain::ports::{RefreshError, TokenRefresher, TokenSet};
use reelay_domain::upstream::{AuthApi, ObservedStatus, PublishApi, PublishInit, UpstreamError};
use reelay_domain::{PublishId, UtcTime};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::clock::ManualClock;
use crate::hook::{Fault, Hook, HookSlot, calls};

/// Access tokens this fake issues live this long (TikTok's documented 24 h).
pub const ACCESS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Refresh tokens live this long from their first issuance (365 days).
pub const REFRESH_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// The size `clip_size` answers by default.
pub const DEFAULT_CLIP_SIZE: u64 = 8 * 1024 * 1024;
/// The scopes of a connection for direct posts.
pub const DIRECT_SCOPES: [&str; 3] = ["user.info.basic", "video.upload", "video.publish"];

/// A non-secret identity of a token: the first 16 hex digits of its SHA-256. Calls are recorded
/// with it, so a test can tell which token was used without the fake keeping secrets in clear.
pub fn token_tag(token: &SecretString) -> String {
    let digest = hex::encode(Sha256::digest(token.expose_secret().as_bytes()));
    digest.chars().take(16).collect()
}

/// TikTok, scripted. Each method answers with the next prepared result a test pushed for it, or
/// when there is none with a default success:
///
/// - `creator_info`: [`FakeTikTok::set_creator_info`]'s (default: every privacy level, nothing
///   disabled, 600 s, can post);
/// - `clip_size`: [`DEFAULT_CLIP_SIZE`];
/// - `init`: a fresh `publish_id` (`v_pub_file~v2-1.<n>` direct, `v_inbox_file~v2.<n>` draft) with
///   an upload URL (FILE_UPLOAD);
/// - `upload`: done;
/// - `status`: what [`FakeTikTok::set_status`] set for that publish, else `Processing`;
/// - `exchange_code`: a fresh token set ([`FakeTikTok::issue_tokens`]) for a new open_id;
/// - `refresh`: rotation as TikTok documents it: a live refresh token this fake issued gets a new
///   set (same open_id and scopes, the refresh token's expiry kept) and stops working; any other
///   (rotated, expired, unknown) is `Rejected`.
///
/// Every call that reaches TikTok is recorded with the token's [`token_tag`]; a call a hook
/// failed before it left is not (one marked applied is: TikTok received it).
#[derive(Debug, Clone)]
pub struct FakeTikTok {
    inner: Arc<Mutex<TikTokState>>,
    clock: ManualClock,
    hook: HookSlot,
}

/// One call TikTok received.
#[derive(Debug, Clone, PartialEq)]
pub enum TikTokCall {
    CreatorInfo {
        token: String,
    },
    ClipSize {
        short_id: String,
    },
    Init(InitCall),
    Upload {
        publish_id: Option<PublishId>,
        short_id: String,
        video_size: u64,
    },
    Status {
        token: String,
        publish_id: PublishId,
    },
    AuthorizeUrl {
        mode: PostMode,
        redirect_uri: String,
    },
    ExchangeCode {
        code: String,
        redirect_uri: String,
    },
    Refresh {
        refresh_token: String,
    },
    Revoke {
        token: String,
    },
}

impl TikTokCall {
    /// The method's name, as in [`crate::hook::calls`] without the port.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreatorInfo { .. } => "creator_info",
            Self::ClipSize { .. } => "clip_size",
            Self::Init(_) => "init",
            Self::Upload { .. } => "upload",
            Self::Status { .. } => "status",
            Self::AuthorizeUrl { .. } => "authorize_url",
            Self::ExchangeCode { .. } => "exchange_code",
            Self::Refresh { .. } => "refresh",
            Self::Revoke { .. } => "revoke",
        }
    }
}

/// An init as TikTok received it, and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct InitCall {
    pub token: String,
    pub post: PostSettings,
    pub clip: Clip,
    pub video_size: u64,
    /// The publish_id answered (also when the answer was lost on the way back).
    pub publish_id: Option<PublishId>,
    /// The error code answered, if it was an error.
    pub error: Option<String>,
}

/// A recorded call and the fake clock's time when TikTok received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<C> {
    pub at: UtcTime,
    pub call: C,
}

/// A publish TikTok created (an init it accepted).
#[derive(Debug, Clone, PartialEq)]
pub struct FakePublish {
    pub publish_id: PublishId,
    pub token: String,
    pub mode: PostMode,
    pub clip: Clip,
    pub uploaded: bool,
}

#[derive(Debug)]
struct Grant {
    open_id: String,
    scopes: Vec<String>,
    refresh_expires_at: UtcTime,
    live: bool,
}

#[derive(Debug)]
struct TikTokState {
    creator_info: VecDeque<Result<CreatorInfo, UpstreamError>>,
    clip_size: VecDeque<Result<u64, UpstreamError>>,
    init: VecDeque<Result<PublishInit, UpstreamError>>,
    upload: VecDeque<Result<(), UpstreamError>>,
    status: VecDeque<Result<ObservedStatus, UpstreamError>>,
    exchange: VecDeque<Result<TokenSet, UpstreamError>>,
    refresh: VecDeque<Result<TokenSet, RefreshError>>,
    default_creator: CreatorInfo,
    default_clip_size: u64,
    statuses: HashMap<PublishId, ObservedStatus>,
    publishes: BTreeMap<PublishId, FakePublish>,
    upload_urls: HashMap<String, PublishId>,
    grants: HashMap<String, Grant>,
    counter: u64,
    calls: Vec<Recorded<TikTokCall>>,
}

/// What the fake answers `creator_info` with unless told otherwise.
pub fn default_creator_info() -> CreatorInfo {
    CreatorInfo {
        nickname: "Fake Creator".into(),
        username: Some("fake.creator".into()),
        privacy_level_options: vec![
            PrivacyLevel::PublicToEveryone,
            PrivacyLevel::MutualFollowFriends,
            PrivacyLevel::FollowerOfCreator,
            PrivacyLevel::SelfOnly,
        ],
        comment_disabled: false,
        duet_disabled: false,
        stitch_disabled: false,
        max_video_post_duration_sec: Some(600),
        cannot_post_reason: None,
    }
}

impl TikTokState {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn record(&mut self, at: UtcTime, call: TikTokCall) {
        self.calls.push(Recorded { at, call });
    }

    fn issue(
        &mut self,
        now: UtcTime,
        open_id: &str,
        scopes: &[String],
        refresh_expires_at: UtcTime,
    ) -> TokenSet {
        let n = self.next();
        let tokens = TokenSet {
            access_token: SecretString::from(format!("act.fake{n:06}{}", "x".repeat(24))),
            access_expires_at: now.plus(ACCESS_TTL),
            refresh_token: SecretString::from(format!("rft.fake{n:06}{}", "y".repeat(24))),
            refresh_expires_at,
            open_id: open_id.to_owned(),
            scopes: scopes.to_vec(),
        };
        self.register(&tokens);
        tokens
    }

    fn register(&mut self, tokens: &TokenSet) {
        self.grants.insert(
            token_tag(&tokens.refresh_token),
            Grant {
                open_id: tokens.open_id.clone(),
                scopes: tokens.scopes.clone(),
                refresh_expires_at: tokens.refresh_expires_at,
                live: true,
            },
        );
    }

    fn default_init(&mut self, post: &PostSettings) -> Result<PublishInit, UpstreamError> {
        let n = self.next();
        let raw = match post.mode {
            PostMode::Direct => format!("v_pub_file~v2-1.{}", 7_602_997_070_760_000_000u64 + n),
            PostMode::Draft => format!("v_inbox_file~v2.{}", 7_602_997_070_760_000_000u64 + n),
        };
        let publish_id = PublishId::parse(raw).map_err(|e| UpstreamError {
            class: ErrorClass::Permanent,
            code: "fake_invalid_publish_id".into(),
            message: e.to_string(),
            log_id: None,
            retry_at: None,
            outcome_unknown: false,
        })?;
        Ok(PublishInit {
            publish_id,
            upload_url: Some(SecretString::from(format!(
                "https://open-upload.tiktokapis.test/video/?upload_id={n}&upload_token=tok{n:08x}"
            ))),
            log_id: Some(format!("2026031018000000FAKE{n:012}")),
        })
    }
}

impl FakeTikTok {
    /// A TikTok whose times (token expiries, call records) are read from `clock`.
    pub fn new(clock: ManualClock) -> Self {
        Self {
            inner: Arc::new(Mutex::new(TikTokState {
                creator_info: VecDeque::new(),
                clip_size: VecDeque::new(),
                init: VecDeque::new(),
                upload: VecDeque::new(),
                status: VecDeque::new(),
                exchange: VecDeque::new(),
                refresh: VecDeque::new(),
                default_creator: default_creator_info(),
                default_clip_size: DEFAULT_CLIP_SIZE,
                statuses: HashMap::new(),
                publishes: BTreeMap::new(),
                upload_urls: HashMap::new(),
                grants: HashMap::new(),
                counter: 0,
                calls: Vec::new(),
            })),
            clock,
            hook: HookSlot::default(),
        }
    }

    /// This fake (same scripts, records and tokens) with `hook` awaited before every call.
    pub fn with_hook(&self, hook: Arc<dyn Hook>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            clock: self.clock.clone(),
            hook: HookSlot::new(hook),
        }
    }

    fn state(&self) -> MutexGuard<'_, TikTokState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- scripts ----

    pub fn push_creator_info(&self, answer: Result<CreatorInfo, UpstreamError>) -> &Self {
        self.state().creator_info.push_back(answer);
        self
    }

    pub fn push_clip_size(&self, answer: Result<u64, UpstreamError>) -> &Self {
        self.state().clip_size.push_back(answer);
        self
    }

    /// An `Ok` init is registered as a publish TikTok created, like a default one.
    pub fn push_init(&self, answer: Result<PublishInit, UpstreamError>) -> &Self {
        self.state().init.push_back(answer);
        self
    }

    pub fn push_upload(&self, answer: Result<(), UpstreamError>) -> &Self {
        self.state().upload.push_back(answer);
        self
    }

    pub fn push_status(&self, answer: Result<ObservedStatus, UpstreamError>) -> &Self {
        self.state().status.push_back(answer);
        self
    }

    /// An `Ok` set is registered as issued (its refresh token is live).
    pub fn push_exchange_code(&self, answer: Result<TokenSet, UpstreamError>) -> &Self {
        self.state().exchange.push_back(answer);
        self
    }

    /// An `Ok` set is registered as issued and the presented refresh token stops working.
    pub fn push_refresh(&self, answer: Result<TokenSet, RefreshError>) -> &Self {
        self.state().refresh.push_back(answer);
        self
    }

    /// The default `creator_info` answer from now on.
    pub fn set_creator_info(&self, info: CreatorInfo) -> &Self {
        self.state().default_creator = info;
        self
    }

    pub fn set_clip_size(&self, size: u64) -> &Self {
        self.state().default_clip_size = size;
        self
    }

    /// What `status` answers for `publish_id` from now on (when no scripted answer is queued).
    pub fn set_status(
        &self,
        publish_id: &PublishId,
        status: PublishStatus,
        post_ids: Vec<String>,
    ) -> &Self {
        self.state().statuses.insert(
            publish_id.clone(),
            ObservedStatus {
                status,
                post_ids,
                log_id: None,
            },
        );
        self
    }

    /// A fresh token set for `open_id`, registered as issued: what the OAuth exchange would give.
    pub fn issue_tokens(&self, open_id: &str, scopes: &[&str]) -> TokenSet {
        let now = self.clock.now();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.state()
            .issue(now, open_id, &scopes, now.plus(REFRESH_TTL))
    }

    /// Makes `refresh_token` stop working (the creator revoked the app, or it was rotated).
    pub fn revoke(&self, refresh_token: &SecretString) {
        if let Some(g) = self.state().grants.get_mut(&token_tag(refresh_token)) {
            g.live = false;
        }
    }

    // ---- records ----

    pub fn calls(&self) -> Vec<Recorded<TikTokCall>> {
        self.state().calls.clone()
    }

    /// How many calls of `method` (see [`TikTokCall::name`]) TikTok received.
    pub fn count(&self, method: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| c.call.name() == method)
            .count()
    }

    pub fn inits(&self) -> Vec<InitCall> {
        self.state()
            .calls
            .iter()
            .filter_map(|c| match &c.call {
                TikTokCall::Init(i) => Some(i.clone()),
                _ => None,
            })
            .collect()
    }

    /// The publish_ids whose status was asked, in order, with when.
    pub fn status_polls(&self) -> Vec<(UtcTime, PublishId)> {
        self.state()
            .calls
            .iter()
            .filter_map(|c| match &c.call {
                TikTokCall::Status { publish_id, .. } => Some((c.at, publish_id.clone())),
                _ => None,
            })
            .collect()
    }

    /// Every publish TikTok created, by publish_id.
    pub fn publishes(&self) -> Vec<FakePublish> {
        self.state().publishes.values().cloned().collect()
    }

    // ---- plumbing ----

    /// Passes the hook: `Err` fails before TikTok sees anything; `Ok(Some)` fails after.
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

impl PublishApi for FakeTikTok {
    async fn creator_info(&self, token: &SecretString) -> Result<CreatorInfo, UpstreamError> {
        let after = self.enter(calls::PUBLISH_CREATOR_INFO).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            s.record(
                now,
                TikTokCall::CreatorInfo {
                    token: token_tag(token),
                },
            );
            let default = s.default_creator.clone();
            s.creator_info.pop_front().unwrap_or(Ok(default))
        };
        finish(after, calls::PUBLISH_CREATOR_INFO, answer)
    }

    async fn clip_size(&self, clip: &Clip, _deadline: UtcTime) -> Result<u64, UpstreamError> {
        let after = self.enter(calls::PUBLISH_CLIP_SIZE).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            s.record(
                now,
                TikTokCall::ClipSize {
                    short_id: clip.short_id.clone(),
                },
            );
            let default = s.default_clip_size;
            s.clip_size.pop_front().unwrap_or(Ok(default))
        };
        finish(after, calls::PUBLISH_CLIP_SIZE, answer)
    }

    async fn init(
        &self,
        token: &SecretString,
        post: &PostSettings,
        clip: &Clip,
        video_size: u64,
    ) -> Result<PublishInit, UpstreamError> {
        let after = self.enter(calls::PUBLISH_INIT).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            let answer = match s.init.pop_front() {
                Some(a) => a,
                None => s.default_init(post),
            };
            let tag = token_tag(token);
            if let Ok(init) = &answer {
                s.publishes.insert(
                    init.publish_id.clone(),
                    FakePublish {
                        publish_id: init.publish_id.clone(),
                        token: tag.clone(),
                        mode: post.mode,
                        clip: clip.clone(),
                        uploaded: false,
                    },
                );
                if let Some(url) = &init.upload_url {
                    s.upload_urls
                        .insert(url.expose_secret().to_owned(), init.publish_id.clone());
                }
            }
            let call = InitCall {
                token: tag,
                post: post.clone(),
                clip: clip.clone(),
                video_size,
                publish_id: answer.as_ref().ok().map(|i| i.publish_id.clone()),
                error: answer.as_ref().err().map(|e| e.code.clone()),
            };
            s.record(now, TikTokCall::Init(call));
            answer
        };
        if let Ok(init) = &answer {
            tracing::debug!(publish_id = %init.publish_id, "fake TikTok accepted an init");
        }
        finish(after, calls::PUBLISH_INIT, answer)
    }

    async fn upload(
        &self,
        upload_url: &SecretString,
        clip: &Clip,
        video_size: u64,
        _deadline: UtcTime,
    ) -> Result<(), UpstreamError> {
        let after = self.enter(calls::PUBLISH_UPLOAD).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            let publish_id = s.upload_urls.get(upload_url.expose_secret()).cloned();
            s.record(
                now,
                TikTokCall::Upload {
                    publish_id: publish_id.clone(),
                    short_id: clip.short_id.clone(),
                    video_size,
                },
            );
            let answer = s.upload.pop_front().unwrap_or(Ok(()));
            if answer.is_ok()
                && let Some(p) = publish_id.and_then(|id| s.publishes.get_mut(&id))
            {
                p.uploaded = true;
            }
            answer
        };
        finish(after, calls::PUBLISH_UPLOAD, answer)
    }

    async fn status(
        &self,
        token: &SecretString,
        publish_id: &PublishId,
    ) -> Result<ObservedStatus, UpstreamError> {
        let after = self.enter(calls::PUBLISH_STATUS).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            s.record(
                now,
                TikTokCall::Status {
                    token: token_tag(token),
                    publish_id: publish_id.clone(),
                },
            );
            match s.status.pop_front() {
                Some(a) => a,
                None => Ok(s
                    .statuses
                    .get(publish_id)
                    .cloned()
                    .unwrap_or(ObservedStatus {
                        status: PublishStatus::Processing,
                        post_ids: Vec::new(),
                        log_id: None,
                    })),
            }
        };
        finish(after, calls::PUBLISH_STATUS, answer)
    }
}

impl AuthApi for FakeTikTok {
    /// Synchronous, so no hook: always a link carrying `state`.
    fn authorize_url(
        &self,
        state: &str,
        mode: PostMode,
        redirect_uri: &str,
    ) -> Result<String, UpstreamError> {
        let now = self.clock.now();
        self.state().record(
            now,
            TikTokCall::AuthorizeUrl {
                mode,
                redirect_uri: redirect_uri.to_owned(),
            },
        );
        let scope = match mode {
            PostMode::Direct => DIRECT_SCOPES.join(","),
            PostMode::Draft => DIRECT_SCOPES[..2].join(","),
        };
        Ok(format!(
            "https://www.tiktok.test/v2/auth/authorize/?client_key=fake&response_type=code&scope={scope}&state={state}"
        ))
    }

    async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenSet, UpstreamError> {
        let after = self.enter(calls::AUTH_EXCHANGE_CODE).await?;
        let now = self.clock.now();
        let answer = {
            let mut s = self.state();
            s.record(
                now,
                TikTokCall::ExchangeCode {
                    code: code.to_owned(),
                    redirect_uri: redirect_uri.to_owned(),
                },
            );
            match s.exchange.pop_front() {
                Some(Ok(tokens)) => {
                    s.register(&tokens);
                    Ok(tokens)
                }
                Some(Err(e)) => Err(e),
                None => {
                    let n = s.counter + 1;
                    let scopes: Vec<String> =
                        DIRECT_SCOPES.iter().map(|x| (*x).to_owned()).collect();
                    Ok(s.issue(
                        now,
                        &format!("fake-open-id-{n}"),
                        &scopes,
                        now.plus(REFRESH_TTL),
                    ))
                }
            }
        };
        finish(after, calls::AUTH_EXCHANGE_CODE, answer)
    }

    /// Recorded; TikTok answers a revoke of a token it does not know with success too.
    async fn revoke(&self, access_token: &SecretString) -> Result<(), UpstreamError> {
        let after = self.enter(calls::AUTH_REVOKE).await?;
        let now = self.clock.now();
        self.state().record(
            now,
            TikTokCall::Revoke {
                token: token_tag(access_token),
            },
        );
        finish(after, calls::AUTH_REVOKE, Ok(()))
    }
}

impl TokenRefresher for FakeTikTok {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, RefreshError> {
        let after = match self.hook.pass(calls::REFRESH).await {
            Ok(after) => after,
            Err(fault) => return Err(fault.refresh_error(calls::REFRESH)),
        };
        let now = self.clock.now();
        let tag = token_tag(refresh_token);
        let answer = {
            let mut s = self.state();
            s.record(
                now,
                TikTokCall::Refresh {
                    refresh_token: tag.clone(),
                },
            );
            match s.refresh.pop_front() {
                Some(Ok(tokens)) => {
                    if let Some(g) = s.grants.get_mut(&tag) {
                        g.live = false;
                    }
                    s.register(&tokens);
                    Ok(tokens)
                }
                Some(Err(e)) => Err(e),
                None => {
                    let usable = s
                        .grants
                        .get(&tag)
                        .filter(|g| g.live && g.refresh_expires_at > now)
                        .map(|g| (g.open_id.clone(), g.scopes.clone(), g.refresh_expires_at));
                    match usable {
                        Some((open_id, scopes, expires)) => {
                            if let Some(g) = s.grants.get_mut(&tag) {
                                g.live = false;
                            }
                            Ok(s.issue(now, &open_id, &scopes, expires))
                        }
                        None => Err(RefreshError::Rejected),
                    }
                }
            }
        };
        match after {
            Some(fault) => Err(fault.refresh_error(calls::REFRESH)),
            None => answer,
        }
    }
}
