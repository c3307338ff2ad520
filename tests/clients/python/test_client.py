"""The Python client a customer would generate from openapi.yaml (openapi-python-client), driving
the real API on the local stack. infra/scripts/clients-test.sh generates the package
`reelay_client` from the document, type-checks this file against it with mypy --strict (a request
or a read the document does not allow fails there) and runs it with pytest.

Env: REELAY_API (base URL of the local stack), REELAY_KEY (a tenant's API key; never printed).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from reelay_client import AuthenticatedClient, Client
from reelay_client.api.default import (
    connect_account,
    create_job,
    get_account,
    get_job,
    list_jobs,
    oauth_callback,
)
from reelay_client.models import (
    Account,
    AccountHealth,
    ConnectAccountBody,
    ConnectAccountBodyMode,
    ConnectAccountResponse200,
    CreateJob,
    Error,
    Job,
    JobWithAudit,
    ListJobsResponse200,
    OauthCallbackResponse200,
    Post,
    PostMode,
    PrivacyLevel,
    Source,
)
from reelay_client.types import Response

API = os.environ["REELAY_API"]
KEY = os.environ["REELAY_KEY"]
TAG = f"{int(time.time()):x}{secrets.token_hex(3)}"
ACCOUNT = f"acct_py_{TAG}"
T = TypeVar("T")


@pytest.fixture(scope="module")
def tenant() -> Iterator[AuthenticatedClient]:
    # An answer whose status the document does not list raises instead of parsing to None.
    with AuthenticatedClient(base_url=API, token=KEY, raise_on_unexpected_status=True) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous() -> Iterator[Client]:
    with Client(base_url=API, raise_on_unexpected_status=True) as client:
        yield client


def job_body(n: int, account: str = ACCOUNT) -> CreateJob:
    return CreateJob(
        tiktok_account_id=account,
        source=Source(url=f"https://www.youtube.com/watch?v=reelay-py-{TAG}-{n}", start=0, end=60),
        post=Post(mode=PostMode.DIRECT, privacy_level=PrivacyLevel.SELF_ONLY, title=f"python client {TAG} #{n}"),
    )


def expect_error(answer: Response[T], status: int, code: str) -> Error:
    """The error envelope as a client reads it: status and `error.code`, typed by the document."""
    assert answer.status_code == status, answer.content
    assert isinstance(answer.parsed, Error), answer.content
    assert answer.parsed.error.code == code
    assert isinstance(answer.parsed.error.message, str)
    assert answer.headers.get("x-request-id"), "every answer carries X-Request-Id"
    return answer.parsed


def test_connect_account_through_oauth(tenant: AuthenticatedClient, anonymous: Client) -> None:
    started = connect_account.sync_detailed(
        client=tenant,
        body=ConnectAccountBody(tiktok_account_id=ACCOUNT, mode=ConnectAccountBodyMode.DIRECT),
    )
    assert isinstance(started.parsed, ConnectAccountResponse200), started.content
    assert started.parsed.tiktok_account_id == ACCOUNT
    # The creator's browser: the authorize page (the TikTok simulator) redirects to Reelay's callback.
    authorize = httpx.get(started.parsed.authorize_url, follow_redirects=False, timeout=30)
    assert authorize.status_code == 302
    location = urlsplit(authorize.headers["location"])
    assert location.path == "/v1/accounts/oauth/callback"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    callback = oauth_callback.sync_detailed(
        client=anonymous, state=query["state"], code=query["code"], scopes=query.get("scopes", "")
    )
    assert isinstance(callback.parsed, OauthCallbackResponse200), callback.content
    assert callback.parsed.health == "active"
    assert callback.parsed.tiktok_account_id == ACCOUNT

    account = get_account.sync_detailed(ACCOUNT, client=tenant)
    assert isinstance(account.parsed, Account), account.content
    assert account.parsed.health == AccountHealth.ACTIVE
    assert "video.publish" in account.parsed.scopes


def test_create_read_list_replay(tenant: AuthenticatedClient) -> None:
    key = f"py-{TAG}-1"
    created = create_job.sync_detailed(client=tenant, body=job_body(1), idempotency_key=key)
    assert created.status_code == 202, created.content
    job = created.parsed
    assert isinstance(job, Job)
    assert re.fullmatch(r"job_[0-9A-HJKMNP-TV-Z]{26}", job.job_id)
    assert job.tiktok_account_id == ACCOUNT
    assert job.attempt == 0
    assert job.post_ids == []
    assert job.created_at.tzinfo is not None
    assert job.api_request_id == created.headers["x-request-id"]

    read = get_job.sync_detailed(job.job_id, client=tenant, audit_limit=10)
    assert isinstance(read.parsed, JobWithAudit), read.content
    assert read.parsed.job_id == job.job_id
    assert read.parsed.tiktok_account_id == ACCOUNT
    assert read.parsed.created_at == job.created_at
    first = read.parsed.audit[0]
    assert (first.version, first.to) == (1, "received")

    listed = list_jobs.sync_detailed(client=tenant, tiktok_account_id=ACCOUNT, limit=10)
    assert isinstance(listed.parsed, ListJobsResponse200), listed.content
    assert job.job_id in [j.job_id for j in listed.parsed.jobs]
    assert all(j.tiktok_account_id == ACCOUNT for j in listed.parsed.jobs)
    assert listed.parsed.next_cursor is None, "one page holds this account's jobs"

    # The same key and body: the first answer again, marked as a replay; nothing new is created.
    replay = create_job.sync_detailed(client=tenant, body=job_body(1), idempotency_key=key)
    assert replay.status_code == 202
    assert replay.headers.get("idempotent-replayed") == "true"
    assert isinstance(replay.parsed, Job) and replay.parsed.job_id == job.job_id


def test_error_envelopes(tenant: AuthenticatedClient, anonymous: Client) -> None:
    # No key at all.
    expect_error(list_jobs.sync_detailed(client=anonymous), 401, "unauthenticated")

    # Schema-valid but refused: no source kind (exactly one of url, fileUrl or requestId).
    no_source = job_body(2)
    no_source.source = Source()
    invalid = expect_error(
        create_job.sync_detailed(client=tenant, body=no_source, idempotency_key=f"py-{TAG}-bad"),
        400,
        "validation_failed",
    )
    details = invalid.error.details
    assert isinstance(details, dict) and details.get("fields"), details

    # A query parameter out of the document's range.
    expect_error(list_jobs.sync_detailed(client=tenant, limit=1000), 400, "validation_failed")

    # An account never connected to this tenant.
    expect_error(
        create_job.sync_detailed(
            client=tenant, body=job_body(3, account=f"acct_never_{TAG}"), idempotency_key=f"py-{TAG}-unknown"
        ),
        422,
        "unknown_account",
    )

    expect_error(get_job.sync_detailed("job_" + "0" * 26, client=tenant), 404, "job_not_found")

    # The same idempotency key with another body.
    key = f"py-{TAG}-reuse"
    first_use = create_job.sync_detailed(client=tenant, body=job_body(4), idempotency_key=key)
    assert first_use.status_code == 202, first_use.content
    reused = create_job.sync_detailed(client=tenant, body=job_body(5), idempotency_key=key)
    expect_error(reused, 409, "idempotency_key_reused")
