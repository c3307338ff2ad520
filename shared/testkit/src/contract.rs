//! Contracts every store adapter is held to, written once and run against the in-memory store
//! (`shared/testkit/tests`) and the DynamoDB adapter on the local endpoint (`shared/aws/tests`).

use std::time::Duration;

use reelay_domain::account::Account;
use reelay_domain::budget::{Admission, BudgetKind, Denied, Window};
use reelay_domain::ports::{
    AccountStore, BudgetStore, Entropy, StoreError, TenantStore, WebhookStore, is_delivery_cursor,
};
use reelay_domain::tenant::ApiKey;
use reelay_domain::usecase::TenantError;
use reelay_domain::usecase::tenants::{
    authenticate, create_tenant, issue_key, revoke_key, rotate_keys,
};
use reelay_domain::webhooks::{
    AttemptOutcome, ClientEvent, DeliveryRecord, Endpoint, EndpointId, EventType,
};
use reelay_domain::{AccountId, TenantId, UtcTime};
use secrecy::{ExposeSecret, SecretString};

fn id(raw: &str) -> TenantId {
    TenantId::parse(raw).unwrap_or_else(|e| panic!("tenant id {raw}: {e}"))
}

async fn who<S: TenantStore>(store: &S, key: &SecretString, at: UtcTime) -> Option<TenantId> {
    authenticate(store, key, at)
        .await
        .unwrap_or_else(|e| panic!("authenticate: {e}"))
}

async fn keys<S: TenantStore>(store: &S, tenant: &TenantId) -> Vec<ApiKey> {
    store
        .api_keys(tenant)
        .await
        .unwrap_or_else(|e| panic!("api_keys: {e}"))
}

/// A tenant's keys through their whole life: created once, rotated with an overlap, revoked at
/// once, never usable by or revocable from another tenant, never stored raw.
pub async fn tenant_lifecycle<S: TenantStore>(store: &S, entropy: &impl Entropy) {
    let t0 = UtcTime::from_secs(1_800_000_000);
    let (acme, globex) = (id("acme"), id("globex"));
    let first = create_tenant(store, entropy, &acme, "Acme Media", t0)
        .await
        .unwrap_or_else(|e| panic!("create acme: {e}"));
    assert_eq!(who(store, &first.key, t0).await, Some(acme.clone()));
    assert!(
        matches!(
            create_tenant(store, entropy, &acme, "again", t0).await,
            Err(TenantError::Exists(_))
        ),
        "a tenant is created once"
    );
    assert!(matches!(
        issue_key(store, entropy, &id("nobody"), t0).await,
        Err(TenantError::UnknownTenant(_))
    ));
    let other = create_tenant(store, entropy, &globex, "Globex", t0)
        .await
        .unwrap_or_else(|e| panic!("create globex: {e}"));
    assert_eq!(who(store, &other.key, t0).await, Some(globex.clone()));

    // Rotation: the old key works until the overlap ends, the new one from now on.
    let t1 = t0.plus(Duration::from_secs(60));
    let overlap = Duration::from_secs(3600);
    let rotated = rotate_keys(store, entropy, &acme, t1, overlap)
        .await
        .unwrap_or_else(|e| panic!("rotate: {e}"));
    assert_eq!(rotated.ending.len(), 1, "the one earlier key ends");
    assert_eq!(rotated.ending[0].hash, first.record.hash);
    let end = t1.plus(overlap);
    assert_eq!(
        who(store, &first.key, end.minus(Duration::from_secs(1))).await,
        Some(acme.clone())
    );
    assert_eq!(
        who(store, &first.key, end).await,
        None,
        "ended with the overlap"
    );
    let new = rotated.issued;
    assert_eq!(
        who(store, &new.key, end.plus(overlap)).await,
        Some(acme.clone())
    );
    assert_eq!(
        who(store, &other.key, end).await,
        Some(globex.clone()),
        "another tenant's keys are untouched"
    );
    let listed = keys(store, &acme).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].not_after, Some(end));
    assert_eq!(listed[1].not_after, None);

    // Revocation: another tenant cannot name acme's key; acme's own revocation is immediate.
    let key_id = new.record.key_id().to_owned();
    assert!(matches!(
        revoke_key(store, &globex, &key_id, end).await,
        Err(TenantError::UnknownKey { .. })
    ));
    assert!(matches!(
        store
            .end_api_key(&globex, &new.record.hash, end, true)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        revoke_key(store, &acme, "abc", end).await,
        Err(TenantError::BadKeyId(_))
    ));
    assert!(matches!(
        revoke_key(store, &acme, "ffffffffffff", end).await,
        Err(TenantError::UnknownKey { .. })
    ));
    let t2 = end.plus(Duration::from_secs(5));
    let revoked = revoke_key(store, &acme, &key_id, t2)
        .await
        .unwrap_or_else(|e| panic!("revoke: {e}"));
    assert!(revoked.revoked);
    assert_eq!(who(store, &new.key, t2).await, None, "revoked at once");
    let listed = keys(store, &acme).await;
    assert!(listed.iter().all(|k| !k.usable_at(t2)));
    assert!(listed.iter().any(|k| k.revoked && k.not_after == Some(t2)));

    // Only hashes are names; the raw key finds nothing and cannot be stored.
    let raw = first.key.expose_secret();
    assert!(
        store
            .api_key(raw)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    let mut bad = first.record.clone();
    bad.hash = raw.to_owned();
    assert!(matches!(
        store.put_api_key(&bad).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(
        matches!(
            store.put_api_key(&first.record).await,
            Err(StoreError::Conflict)
        ),
        "a hash is stored once"
    );
    assert!(
        !format!("{first:?}").contains(raw),
        "Debug never shows a key"
    );

    let tenants = store.tenants().await.unwrap_or_else(|e| panic!("{e}"));
    let mut ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["acme", "globex"]);
    let acme_record = store
        .tenant(&acme)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("acme is stored"));
    assert_eq!(acme_record.name, "Acme Media");
    assert_eq!(acme_record.created_at, t0);
}

