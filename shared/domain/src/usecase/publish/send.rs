//! Step 3: the init, sent exactly once for a committed attempt. No retry happens here, not even
//! after a refused token: a second init in the same attempt could race the first one's answer.

use crate::ports::Ports;
use crate::upstream::{PublishApi, PublishInit, UpstreamError};

use super::Core;
use super::commit::Attempt;

impl<P: Ports> Core<P> {
    pub(crate) async fn send(&self, attempt: &Attempt) -> Result<PublishInit, UpstreamError> {
        let p = &attempt.prepared;
        self.ports
            .publish()
            .init(&p.token, &attempt.job.post, &p.clip, p.video_size)
            .await
    }
}
