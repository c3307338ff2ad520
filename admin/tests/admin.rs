//! The `reelay-admin` binary against a table provisioned from template.yaml on the local AWS
//! endpoint: what an operator types, what a script captures, what the table then holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use aws_sdk_dynamodb::Client;
use reelay_aws::DynamoStore;
use reelay_domain::account::Account;
use reelay_domain::job::{JobError, PostMode};
use reelay_domain::lifecycle::{ErrorClass, Event};
use reelay_domain::ports::{AccountStore, JobStore};
use reelay_domain::usecase::tenants::authenticate;
use reelay_domain::{AccountId, Job, JobId, JobSource, JobState, Policy, Step, TenantId, UtcTime};
use reelay_template::{ProvisionOptions, Provisioned, ResourceKinds, Template};
use reelay_testkit::sample;
use secrecy::SecretString;

/// Fails (never skips) without the local endpoint: these are real SDK calls.
async fn table() -> (Client, String) {
    let (sdk, stack) = provision(ResourceKinds::TABLES).await;
    let name = stack.table("Table").unwrap().name.clone();
    (Client::new(&sdk), name)
}

async fn provision(kinds: ResourceKinds) -> (aws_config::SdkConfig, Provisioned) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.trim().is_empty(),
        "AWS_ENDPOINT_URL is not set: run via `make test`, or `infra/scripts/aws-emulator.sh start && \
         eval \"$(infra/scripts/aws-emulator.sh env)\"` first"
    );
    let sdk = reelay_aws::load_sdk_config()
        .await
        .expect("AWS SDK configuration");
    let template =
        Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let options = ProvisionOptions::new("test")
        .with_suffix(suffix)
        .with_kinds(kinds);
    let stack = reelay_template::provision(&sdk, &template, &options)
        .await
        .unwrap();
    (sdk, stack)
}

fn admin(table: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reelay-admin"));
    for var in [
        "TABLE_NAME",
        "REELAY_STAGE",
        "RENDER_QUEUE_URL",
        "PUBLISH_QUEUE_URL",
        "TOKEN_KEY_ID",
        "TOKEN_TABLE_NAME",
        "TIKTOK_TOKEN_SECRET_PREFIX",
        "SSEMBLE_SECRET_ID",
        "TIKTOK_APP_SECRET_ID",
        "SSEMBLE_API_BASE_URL",
        "TIKTOK_API_BASE_URL",
        "REELAY_STACK_NAME",
    ] {
        cmd.env_remove(var);
    }
    if let Some(table) = table {
        cmd.args(["--table", table]);
    }
    cmd.args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The key a create, issue or rotate printed: alone on stdout.
fn key_of(out: &Output) -> SecretString {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout holds the key and nothing else: {stdout}"
    );
    assert!(lines[0].starts_with("rl_") && lines[0].len() == 67);
    SecretString::from(lines[0].to_owned())
}

async fn who(store: &DynamoStore, key: &SecretString) -> Option<TenantId> {
    let now = reelay_domain::ports::Clock::now(&reelay_aws::SystemClock);
    authenticate(store, key, now).await.unwrap()
}

