//! Every documented example parses through the client's own decoders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reelay_tiktok::{
    CreatorInfo, ErrorClass, InitResponse, PostInfo, PrivacyLevel, PublishStatus,
    PublishStatusKind, SourceInfo, TikTokError, WebhookEvent, decode_api_response,
    decode_token_response, parse_webhook,
};
use secrecy::ExposeSecret;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn when_creator_info_example_should_parse_every_field() {
    let (data, log_id) = decode_api_response::<CreatorInfo>(
        "creator_info",
        200,
        &fixture("creator_info.ok.json"),
        None,
    )
    .unwrap();
    let info = data.unwrap();
    assert_eq!(
        log_id.as_deref(),
        Some("202210112248442CB9319E1FB30C1073F3")
    );
    assert_eq!(info.creator_nickname.as_deref(), Some("TikTok Official"));
    assert!(info.allows(PrivacyLevel::PublicToEveryone));
    assert!(!info.allows(PrivacyLevel::FollowerOfCreator));
    assert!(info.stitch_disabled && !info.duet_disabled && !info.comment_disabled);
    assert_eq!(info.max_video_post_duration_sec, Some(300));
}

#[test]
fn when_init_examples_should_parse_upload_url_only_for_file_upload() {
    let (d, _) = decode_api_response::<InitResponse>(
        "video/init",
        200,
        &fixture("video_init.ok.file_upload.json"),
        None,
    )
    .unwrap();
    let d = d.unwrap();
    assert_eq!(d.publish_id, "v_pub_file~v2-1.123456789");
    assert_eq!(
        d.upload_url.as_deref(),
        Some("https://open-upload.tiktokapis.com/video/?upload_id=67890&upload_token=Xza123")
    );
    let (d, _) = decode_api_response::<InitResponse>(
        "video/init",
        200,
        &fixture("video_init.ok.pull_from_url.json"),
        None,
    )
    .unwrap();
    assert_eq!(d.unwrap().upload_url, None);
}

#[test]
fn when_client_builds_the_documented_init_request_should_match_it_plus_explicit_toggles() {
    let mut post = PostInfo::new(
        PrivacyLevel::MutualFollowFriends,
        Some("this will be a funny #cat video on your @tiktok #fyp".into()),
    );
    post.disable_comment = true;
    post.video_cover_timestamp_ms = Some(1000);
    let source = SourceInfo::FileUpload {
        video_size: 50_000_123,
        chunk_size: 10_000_000,
        total_chunk_count: 5,
    };
    let ours = serde_json::json!({"post_info": post, "source_info": source});
    let mut doc: serde_json::Value =
        serde_json::from_slice(&fixture("video_init.request.file_upload.json")).unwrap();
    doc["post_info"]["brand_content_toggle"] = false.into();
    doc["post_info"]["brand_organic_toggle"] = false.into();
    assert_eq!(ours, doc);
}

#[test]
fn when_error_without_data_should_be_an_api_error_with_class_and_log_id() {
    let err = decode_api_response::<InitResponse>(
        "inbox/video/init",
        403,
        &fixture("inbox_init.error.spam_risk_too_many_pending_share.json"),
        Some("header-log".into()),
    )
    .unwrap_err();
    match err {
        TikTokError::Api {
            code,
            class,
            log_id,
            http_status,
            ..
        } => {
            assert_eq!(code, "spam_risk_too_many_pending_share");
            assert_eq!(class, ErrorClass::WaitForWindow);
            assert_eq!(
                log_id.as_deref(),
                Some("20230908103527C1B4E4B0B2B9A5C2B0B1")
            );
            assert_eq!(http_status, 403);
        }
        other => panic!("{other:?}"),
    }
    let err = decode_api_response::<InitResponse>(
        "video/init",
        400,
        &fixture("video_init.error.invalid_params_chunk_size.json"),
        None,
    )
    .unwrap_err();
    assert_eq!(err.code(), Some("invalid_params"));
    assert_eq!(err.class(), Some(ErrorClass::Permanent));
}

