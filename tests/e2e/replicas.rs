//! Three bridge replicas behind a real load balancer (haproxy, health-checking `/readyz`) under
//! a ZEGOCLOUD-like load with the real retry schedule: one replica is stopped gracefully and
//! replaced (a rolling update), another is SIGKILLed and restarted, and the broker is cut off
//! for 20 s. Every callback answered 200 must be in the topic; retries that land on another
//! replica are duplicates, counted and reported.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::{assert_nothing_lost, spawn_paced_load};

/// haproxy in front of `backends`, checking `/readyz` every 500 ms.
fn start_haproxy(dir: &Path, port: u16, backends: &[u16]) -> Process {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(n, p)| format!("  server bridge{n} 127.0.0.1:{p} check\n"))
        .collect();
    let config = format!(
        "global\n  maxconn 4096\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n\
         frontend zego\n  bind 127.0.0.1:{port}\n  default_backend bridges\n\
         backend bridges\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n\
         \x20 default-server inter 500ms fall 2 rise 2\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let haproxy = which("haproxy").expect("haproxy (Debian package; .ci/run installs it)");
    let process = Process::spawn(
        Command::new(haproxy).arg("-db").arg("-f").arg(&path),
        dir.join("haproxy.log"),
    );
    wait_for_port(port, Duration::from_secs(20));
    process
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.exists())
}

/// Waits for a bridge process to be gone, so its port can be taken again.
fn wait_exit(bridge: &mut Bridge, within: Duration) {
    let deadline = Instant::now() + within;
    while bridge.process.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the bridge did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A delivery timeout to match the load's scaled retry schedule (the real ones: 5 s, 62 s).
const REPLICA_ENV: &[(&str, &str)] = &[("KAFKA_DELIVERY_TIMEOUT_MS", "2000")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_haproxy_survive_a_rolling_restart_a_kill_and_a_broker_cut() {
    let _serial = serial().await;
    let dir = work_dir("replicas");
    let forward_port = free_port();
    let tansu = Tansu::start(&dir, forward_port);
    let forwarder = Forwarder::start(forward_port, tansu.port).await;
    tansu.create_topic(TOPIC, 3);
    let brokers = format!("127.0.0.1:{forward_port}");
    let ports = [free_port(), free_port(), free_port()];
    let mut bridges: Vec<Bridge> = ports
        .iter()
        .enumerate()
        .map(|(n, &port)| Bridge::start(&dir, &format!("bridge{n}"), port, &brokers, REPLICA_ENV))
        .collect();
    for bridge in &bridges {
        bridge.wait_ready(Duration::from_secs(30)).await;
    }
    let lb_port = free_port();
    let _haproxy = start_haproxy(&dir, lb_port, &ports);
    let url = format!("http://127.0.0.1:{lb_port}/zego/callback");
    let load = spawn_paced_load(&dir, url);

    // A rolling update of replica 0: SIGTERM (readiness off, drain, flush), then a new one.
    wait_for_acks(ports[0], 30).await;
    bridges[0].process.signal("TERM");
    wait_exit(&mut bridges[0], Duration::from_secs(30));
    bridges[0] = Bridge::start(&dir, "bridge0-new", ports[0], &brokers, REPLICA_ENV);

    // Replica 1 dies hard and is restarted.
    wait_for_acks(ports[1], 60).await;
    let killed_at = now_ms();
    bridges[1].process.signal("KILL");
    wait_exit(&mut bridges[1], Duration::from_secs(30));
    bridges[1] = Bridge::start(&dir, "bridge1-new", ports[1], &brokers, REPLICA_ENV);

    // The broker is cut off from every replica for 8 s (half the load's scaled patience).
    wait_for_acks(ports[2], 90).await;
    let cut_at = now_ms();
    forwarder.cut();
    // The outage itself: its length is what is under test.
    tokio::time::sleep(Duration::from_secs(8)).await;
    forwarder.restore().await;
    let restored_at = now_ms();

    let (ok, attempts) = load.await.unwrap();
    assert!(ok, "some callbacks were given up: see {}", dir.display());
    let records = read_topic(&brokers, TOPIC);
    let duplicates = assert_nothing_lost(&attempts, &records, Some((cut_at, restored_at)), 1000);
    let refused = attempts.iter().filter(|a| a.status != 200).count();
    let acked_before_kill = attempts
        .iter()
        .filter(|a| a.status == 200 && a.answered_ms < killed_at)
        .count();
    report(&format!(
        "| 3 replicas behind haproxy | 1000 sent through the load balancer, 16 connections; replica 0 SIGTERM and replaced, replica 1 SIGKILL (after {acked_before_kill} acks) and restarted, broker cut 8 s, retries every 0.5/1/2/4/8 s | 1000 answered 200 after {refused} refused attempts | {} in Kafka | 0 lost | {duplicates} duplicates |",
        records.len()
    ));
}
