//! The shared consumer-group runner (`store::consumer`): the recovery rules every consumer
//! inherits, checked once here against a real Redis with a handler that records what it got.

use std::sync::Mutex;
use std::time::Duration;

use okta_adapter::config::Settings;
use okta_adapter::store::consumer::{Batch, BatchHandler, GroupConsumer};
use okta_adapter::store::RedisConn;
use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;

use crate::helpers::{random_prefix, test_settings, TestRedis};

/// Records (stream, entry id, deliveries, reclaimed) and acknowledges everything.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, String, u64, bool)>>,
    group: String,
}

impl BatchHandler for Recorder {
    async fn handle(&self, conn: &mut RedisConn, batch: Batch) -> RedisResult<()> {
        let ids: Vec<String> = batch.entries.iter().map(|e| e.id.clone()).collect();
        {
            let mut seen = self.seen.lock().unwrap();
            for id in &ids {
                seen.push((
                    batch.stream.clone(),
                    id.clone(),
                    batch.delivered(id),
                    batch.reclaimed,
                ));
            }
        }
        let _: () = conn.xack(&batch.stream, &self.group, &ids).await?;
        Ok(())
    }
}

fn group(prefix: &str, streams: Vec<String>) -> GroupConsumer {
    GroupConsumer {
        label: "test-consumer",
        streams,
        group: "g".into(),
        consumer: format!("{prefix}-live"),
        batch: 10,
        block_ms: 100,
        claim_idle_ms: 200,
        export_lag: true,
    }
}

async fn wait_until(mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 5 s");
}

#[tokio::test]
async fn the_runner_reads_every_stream_takes_over_a_dead_consumers_entries_and_recreates_a_lost_group(
) {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let settings: Settings = test_settings(&redis.url(), &prefix, "");
    let (a, b) = (format!("{prefix}:a"), format!("{prefix}:b"));
    let mut conn = redis.conn().await;

    // A consumer that read an entry and died before acknowledging it.
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", &a, "g", "0", "MKSTREAM"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let orphan: String = conn.xadd(&a, "*", &[("k", "orphan")]).await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "g", "dead", "COUNT", "10", "STREAMS", &a, ">"])
        .query_async(&mut conn)
        .await
        .unwrap();

    let recorder = std::sync::Arc::new(Recorder {
        group: "g".into(),
        ..Default::default()
    });
    let cancel = CancellationToken::new();
    let runner = group(&prefix, vec![a.clone(), b.clone()]);
    let task = {
        let (recorder, cancel, redis_settings) =
            (recorder.clone(), cancel.clone(), settings.redis.clone());
        tokio::spawn(async move { runner.run(&*recorder, &redis_settings, &cancel).await })
    };

    // The orphan is taken over once idle, with its delivery count (2: the dead one's and ours).
    wait_until(|| recorder.seen.lock().unwrap().iter().any(|s| s.1 == orphan)).await;
    let taken = recorder
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.1 == orphan)
        .cloned()
        .unwrap();
    assert_eq!(taken, (a.clone(), orphan.clone(), 2, true));

    // New entries of both streams arrive as first deliveries; stream b's group was created.
    let on_b: String = conn.xadd(&b, "*", &[("k", "b1")]).await.unwrap();
    let on_a: String = conn.xadd(&a, "*", &[("k", "a1")]).await.unwrap();
    wait_until(|| {
        let seen = recorder.seen.lock().unwrap();
        seen.iter().any(|s| s.1 == on_b) && seen.iter().any(|s| s.1 == on_a)
    })
    .await;
    {
        let seen = recorder.seen.lock().unwrap();
        let first_b = seen.iter().find(|s| s.1 == on_b).unwrap();
        assert_eq!(
            (first_b.0.as_str(), first_b.2, first_b.3),
            (b.as_str(), 1, false)
        );
    }

    // Redis loses the group (a restart without persistence): the runner re-creates it from 0,
    // so entries written meanwhile, and older ones, are read again rather than lost.
    let _: () = redis::cmd("XGROUP")
        .arg(&["DESTROY", &a, "g"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let after: String = conn.xadd(&a, "*", &[("k", "after")]).await.unwrap();
    wait_until(|| recorder.seen.lock().unwrap().iter().any(|s| s.1 == after)).await;
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg(&["GROUPS", &a])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1, "the group exists again");

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("the runner stops within a read's block time")
        .unwrap();
}
