use std::{path::PathBuf, pin::Pin, time::Duration};

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt, future::BoxFuture};
use tokio::io::AsyncSeekExt;

use crate::{deadline::Deadline, error::TikTokError};

/// Bytes of the video from some offset onwards.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, SourceError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The URL is stripped: clip URLs are often pre-signed.
    #[error("source HTTP request failed: {0}")]
    Http(reqwest::Error),
    #[error("source answered HTTP {status} for {what}")]
    Status { status: u16, what: String },
    #[error("source length mismatch: expected {expected} bytes, source reports {actual}")]
    LengthMismatch { expected: u64, actual: u64 },
    #[error("source ended early: expected {expected} bytes at offset {offset}, got {got}")]
    ShortRead {
        offset: u64,
        expected: u64,
        got: u64,
    },
}

/// A video of known length that can be read sequentially from any offset, so a chunk can be re-read
/// on retry without holding it in memory.
pub trait UploadSource: Send + Sync {
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A stream of the bytes from `offset` to the end.
    fn open(&self, offset: u64) -> BoxFuture<'_, Result<ByteStream, SourceError>>;
}

/// A local file.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    len: u64,
}

impl FileSource {
    pub async fn new(path: impl Into<PathBuf>) -> Result<Self, SourceError> {
        let path = path.into();
        let len = tokio::fs::metadata(&path).await?.len();
        Ok(Self { path, len })
    }
}

impl From<reqwest::Error> for SourceError {
    fn from(e: reqwest::Error) -> Self {
        Self::Http(e.without_url())
    }
}

impl UploadSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn open(&self, offset: u64) -> BoxFuture<'_, Result<ByteStream, SourceError>> {
        async move {
            let mut file = tokio::fs::File::open(&self.path).await?;
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024)
                .map_err(SourceError::from);
            Ok(Box::pin(stream) as ByteStream)
        }
        .boxed()
    }
}

/// A clip behind an HTTP(S) URL (e.g. a rendered clip's download URL). Offsets use `Range`; an origin
/// that ignores it (HTTP 200) has the leading bytes skipped rather than uploaded in the wrong place.
#[derive(Debug, Clone)]
pub struct HttpSource {
    client: reqwest::Client,
    url: String,
    len: u64,
}

impl HttpSource {
    /// Learns the length with a HEAD request (falling back to a `Range: bytes=0-0` GET). Each
    /// request waits at most min(`timeout`, what `deadline` leaves); none starts once it has passed.
    pub async fn open_url(
        client: reqwest::Client,
        url: impl Into<String>,
        timeout: Duration,
        deadline: Deadline,
    ) -> Result<Self, TikTokError> {
        let url = url.into();
        let head = probe(client.head(&url), timeout, deadline).await?;
        let len = if head.status().is_success() {
            head.headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        } else {
            None
        };
        let len = match len {
            Some(l) => l,
            None => {
                let req = client.get(&url).header(reqwest::header::RANGE, "bytes=0-0");
                let resp = probe(req, timeout, deadline).await?;
                resp.headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit('/').next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(SourceError::Status {
                        status: resp.status().as_u16(),
                        what: "length probe".into(),
                    })?
            }
        };
        Ok(Self { client, url, len })
    }

    /// A source whose length is already known (e.g. from the render's metadata); checked on each open.
    pub fn with_len(client: reqwest::Client, url: impl Into<String>, len: u64) -> Self {
        Self {
            client,
            url: url.into(),
            len,
        }
    }
}

impl UploadSource for HttpSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn open(&self, offset: u64) -> BoxFuture<'_, Result<ByteStream, SourceError>> {
        async move {
            let mut req = self.client.get(&self.url);
            if offset > 0 {
                req = req.header(reqwest::header::RANGE, format!("bytes={offset}-"));
            }
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let expected_rest = self.len - offset;
            let skip = match status {
                206 => {
                    let start = resp
                        .headers()
                        .get(reqwest::header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_range_start);
                    if start != Some(offset) {
                        return Err(SourceError::Status {
                            status,
                            what: format!("range starting at {offset}"),
                        });
                    }
                    0
                }
                200 => offset,
                _ => {
                    return Err(SourceError::Status {
                        status,
                        what: "clip download".into(),
                    });
                }
            };
            if let Some(cl) = resp.content_length() {
                let expected = if skip > 0 { self.len } else { expected_rest };
                if cl != expected {
                    return Err(SourceError::LengthMismatch {
                        expected,
                        actual: cl,
                    });
                }
            }
            let stream = resp.bytes_stream().map_err(SourceError::from);
            Ok(skip_bytes(Box::pin(stream), skip))
        }
        .boxed()
    }
}

/// One length-probe request under the deadline. A probe has no side effect, so one cut off by the
/// deadline is reported as the deadline, never as an unknown outcome.
async fn probe(
    req: reqwest::RequestBuilder,
    timeout: Duration,
    deadline: Deadline,
) -> Result<reqwest::Response, TikTokError> {
    let passed = || TikTokError::DeadlineExceeded {
        stage: "clip probe",
        request_cut: false,
    };
    let timeout = deadline.bound(timeout).ok_or_else(passed)?;
    match req.timeout(timeout).send().await {
        Ok(resp) => Ok(resp),
        Err(_) if deadline.has_passed() => Err(passed()),
        Err(e) => Err(SourceError::from(e).into()),
    }
}

fn parse_range_start(v: &str) -> Option<u64> {
    v.strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn skip_bytes(stream: ByteStream, skip: u64) -> ByteStream {
    if skip == 0 {
        return stream;
    }
    let s = futures::stream::unfold((stream, skip), |(mut stream, mut skip)| async move {
        loop {
            match stream.next().await? {
                Ok(mut b) => {
                    if skip == 0 {
                        return Some((Ok(b), (stream, 0)));
                    }
                    let n = (b.len() as u64).min(skip);
                    skip -= n;
                    let rest = b.split_off(n as usize);
                    if !rest.is_empty() {
                        return Some((Ok(rest), (stream, skip)));
                    }
                }
                Err(e) => return Some((Err(e), (stream, skip))),
            }
        }
    });
    Box::pin(s)
}
