#!/usr/bin/env python3
"""Mutation check of the deterministic simulation: puts each of issue 10's defects back into the
code (one at a time, by a textual edit), runs the simulation, and expects it to fail. A mutant the
simulation does not catch is reported as SURVIVED and the script exits non-zero.

    tests/simulation/mutation-check.py [--seeds N] [--only NAME]

Every edited file is restored afterwards (also on Ctrl-C). Not part of `make test`: each mutant
rebuilds the domain and runs the seeds, a few minutes in all.
"""

import argparse
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "shared/domain/src"

# (name, what it puts back, [(file, old, new), ...])
MUTANTS = [
    (
        "defect-1-observations-of-any-attempt",
        "a webhook or poll result for an earlier publish_id moves the current attempt",
        [(DOMAIN / "lifecycle.rs",
          "(Some(pid), _) if job.publish_id.as_ref() != Some(pid) =>",
          "(Some(pid), _) if false && job.publish_id.as_ref() != Some(pid) =>")],
    ),
    (
        "defect-2-stuck-publish-never-reconciled",
        "a publish_unknown that holds a publish_id ignores webhooks and polls",
        [(DOMAIN / "lifecycle.rs",
          """            } => self.observe(status, post_ids, *via),
            E::Expired => Ok(Decision::Move {
                to: JobState::PublishUnknown,""",
          """            } => {
                let _ = (status, post_ids, via);
                Ok(Decision::Absorb)
            }
            E::Expired => Ok(Decision::Move {
                to: JobState::PublishUnknown,""")],
    ),
    (
        "lost-init-webhook-while-publishing-dropped",
        "a webhook for an init whose answer is not recorded yet is answered 200 and dropped",
        [(DOMAIN / "usecase/observe.rs",
          """            .iter()
            .any(|j| j.publish_id.is_none())""",
          """            .iter()
            .any(|j| false && j.publish_id.is_none())""")],
    ),
    (
        "defect-4-unknown-request-polled",
        "Ssemble's 404 for an unknown requestId is retried like an outage",
        [(DOMAIN / "usecase/render.rs",
          """            Ok(p) => p,
            Err(e) if e.class == ErrorClass::Permanent => return Ok(Asked::Refused(e)),""",
          """            Ok(p) => p,""")],
    ),
    (
        "defect-5-holds-cycle",
        "a hold without an end re-queues the job every hour instead of waiting at the gate, backing off",
        [(DOMAIN / "lifecycle.rs",
          """        age.clamp(
            self.hold_recheck,
            self.hold_recheck_max.max(self.hold_recheck),
        )""",
          "        { let _ = age; self.hold_recheck }"),
         (DOMAIN / "usecase/reconcile.rs",
          """            Gate::Park { reason } => Event::Held {
                reason,
                until: None,
            },""",
          """            Gate::Park { reason } => {
                let _ = reason;
                Event::PublishDue
            }""")],
    ),
    (
        "defect-5-waiting-is-audited",
        "every deferral and poll writes a transition with an audit event",
        [(DOMAIN / "job.rs",
          """                let mut job = self.clone();
                job.next_check = next_check;
                job.hold = hold;
                return Ok(Step::Rescheduled(Box::new(Rescheduled { job, effects })));""",
          """                (self.state, effects, next_check, hold)""")],
    ),
    (
        "defect-5-ignored-poll-stays-due",
        "a poll result that changes nothing leaves the job due, so it is polled on every tick",
        [(DOMAIN / "lifecycle.rs",
          "(Via::Poll, _) => self.reschedule(self.poll_again(state), Vec::new()),",
          "(Via::Poll, _) => Ok(Decision::Absorb),"),
         (DOMAIN / "usecase/reconcile.rs",
          ".is_some_and(|c| c.at <= now.plus(lookahead))",
          ".is_some_and(|c| false && c.at <= now.plus(lookahead))")],
    ),
    (
        "defect-6-bytes-lost-after-lease",
        "an acceptance recorded after the lease expired never sends the bytes",
        [(DOMAIN / "lifecycle.rs",
          "            E::PublishAccepted { upload, .. } => self.accepted(*upload),\n            // A definite refusal",
          "            E::PublishAccepted { upload, .. } => self.accepted(*upload && false),\n            // A definite refusal")],
    ),
    (
        "defect-7-tiktoks-reason-lost",
        "a FAILED publish records a generic code, TikTok's fail_reason only in a detail",
        [(DOMAIN / "lifecycle.rs",
          """            Self::StatusObserved {
                status: PublishStatus::Failed { reason },
                upstream_log_id,
                ..
            } => Some(JobError {""",
          """            Self::StatusObserved {
                status: PublishStatus::Failed { reason },
                upstream_log_id,
                ..
            } if false => Some(JobError {""")],
    ),
    (
        "issue-12-creator-not-pinned",
        "an account reconnects as whichever creator signs in",
        [(DOMAIN / "usecase/accounts.rs",
          "if pinned.is_some_and(|pinned| pinned != tokens.open_id) {",
          "if false && pinned.is_some_and(|pinned| pinned != tokens.open_id) {")],
    ),
    (
        "issue-12-creator-bound-twice",
        "a creator bound to one account is connected as another before the store refuses it",
        [(DOMAIN / "usecase/accounts.rs",
          "            && owner != (tenant.clone(), account_id.clone())",
          "            && false && owner != (tenant.clone(), account_id.clone())")],
    ),
    (
        "issue-10-orphan-failure-closes-unknown",
        "a FAILED webhook for a publish no job holds closes the account's one unknown attempt",
        [(DOMAIN / "usecase/observe.rs",
          "        if matches!(\n            event,\n            Event::StatusObserved {",
          "        if false && matches!(\n            event,\n            Event::StatusObserved {")],
    ),
    (
        "issue-12-render-not-owned",
        "a job may publish any requestId, another tenant's included",
        [(DOMAIN / "usecase/create_job.rs",
          "            && !self.owns_render(tenant, request_id).await?",
          "            && false && !self.owns_render(tenant, request_id).await?")],
    ),
    (
        "issue-12-lost-create-claims-another-render",
        "a create whose answer was lost claims a matching request that another job uses",
        [(DOMAIN / "usecase/render.rs",
          "                    if self.request_used_by_other(&job.id, &request_id).await? =>",
          "                    if false && self.request_used_by_other(&job.id, &request_id).await? =>")],
    ),
    (
        "defect-7-draft-submitted-while-processing",
        "a draft is reported submitted while TikTok still answers PROCESSING_UPLOAD",
        [(DOMAIN / "lifecycle.rs",
          "PublishStatus::Processing if state == S::Uploaded && !draft => S::Submitted,",
          "PublishStatus::Processing if state == S::Uploaded => S::Submitted,")],
    ),
    (
        "defect-7-earlier-error-kept",
        "a published job keeps an earlier attempt's error",
        [(DOMAIN / "job.rs",
          """                // An earlier attempt's error no longer describes the job.
                self.last_error = None;""",
          """                // (mutant: the earlier error stays)"""),
         (DOMAIN / "job.rs",
          """            // TikTok has the post: no earlier error describes the job any more.
            job.last_error = None;""",
          """            // (mutant: the earlier error stays)""")],
    ),
]


