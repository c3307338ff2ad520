//! All drivers under one supervisor: one shutdown stops them all.

use std::net::SocketAddr;
use std::time::Duration;

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::{Body, Request, Response};
use reelay_local::{
    FunctionSpec, HttpFront, LocalRuntime, Routes, Schedule, SqsDriver, SqsSource, Ticker,
};

use crate::common::{eventually, fifo_queue, template};

#[test]
fn when_settings_come_from_the_template_should_match_the_deployed_event_sources() {
    let t = template();
    let publisher = SqsSource::from_template(&t, "PublisherFunction", "http://q").unwrap();
    assert_eq!(publisher.batch_size, 10);
    assert_eq!(
        publisher.max_concurrency, 50,
        "PublishMaxConcurrency's default"
    );
    assert_eq!(publisher.function.timeout, Duration::from_secs(300));
    let render = SqsSource::from_template(&t, "RenderSubmitterFunction", "http://q").unwrap();
    assert_eq!(render.max_concurrency, 10, "RenderMaxConcurrency's default");
    assert_eq!(render.function.timeout, Duration::from_secs(30));
    let tick = Schedule::from_template(&t, "ReconcilerFunction").unwrap();
    assert_eq!(tick.period, Duration::from_secs(60), "rate(1 minute)");
    assert_eq!(tick.function.timeout, Duration::from_secs(60));
    assert!(
        SqsSource::from_template(&t, "ReconcilerFunction", "http://q").is_err(),
        "no SQS event"
    );
    assert!(FunctionSpec::from_template(&t, "NoSuchFunction").is_err());
}

#[tokio::test]
async fn when_the_runtime_shuts_down_should_stop_every_driver() {
    let q = fifo_queue(5).await;
    let mut runtime = LocalRuntime::new();
    let source = SqsSource::new(
        &q.url,
        FunctionSpec::new("PublisherFunction", Duration::from_secs(5)),
    );
    let sqs = SqsDriver::spawn_with(
        q.client.clone(),
        source,
        runtime.child_token(),
        |_e: SqsEvent| async { SqsBatchResponse::default() },
    )
    .await
    .unwrap();
    let sqs_counters = sqs.counters();
    runtime.add_sqs("publisher", sqs);
    let ticker = Ticker::spawn_with(
        Schedule::new(
            Duration::from_millis(50),
            FunctionSpec::new("ReconcilerFunction", Duration::from_secs(5)),
        ),
        runtime.child_token(),
        |_e: CloudWatchEvent| async {},
    );
    let tick_counters = ticker.counters();
    runtime.add_ticker("reconciler", ticker);
    let routes = Routes::new()
        .route(
            "GET /health",
            FunctionSpec::new("IngestApiFunction", Duration::from_secs(5)),
            |_r: Request| async { Response::new(Body::Text("ok".into())) },
        )
        .unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let front = HttpFront::start_with_token(addr, routes, runtime.child_token())
        .await
        .unwrap();
    let url = format!("{}/health", front.url());
    runtime.add_http("api", front);
    assert_eq!(runtime.names(), ["publisher", "reconciler", "api"]);

    q.send("g", "d1", "hello").await;
    assert_eq!(
        reqwest::get(&url).await.unwrap().text().await.unwrap(),
        "ok"
    );
    eventually(Duration::from_secs(10), "the record handled", || {
        let s = sqs_counters.snapshot();
        async move { s.deletes == 1 }
    })
    .await;

    let stats = runtime.stats();
    assert_eq!(stats.len(), 3);
    assert!(
        matches!(stats[0].1, reelay_local::DriverStats::Sqs(s) if s.deletes == 1 && s.records == 1)
    );
    assert!(matches!(stats[2].1, reelay_local::DriverStats::Http(s) if s.requests == 1));
    assert!(
        stats[0]
            .1
            .to_string()
            .starts_with("sqs batches=1 records=1 deleted=1"),
        "{}",
        stats[0].1
    );
    runtime.log_progress(Duration::from_millis(20));

    tokio::time::timeout(Duration::from_secs(5), runtime.shutdown())
        .await
        .expect("shutdown is prompt")
        .unwrap();
    let ticks = tick_counters
        .ticks
        .load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        tick_counters
            .ticks
            .load(std::sync::atomic::Ordering::SeqCst),
        ticks,
        "no ticks after shutdown"
    );
    assert!(reqwest::get(&url).await.is_err(), "the port is closed");
}
