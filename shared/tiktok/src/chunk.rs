use crate::config::ChunkPolicy;

/// A FILE_UPLOAD chunk layout: `total_chunk_count = floor(video_size / chunk_size)`, the final chunk
/// absorbing the trailing bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    pub video_size: u64,
    pub chunk_size: u64,
    pub total_chunk_count: u64,
}

/// One PUT: bytes `start..=end` of the video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub index: u64,
    pub start: u64,
    /// Inclusive, as in `Content-Range`.
    pub end: u64,
}

impl ChunkRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkPlanError {
    #[error("an empty video cannot be uploaded")]
    Empty,
    #[error("video of {video_size} bytes needs chunks larger than the {max_chunk}-byte maximum")]
    TooLarge { video_size: u64, max_chunk: u64 },
    #[error("chunk size {chunk_size} is outside [{min}, {max}]")]
    ChunkSizeOutOfRange { chunk_size: u64, min: u64, max: u64 },
    #[error("final chunk of {final_chunk} bytes exceeds {max_final}")]
    FinalChunkTooLarge { final_chunk: u64, max_final: u64 },
    #[error("{count} chunks is outside 1..={max}")]
    ChunkCount { count: u64, max: u64 },
    #[error(
        "a single-chunk upload must have chunk_size = video_size ({video_size}), got {chunk_size}"
    )]
    SingleChunkMismatch { video_size: u64, chunk_size: u64 },
    #[error("video of {video_size} bytes exceeds the single-chunk limit and needs several chunks")]
    NeedsMultipleChunks { video_size: u64 },
}

impl ChunkPlan {
    /// Plans an upload under `policy`: one chunk up to `single_chunk_threshold`, otherwise
    /// `preferred_chunk`-sized chunks (at least two, at most `max_chunks`).
    pub fn new(video_size: u64, policy: &ChunkPolicy) -> Result<Self, ChunkPlanError> {
        if video_size == 0 {
            return Err(ChunkPlanError::Empty);
        }
        if video_size <= policy.single_chunk_threshold {
            return Self::from_parts(video_size, video_size, policy);
        }
        let mut chunk = policy
            .preferred_chunk
            .clamp(policy.min_chunk, policy.max_chunk)
            .min(video_size / 2);
        // floor(size / chunk) <= max_chunks  <=>  chunk > size / (max_chunks + 1)
        chunk = chunk.max(video_size / (policy.max_chunks + 1) + 1);
        if chunk > policy.max_chunk {
            return Err(ChunkPlanError::TooLarge {
                video_size,
                max_chunk: policy.max_chunk,
            });
        }
        Self::from_parts(video_size, chunk, policy)
    }

    /// Validates an explicit chunk size against every documented rule.
    pub fn from_parts(
        video_size: u64,
        chunk_size: u64,
        policy: &ChunkPolicy,
    ) -> Result<Self, ChunkPlanError> {
        if video_size == 0 {
            return Err(ChunkPlanError::Empty);
        }
        if chunk_size == 0 || chunk_size > video_size {
            return Err(ChunkPlanError::ChunkSizeOutOfRange {
                chunk_size,
                min: policy.min_chunk.min(video_size),
                max: policy.max_chunk.min(video_size),
            });
        }
        let count = video_size / chunk_size;
        if count == 0 || count > policy.max_chunks {
            return Err(ChunkPlanError::ChunkCount {
                count,
                max: policy.max_chunks,
            });
        }
        if count == 1 {
            if chunk_size != video_size {
                return Err(ChunkPlanError::SingleChunkMismatch {
                    video_size,
                    chunk_size,
                });
            }
            if video_size > policy.single_chunk_threshold {
                return Err(ChunkPlanError::NeedsMultipleChunks { video_size });
            }
        } else {
            if chunk_size < policy.min_chunk || chunk_size > policy.max_chunk {
                return Err(ChunkPlanError::ChunkSizeOutOfRange {
                    chunk_size,
                    min: policy.min_chunk,
                    max: policy.max_chunk,
                });
            }
            let final_chunk = video_size - (count - 1) * chunk_size;
            if final_chunk > policy.max_final_chunk {
                return Err(ChunkPlanError::FinalChunkTooLarge {
                    final_chunk,
                    max_final: policy.max_final_chunk,
                });
            }
        }
        Ok(Self {
            video_size,
            chunk_size,
            total_chunk_count: count,
        })
    }