def run_sim(seeds: int) -> tuple[bool, str]:
    env = dict(os.environ, SIM_SEEDS=str(seeds))
    out = subprocess.run(
        ["cargo", "test", "-q", "-p", "reelay-simulation", "--test", "seeds",
         "every_promise", "--", "--nocapture"],
        cwd=ROOT, env=env, capture_output=True, text=True)
    text = out.stdout + out.stderr
    lines = [l for l in text.splitlines()
             if l.startswith("  ") and not l.startswith("   ") and "replay:" not in l]
    summary = next((l for l in text.splitlines() if " seeds, " in l), "(no summary: build failed?)")
    first = lines[0].strip() if lines else ""
    return out.returncode == 0, f"{summary}\n      e.g. {first}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--only")
    args = parser.parse_args()
    survived = []
    for name, what, edits in MUTANTS:
        if args.only and args.only not in name:
            continue
        saved = {}
        try:
            for path, old, new in edits:
                text = saved.setdefault(path, path.read_text())
                current = path.read_text()
                if old not in current:
                    print(f"{name}: the code it mutates is gone ({path.name}); update the mutant")
                    survived.append(name)
                    raise StopIteration
                path.write_text(current.replace(old, new, 1))
            passed, detail = run_sim(args.seeds)
            verdict = "SURVIVED" if passed else "caught"
            print(f"{name}: {verdict} — {what}\n      {detail}")
            if passed:
                survived.append(name)
        except StopIteration:
            pass
        finally:
            for path, text in saved.items():
                path.write_text(text)
    if survived:
        print(f"\n{len(survived)} mutant(s) not caught: {', '.join(survived)}")
        return 1
    print("\nevery mutant was caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
