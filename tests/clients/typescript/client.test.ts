// The TypeScript client a customer would generate from openapi.yaml (openapi-typescript types +
// openapi-fetch), driving the real API on the local stack. infra/scripts/clients-test.sh
// generates ./schema.ts next to this file, type-checks both with tsc (a request or a read that
// the document does not allow fails there) and runs the result with node's test runner.
//
// Env: REELAY_API (base URL of the local stack), REELAY_KEY (a tenant's API key; never printed).
import { test } from "node:test";
import assert from "node:assert/strict";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Job = components["schemas"]["Job"];
type ApiError = components["schemas"]["Error"];
type CreateJob = components["schemas"]["CreateJob"];

// openapi-fetch checks types at compile time only. So that an answer missing a property of the
// document still fails at run time, every property of the generated Job type is listed here, the
// compiler holds the list to exactly keyof Job, and each answer is checked to carry them all.
const JOB_KEYS = [
  "jobId", "apiRequestId", "tiktokAccountId", "state", "source", "post", "scheduleAt", "requestId",
  "publishId", "postIds", "attempt", "hold", "error", "nextCheckAt", "takenDownAt", "createdAt", "updatedAt",
] as const satisfies readonly (keyof Job)[];
const jobKeysExhaustive: [Exclude<keyof Job, (typeof JOB_KEYS)[number]>] extends [never] ? true : never = true;
function assertJob(job: Job | undefined, what: string): Job {
  assert.ok(job, `${what}: no job in the answer`);
  assert.ok(jobKeysExhaustive);
  const missing = JOB_KEYS.filter((k) => !(k in job));
  assert.deepEqual(missing, [], `${what}: properties of Job missing from the answer`);
  return job;
}

const api = process.env.REELAY_API;
const key = process.env.REELAY_KEY;
if (!api || !key) throw new Error("REELAY_API and REELAY_KEY must be set");

const tenant = createClient<paths>({ baseUrl: api, headers: { Authorization: `Bearer ${key}` } });
const anonymous = createClient<paths>({ baseUrl: api });

const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const account = `acct_ts_${tag}`;

function jobBody(n: number): CreateJob {
  return {
    tiktokAccountId: account,
    source: { url: `https://www.youtube.com/watch?v=reelay-ts-${tag}-${n}`, start: 0, end: 60 },
    post: { mode: "direct", privacyLevel: "SELF_ONLY", title: `typescript client ${tag} #${n}` },
  };
}

// The error envelope as a client reads it: status and `error.code`, typed by the document.
function expectError(error: ApiError | undefined, response: Response, status: number, code: string): ApiError {
  assert.ok(error, `expected an error envelope with HTTP ${status}, got HTTP ${response.status}`);
  assert.equal(response.status, status);
  assert.equal(error.error.code, code);
  assert.equal(typeof error.error.message, "string");
  assert.ok(response.headers.get("x-request-id"), "every answer carries X-Request-Id");
  return error;
}

test("connect an account through the OAuth flow", async () => {
  const { data, error, response } = await tenant.POST("/v1/accounts/connect", {
    body: { tiktokAccountId: account, mode: "direct" },
  });
  assert.equal(error, undefined, `connect answered HTTP ${response.status}`);
  assert.ok(data);
  assert.equal(data.tiktokAccountId, account);
  // The creator's browser: the authorize page (the TikTok simulator) redirects to Reelay's callback.
  const authorize = await fetch(data.authorizeUrl, { redirect: "manual" });
  assert.equal(authorize.status, 302);
  const location = new URL(authorize.headers.get("location") ?? "");
  assert.equal(location.pathname, "/v1/accounts/oauth/callback");
  const state = location.searchParams.get("state");
  assert.ok(state);
  const callback = await anonymous.GET("/v1/accounts/oauth/callback", {
    params: {
      query: {
        state,
        code: location.searchParams.get("code") ?? undefined,
        scopes: location.searchParams.get("scopes") ?? undefined,
      },
    },
  });
  assert.equal(callback.error, undefined, `callback answered HTTP ${callback.response.status}`);
  assert.ok(callback.data);
  assert.equal(callback.data.health, "active");
  assert.equal(callback.data.tiktokAccountId, account);

  const got = await tenant.GET("/v1/accounts/{accountId}", { params: { path: { accountId: account } } });
  assert.ok(got.data, `GET account answered HTTP ${got.response.status}`);
  assert.equal(got.data.health, "active");
  assert.ok(got.data.scopes.includes("video.publish"), `scopes: ${got.data.scopes.join(",")}`);
});

