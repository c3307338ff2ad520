use serde::{Deserialize, Deserializer, Serialize};

use crate::chunk::ChunkPlan;

/// `post_info.privacy_level`; must be one of the creator's `privacy_level_options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PrivacyLevel {
    PublicToEveryone,
    MutualFollowFriends,
    FollowerOfCreator,
    SelfOnly,
}

impl PrivacyLevel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PublicToEveryone => "PUBLIC_TO_EVERYONE",
            Self::MutualFollowFriends => "MUTUAL_FOLLOW_FRIENDS",
            Self::FollowerOfCreator => "FOLLOWER_OF_CREATOR",
            Self::SelfOnly => "SELF_ONLY",
        }
    }
}

/// `creator_info/query` data. Fields are optional because TikTok omits what does not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CreatorInfo {
    pub creator_avatar_url: Option<String>,
    pub creator_username: Option<String>,
    pub creator_nickname: Option<String>,
    /// Kept as strings: an unknown level must not make the whole answer unreadable.
    #[serde(default)]
    pub privacy_level_options: Vec<String>,
    #[serde(default)]
    pub comment_disabled: bool,
    #[serde(default)]
    pub duet_disabled: bool,
    #[serde(default)]
    pub stitch_disabled: bool,
    pub max_video_post_duration_sec: Option<u32>,
    #[serde(skip)]
    pub log_id: Option<String>,
}

impl CreatorInfo {
    pub fn allows(&self, level: PrivacyLevel) -> bool {
        self.privacy_level_options
            .iter()
            .any(|o| o == level.as_str())
    }
}

/// Direct Post `post_info`. Every interaction and brand flag is always serialised: the docs disagree on
/// which are required, and an explicit value cannot be misread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub privacy_level: PrivacyLevel,
    pub disable_duet: bool,
    pub disable_stitch: bool,
    pub disable_comment: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_cover_timestamp_ms: Option<u32>,
    pub brand_content_toggle: bool,
    pub brand_organic_toggle: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_aigc: Option<bool>,
}

impl PostInfo {
    /// Interactions allowed, no commercial disclosure.
    pub fn new(privacy_level: PrivacyLevel, title: Option<String>) -> Self {
        Self {
            title,
            privacy_level,
            disable_duet: false,
            disable_stitch: false,
            disable_comment: false,
            video_cover_timestamp_ms: None,
            brand_content_toggle: false,
            brand_organic_toggle: false,
            is_aigc: None,
        }
    }
}

/// `source_info` for video init (direct and inbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceInfo {
    FileUpload {
        video_size: u64,
        chunk_size: u64,
        total_chunk_count: u64,
    },
    PullFromUrl {
        video_url: String,
    },
}

impl From<&ChunkPlan> for SourceInfo {
    fn from(p: &ChunkPlan) -> Self {
        Self::FileUpload {
            video_size: p.video_size,
            chunk_size: p.chunk_size,
            total_chunk_count: p.total_chunk_count,
        }
    }
}

/// `video/init` and `inbox/video/init` data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InitResponse {
    pub publish_id: String,
    /// Only for FILE_UPLOAD; valid one hour; used verbatim.
    pub upload_url: Option<String>,
    #[serde(skip)]
    pub log_id: Option<String>,
}

/// A call whose success carries no data (cancel, revoke).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiAck {
    pub log_id: Option<String>,
}

/// `status/fetch` `status`; unknown values are kept and treated as non-terminal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublishStatusKind {
    ProcessingUpload,
    ProcessingDownload,
    SendToUserInbox,
    PublishComplete,
    Failed,
    Other(String),
}

impl PublishStatusKind {
    pub fn parse(s: &str) -> Self {
        match s {
            "PROCESSING_UPLOAD" => Self::ProcessingUpload,
            "PROCESSING_DOWNLOAD" => Self::ProcessingDownload,
            "SEND_TO_USER_INBOX" => Self::SendToUserInbox,
            "PUBLISH_COMPLETE" => Self::PublishComplete,
            "FAILED" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Only PUBLISH_COMPLETE and FAILED end a publish (an inbox share can still become PUBLISH_COMPLETE).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::PublishComplete | Self::Failed)
    }
}

impl<'de> Deserialize<'de> for PublishStatusKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// `status/fetch` data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishStatus {
    pub status: PublishStatusKind,
    pub fail_reason: Option<String>,
    /// TikTok's spelling; numbers or strings, a list or a scalar.
    #[serde(
        rename = "publicaly_available_post_id",
        default,
        deserialize_with = "deserialize_post_ids"
    )]
    pub public_post_ids: Vec<u64>,
    pub uploaded_bytes: Option<u64>,
    pub downloaded_bytes: Option<u64>,
    #[serde(skip)]
    pub log_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdOrIds {
    One(Id),
    Many(Vec<Id>),
    Null(()),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Num(u64),
    Text(String),
}

impl Id {
    fn value<E: serde::de::Error>(self) -> Result<u64, E> {
        match self {
            Self::Num(n) => Ok(n),
            Self::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| E::custom(format!("post id `{s}` is not an integer"))),
        }
    }
}

/// Post ids as `u64` whether JSON numbers (19 digits, beyond f64 precision) or strings, list or scalar.
pub fn deserialize_post_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    match IdOrIds::deserialize(d)? {
        IdOrIds::Null(()) => Ok(Vec::new()),
        IdOrIds::One(id) => Ok(vec![id.value()?]),
        IdOrIds::Many(ids) => ids.into_iter().map(Id::value).collect(),
    }
}

/// One post id, number or string.
pub(crate) fn deserialize_post_id<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    Ok(deserialize_post_ids(d)?.into_iter().next())
}

#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    pub data: Option<T>,
    pub error: Option<EnvelopeError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EnvelopeError {
    pub code: String,
    #[serde(default)]
    pub message: String,
    pub log_id: Option<String>,
}
