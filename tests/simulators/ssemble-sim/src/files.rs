//! Synthetic clip files: deterministic bytes generated on the fly (never held in memory),
//! with `Content-Length` and single-range `Range` support.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Shared;

const CHUNK: u64 = 64 * 1024;

/// The first bytes of every clip: an MP4 `ftyp` box, so sniffers see a video.
const FTYP: [u8; 32] = *b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41";

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Byte `offset` of the clip identified by `seed`. Public so tests can verify content.
pub fn clip_byte(seed: u64, offset: u64) -> u8 {
    if let Some(b) = usize::try_from(offset).ok().and_then(|i| FTYP.get(i)) {
        return *b;
    }
    let word = splitmix(seed ^ (offset / 8));
    word.to_le_bytes()[(offset % 8) as usize]
}

fn fill(seed: u64, from: u64, len: u64) -> Bytes {
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let mut off = from;
    let end = from + len;
    while off < end {
        if off < FTYP.len() as u64 || !off.is_multiple_of(8) || end - off < 8 {
            out.push(clip_byte(seed, off));
            off += 1;
        } else {
            out.extend_from_slice(&splitmix(seed ^ (off / 8)).to_le_bytes());
            off += 8;
        }
    }
    Bytes::from(out)
}

/// Seed of a clip's content, from its request and short ids.
pub fn clip_seed(request_id: &str, short_id: &str) -> u64 {
    request_id
        .bytes()
        .chain([b'/'])
        .chain(short_id.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

enum RangeReq {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(h: Option<&HeaderValue>, size: u64) -> RangeReq {
    let Some(spec) = h
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().strip_prefix("bytes="))
    else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => b
            .parse::<u64>()
            .ok()
            .map(|n| (size.saturating_sub(n), size.saturating_sub(1), n == 0)),
        (false, true) => a
            .parse::<u64>()
            .ok()
            .map(|s| (s, size.saturating_sub(1), false)),
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if e >= s => Some((s, e.min(size.saturating_sub(1)), false)),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => RangeReq::Full,
        Some((s, _, zero_suffix)) if s >= size || zero_suffix => RangeReq::Unsatisfiable,
        Some((s, e, _)) => RangeReq::Part(s, e),
    }
}

pub(crate) async fn serve(
    State(sh): State<Arc<Shared>>,
    Path((request_id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(short_id) = name.strip_suffix(".mp4") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (size, ignore_range) = {
        let now = sh.clock.now();
        let st = sh.lock();
        let Some(req) = st.requests.get(&request_id).filter(|r| !r.deleted) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let done = req.view(now, sh.cfg.timeline_secs).status == "completed";
        if !done || !req.shorts.iter().any(|s| s.id == short_id && !s.error) {
            return StatusCode::NOT_FOUND.into_response();
        }
        (
            req.clip_bytes.unwrap_or(st.clip_bytes),
            st.files_ignore_range,
        )
    };
    let seed = clip_seed(&request_id, short_id);
    let range = if ignore_range {
        RangeReq::Full
    } else {
        parse_range(headers.get(header::RANGE), size)
    };
    let (status, from, to_excl) = match range {
        RangeReq::Full => (StatusCode::OK, 0, size),
        RangeReq::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e + 1),
        RangeReq::Unsatisfiable => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let stream = futures::stream::unfold(from, move |pos| async move {
        if pos >= to_excl {
            return None;
        }
        let len = CHUNK.min(to_excl - pos);
        Some((Ok::<Bytes, std::io::Error>(fill(seed, pos, len)), pos + len))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    if !ignore_range {
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if let Ok(v) = HeaderValue::from_str(&(to_excl - from).to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {from}-{}/{size}", to_excl - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_fill_used_should_match_bytewise_definition_at_any_offset() {
        let seed = clip_seed("665a1b2c3d4e5f6a7b8c9d0e", "x");
        for (from, len) in [(0, 100), (3, 77), (31, 9), (1000, 64), (4093, 13)] {
            let chunk = fill(seed, from, len);
            let expected: Vec<u8> = (from..from + len).map(|o| clip_byte(seed, o)).collect();
            assert_eq!(chunk.as_ref(), expected.as_slice(), "from {from}");
        }
        assert_eq!(&fill(seed, 4, 4)[..], b"ftyp");
    }

    #[test]
    fn when_range_parsed_should_follow_rfc_forms() {
        let h = |s: &str| HeaderValue::from_str(s).ok();
        assert!(matches!(
            parse_range(h("bytes=0-9").as_ref(), 100),
            RangeReq::Part(0, 9)
        ));
        assert!(matches!(
            parse_range(h("bytes=90-").as_ref(), 100),
            RangeReq::Part(90, 99)
        ));
        assert!(matches!(
            parse_range(h("bytes=-10").as_ref(), 100),
            RangeReq::Part(90, 99)
        ));
        assert!(matches!(
            parse_range(h("bytes=95-200").as_ref(), 100),
            RangeReq::Part(95, 99)
        ));
        assert!(matches!(
            parse_range(h("bytes=100-").as_ref(), 100),
            RangeReq::Unsatisfiable
        ));
        assert!(matches!(parse_range(None, 100), RangeReq::Full));
    }
}