test("create a job, read it back, find it in the list, replay it", async () => {
  const idempotencyKey = `ts-${tag}-1`;
  const created = await tenant.POST("/v1/jobs", {
    params: { header: { "Idempotency-Key": idempotencyKey } },
    body: jobBody(1),
  });
  assert.equal(created.response.status, 202, JSON.stringify(created.error));
  const job = assertJob(created.data, "POST /v1/jobs");
  assert.match(job.jobId, /^job_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(job.tiktokAccountId, account);
  assert.equal(job.attempt, 0);
  assert.deepEqual(job.postIds, []);
  assert.ok(!Number.isNaN(Date.parse(job.createdAt)));
  assert.equal(job.apiRequestId, created.response.headers.get("x-request-id"));

  const read = await tenant.GET("/v1/jobs/{jobId}", {
    params: { path: { jobId: job.jobId }, query: { auditLimit: 10 } },
  });
  assert.ok(read.data, `GET job answered HTTP ${read.response.status}`);
  assertJob(read.data, "GET /v1/jobs/{jobId}");
  assert.equal(read.data.jobId, job.jobId);
  assert.equal(read.data.tiktokAccountId, account);
  assert.equal(read.data.createdAt, job.createdAt);
  const first = read.data.audit[0];
  assert.ok(first, "the audit trail starts with the creation");
  assert.equal(first.to, "received");
  assert.equal(first.version, 1);

  const listed = await tenant.GET("/v1/jobs", { params: { query: { tiktokAccountId: account, limit: 10 } } });
  assert.ok(listed.data, `list answered HTTP ${listed.response.status}`);
  assert.ok(
    listed.data.jobs.some((j) => j.jobId === job.jobId),
    "the new job is listed under its account",
  );
  listed.data.jobs.forEach((j) => assertJob(j, "GET /v1/jobs"));
  assert.ok(listed.data.jobs.every((j) => j.tiktokAccountId === account));
  assert.equal(listed.data.nextCursor, null, "one page holds this account's jobs");

  // The same key and body: the first answer again, marked as a replay; nothing new is created.
  const replay = await tenant.POST("/v1/jobs", {
    params: { header: { "Idempotency-Key": idempotencyKey } },
    body: jobBody(1),
  });
  assert.equal(replay.response.status, 202);
  assert.equal(replay.response.headers.get("idempotent-replayed"), "true");
  assert.equal(replay.data?.jobId, job.jobId);
});

test("error envelopes: 401, 400, 422, 404, 409", async () => {
  // No key at all.
  const noKey = await anonymous.GET("/v1/jobs", {});
  expectError(noKey.error, noKey.response, 401, "unauthenticated");

  // Schema-valid but refused: no source kind (exactly one of url, fileUrl or requestId).
  const noSource = await tenant.POST("/v1/jobs", {
    params: { header: { "Idempotency-Key": `ts-${tag}-bad` } },
    body: { ...jobBody(2), source: {} },
  });
  const invalid = expectError(noSource.error, noSource.response, 400, "validation_failed");
  const fields = (invalid.error.details as { fields?: unknown } | null)?.fields;
  assert.ok(fields, `validation_failed names its fields: ${JSON.stringify(invalid.error.details)}`);

  // A query parameter out of the document's range.
  const badLimit = await tenant.GET("/v1/jobs", { params: { query: { limit: 1000 } } });
  expectError(badLimit.error, badLimit.response, 400, "validation_failed");

  // An account never connected to this tenant.
  const unknown = await tenant.POST("/v1/jobs", {
    params: { header: { "Idempotency-Key": `ts-${tag}-unknown` } },
    body: { ...jobBody(3), tiktokAccountId: `acct_never_${tag}` },
  });
  expectError(unknown.error, unknown.response, 422, "unknown_account");

  const missing = await tenant.GET("/v1/jobs/{jobId}", {
    params: { path: { jobId: "job_00000000000000000000000000" } },
  });
  expectError(missing.error, missing.response, 404, "job_not_found");

  // The same idempotency key with another body.
  const key = `ts-${tag}-reuse`;
  const firstUse = await tenant.POST("/v1/jobs", { params: { header: { "Idempotency-Key": key } }, body: jobBody(4) });
  assert.equal(firstUse.response.status, 202, JSON.stringify(firstUse.error));
  const reused = await tenant.POST("/v1/jobs", { params: { header: { "Idempotency-Key": key } }, body: jobBody(5) });
  expectError(reused.error, reused.response, 409, "idempotency_key_reused");
});