#[tokio::test]
async fn an_operator_creates_a_tenant_and_rotates_and_revokes_its_keys() {
    let (client, table) = table().await;
    let store = DynamoStore::new(client.clone(), &table);
    let t = Some(table.as_str());

    let created = admin(t, &["tenant", "create", "acme", "--name", "Acme Media"]);
    let first = key_of(&created);
    assert!(text(&created.stderr).contains("created tenant acme"));
    assert_eq!(who(&store, &first).await.unwrap().as_str(), "acme");

    let again = admin(t, &["tenant", "create", "acme"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("tenant acme already exists"));
    assert!(again.stdout.is_empty(), "no key for a refused create");

    let listed = admin(t, &["tenant", "list"]);
    assert!(text(&listed.stderr).contains("Acme Media"));

    // A day's overlap: both keys work; the listing names keys by id, never shows one.
    let rotated = admin(t, &["key", "rotate", "acme"]);
    let second = key_of(&rotated);
    assert!(text(&rotated.stderr).contains("ends at"));
    assert_eq!(who(&store, &first).await.unwrap().as_str(), "acme");
    assert_eq!(who(&store, &second).await.unwrap().as_str(), "acme");
    let keys = admin(t, &["key", "list", "acme"]);
    let listing = text(&keys.stderr);
    assert_eq!(listing.matches("active").count(), 2, "{listing}");
    for key in [&first, &second] {
        use secrecy::ExposeSecret;
        assert!(!listing.contains(key.expose_secret()));
        assert!(!text(&keys.stdout).contains(key.expose_secret()));
    }

    // No overlap: the earlier keys end now.
    let third = key_of(&admin(
        t,
        &["key", "rotate", "acme", "--overlap-hours", "0"],
    ));
    assert_eq!(who(&store, &first).await, None);
    assert_eq!(who(&store, &second).await, None);
    assert_eq!(who(&store, &third).await.unwrap().as_str(), "acme");

    // Revocation by the id the listing shows.
    let listing = text(&admin(t, &["key", "list", "acme"]).stderr);
    let active: Vec<&str> = listing
        .lines()
        .filter(|l| l.ends_with("active"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(active.len(), 1, "{listing}");
    let revoked = admin(t, &["key", "revoke", "acme", active[0]]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert_eq!(who(&store, &third).await, None, "revoked at once");
    let wrong_tenant = admin(t, &["key", "revoke", "globex", active[0]]);
    assert_eq!(wrong_tenant.status.code(), Some(1));
    assert!(text(&wrong_tenant.stderr).contains("has no key"));

    // Another key for an existing tenant; none for a missing one.
    let fourth = key_of(&admin(t, &["key", "issue", "acme"]));
    assert_eq!(who(&store, &fourth).await.unwrap().as_str(), "acme");
    let missing = admin(t, &["key", "issue", "nobody"]);
    assert!(text(&missing.stderr).contains("no tenant nobody"));

    let bad = admin(t, &["tenant", "create", "Not A Slug"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("invalid tenant"),
        "{}",
        text(&bad.stderr)
    );

    let nowhere = admin(None, &["tenant", "list"]);
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(text(&nowhere.stderr).contains("--stage"));
}

#[tokio::test]
async fn accounts_and_jobs_are_listed_and_a_job_shown_with_its_trail() {
    let (client, table) = table().await;
    let store = DynamoStore::new(client, &table);
    let t = Some(table.as_str());
    key_of(&admin(t, &["tenant", "create", "acme"]));
    key_of(&admin(t, &["tenant", "create", "globex"]));
    let mut account = Account::new(
        TenantId::parse("acme").unwrap(),
        AccountId::parse("acct_1").unwrap(),
    );
    account.scopes = vec!["video.publish".into()];
    account.blocked_until = Some(UtcTime::from_secs(4_000_000_000));
    account.blocked_reason = Some("spam_risk_too_many_posts".into());
    store.put_account(&account).await.unwrap();

    let accounts = admin(t, &["accounts", "list", "acme"]);
    assert!(accounts.status.success(), "{}", text(&accounts.stderr));
    let listing = text(&accounts.stderr);
    assert!(listing.contains("acct_1"), "{listing}");
    assert!(listing.contains("(spam_risk_too_many_posts)"), "{listing}");
    assert!(listing.contains("tiktok_init="), "{listing}");
    assert!(listing.contains("scopes=video.publish"), "{listing}");
    let none = text(&admin(t, &["accounts", "list", "globex"]).stderr);
    assert!(
        !none.contains("acct_1"),
        "another tenant's accounts: {none}"
    );

    let now = UtcTime::from_secs(1_800_000_000);
    let created = Job::create(
        JobId::generate(now, 7),
        TenantId::parse("acme").unwrap(),
        AccountId::parse("acct_1").unwrap(),
        JobSource::Render(sample::render_request()),
        sample::post(PostMode::Direct),
        now,
        None,
        now,
        &Policy::default(),
    );
    store.create(&created, None).await.unwrap();
    let id = created.job.id.as_str().to_owned();

    let received = text(&admin(t, &["jobs", "list", "--state", "received"]).stderr);
    assert!(
        received.contains(&id) && received.contains("acme"),
        "{received}"
    );
    let parked = text(&admin(t, &["jobs", "list", "--state", "publish_unknown"]).stderr);
    assert!(!parked.contains(&id), "{parked}");
    let other = text(&admin(t, &["jobs", "list", "--tenant", "globex"]).stderr);
    assert!(!other.contains(&id), "{other}");
    let bogus = admin(t, &["jobs", "list", "--state", "bogus"]);
    assert_eq!(bogus.status.code(), Some(1));
    assert!(text(&bogus.stderr).contains("unknown state"));

    let shown = admin(Some(&table), &["job", "show", &id]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let page = text(&shown.stderr);
    assert!(page.contains(&format!("job      {id} (tenant acme, account acct_1)")));
    assert!(page.contains("state    received"));
    assert!(page.contains("audit (1 events)"));
    assert!(page.contains("v1"));

    let unknown = JobId::generate(now, 8);
    let missing = admin(Some(&table), &["job", "show", unknown.as_str()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no job"));
}

#[tokio::test]
async fn a_dead_letter_is_listed_and_redriven_to_its_accounts_group() {
    let (sdk, stack) = provision(ResourceKinds::QUEUES).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = stack.queue("PublishQueue").unwrap().url.clone();
    let dlq = stack.queue("PublishDlq").unwrap().url.clone();
    let body = r#"{"v":1,"kind":"publish","jobId":"job_dead","tenantId":"acme","accountId":"acct_1","jobVersion":3}"#;
    sqs.send_message()
        .queue_url(&dlq)
        .message_body(body)
        .message_group_id("acme:acct_1")
        .message_deduplication_id("dead-1")
        .send()
        .await
        .unwrap();
    let with_queue = |args: &[&str]| {
        let mut all = vec!["--publish-queue-url", queue.as_str()];
        all.extend_from_slice(args);
        admin(Some("unused"), &all)
    };

    let listed = with_queue(&["dlq", "list", "publish"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listing = text(&listed.stderr);
    assert!(listing.contains("holds about 1 messages"), "{listing}");
    assert!(
        listing.contains("acme:acct_1") && listing.contains("job_dead"),
        "{listing}"
    );

    let moved = with_queue(&["dlq", "redrive", "publish"]);
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    assert!(text(&moved.stderr).contains("moved 1 messages"));
    let back = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let messages = back.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body(), Some(body));
    let group = messages[0]
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId));
    assert_eq!(
        group.map(String::as_str),
        Some("acme:acct_1"),
        "its account's group"
    );
    let left = sqs.receive_message().queue_url(&dlq).send().await.unwrap();
    assert!(left.messages().is_empty(), "the DLQ is empty");

    let nowhere = admin(Some("unused"), &["dlq", "list", "render"]);
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(text(&nowhere.stderr).contains("--render-queue-url"));
}

/// Offers `event` to `job` and stores the transition, as a function would.
async fn moved(store: &DynamoStore, job: Job, event: Event, at: UtcTime) -> Job {
    match job.apply(&event, at, &Policy::default()).unwrap() {
        Step::Applied(applied) => {
            store.save(&applied, job.version).await.unwrap();
            applied.job
        }
        other => panic!("{} did not move the job: {other:?}", event.name()),
    }
}

#[tokio::test]
async fn an_operator_retries_and_cancels_any_tenants_job_and_is_named_in_its_trail() {
    let (sdk, stack) = provision(ResourceKinds {
        tables: true,
        queues: true,
        secrets: false,
        keys: false,
    })
    .await;
    let table = stack.table("Table").unwrap().name.clone();
    let store = DynamoStore::new(Client::new(&sdk), &table);
    let render = stack.queue("RenderQueue").unwrap().url.clone();
    let publish = stack.queue("PublishQueue").unwrap().url.clone();
    let operate = |args: &[&str]| {
        let mut all = vec![
            "--render-queue-url",
            render.as_str(),
            "--publish-queue-url",
            publish.as_str(),
        ];
        all.extend_from_slice(args);
        admin(Some(&table), &all)
    };
    let now = UtcTime::from_secs(1_800_000_000);
    let new_job = |n: u128| {
        Job::create(
            JobId::generate(now, n),
            TenantId::parse("globex").unwrap(),
            AccountId::parse("acct_1").unwrap(),
            JobSource::Render(sample::render_request()),
            sample::post(PostMode::Direct),
            now,
            None,
            now,
            &Policy::default(),
        )
    };

    // A render Ssemble refused for good: the operator retries it, back onto the render queue.
    let created = new_job(1);
    store.create(&created, None).await.unwrap();
    let failed = moved(
        &store,
        created.job,
        Event::RenderSubmitRejected {
            error: JobError {
                code: "invalid_video_url".into(),
                message: "scripted".into(),
                upstream_log_id: None,
            },
            class: ErrorClass::Permanent,
            retry_at: None,
        },
        now,
    )
    .await;
    assert_eq!(failed.state, JobState::RenderFailed);
    let id = failed.id.as_str().to_owned();

    let unexplained = operate(&["job", "retry", &id, "--operator", "alice"]);
    assert_eq!(unexplained.status.code(), Some(2), "clap wants --reason");
    let blank = operate(&["job", "retry", &id, "--operator", "alice", "--reason", " "]);
    assert_eq!(blank.status.code(), Some(1));
    assert!(
        text(&blank.stderr).contains("--reason"),
        "{}",
        text(&blank.stderr)
    );
    assert_eq!(
        store.get(&failed.id).await.unwrap().unwrap().version,
        failed.version,
        "a refused command changes nothing"
    );

    let reason = "Ssemble fixed the source; ticket 42";
    let retried = operate(&[
        "job",
        "retry",
        &id,
        "--operator",
        "alice",
        "--reason",
        reason,
    ]);
    assert!(retried.status.success(), "{}", text(&retried.stderr));
    assert!(
        text(&retried.stderr).contains("(tenant globex): render_failed -> received"),
        "{}",
        text(&retried.stderr)
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queued = sqs
        .receive_message()
        .queue_url(&render)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert!(
        queued
            .messages()
            .iter()
            .any(|m| m.body().is_some_and(|b| b.contains(&id))),
        "the retried job is on the render queue"
    );
    let shown = text(&operate(&["job", "show", &id]).stderr);
    assert!(
        shown.contains(&format!("detail=by operator alice: {reason}")),
        "{shown}"
    );

    let cancelled = operate(&[
        "job",
        "cancel",
        &id,
        "--operator",
        "bob",
        "--reason",
        "spam",
    ]);
    assert!(cancelled.status.success(), "{}", text(&cancelled.stderr));
    assert!(text(&cancelled.stderr).contains("-> cancelled"));
    let again = operate(&["job", "retry", &id, "--operator", "bob", "--reason", "undo"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("refused"),
        "{}",
        text(&again.stderr)
    );

    // TikTok accepted a publish that has not settled: no operator may retry it.
    let created = new_job(2);
    store.create(&created, None).await.unwrap();
    let mut job = created.job;
    let rid = reelay_domain::RequestId::parse("65f0c0ffee0000000000abcd").unwrap();
    for event in [
        Event::RenderSubmitStarted {
            webhook_token_hash: "ab".repeat(32),
        },
        Event::RenderSubmitted {
            request_id: rid.clone(),
            found: false,
        },
        Event::RenderCompleted {
            request_id: rid.clone(),
            clip: sample::clip("c1", 90.0),
        },
        Event::PublishStarted,
        Event::PublishAccepted {
            attempt: 1,
            publish_id: reelay_domain::PublishId::parse("v_pub_url~v2.7602997517160123666")
                .unwrap(),
            upload: false,
            upstream_log_id: None,
        },
        Event::Expired,
    ] {
        job = moved(&store, job, event, now).await;
    }
    assert_eq!(job.state, JobState::PublishUnknown);
    let id = job.id.as_str().to_owned();
    let refused = operate(&["job", "retry", &id, "--operator", "alice", "--reason", "x"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("may still post it"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        store.get(&job.id).await.unwrap().unwrap().version,
        job.version
    );

    let missing = operate(&[
        "job",
        "cancel",
        JobId::generate(now, 9).as_str(),
        "--operator",
        "a",
        "--reason",
        "b",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no job"));
}

#[tokio::test]
async fn a_stage_secret_is_set_from_stdin_and_never_printed() {
    let (sdk, stack) = provision(ResourceKinds::SECRETS).await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let ssemble = stack.secret("SsembleSecret").unwrap().name.clone();
    let app = stack.secret("TikTokAppSecret").unwrap().name.clone();
    let set = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reelay-admin"));
        cmd.env_remove("REELAY_STAGE")
            .args(["--table", "unused", "secret", "set"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // A refusal by clap exits before reading stdin: on a loaded machine the write can come
        // after the exit and meet a closed pipe. The exit status is what the test judges.
        match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.unwrap(),
        }
        child.wait_with_output().unwrap()
    };
    let read = |id: String| {
        let client = client.clone();
        async move {
            let raw = client
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .unwrap();
            serde_json::from_str::<serde_json::Value>(raw.secret_string().unwrap()).unwrap()
        }
    };

    let done = set(
        &["ssemble", "--secret-id", &ssemble],
        "sk_live_0123456789\n",
    );
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_eq!(read(ssemble.clone()).await["apiKey"], "sk_live_0123456789");
    let said = format!("{}{}", text(&done.stdout), text(&done.stderr));
    assert!(
        said.contains(&ssemble) && !said.contains("sk_live_0123456789"),
        "{said}"
    );

    let done = set(
        &[
            "tiktok-app",
            "--secret-id",
            &app,
            "--client-key",
            "awk_client",
        ],
        "cs_secret_987\n",
    );
    assert!(done.status.success(), "{}", text(&done.stderr));
    let doc = read(app.clone()).await;
    assert_eq!(doc["clientKey"], "awk_client");
    assert_eq!(doc["clientSecret"], "cs_secret_987");
    assert!(!text(&done.stderr).contains("cs_secret_987"));

    // Refusals change nothing.
    let empty = set(&["ssemble", "--secret-id", &ssemble], "\n");
    assert_eq!(empty.status.code(), Some(1));
    assert!(text(&empty.stderr).contains("nothing on stdin"));
    let no_key = set(&["tiktok-app", "--secret-id", &app], "cs\n");
    assert_eq!(no_key.status.code(), Some(2), "clap wants --client-key");
    assert_eq!(read(ssemble.clone()).await["apiKey"], "sk_live_0123456789");
    assert_eq!(read(app).await["clientSecret"], "cs_secret_987");
    let missing = set(&["ssemble", "--secret-id", "reelay/none/ssemble"], "sk_x\n");
    assert_eq!(missing.status.code(), Some(1));
    let said = text(&missing.stderr);
    assert!(
        said.contains("secret not found") && !said.contains("sk_x"),
        "{said}"
    );
    let nowhere = set(&["ssemble"], "sk_y\n");
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(text(&nowhere.stderr).contains("--secret-id"));
}

/// Issue 13: an account whose tokens are still an old secret is copied into the token table
/// by `tokens migrate`, the secret kept until `--delete-old`, and no token is ever printed.
#[tokio::test]
async fn tokens_migrate_copies_old_secrets_into_the_table_and_deletes_them_only_when_asked() {
    use reelay_domain::ports::{TokenSet, TokenVault};
    use secrecy::ExposeSecret;

    let (sdk, stack) = provision(ResourceKinds::TOKENS).await;
    let table = stack.table("TokenTable").unwrap().name.clone();
    let key = stack.key("TokenKey").unwrap().arn.clone();
    let prefix = stack
        .env_var("TIKTOK_TOKEN_SECRET_PREFIX")
        .unwrap()
        .to_owned();
    let vault = reelay_aws::DynamoTokenVault::from_sdk(&sdk, &table, &key)
        .with_legacy_prefix(&sdk, Some(prefix.clone()));
    let legacy = vault.legacy().unwrap().clone();
    let tenant = TenantId::parse("tenant_m").unwrap();
    let now = UtcTime::from_secs(1_900_000_000);
    for (account, refresh) in [("acct_1", "rft.one-SECRET"), ("acct_2", "rft.two-SECRET")] {
        let tokens = TokenSet {
            access_token: SecretString::from(format!("act.{account}-SECRET")),
            access_expires_at: now,
            refresh_token: SecretString::from(refresh),
            refresh_expires_at: now,
            open_id: format!("open-{account}"),
            scopes: vec![],
        };
        legacy
            .put_tokens(&tenant, &AccountId::parse(account).unwrap(), &tokens)
            .await
            .unwrap();
    }
    let migrate = |extra: &[&str]| {
        let mut args = vec![
            "tokens",
            "migrate",
            "--token-table",
            &table,
            "--key-id",
            &key,
            "--secret-prefix",
            &prefix,
        ];
        args.extend_from_slice(extra);
        admin(Some("unused"), &args)
    };

    let first = migrate(&[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let said = text(&first.stderr);
    assert!(
        said.contains("tenant_m/acct_1: copied into the table; old secret kept"),
        "{said}"
    );
    assert!(
        said.contains("2 accounts: 2 copied, 0 old secrets deleted, 0 failed"),
        "{said}"
    );
    assert_eq!(
        legacy.list_accounts().await.unwrap().len(),
        2,
        "no secret deleted"
    );

    let second = migrate(&["--delete-old", "--recovery-days", "7"]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let said = text(&second.stderr);
    assert!(
        said.contains("2 accounts: 0 copied, 2 old secrets deleted, 0 failed"),
        "{said}"
    );
    assert!(legacy.list_accounts().await.unwrap().is_empty());
    for (account, refresh) in [("acct_1", "rft.one-SECRET"), ("acct_2", "rft.two-SECRET")] {
        let id = AccountId::parse(account).unwrap();
        let stored = vault.get_tokens(&tenant, &id).await.unwrap().unwrap();
        assert_eq!(stored.refresh_token.expose_secret(), refresh);
    }
    let third = migrate(&["--delete-old"]);
    assert!(
        text(&third.stderr).contains("0 accounts"),
        "{}",
        text(&third.stderr)
    );

    // Refusals: a recovery window outside 7-30, forcing without deleting, a bad account.
    assert_eq!(
        migrate(&["--delete-old", "--recovery-days", "3"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        migrate(&["--force-delete-without-recovery"]).status.code(),
        Some(2)
    );
    let bad = migrate(&["--account", "no-slash"]);
    assert_eq!(bad.status.code(), Some(1));
    let unknown = migrate(&["--account", "tenant_m/nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("not migrated"),
        "{}",
        text(&unknown.stderr)
    );
    for out in [&first, &second, &third, &bad, &unknown] {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("SECRET"), "a token was printed: {all}");
    }
}

/// Issue 11: with `--stage`, the token key is the stage stack's `TokenKeyArn` output, so an
/// operator pastes no ARN: `tokens migrate` seals the copy under the key a real CloudFormation
/// stack (on the local endpoint) names. Without a stage or a key, or with a stage that has no
/// stack, the command says what to give and changes nothing.
#[tokio::test]
async fn with_a_stage_the_token_key_is_read_from_the_stacks_outputs() {
    use reelay_domain::ports::{TokenSet, TokenVault};
    use secrecy::ExposeSecret;

    let (sdk, stack) = provision(ResourceKinds::TOKENS).await;
    let table = stack.table("TokenTable").unwrap().name.clone();
    let prefix = stack
        .env_var("TIKTOK_TOKEN_SECRET_PREFIX")
        .unwrap()
        .to_owned();
    let legacy = reelay_aws::DynamoTokenVault::from_sdk(&sdk, &table, "unused")
        .with_legacy_prefix(&sdk, Some(prefix.clone()))
        .legacy()
        .unwrap()
        .clone();
    let (tenant, account) = (
        TenantId::parse("tenant_s").unwrap(),
        AccountId::parse("acct_s").unwrap(),
    );
    let now = UtcTime::from_secs(1_900_000_000);
    let tokens = TokenSet {
        access_token: SecretString::from("act.s-SECRET"),
        access_expires_at: now,
        refresh_token: SecretString::from("rft.s-SECRET"),
        refresh_expires_at: now,
        open_id: "open-s".into(),
        scopes: vec![],
    };
    legacy.put_tokens(&tenant, &account, &tokens).await.unwrap();

    let stage = format!("s{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let body = serde_json::json!({
        "Resources": {"TokenKey": {"Type": "AWS::KMS::Key",
                                   "Properties": {"Description": "reelay test token key"}}},
        "Outputs": {"TokenKeyArn": {"Value": {"Fn::GetAtt": ["TokenKey", "Arn"]}}},
    });
    cfn.create_stack()
        .stack_name(format!("reelay-{stage}"))
        .template_body(body.to_string())
        .send()
        .await
        .unwrap();
    let mut key = None;
    for _ in 0..100 {
        let described = cfn
            .describe_stacks()
            .stack_name(format!("reelay-{stage}"))
            .send()
            .await
            .unwrap();
        let s = &described.stacks()[0];
        if s.stack_status().map(|st| st.as_str()) == Some("CREATE_COMPLETE") {
            key = s.outputs()[0].output_value().map(str::to_owned);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let key = key.expect("the stack was created");

    let migrate = |target: &[&str]| {
        let mut args = target.to_vec();
        args.extend([
            "tokens",
            "migrate",
            "--token-table",
            &table,
            "--secret-prefix",
            &prefix,
        ]);
        admin(None, &args)
    };
    let nothing = migrate(&["--table", "unused"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        text(&nothing.stderr).contains("--key-id"),
        "{}",
        text(&nothing.stderr)
    );
    let no_stack = migrate(&["--stage", "nostackhere"]);
    assert_eq!(no_stack.status.code(), Some(1));
    assert!(
        text(&no_stack.stderr).contains("stack reelay-nostackhere"),
        "{}",
        text(&no_stack.stderr)
    );
    let vault = reelay_aws::DynamoTokenVault::from_sdk(&sdk, &table, &key);
    assert!(
        vault.get_tokens(&tenant, &account).await.unwrap().is_none(),
        "nothing copied yet"
    );

    let done = migrate(&["--stage", &stage]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        text(&done.stderr).contains("1 accounts: 1 copied"),
        "{}",
        text(&done.stderr)
    );
    let copied = vault.get_tokens(&tenant, &account).await.unwrap().unwrap();
    assert_eq!(copied.refresh_token.expose_secret(), "rft.s-SECRET");
}

/// Issue 11: `reconcile now` runs the reconciler function's own wiring and use case once, here
/// and now: a job whose render message was lost (its submission check long due) is moved and
/// put back on the render queue, and the run's report is printed.
#[tokio::test]
async fn reconcile_now_moves_a_due_job_at_once_and_prints_the_report() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.trim().is_empty(),
        "AWS_ENDPOINT_URL is not set: start the local endpoint first"
    );
    let sdk = reelay_aws::load_sdk_config()
        .await
        .expect("AWS SDK configuration");
    let template =
        Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let mut options = ProvisionOptions::new("test")
        .with_suffix(uuid::Uuid::new_v4().simple().to_string()[..12].to_owned())
        .with_kinds(ResourceKinds::ALL);
    options.secret_values.insert(
        "SsembleSecret".into(),
        r#"{"apiKey":"sk_ssemble_admin_test"}"#.into(),
    );
    options.secret_values.insert(
        "TikTokAppSecret".into(),
        r#"{"clientKey":"admin_client","clientSecret":"admin_secret"}"#.into(),
    );
    let stack = reelay_template::provision(&sdk, &template, &options)
        .await
        .unwrap();
    let table = stack.table("Table").unwrap().name.clone();
    let store = DynamoStore::new(Client::new(&sdk), &table);
    let render = stack.queue("RenderQueue").unwrap().url.clone();
    let publish = stack.queue("PublishQueue").unwrap().url.clone();
    let ssemble = stack.secret("SsembleSecret").unwrap().arn.clone();
    let app = stack.secret("TikTokAppSecret").unwrap().arn.clone();
    let tokens = stack.table("TokenTable").unwrap().name.clone();
    let key = stack.key("TokenKey").unwrap().arn.clone();
    let reconcile_with = |ssemble: &str, extra: &[&str]| {
        let mut args = vec![
            "--render-queue-url",
            render.as_str(),
            "--publish-queue-url",
            publish.as_str(),
            "reconcile",
            "now",
            "--key-id",
            key.as_str(),
            "--token-table",
            tokens.as_str(),
            "--ssemble-secret-id",
            ssemble,
            "--tiktok-app-secret-id",
            app.as_str(),
            // The due job needs no upstream call; an unroutable address would show if one were made.
            "--ssemble-api-base-url",
            "http://127.0.0.1:9",
            "--tiktok-api-base-url",
            "http://127.0.0.1:9",
        ];
        args.extend_from_slice(extra);
        admin(Some(&table), &args)
    };
    let reconcile = |extra: &[&str]| reconcile_with(&ssemble, extra);

    // Nothing due: an idle run succeeds and says so.
    let idle = reconcile(&[]);
    assert!(idle.status.success(), "{}", text(&idle.stderr));
    assert!(
        text(&idle.stderr).contains("due       0"),
        "{}",
        text(&idle.stderr)
    );

    // Two due jobs. One created an hour ago and never submitted (what ingest leaves when its
    // render message is lost): the run puts it back on the render queue and looks again later.
    // One rendering for 8 hours, past the 6-hour render deadline: the run moves it on (expired)
    // without asking Ssemble.
    let now = reelay_domain::ports::Clock::now(&reelay_aws::SystemClock);
    let job = |n: u128, at: UtcTime| {
        Job::create(
            JobId::generate(at, n),
            TenantId::parse("acme").unwrap(),
            AccountId::parse("acct_1").unwrap(),
            JobSource::Render(sample::render_request()),
            sample::post(PostMode::Direct),
            at,
            None,
            at,
            &Policy::default(),
        )
    };
    let hour_ago = UtcTime::from_millis(now.as_millis() - 3_600_000);
    let lost = job(11, hour_ago);
    store.create(&lost, None).await.unwrap();
    let lost = lost.job.id;
    let long_ago = UtcTime::from_millis(now.as_millis() - 8 * 3_600_000);
    let stale = job(12, long_ago);
    store.create(&stale, None).await.unwrap();
    let stale = moved(
        &store,
        stale.job,
        Event::RenderSubmitted {
            request_id: reelay_domain::RequestId::parse("65f0c0ffee0000000000beef").unwrap(),
            found: false,
        },
        long_ago,
    )
    .await;
    assert_eq!(stale.state, JobState::Rendering);

    let ran = reconcile(&["--max-seconds", "30"]);
    let said = text(&ran.stderr);
    assert!(ran.status.success(), "{said}");
    assert!(said.contains(&format!("reconciling {table}")), "{said}");
    assert!(said.contains("due       2"), "{said}");
    assert!(
        said.contains("moved     1 (0 to publish_unknown)"),
        "{said}"
    );
    assert!(said.contains("deferred  1"), "{said}");
    assert!(said.contains("failed    0"), "{said}");
    assert!(ran.stdout.is_empty(), "the report goes to stderr");

    let expired = store.get(&stale.id).await.unwrap().unwrap();
    assert_ne!(
        expired.state,
        JobState::Rendering,
        "the stale render moved on"
    );
    assert!(expired.version > stale.version);
    let requeued = store.get(&lost).await.unwrap().unwrap();
    assert!(
        requeued.next_check.is_some_and(|c| c.at > now),
        "its next check moved: {:?}",
        requeued.next_check
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queued = sqs
        .receive_message()
        .queue_url(&render)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let bodies: Vec<String> = queued
        .messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains(lost.as_str())),
        "the lost job is back on the render queue: {bodies:?}"
    );

    // Run again: nothing is due any more (every due job left with its next check moved).
    let again = reconcile(&["--no-legacy-secrets"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("due       0"),
        "{}",
        text(&again.stderr)
    );

    let both = reconcile(&["--no-legacy-secrets", "--secret-prefix", "reelay/x/"]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));

    // Failures: a stage secret that is not there (exit 1), names that cannot be derived (exit 1).
    let broken = reconcile_with("reelay/nowhere/ssemble", &[]);
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken.stderr));
    assert!(
        text(&broken.stderr).contains("reconciler: secret"),
        "{}",
        text(&broken.stderr)
    );
    let unnamed = admin(
        Some(&table),
        &[
            "--render-queue-url",
            &render,
            "--publish-queue-url",
            &publish,
            "reconcile",
            "now",
            "--key-id",
            &key,
        ],
    );
    assert_eq!(unnamed.status.code(), Some(1));
    assert!(
        text(&unnamed.stderr).contains("give --stage, or --ssemble-secret-id"),
        "{}",
        text(&unnamed.stderr)
    );
    for out in [&idle, &ran, &again, &broken, &unnamed] {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("admin_secret"), "a secret was printed: {all}");
    }
}
