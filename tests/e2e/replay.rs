//! Refused callbacks kept and replayed, against tansu: a bridge with the wrong secret refuses a
//! call's five events (kept in `KAFKA_TOPIC_REFUSED`) and a forged one; with the secret fixed,
//! `replay` publishes the five in order with the callback ids the right secret gives, a second
//! replay writes nothing, and the forged one stays refused.

use std::process::Command;
use std::time::Duration;

use super::harness::*;
use super::stack;

const REFUSED: &str = "zego-refused";

/// Runs `replay` with the right secret: exit code and stdout.
async fn replay(brokers: &str, args: &[&str]) -> (i32, String) {
    let mut command = Command::new(bridge_bin());
    command
        .arg("replay")
        .args(args)
        .env_clear()
        .env("ZEGO_CALLBACK_SECRET", SECRET)
        .env("KAFKA_BROKERS", brokers)
        .env("KAFKA_TOPIC_REFUSED", REFUSED)
        .env("RUST_LOG", "warn");
    let output = tokio::task::spawn_blocking(move || command.output().expect("replay runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("librdkafka"),
        "raw librdkafka lines: {stderr}"
    );
    (output.status.code().unwrap_or(-1), stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secrets_refusals_are_kept_and_replayed_once_after_the_fix() {
    let _serial = serial().await;
    let (dir, tansu, forwarder, bridge) = stack(
        "replay",
        &[
            ("ZEGO_CALLBACK_SECRET", "the-old-secret"),
            ("KAFKA_TOPIC_REFUSED", REFUSED),
        ],
    )
    .await;
    tansu.create_topic(REFUSED, 1);
    let brokers = format!("127.0.0.1:{}", forwarder.port);

    // The call's five events, signed with the secret ZEGOCLOUD really uses: all refused.
    let (_, attempts) = simulate(
        &dir,
        "call",
        &bridge.url(),
        &[
            "--event",
            "family",
            "--count",
            "1",
            "--call-id",
            "call-r",
            "--no-retry",
            "--concurrency",
            "1",
        ],
    )
    .await;
    assert_eq!(attempts.len(), 5);
    assert!(attempts.iter().all(|a| a.status == 401), "{attempts:?}");
    // A forgery: signed with a secret nobody configured.
    let forged = Command::new(bridge_bin())
        .args([
            "simulate",
            "--url",
            &bridge.url(),
            "--secret",
            "forger",
            "--event",
        ])
        .args([
            "call_accept",
            "--count",
            "1",
            "--call-id",
            "forged-1",
            "--no-retry",
        ])
        .output()
        .expect("simulate runs");
    assert!(
        String::from_utf8_lossy(&forged.stdout).contains("401"),
        "{forged:?}"
    );
    wait_for_metric(
        bridge.port,
        r#"zego_refused_kept_total{outcome="kept"}"#,
        Duration::from_secs(30),
        |kept| kept >= 6.0,
    )
    .await;
    assert!(
        read_topic(&brokers, TOPIC).is_empty(),
        "nothing refused was published"
    );

    // The secret is fixed: replay publishes the five, in the call's order, as the bridge would.
    let (code, out) = replay(&brokers, &[]).await;
    assert_eq!(code, 0, "{out}");
    let lines = |out: &str, start: &str| out.lines().filter(|l| l.starts_with(start)).count();
    assert_eq!(lines(&out, "published "), 5, "{out}");
    assert_eq!(lines(&out, "still refused"), 1, "{out}");
    assert!(out.contains("invalid_signature"), "{out}");
    let records = read_topic(&brokers, TOPIC);
    assert_eq!(records.len(), 5);
    let mut in_order = records.clone();
    in_order.sort_by_key(|r| (r.partition, r.offset));
    for (record, attempt) in in_order.iter().zip(&attempts) {
        assert_well_formed(record);
        assert_eq!(record.key.as_deref(), Some("call-r"));
        assert_eq!(record.headers["zego-event"], attempt.event);
        assert_eq!(record.headers["zego-callback-id"], attempt.callback_id);
    }

    // A second run over the same range writes nothing.
    let (code, out) = replay(&brokers, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("published 0"), "{out}");
    assert_eq!(read_topic(&brokers, TOPIC).len(), 5);
    // And from the start again, by offset, in a dry run: the forgery is still refused.
    let (code, out) = replay(
        &brokers,
        &["--from-offset", "0", "--dry-run", "--group", "look"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(lines(&out, "would publish "), 5, "{out}");
    assert_eq!(lines(&out, "still refused"), 1, "{out}");
    assert_eq!(
        read_topic(&brokers, TOPIC).len(),
        5,
        "a dry run publishes nothing"
    );
    // A flood of forgeries past KAFKA_REFUSED_PER_SECOND (20, bursts of 100): counted and
    // dropped, while callbacks signed with the secret the bridge has land as usual.
    let url = bridge.url();
    let run = |secret: &'static str, id: &'static str, count: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(bridge_bin())
                .args([
                    "simulate",
                    "--url",
                    &url,
                    "--secret",
                    secret,
                    "--event",
                    "call_accept",
                ])
                .args([
                    "--count",
                    count,
                    "--call-id",
                    id,
                    "--no-retry",
                    "--concurrency",
                    "8",
                ])
                .output()
                .expect("simulate runs")
        })
    };
    let (flood, genuine) = tokio::join!(
        run("forger", "flood", "600"),
        run("the-old-secret", "genuine", "50")
    );
    let genuine = genuine.unwrap();
    let genuine = format!(
        "{}{}",
        String::from_utf8_lossy(&genuine.stdout),
        String::from_utf8_lossy(&genuine.stderr)
    );
    assert!(genuine.contains("50 answered 200"), "{genuine}");
    drop(flood);
    let series = |outcome: &str| format!("zego_refused_kept_total{{outcome=\"{outcome}\"}}");
    wait_for_metric(
        bridge.port,
        &series("dropped"),
        Duration::from_secs(30),
        |n| n > 0.0,
    )
    .await;
    let counted =
        |port| ["kept", "dropped", "failed"].map(|outcome| metric(port, &series(outcome)));
    let [kept, dropped, failed] = eventually(
        "every flooded callback counted",
        Duration::from_secs(60),
        || {
            let now = counted(bridge.port);
            (now.iter().sum::<f64>() == 6.0 + 600.0).then_some(now)
        },
    )
    .await;
    assert_eq!(failed, 0.0);
    assert!(dropped >= 300.0, "only {dropped} of 600 dropped");
    let in_refused = read_topic(&brokers, REFUSED).len();
    assert_eq!(
        in_refused as f64, kept,
        "the refused topic holds what was kept"
    );
    assert_eq!(
        read_topic(&brokers, TOPIC).len(),
        5 + 50,
        "the genuine ones landed"
    );
    report(&format!("| replay after a wrong secret | 5 refused + 1 forged kept | 5 replayed in order, same ids | second replay: 0 | forged: still refused | flood of 600 forged: {kept} kept, {dropped} dropped, 50 genuine all 200 |"));
}
