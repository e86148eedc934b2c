//! Unit tests of the dedupe cache's states, expiry and eviction.

use super::*;

fn id(n: u8) -> String {
    hex::encode([n; 20])
}

fn ack(offset: i64) -> Ack {
    Ack {
        topic: "t".into(),
        partition: 0,
        offset,
    }
}

fn publish(cache: &Arc<DedupCache>, n: u8) -> PendingGuard {
    match cache.claim(&id(n)) {
        Claim::Publish(guard) => guard,
        _ => panic!("expected to publish {n}"),
    }
}

#[test]
fn acked_id_is_answered_from_the_cache() {
    let cache = DedupCache::new(Some(Duration::from_secs(60)), 10);
    publish(&cache, 1).finish(Ok(ack(7).into()));
    assert!(matches!(cache.claim(&id(1)), Claim::Acked(a) if a == ack(7).into()));
    assert!(matches!(cache.claim(&id(2)), Claim::Publish(_)));
}

#[test]
fn failed_or_abandoned_publish_is_forgotten() {
    let cache = DedupCache::new(Some(Duration::from_secs(60)), 10);
    publish(&cache, 1).finish(Err(PublishError::Unavailable("down".into())));
    drop(publish(&cache, 1));
    assert!(cache.is_empty());
    assert!(matches!(cache.claim(&id(1)), Claim::Publish(_)));
}

#[tokio::test]
async fn repeat_while_pending_waits_for_the_outcome() {
    let cache = DedupCache::new(Some(Duration::from_secs(60)), 10);
    let guard = publish(&cache, 1);
    let Claim::Wait(receiver) = cache.claim(&id(1)) else {
        panic!("expected to wait")
    };
    let waiter = tokio::spawn(wait(receiver));
    guard.finish(Ok(ack(3).into()));
    assert_eq!(waiter.await.unwrap(), Ok(ack(3).into()));
}

#[tokio::test]
async fn waiter_of_an_abandoned_publish_fails_retriably() {
    let cache = DedupCache::new(Some(Duration::from_secs(60)), 10);
    let guard = publish(&cache, 1);
    let Claim::Wait(receiver) = cache.claim(&id(1)) else {
        panic!("expected to wait")
    };
    drop(guard);
    assert!(matches!(
        wait(receiver).await,
        Err(PublishError::Unavailable(_))
    ));
}

#[test]
fn entries_expire_after_the_ttl() {
    let cache = DedupCache::new(Some(Duration::from_millis(1)), 10);
    publish(&cache, 1).finish(Ok(ack(1).into()));
    std::thread::sleep(Duration::from_millis(5)); // the TTL itself is the thing under test
    assert!(matches!(cache.claim(&id(1)), Claim::Publish(_)));
}

#[test]
fn oldest_entries_are_evicted_beyond_capacity() {
    let cache = DedupCache::new(Some(Duration::from_secs(60)), 2);
    for n in 1..=3 {
        publish(&cache, n).finish(Ok(ack(n as i64).into()));
    }
    assert_eq!(cache.len(), 2);
    assert!(matches!(cache.claim(&id(1)), Claim::Publish(_)));
    assert!(matches!(cache.claim(&id(3)), Claim::Acked(_)));
}

#[test]
fn off_means_always_publish() {
    let cache = DedupCache::new(None, 10);
    publish(&cache, 1).finish(Ok(ack(1).into()));
    assert!(matches!(cache.claim(&id(1)), Claim::Publish(_)));
    assert!(cache.is_empty());
}
