//! The schedule driver in real time: scheduled events, no overlap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use reelay_local::{FunctionSpec, Schedule, Ticker};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn when_the_period_elapses_should_invoke_with_a_scheduled_event() {
    let events: Arc<Mutex<Vec<CloudWatchEvent>>> = Arc::default();
    let e = events.clone();
    let started = std::time::Instant::now();
    let ticker = Ticker::spawn(Duration::from_millis(100), move |event: CloudWatchEvent| {
        e.lock().unwrap().push(event);
        async {}
    });
    tokio::time::sleep(Duration::from_millis(450)).await;
    ticker.stop().await.unwrap();
    // The first tick is one period after start, as an EventBridge rate rule's is.
    let most = usize::try_from(started.elapsed().as_millis() / 100).unwrap();
    let events = events.lock().unwrap().clone();
    assert!(
        (3..=most).contains(&events.len()),
        "{} ticks in 450 ms at 100 ms",
        events.len()
    );
    let first = &events[0];
    assert_eq!(first.detail_type.as_deref(), Some("Scheduled Event"));
    assert_eq!(first.source.as_deref(), Some("aws.events"));
    assert_eq!(first.region.as_deref(), Some("us-east-1"));
    assert!(first.resources[0].starts_with("arn:aws:events:us-east-1:"));
    assert!(first.resources[0].contains(":rule/"));
    assert_ne!(events[0].id, events[1].id, "each tick is a new event");
}

#[tokio::test]
async fn when_a_run_outlasts_the_period_should_skip_ticks_and_never_overlap() {
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let (r, m) = (running.clone(), max_running.clone());
    let schedule = Schedule::new(
        Duration::from_millis(50),
        FunctionSpec::new("ReconcilerFunction", Duration::from_secs(60)),
    )
    .fire_immediately();
    let ticker = Ticker::spawn_with(
        schedule,
        CancellationToken::new(),
        move |_event: CloudWatchEvent| {
            let (r, m) = (r.clone(), m.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(180)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), String>(())
            }
        },
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats = ticker.stats();
    ticker.stop().await.unwrap();
    assert_eq!(max_running.load(Ordering::SeqCst), 1, "runs never overlap");
    assert!(stats.runs >= 3, "{stats:?}");
    assert!(
        stats.skipped >= stats.runs,
        "ticks during a run are skipped: {stats:?}"
    );
    assert_eq!(stats.failures, 0);
    assert_eq!(
        running.load(Ordering::SeqCst),
        0,
        "stop waits for the run in progress"
    );
}

#[tokio::test]
async fn when_a_run_fails_should_count_it_and_keep_ticking() {
    let schedule = Schedule::new(
        Duration::from_millis(60),
        FunctionSpec::new("ReconcilerFunction", Duration::from_millis(500)),
    );
    let ticker = Ticker::spawn_with(
        schedule,
        CancellationToken::new(),
        |_event: CloudWatchEvent| async { Err::<(), _>("table unavailable") },
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let stats = ticker.stats();
    ticker.stop().await.unwrap();
    assert!(stats.runs >= 3 && stats.failures == stats.runs, "{stats:?}");
}