    /// The chunk ranges in upload order.
    pub fn ranges(&self) -> impl Iterator<Item = ChunkRange> + '_ {
        (0..self.total_chunk_count).map(move |index| self.range(index))
    }

    /// Range of chunk `index`; the last one runs to the end of the video.
    pub fn range(&self, index: u64) -> ChunkRange {
        let start = index * self.chunk_size;
        let end = if index + 1 == self.total_chunk_count {
            self.video_size - 1
        } else {
            start + self.chunk_size - 1
        };
        ChunkRange { index, start, end }
    }

    /// The chunk that starts exactly at `offset`, if any.
    pub fn chunk_starting_at(&self, offset: u64) -> Option<u64> {
        if !offset.is_multiple_of(self.chunk_size) {
            return None;
        }
        let index = offset / self.chunk_size;
        (index < self.total_chunk_count).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn plan(size: u64) -> Result<ChunkPlan, ChunkPlanError> {
        ChunkPlan::new(size, &ChunkPolicy::default())
    }

    fn assert_covers(p: &ChunkPlan) {
        let ranges: Vec<_> = p.ranges().collect();
        assert_eq!(ranges.len() as u64, p.total_chunk_count);
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges.last().unwrap().end, p.video_size - 1);
        for w in ranges.windows(2) {
            assert_eq!(w[0].end + 1, w[1].start);
        }
        assert_eq!(p.total_chunk_count, p.video_size / p.chunk_size);
    }

    #[test]
    fn when_video_is_under_5mb_should_send_one_whole_chunk() {
        let size = 4_900_000;
        let p = plan(size).unwrap();
        assert_eq!((p.chunk_size, p.total_chunk_count), (size, 1));
        assert_covers(&p);
        let p = plan(4_194_304).unwrap();
        assert_eq!(
            p.range(0),
            ChunkRange {
                index: 0,
                start: 0,
                end: 4_194_303
            }
        );
    }

    #[test]
    fn when_video_is_exactly_5mb_or_64mb_should_stay_single_chunk() {
        for size in [5 * MIB, 5_000_000, 64_000_000] {
            let p = plan(size).unwrap();
            assert_eq!((p.chunk_size, p.total_chunk_count), (size, 1), "{size}");
        }
    }

    #[test]
    fn when_video_is_one_byte_over_64mb_should_split_into_two() {
        let size = 64_000_001;
        let p = plan(size).unwrap();
        assert_eq!(p.total_chunk_count, 2);
        assert!(p.chunk_size >= 5 * MIB && p.chunk_size <= 64_000_000);
        assert_eq!(p.range(1).len(), size - p.chunk_size);
        assert_covers(&p);
    }

    #[test]
    fn when_video_is_64mib_should_use_several_chunks_under_the_decimal_limit() {
        let p = plan(64 * MIB).unwrap();
        assert!(p.total_chunk_count >= 2);
        assert!(p.chunk_size <= 64_000_000);
        assert_covers(&p);
    }

    #[test]
    fn when_documented_example_should_merge_trailing_bytes_into_the_final_chunk() {
        let p = ChunkPlan::from_parts(50_000_123, 10_000_000, &ChunkPolicy::default()).unwrap();
        assert_eq!(p.total_chunk_count, 5);
        assert_eq!(
            p.range(4),
            ChunkRange {
                index: 4,
                start: 40_000_000,
                end: 50_000_122
            }
        );
        assert_eq!(p.range(4).len(), 10_000_123);
    }

    #[test]
    fn when_final_chunk_would_exceed_128mb_should_reject() {
        let policy = ChunkPolicy {
            max_chunk: 64 * MIB,
            ..ChunkPolicy::default()
        };
        let err = ChunkPlan::from_parts(64 * MIB + 128_000_001, 64 * MIB, &policy).unwrap_err();
        assert_eq!(
            err,
            ChunkPlanError::FinalChunkTooLarge {
                final_chunk: 128_000_001,
                max_final: 128_000_000
            }
        );
        let ok = ChunkPlan::from_parts(64 * MIB + 128_000_000, 64 * MIB, &policy).unwrap();
        assert_eq!(ok.range(1).len(), 128_000_000);
    }

    #[test]
    fn when_large_video_should_use_preferred_chunks_and_floor() {
        let size = 500 * 1_000_000 + 123;
        let p = plan(size).unwrap();
        assert_eq!(p.chunk_size, 64_000_000);
        assert_eq!(p.total_chunk_count, 7);
        assert_covers(&p);
    }

    #[test]
    fn when_video_needs_1000_chunks_should_plan_and_beyond_should_fail() {
        let p = plan(1000 * 64_000_000).unwrap();
        assert_eq!(p.total_chunk_count, 1000);
        let p = plan(1001 * 64_000_000 - 1).unwrap();
        assert_eq!(p.total_chunk_count, 1000);
        assert!(p.range(999).len() <= 128_000_000);
        assert!(matches!(
            plan(1001 * 64_000_000),
            Err(ChunkPlanError::TooLarge { .. })
        ));
        let small = ChunkPolicy {
            preferred_chunk: 5 * MIB,
            ..ChunkPolicy::default()
        };
        let p = ChunkPlan::new(2000 * 5 * MIB, &small).unwrap();
        assert!(p.total_chunk_count <= 1000);
        assert_covers(&p);
    }

    #[test]
    fn when_explicit_parts_break_rules_should_name_the_rule() {
        let d = ChunkPolicy::default();
        assert!(matches!(
            ChunkPlan::from_parts(0, 1, &d),
            Err(ChunkPlanError::Empty)
        ));
        assert!(matches!(
            ChunkPlan::from_parts(4_900_000, 4_000_000, &d),
            Err(ChunkPlanError::SingleChunkMismatch { .. })
        ));
        assert!(matches!(
            ChunkPlan::from_parts(20_000_000, 4_900_000, &d),
            Err(ChunkPlanError::ChunkSizeOutOfRange { .. })
        ));
        assert!(matches!(
            ChunkPlan::from_parts(100_000_000, 100_000_000, &d),
            Err(ChunkPlanError::NeedsMultipleChunks { .. })
        ));
        assert!(matches!(
            ChunkPlan::from_parts(6_000_000_000, 5 * MIB, &d),
            Err(ChunkPlanError::ChunkCount { .. })
        ));
    }

    #[test]
    fn when_offset_is_a_boundary_should_find_its_chunk() {
        let p = ChunkPlan::from_parts(50_000_123, 10_000_000, &ChunkPolicy::default()).unwrap();
        assert_eq!(p.chunk_starting_at(0), Some(0));
        assert_eq!(p.chunk_starting_at(30_000_000), Some(3));
        assert_eq!(p.chunk_starting_at(30_000_001), None);
        assert_eq!(p.chunk_starting_at(50_000_000), None);
    }
}
