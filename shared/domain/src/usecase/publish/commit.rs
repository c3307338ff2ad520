//! Step 2: the commit point. `PublishStarted` is written before the init, conditionally on the
//! job's version, so of any number of consumers exactly one calls TikTok for this attempt.

use crate::job::Job;
use crate::lifecycle::{Effect, Event};
use crate::ports::{Clock, Ports};
use crate::time::UtcTime;

use super::super::Advance;
use super::{Core, Prepared, PublishOutcome, Step, Wait};

/// A committed attempt: the init may be sent, once.
pub(crate) struct Attempt {
    pub job: Job,
    pub number: u32,
    pub prepared: Prepared,
}

impl<P: Ports> Core<P> {
    pub(crate) async fn commit(
        &self,
        prepared: Prepared,
        deadline: UtcTime,
    ) -> Result<Step<Attempt>, Wait> {
        // The init and the writes of its answer must end inside this invocation, and well
        // inside the lease the commit starts (the lease is longer than the init window).
        if self
            .ports
            .clock()
            .now()
            .plus(self.settings.publish.init_window)
            > deadline
        {
            return Err(Wait::new("out_of_time", std::time::Duration::ZERO));
        }
        let started = self
            .advance_loaded(prepared.job.clone(), &Event::PublishStarted)
            .await
            .map_err(|e| self.store_wait(&e))?;
        let Advance::Moved(applied) = started else {
            // Another consumer (or a concurrent cancel) moved the job first: nothing to send.
            return Ok(Step::Done(PublishOutcome::LostRace));
        };
        let Some(number) = applied.effects.iter().find_map(|e| match e {
            Effect::InitPublish { attempt } => Some(*attempt),
            _ => None,
        }) else {
            return Ok(Step::Done(PublishOutcome::LostRace));
        };
        tracing::Span::current().record("attempt", number);
        Ok(Step::Go(Attempt {
            job: applied.job,
            number,
            prepared,
        }))
    }
}