#[test]
fn when_status_examples_should_parse_with_absent_and_empty_fields() {
    let (s, _) = decode_api_response::<PublishStatus>(
        "status/fetch",
        200,
        &fixture("status.failed.real.json"),
        None,
    )
    .unwrap();
    let s = s.unwrap();
    assert_eq!(s.status, PublishStatusKind::Failed);
    assert_eq!(s.fail_reason.as_deref(), Some("file_format_check_failed"));
    assert!(s.public_post_ids.is_empty() && s.uploaded_bytes.is_none());

    let (s, _) = decode_api_response::<PublishStatus>(
        "status/fetch",
        200,
        &fixture("status.failed.doc.json"),
        None,
    )
    .unwrap();
    let s = s.unwrap();
    assert_eq!(s.fail_reason.as_deref(), Some("picture_size_check_failed"));
    assert_eq!(s.uploaded_bytes, Some(10_000));

    let (s, _) = decode_api_response::<PublishStatus>(
        "status/fetch",
        200,
        &fixture("status.complete.post_ids_numbers.json"),
        None,
    )
    .unwrap();
    let s = s.unwrap();
    assert_eq!(s.status, PublishStatusKind::PublishComplete);
    assert_eq!(s.public_post_ids, vec![7_678_907_398_077_074_696]);
}

#[test]
fn when_post_ids_are_strings_scalars_or_unknown_statuses_should_still_parse() {
    let body = br#"{"data":{"status":"SOMETHING_NEW","publicaly_available_post_id":"7602997517160123666"},"error":{"code":"ok","message":"","log_id":"x"}}"#;
    let (s, _) = decode_api_response::<PublishStatus>("status/fetch", 200, body, None).unwrap();
    let s = s.unwrap();
    assert_eq!(s.status, PublishStatusKind::Other("SOMETHING_NEW".into()));
    assert!(!s.status.is_terminal());
    assert_eq!(s.public_post_ids, vec![7_602_997_517_160_123_666]);
    let body = br#"{"data":{"status":"PUBLISH_COMPLETE","publicaly_available_post_id":["7602997517160123666",7678907398077074696]},"error":{"code":"ok","message":"","log_id":"x"}}"#;
    let (s, _) = decode_api_response::<PublishStatus>("status/fetch", 200, body, None).unwrap();
    assert_eq!(
        s.unwrap().public_post_ids,
        vec![7_602_997_517_160_123_666, 7_678_907_398_077_074_696]
    );
    let body = br#"{"data":{"status":"PUBLISH_COMPLETE","publicaly_available_post_id":null},"error":{"code":"ok","message":"","log_id":"x"}}"#;
    let (s, _) = decode_api_response::<PublishStatus>("status/fetch", 200, body, None).unwrap();
    assert!(s.unwrap().public_post_ids.is_empty());
}

#[test]
fn when_cancel_example_has_no_data_should_succeed() {
    let (d, log_id) =
        decode_api_response::<serde_json::Value>("cancel", 200, &fixture("cancel.ok.json"), None)
            .unwrap();
    assert!(d.is_none());
    assert!(log_id.is_some());
}

#[test]
fn when_body_is_not_an_envelope_should_be_a_decode_error_with_unknown_outcome() {
    let err = decode_api_response::<InitResponse>(
        "video/init",
        502,
        b"<html>bad gateway</html>",
        Some("hdr".into()),
    )
    .unwrap_err();
    assert!(err.is_outcome_unknown());
    assert_eq!(err.log_id(), Some("hdr"));
}

#[test]
fn when_token_example_should_parse_and_keep_secrets_out_of_debug() {
    let t =
        decode_token_response("oauth/token", 200, &fixture("oauth.token.ok.json"), None).unwrap();
    assert_eq!(
        t.access_token.expose_secret(),
        "act.example12345Example12345Example"
    );
    assert_eq!(
        t.refresh_token.expose_secret(),
        "rft.example12345Example12345Example"
    );
    assert_eq!((t.expires_in, t.refresh_expires_in), (86_400, 31_536_000));
    assert!(t.has_scope("video.list") && !t.has_scope("video.publish"));
    let dbg = format!("{t:?}");
    assert!(
        !dbg.contains("act.example") && !dbg.contains("rft.example"),
        "{dbg}"
    );
}

