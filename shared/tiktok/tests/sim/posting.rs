use std::time::Duration;

use reelay_tiktok::{
    ErrorClass, InitSource, PostInfo, PrivacyLevel, PublishStatusKind, SourceInfo, TikTokError,
};
use serde_json::json;
use tiktok_sim::{CreatorSettings, Endpoint, FaultKind, FaultSpec};

use crate::common::*;

const VERIFIED: &str = "https://media.example.com/clips/";

fn pull(name: &str) -> SourceInfo {
    SourceInfo::PullFromUrl {
        video_url: format!("{VERIFIED}{name}.mp4"),
    }
}

fn public_post(title: &str) -> PostInfo {
    PostInfo::new(PrivacyLevel::PublicToEveryone, Some(title.into()))
}

fn api(e: &TikTokError) -> (&str, ErrorClass, u16) {
    match e {
        TikTokError::Api {
            code,
            class,
            http_status,
            ..
        } => (code.as_str(), *class, *http_status),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn verified_sim() -> tiktok_sim::SimHandle {
    let sim = start(sim_config()).await;
    sim.patch_config(&json!({"app": {"verified_prefixes": [VERIFIED]}}))
        .unwrap();
    sim
}

#[tokio::test]
async fn when_creator_info_is_queried_should_reflect_creator_settings() {
    let sim = start(sim_config()).await;
    sim.upsert_creator(CreatorSettings {
        open_id: "priv".into(),
        nickname: "Private One".into(),
        private_account: true,
        comment_disabled: true,
        max_video_post_duration_sec: 600,
        ..CreatorSettings::default()
    });
    let client = client(&sim, |_| {});
    let info = client
        .creator_info(&publish_token(&sim, "priv"))
        .await
        .unwrap();
    assert_eq!(info.creator_nickname.as_deref(), Some("Private One"));
    assert!(
        info.allows(PrivacyLevel::FollowerOfCreator)
            && !info.allows(PrivacyLevel::PublicToEveryone)
    );
    assert!(info.comment_disabled && info.duet_disabled && info.stitch_disabled);
    assert_eq!(info.max_video_post_duration_sec, Some(600));
    assert!(info.log_id.is_some());
}

#[tokio::test]
async fn when_creator_cannot_post_should_answer_spam_codes_with_http_200() {
    let sim = verified_sim().await;
    sim.upsert_creator(CreatorSettings {
        open_id: "banned".into(),
        banned: true,
        ..CreatorSettings::default()
    });
    sim.upsert_creator(CreatorSettings {
        open_id: "capped".into(),
        daily_post_cap: Some(1),
        ..CreatorSettings::default()
    });
    let client = client(&sim, |_| {});
    let err = client
        .creator_info(&publish_token(&sim, "banned"))
        .await
        .unwrap_err();
    assert_eq!(
        api(&err),
        (
            "spam_risk_user_banned_from_posting",
            ErrorClass::Permanent,
            200
        )
    );
    let err = client
        .init_direct_post(
            &publish_token(&sim, "banned"),
            &public_post("x"),
            &pull("a"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api(&err),
        (
            "spam_risk_user_banned_from_posting",
            ErrorClass::Permanent,
            403
        )
    );

    let capped = publish_token(&sim, "capped");
    client
        .init_direct_post(&capped, &public_post("one"), &pull("a"))
        .await
        .unwrap();
    let err = client.creator_info(&capped).await.unwrap_err();
    assert_eq!(
        api(&err),
        ("spam_risk_too_many_posts", ErrorClass::WaitForWindow, 200)
    );
    let err = client
        .init_direct_post(&capped, &public_post("two"), &pull("b"))
        .await
        .unwrap_err();
    assert_eq!(
        api(&err),
        ("spam_risk_too_many_posts", ErrorClass::WaitForWindow, 403)
    );
    let violations = sim.inspect()["limit_violations"].clone();
    assert_eq!(violations[0]["kind"], "daily_post_cap");
    sim.advance(86_400);
    let capped = publish_token(&sim, "capped");
    client.creator_info(&capped).await.unwrap();
    client
        .init_direct_post(&capped, &public_post("three"), &pull("c"))
        .await
        .unwrap();
}

#[tokio::test]
async fn when_init_breaks_a_documented_rule_should_return_its_code_and_class() {
    let sim = verified_sim().await;
    sim.patch_config(&json!({"limits": {"init_per_window": 100}}))
        .unwrap();
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");

    let wrong_level = PostInfo::new(PrivacyLevel::FollowerOfCreator, None);
    let err = client
        .init_direct_post(&t, &wrong_level, &pull("a"))
        .await
        .unwrap_err();
    assert_eq!(
        api(&err),
        ("privacy_level_option_mismatch", ErrorClass::NeedsUser, 403)
    );

    let long_title = "😀".repeat(1101);
    let err = client
        .init_direct_post(&t, &public_post(&long_title), &pull("a"))
        .await
        .unwrap_err();
    assert_eq!(api(&err), ("invalid_params", ErrorClass::Permanent, 400));
    client
        .init_direct_post(&t, &public_post(&"😀".repeat(1100)), &pull("a"))
        .await
        .unwrap();

    let mut branded_private = PostInfo::new(PrivacyLevel::SelfOnly, None);
    branded_private.brand_content_toggle = true;
    let err = client
        .init_direct_post(&t, &branded_private, &pull("a"))
        .await
        .unwrap_err();
    assert_eq!(api(&err).0, "invalid_params");

    let bad_chunks = SourceInfo::FileUpload {
        video_size: 3 * MIB,
        chunk_size: MIB,
        total_chunk_count: 4,
    };
    let err = client
        .init_direct_post(&t, &public_post("c"), &bad_chunks)
        .await
        .unwrap_err();
    assert_eq!(api(&err), ("invalid_params", ErrorClass::Permanent, 400));
    let insp = sim.inspect();
    assert_eq!(insp["chunk_violations"].as_array().unwrap().len(), 1);
    assert_eq!(insp["limit_violations"][0]["kind"], "title_length");

    let unverified = SourceInfo::PullFromUrl {
        video_url: "https://cdn.elsewhere.net/a.mp4".into(),
    };
    let err = client
        .init_direct_post(&t, &public_post("u"), &unverified)
        .await
        .unwrap_err();
    assert_eq!(
        api(&err),
        ("url_ownership_unverified", ErrorClass::Permanent, 403)
    );
    let plain_http = SourceInfo::PullFromUrl {
        video_url: "http://media.example.com/clips/a.mp4".into(),
    };
    assert_eq!(
        api(&client
            .init_direct_post(&t, &public_post("u"), &plain_http)
            .await
            .unwrap_err())
        .0,
        "url_ownership_unverified"
    );
}

#[tokio::test]
async fn when_strict_mode_is_on_should_require_brand_toggle_which_the_client_always_sends() {
    let sim = verified_sim().await;
    sim.patch_config(&json!({"strict_brand_toggle": true, "invalid_param_code": "invalid_param"}))
        .unwrap();
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    client
        .init_direct_post(&t, &public_post("ok"), &pull("a"))
        .await
        .unwrap();
    let raw = reqwest::Client::new()
        .post(format!("{}/v2/post/publish/video/init/", sim.base_url))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&t))
        .json(&json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "PULL_FROM_URL", "video_url": format!("{VERIFIED}x.mp4")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_param");
}

#[tokio::test]
async fn when_app_is_unaudited_should_block_public_posts_and_cap_active_users() {
    let sim = verified_sim().await;
    sim.patch_config(&json!({"app": {"audited": false}}))
        .unwrap();
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "public-acct");
    let err = client
        .init_direct_post(&t, &public_post("p"), &pull("a"))
        .await
        .unwrap_err();
    assert_eq!(
        api(&err),
        (
            "unaudited_client_can_only_post_to_private_accounts",
            ErrorClass::Permanent,
            403
        )
    );

    sim.patch_config(&json!({"app": {"unaudited_rule": "requested_privacy"}}))
        .unwrap();
    let private = PostInfo::new(PrivacyLevel::SelfOnly, Some("private".into()));
    for i in 0..5 {
        let t = publish_token(&sim, &format!("user{i}"));
        client
            .init_direct_post(&t, &private, &pull("a"))
            .await
            .unwrap();
    }
    let sixth = publish_token(&sim, "user5");
    let err = client.creator_info(&sixth).await.unwrap_err();
    assert_eq!(
        api(&err),
        ("reached_active_user_cap", ErrorClass::WaitForWindow, 200)
    );
    let err = client
        .init_direct_post(&sixth, &private, &pull("a"))
        .await
        .unwrap_err();
    assert_eq!(
        api(&err),
        ("reached_active_user_cap", ErrorClass::WaitForWindow, 403)
    );
}

#[tokio::test]
async fn when_inbox_shares_pile_up_should_stop_at_five_pending() {
    let sim = verified_sim().await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    for i in 0..5 {
        client
            .init_inbox(&t, &pull(&format!("d{i}")))
            .await
            .unwrap();
    }
    let err = client.init_inbox(&t, &pull("d5")).await.unwrap_err();
    assert_eq!(
        api(&err),
        (
            "spam_risk_too_many_pending_share",
            ErrorClass::WaitForWindow,
            403
        )
    );
    assert_eq!(
        sim.inspect()["limit_violations"][0]["kind"],
        "pending_share_cap"
    );
}

#[tokio::test]
async fn when_scope_is_missing_should_need_the_user() {
    let sim = verified_sim().await;
    let client = client(&sim, |_| {});
    let (upload_only, _) = tokens(&sim, "u1", &["video.upload"]);
    let err = client.creator_info(&upload_only).await.unwrap_err();
    assert_eq!(
        api(&err),
        ("scope_not_authorized", ErrorClass::NeedsUser, 401)
    );
    let init = client.init_inbox(&upload_only, &pull("a")).await.unwrap();
    client
        .fetch_status(&upload_only, &init.publish_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn when_any_documented_code_is_injected_should_classify_by_code() {
    let sim = verified_sim().await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    let cases = [
        ("internal_error", 500, ErrorClass::Retryable),
        ("rate_limit_exceeded", 429, ErrorClass::Retryable),
        ("access_token_invalid", 401, ErrorClass::RefreshThenRetry),
        ("scope_permission_missed", 400, ErrorClass::NeedsUser),
        ("app_version_check_failed", 400, ErrorClass::NeedsUser),
        ("invalid_file_upload", 400, ErrorClass::Permanent),
        ("invalid_param", 400, ErrorClass::Permanent),
        ("spam_risk_too_many_posts", 200, ErrorClass::WaitForWindow),
        ("brand_new_code", 503, ErrorClass::Retryable),
        ("brand_new_code", 400, ErrorClass::Permanent),
    ];
    for (code, status, class) in cases {
        sim.inject(FaultSpec {
            endpoint: Endpoint::VideoInit,
            kind: FaultKind::Error {
                status,
                code: code.into(),
            },
            count: 1,
        });
        let err = client
            .init_direct_post(&t, &public_post("x"), &pull("a"))
            .await
            .unwrap_err();
        assert_eq!(api(&err), (code, class, status), "{code}/{status}");
        assert!(!err.is_outcome_unknown());
    }
    assert_eq!(
        sim.inspect()["accounts"]["u1"]["publishes"],
        0,
        "injected errors create nothing"
    );
}

#[tokio::test]
async fn when_status_or_cancel_names_a_foreign_or_unknown_publish_should_say_so() {
    let sim = verified_sim().await;
    let client = client(&sim, |_| {});
    let (a, b) = (publish_token(&sim, "a"), publish_token(&sim, "b"));
    let init = client
        .init_direct_post(&a, &public_post("x"), &pull("a"))
        .await
        .unwrap();
    let err = client.fetch_status(&b, &init.publish_id).await.unwrap_err();
    assert_eq!(
        api(&err),
        (
            "token_not_authorized_for_specified_publish_id",
            ErrorClass::Permanent,
            400
        )
    );
    let err = client
        .fetch_status(&a, "v_pub_file~v2-1.0")
        .await
        .unwrap_err();
    assert_eq!(
        api(&err),
        ("invalid_publish_id", ErrorClass::Permanent, 400)
    );

    client.cancel(&a, &init.publish_id).await.unwrap();
    let s = client.fetch_status(&a, &init.publish_id).await.unwrap();
    assert_eq!(s.status, PublishStatusKind::Failed);
    assert_eq!(s.fail_reason.as_deref(), Some("publish_cancelled"));
    let err = client.cancel(&a, &init.publish_id).await.unwrap_err();
    assert_eq!(
        api(&err),
        ("publish_not_cancellable", ErrorClass::Permanent, 400)
    );
}

#[tokio::test]
async fn when_pull_publish_runs_should_walk_the_status_machine_and_return_numeric_post_ids() {
    let sim = verified_sim().await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    let init = client
        .init_direct_post(&t, &public_post("walk"), &pull("a"))
        .await
        .unwrap();
    assert!(init.upload_url.is_none() && init.log_id.is_some());
    let s = client.fetch_status(&t, &init.publish_id).await.unwrap();
    assert_eq!(s.status, PublishStatusKind::ProcessingDownload);
    sim.advance(15);
    let s = client.fetch_status(&t, &init.publish_id).await.unwrap();
    assert_eq!(s.status, PublishStatusKind::PublishComplete);
    assert!(s.public_post_ids.is_empty(), "moderation pending");
    sim.advance(30);
    let s = client.fetch_status(&t, &init.publish_id).await.unwrap();
    assert_eq!(s.public_post_ids.len(), 1);
    assert!(
        s.public_post_ids[0] >= 1_000_000_000_000_000_000,
        "19 digits"
    );
    let raw = sim.inspect()["accounts"]["u1"]["posts"][0]["post_ids"][0].clone();
    assert!(raw.is_u64(), "the simulator sends numbers");
}

#[tokio::test]
async fn when_a_failure_or_stuck_mode_is_injected_should_report_it() {
    let sim = verified_sim().await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    sim.fail_next_publish("picture_size_check_failed");
    let failed = client
        .init_direct_post(&t, &public_post("f"), &pull("a"))
        .await
        .unwrap();
    let stuck = client
        .init_direct_post(&t, &public_post("s"), &pull("b"))
        .await
        .unwrap();
    sim.set_stuck(&stuck.publish_id, true);
    sim.advance(3600);
    let s = client.fetch_status(&t, &failed.publish_id).await.unwrap();
    assert_eq!(s.status, PublishStatusKind::Failed);
    assert_eq!(s.fail_reason.as_deref(), Some("picture_size_check_failed"));
    assert!(s.public_post_ids.is_empty() && s.uploaded_bytes.is_none());
    let s = client.fetch_status(&t, &stuck.publish_id).await.unwrap();
    assert_eq!(s.status, PublishStatusKind::ProcessingDownload);
}

#[tokio::test]
async fn when_pull_url_is_unverified_should_fall_back_to_one_file_upload_init() {
    let sim = verified_sim().await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    let out = client
        .init_pull_or_upload(
            &t,
            Some(&public_post("fb")),
            "https://cdn.elsewhere.net/a.mp4",
            3 * MIB + 5,
        )
        .await
        .unwrap();
    let InitSource::FileUpload(plan) = out.source else {
        panic!("expected fallback")
    };
    assert!(out.fallback_from_log_id.is_some());
    let url = out.response.upload_url.unwrap();
    let data = data(plan.video_size as usize, 3);
    client
        .upload(&url, &plan, &MemSource::new(data), "video/mp4")
        .await
        .unwrap();
    let out = client
        .init_pull_or_upload(&t, None, &format!("{VERIFIED}b.mp4"), 10)
        .await
        .unwrap();
    assert_eq!(out.source, InitSource::PullFromUrl);
    let posts = sim.inspect()["accounts"]["u1"]["posts"].clone();
    let sources: Vec<_> = posts
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["direct"].clone(), p["source"].clone()))
        .collect();
    assert_eq!(sources.len(), 2, "the rejected pull created nothing");
    assert!(
        sources.contains(&(json!(true), json!("FILE_UPLOAD")))
            && sources.contains(&(json!(false), json!("PULL_FROM_URL")))
    );
    assert_eq!(sim.inspect()["publishes_by_title"]["fb"], 1);
}

#[tokio::test]
async fn when_init_times_out_after_acceptance_should_report_unknown_outcome() {
    let sim = verified_sim().await;
    let client = client(&sim, |c| c.timeouts.request = Duration::from_millis(1000));
    let t = publish_token(&sim, "u1");
    sim.inject(FaultSpec {
        endpoint: Endpoint::VideoInit,
        kind: FaultKind::TimeoutAfterAccept { delay_ms: 2500 },
        count: 1,
    });
    let err = client
        .init_direct_post(&t, &public_post("dup?"), &pull("a"))
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert_eq!(err.class(), None);
    sim.inject(FaultSpec {
        endpoint: Endpoint::VideoInit,
        kind: FaultKind::DropAfterAccept,
        count: 1,
    });
    let err = client
        .init_direct_post(&t, &public_post("dup?"), &pull("b"))
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let insp = sim.inspect();
    assert_eq!(
        insp["publishes_by_title"]["dup?"], 2,
        "both took effect upstream"
    );
    assert_eq!(insp["accounts"]["u1"]["inits_in_flight"], 0);
}

#[tokio::test]
async fn when_two_inits_overlap_should_show_in_the_in_flight_record() {
    let sim = verified_sim().await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    sim.inject(FaultSpec {
        endpoint: Endpoint::VideoInit,
        kind: FaultKind::TimeoutAfterAccept { delay_ms: 300 },
        count: 2,
    });
    let (p1, p2, src) = (public_post("p1"), public_post("p2"), pull("a"));
    let (a, b) = tokio::join!(
        client.init_direct_post(&t, &p1, &src),
        client.init_direct_post(&t, &p2, &src),
    );
    a.unwrap();
    b.unwrap();
    let insp = sim.inspect();
    assert_eq!(insp["accounts"]["u1"]["max_inits_in_flight"], 2);
    assert_eq!(insp["accounts"]["u1"]["max_active_publishes"], 2);
    assert_eq!(insp["accounts"]["u1"]["inits_in_flight"], 0);
}

#[tokio::test]
async fn when_nothing_listens_should_report_not_sent_and_retryable() {
    let sim = start(sim_config()).await;
    let t = publish_token(&sim, "u1");
    let client = client(&sim, |c| c.api_base_url = "http://127.0.0.1:9".into());
    let err = client
        .init_direct_post(&t, &public_post("x"), &pull("a"))
        .await
        .unwrap_err();
    assert!(matches!(err, TikTokError::NotSent { .. }), "{err:?}");
    assert!(!err.is_outcome_unknown());
    assert_eq!(err.class(), Some(ErrorClass::Retryable));
}

#[tokio::test]
async fn when_rate_windows_fill_should_429_until_the_window_slides() {
    let sim = verified_sim().await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    for i in 0..6 {
        client
            .init_direct_post(&t, &public_post(&format!("r{i}")), &pull("a"))
            .await
            .unwrap();
    }
    let err = client.init_inbox(&t, &pull("z")).await.unwrap_err();
    assert_eq!(
        api(&err),
        ("rate_limit_exceeded", ErrorClass::Retryable, 429)
    );
    for _ in 0..20 {
        client.creator_info(&t).await.unwrap();
    }
    assert_eq!(
        api(&client.creator_info(&t).await.unwrap_err()).0,
        "rate_limit_exceeded"
    );
    let id = sim.inspect()["accounts"]["u1"]["posts"][0]["publish_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..30 {
        client.fetch_status(&t, &id).await.unwrap();
    }
    assert_eq!(
        api(&client.fetch_status(&t, &id).await.unwrap_err()).0,
        "rate_limit_exceeded"
    );
    let other = publish_token(&sim, "u2");
    client.creator_info(&other).await.unwrap();
    let kinds: Vec<_> = sim.inspect()["limit_violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].clone())
        .collect();
    assert_eq!(kinds.len(), 3);
    sim.advance(61);
    client
        .init_direct_post(&t, &public_post("later"), &pull("a"))
        .await
        .unwrap();
    client.creator_info(&t).await.unwrap();
}

#[tokio::test]
async fn when_clock_is_scaled_should_let_a_minute_pass_in_a_fraction_of_a_second() {
    let mut cfg = sim_config();
    cfg.time_scale = 60.0;
    cfg.app.verified_prefixes = vec![VERIFIED.into()];
    let sim = start(cfg).await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    let start = sim.now_unix();
    let mut ok = 0;
    loop {
        match client
            .init_direct_post(&t, &public_post("s"), &pull("a"))
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), Some("rate_limit_exceeded"));
                break;
            }
        }
    }
    assert!(sim.now_unix() - start < 60 && ok == 6, "{ok}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client
        .init_direct_post(&t, &public_post("s"), &pull("a"))
        .await
        .unwrap();
}