/// A tenant's accounts are listed by id, and only that tenant's.
pub async fn accounts_listing<S: AccountStore>(store: &S) {
    let (a, b) = (id("tenant_list_a"), id("tenant_list_b"));
    for (tenant, account) in [(&a, "acct_2"), (&a, "acct_1"), (&b, "acct_1")] {
        let account = AccountId::parse(account).unwrap_or_else(|e| panic!("{e}"));
        store
            .put_account(&Account::new(tenant.clone(), account))
            .await
            .unwrap_or_else(|e| panic!("put_account: {e}"));
    }
    let listed = |t: &TenantId| {
        let t = t.clone();
        async move {
            let mut ids: Vec<String> = store
                .accounts(&t)
                .await
                .unwrap_or_else(|e| panic!("accounts: {e}"))
                .into_iter()
                .map(|acct| {
                    assert_eq!(acct.tenant_id, t, "only the tenant's own accounts");
                    acct.account_id.as_str().to_owned()
                })
                .collect();
            ids.sort_unstable();
            ids
        }
    };
    assert_eq!(listed(&a).await, ["acct_1", "acct_2"]);
    assert_eq!(listed(&b).await, ["acct_1"]);
    assert!(listed(&id("tenant_list_c")).await.is_empty());
}

/// The `open_id` lookup follows each account's creator, and one creator is one account: a put
/// that would bind a creator already bound to another account (any tenant's) is a `Conflict`
/// and writes nothing.
pub async fn one_creator_one_account<S: AccountStore>(store: &S) {
    let (a, b) = (id("tenant_oid_a"), id("tenant_oid_b"));
    let acct = |raw: &str| AccountId::parse(raw).unwrap_or_else(|e| panic!("{e}"));
    let lookup = |open_id: &'static str| async move {
        store
            .account_for_open_id(open_id)
            .await
            .unwrap_or_else(|e| panic!("account_for_open_id: {e}"))
    };
    let get = |t: &TenantId, raw: &str| {
        let (t, account) = (t.clone(), acct(raw));
        async move {
            store
                .get_account(&t, &account)
                .await
                .unwrap_or_else(|e| panic!("get_account: {e}"))
        }
    };
    let mut first = Account::new(a.clone(), acct("acct_1"));
    first.open_id = Some("oid-1".into());
    store
        .put_account(&first)
        .await
        .unwrap_or_else(|e| panic!("put_account: {e}"));
    assert_eq!(lookup("oid-1").await, Some((a.clone(), acct("acct_1"))));
    assert_eq!(lookup("oid-unknown").await, None);
    assert_eq!(lookup("").await, None);

    // The account's creator changes (a store-level change; the use case refuses it): the old
    // lookup goes with it.
    let mut first = get(&a, "acct_1").await.unwrap_or_else(|| panic!("stored"));
    first.open_id = Some("oid-2".into());
    store
        .put_account(&first)
        .await
        .unwrap_or_else(|e| panic!("put_account: {e}"));
    assert_eq!(lookup("oid-1").await, None);
    assert_eq!(lookup("oid-2").await, Some((a.clone(), acct("acct_1"))));

    // A put from a stale read changes neither the account nor the lookups.
    let mut stale = first.clone();
    stale.open_id = Some("oid-stale".into());
    assert!(matches!(
        store.put_account(&stale).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(lookup("oid-stale").await, None);

    // Another account, of this tenant or another, cannot take oid-2: nothing is written.
    for (tenant, raw) in [(&a, "acct_2"), (&b, "acct_1")] {
        let mut other = Account::new(tenant.clone(), acct(raw));
        other.open_id = Some("oid-2".into());
        assert!(
            matches!(store.put_account(&other).await, Err(StoreError::Conflict)),
            "{tenant}/{raw} took another account's creator"
        );
        assert_eq!(get(tenant, raw).await, None, "nothing written");
    }
    assert_eq!(lookup("oid-2").await, Some((a.clone(), acct("acct_1"))));

    // Once acct_1 lets the creator go, another account may bind it.
    let mut first = get(&a, "acct_1").await.unwrap_or_else(|| panic!("stored"));
    first.open_id = None;
    store
        .put_account(&first)
        .await
        .unwrap_or_else(|e| panic!("put_account: {e}"));
    assert_eq!(lookup("oid-2").await, None);
    let mut other = Account::new(b.clone(), acct("acct_1"));
    other.open_id = Some("oid-2".into());
    store
        .put_account(&other)
        .await
        .unwrap_or_else(|e| panic!("put_account: {e}"));
    assert_eq!(lookup("oid-2").await, Some((b.clone(), acct("acct_1"))));
    let stored = get(&a, "acct_1").await.unwrap_or_else(|| panic!("stored"));
    assert_eq!((stored.open_id, stored.version), (None, first.version + 1));
}

async fn take<S: BudgetStore>(
    store: &S,
    scope: &str,
    windows: &[(BudgetKind, Window)],
    units: u32,
    now: UtcTime,
) -> Option<Denied> {
    store
        .take(scope, windows, units, now)
        .await
        .unwrap_or_else(|e| panic!("take: {e}"))
}

async fn peek<S: BudgetStore>(
    store: &S,
    scope: &str,
    windows: &[(BudgetKind, Window)],
    now: UtcTime,
) -> Vec<Admission> {
    store
        .peek(scope, windows, now)
        .await
        .unwrap_or_else(|e| panic!("peek: {e}"))
}

/// Budgets as every store keeps them: a take of several windows is whole or nothing, a peek
/// answers what a take would and takes nothing, a lagging clock takes in the latest bucket,
/// scopes and windows are independent, and a refusal names when the take will fit.
pub async fn budgets<S: BudgetStore>(store: &S) {
    let t0 = UtcTime::from_secs(1_800_000_000);
    let at = |ms: u64| t0.plus(Duration::from_millis(ms));
    let minute = Window::new(2, Duration::from_secs(60));
    let hour = Window::new(3, Duration::from_secs(3_600));
    let both = &[
        (BudgetKind::SsembleCreate, minute),
        (BudgetKind::SsembleHourly, hour),
    ];
    let hourly = &both[1..];
    // Two takes of both windows; the third is refused by the minute window alone.
    assert_eq!(take(store, "key", both, 1, at(0)).await, None);
    assert_eq!(
        peek(store, "key", both, at(10)).await,
        vec![
            Admission::Granted { remaining: 0 },
            Admission::Granted { remaining: 1 }
        ]
    );
    assert_eq!(take(store, "key", both, 1, at(10)).await, None);
    let refused = take(store, "key", both, 1, at(20)).await;
    let Some(Denied { kind, retry_at }) = refused else {
        panic!("a third take in one minute was granted")
    };
    assert_eq!(kind, BudgetKind::SsembleCreate);
    assert!(retry_at >= at(60_000), "{retry_at}");
    assert!(retry_at <= at(60_000 + 500), "{retry_at}");
    // The refusal spent nothing of the hour: one unit is still there.
    assert_eq!(
        peek(store, "key", hourly, at(30)).await,
        vec![Admission::Granted { remaining: 0 }]
    );
    // A peek is what the take answers, and takes nothing.
    assert_eq!(
        peek(store, "key", both, at(20)).await,
        vec![
            Admission::Denied { retry_at },
            Admission::Granted { remaining: 0 }
        ]
    );
    // Two units at once never fit where one is left; one does, once the minute has refilled.
    let Some(two) = take(store, "key", both, 2, retry_at).await else {
        panic!("two units granted where the hour had one")
    };
    assert_eq!(two.kind, BudgetKind::SsembleHourly);
    assert_eq!(take(store, "key", both, 1, retry_at).await, None);
    assert!(
        take(store, "key", both, 1, retry_at).await.is_some(),
        "hour spent"
    );

    // A clock 30 s behind the latest take neither overspends nor loses the earlier takes.
    let init = &[(BudgetKind::TikTokInit, minute)];
    assert_eq!(take(store, "acct", init, 1, at(30_000)).await, None);
    assert_eq!(take(store, "acct", init, 1, at(0)).await, None);
    let Some(lagging) = take(store, "acct", init, 1, at(0)).await else {
        panic!("a lagging clock overspent")
    };
    assert!(lagging.retry_at >= at(90_000), "{}", lagging.retry_at);
    assert_eq!(
        peek(store, "acct", init, at(0)).await,
        vec![Admission::Denied {
            retry_at: lagging.retry_at
        }]
    );
    // Another scope, and another window of the same scope, are untouched.
    assert_eq!(
        peek(store, "other", init, at(0)).await,
        vec![Admission::Granted { remaining: 1 }]
    );
    let status = &[(BudgetKind::TikTokStatus, minute)];
    assert_eq!(
        peek(store, "acct", status, at(0)).await,
        vec![Admission::Granted { remaining: 1 }]
    );
    // Both takes were counted in the latest bucket, so both leave together.
    assert_eq!(
        peek(store, "acct", init, lagging.retry_at).await,
        vec![Admission::Granted { remaining: 1 }]
    );
}

fn record(endpoint: &EndpointId, event: u32, attempt: u32, at_ms: i64) -> DeliveryRecord {
    let event = ClientEvent {
        id: format!("msg_{event:032}"),
        event_type: EventType::JobStateChanged,
        timestamp: UtcTime::from_millis(at_ms),
        data: serde_json::json!({ "jobId": "job_x", "n": event }),
    };
    DeliveryRecord {
        endpoint_id: endpoint.clone(),
        event_id: event.id.clone(),
        event_type: event.event_type,
        attempt,
        at: UtcTime::from_millis(at_ms),
        outcome: AttemptOutcome::Failed,
        status: Some(500),
        error: Some("answered 500".into()),
        duration_ms: 12,
        next_attempt_at: None,
        dead: false,
        replay: false,
        event,
    }
}

/// Endpoints are a tenant's own (another tenant neither reads nor deletes them), a second put
/// of one id is a `Conflict`, the secret round-trips, and the delivery log pages newest first
/// without gaps or repeats.
pub async fn webhooks<S: WebhookStore>(store: &S) {
    let (t1, t2) = (id("wh-tenant-1"), id("wh-tenant-2"));
    let at = UtcTime::from_millis(1_780_000_000_000);
    let endpoint = Endpoint {
        id: EndpointId::generate(at, 1),
        tenant_id: t1.clone(),
        url: "https://hooks.example.com/reelay".into(),
        events: vec![EventType::JobPublished, EventType::AccountDisconnected],
        description: Some("crm".into()),
        secret: SecretString::from("whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="),
        created_at: at,
    };
    store
        .put_endpoint(&endpoint)
        .await
        .unwrap_or_else(|e| panic!("put: {e}"));
    assert!(matches!(
        store.put_endpoint(&endpoint).await,
        Err(StoreError::Conflict)
    ));
    let got = store
        .endpoint(&t1, &endpoint.id)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .unwrap_or_else(|| panic!("stored endpoint not found"));
    assert_eq!(got.url, endpoint.url);
    assert_eq!(got.events, endpoint.events);
    assert_eq!(got.description.as_deref(), Some("crm"));
    assert_eq!(got.secret.expose_secret(), endpoint.secret.expose_secret());
    assert_eq!(got.created_at, at);
    assert!(
        store
            .endpoint(&t2, &endpoint.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    assert!(
        store
            .endpoints(&t2)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    let second = Endpoint {
        id: EndpointId::generate(at.plus(Duration::from_secs(1)), 2),
        events: Vec::new(),
        description: None,
        ..endpoint.clone()
    };
    store
        .put_endpoint(&second)
        .await
        .unwrap_or_else(|e| panic!("put: {e}"));
    let listed = store.endpoints(&t1).await.unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&EndpointId> = listed.iter().map(|e| &e.id).collect();
    assert_eq!(ids, vec![&endpoint.id, &second.id], "oldest first");
    assert!(listed[1].events.is_empty(), "every event");

    // 7 attempts of 3 events; read back newest first in pages of 3.
    let mut written = Vec::new();
    for (i, (event, attempt)) in [(1, 1), (2, 1), (1, 2), (3, 1), (2, 2), (1, 3), (3, 2)]
        .into_iter()
        .enumerate()
    {
        let r = record(
            &endpoint.id,
            event,
            attempt,
            1_780_000_000_000 + 1_000 * i as i64,
        );
        store
            .record_delivery(&t1, &r, at.plus(Duration::from_secs(86_400)))
            .await
            .unwrap_or_else(|e| panic!("record: {e}"));
        written.push(r);
    }
    let mut read = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = store
            .deliveries(&t1, &endpoint.id, cursor.as_deref(), 3)
            .await
            .unwrap_or_else(|e| panic!("deliveries: {e}"));
        assert!(page.records.len() <= 3);
        read.extend(page.records);
        match page.next_cursor {
            Some(c) => {
                assert!(is_delivery_cursor(&c), "{c}");
                cursor = Some(c);
            }
            None => break,
        }
    }
    written.reverse();
    assert_eq!(read, written);
    assert!(
        store
            .deliveries(&t2, &endpoint.id, None, 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .records
            .is_empty()
    );

    assert!(
        !store
            .delete_endpoint(&t2, &endpoint.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(
        store
            .delete_endpoint(&t1, &endpoint.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(
        !store
            .delete_endpoint(&t1, &endpoint.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(
        store
            .endpoint(&t1, &endpoint.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    assert_eq!(
        store
            .endpoints(&t1)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        1
    );
}