#[test]
fn when_oauth_error_arrives_with_any_status_should_be_an_oauth_error() {
    for status in [200, 400] {
        let err = decode_token_response("oauth/token", status, &fixture("oauth.error.json"), None)
            .unwrap_err();
        match err {
            TikTokError::OAuth {
                error,
                log_id,
                http_status,
                class,
                ..
            } => {
                assert_eq!(error, "invalid_request");
                assert_eq!(
                    log_id.as_deref(),
                    Some("202206221854370101130062072500FFA2")
                );
                assert_eq!(http_status, status);
                assert_eq!(class, ErrorClass::Permanent);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn when_webhook_examples_should_parse_typed_events() {
    let w = parse_webhook(&fixture("webhook.publish_complete.direct.json")).unwrap();
    assert_eq!(w.user_openid, "_000n3xads4rfwdUKrs9LV");
    assert_eq!(
        w.event,
        WebhookEvent::PublishComplete {
            publish_id: "v_pub_url~v2-1.7261463769757501445".into(),
            publish_type: Some("DIRECT_PUBLISH".into())
        }
    );
    let w = parse_webhook(&fixture("webhook.publicly_available.json")).unwrap();
    assert_eq!(
        w.event,
        WebhookEvent::PubliclyAvailable {
            publish_id: "v_pub_file~v2-1.7602997070760331285".into(),
            post_id: Some(7_602_997_517_160_123_666),
            publish_type: Some("DIRECT_PUBLISH".into())
        }
    );
    let w = parse_webhook(&fixture("webhook.authorization_removed.json")).unwrap();
    assert_eq!(w.event, WebhookEvent::AuthorizationRemoved { reason: 1 });
    let w = parse_webhook(&fixture("webhook.legacy_video_publish_completed.json")).unwrap();
    assert!(
        matches!(w.event, WebhookEvent::Unknown { ref event, .. } if event == "video.publish.completed")
    );
}

#[test]
fn when_every_publish_event_name_should_map_to_its_variant() {
    let env = |event: &str, content: &str| {
        serde_json::json!({"client_key":"k","event":event,"create_time":1,"user_openid":"u","content":content}).to_string()
    };
    let failed = parse_webhook(
        env(
            "post.publish.failed",
            r#"{"publish_id":"p","reason":"spam_risk_text","publish_type":"INBOX_SHARE"}"#,
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        failed.event,
        WebhookEvent::PublishFailed {
            publish_id: "p".into(),
            reason: "spam_risk_text".into(),
            publish_type: Some("INBOX_SHARE".into())
        }
    );
    let inbox = parse_webhook(
        env(
            "post.publish.inbox_delivered",
            r#"{"publish_id":"p","publish_type":"INBOX_SHARE"}"#,
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(matches!(inbox.event, WebhookEvent::InboxDelivered { .. }));
    let gone = parse_webhook(
        env(
            "post.publish.no_longer_publicaly_available",
            r#"{"publish_id":"p","post_id":7602997517160123666,"publish_type":"DIRECT_PUBLISH"}"#,
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(matches!(
        gone.event,
        WebhookEvent::NoLongerPubliclyAvailable {
            post_id: Some(7_602_997_517_160_123_666),
            ..
        }
    ));
    assert!(parse_webhook(env("post.publish.failed", "not json").as_bytes()).is_err());
    assert!(parse_webhook(b"{").is_err());
}

#[test]
fn when_content_is_an_inline_object_should_still_parse() {
    let body = br#"{"client_key":"k","event":"post.publish.failed","create_time":1,"user_openid":"u","content":{"publish_id":"p","reason":"internal","publish_type":"DIRECT_PUBLISH"}}"#;
    let w = parse_webhook(body).unwrap();
    assert!(
        matches!(w.event, WebhookEvent::PublishFailed { ref reason, .. } if reason == "internal")
    );
}
