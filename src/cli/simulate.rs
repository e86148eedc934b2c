//! `simulate`: sends correctly signed callbacks like ZEGOCLOUD does, retrying non-2xx answers
//! on its 2/4/8/16/32 s schedule with a fresh nonce, timestamp and signature each attempt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::callback::event::EventKind;
use crate::callback::sample;
use crate::clock::unix_ms;

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Where the bridge listens for callbacks.
    #[arg(long, default_value = "http://127.0.0.1:8080/zego/callback")]
    pub url: String,
    /// Callback secret (the first of a comma-separated list is used).
    #[arg(long, env = "ZEGO_CALLBACK_SECRET", hide_env_values = true)]
    pub secret: String,
    #[arg(long, default_value = "1")]
    pub appid: String,
    /// An event name, or `family` to send all five events of each call, in order.
    #[arg(long, default_value = "call_accept")]
    pub event: String,
    /// The call id; with --count above 1 each call gets `<call-id>-<n>`.
    #[arg(long, default_value = "3501761173612493269")]
    pub call_id: String,
    /// How many calls to send.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Calls in flight at once (events of one call are always sent one after another).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Seconds to wait before each retry; after the last one the callback is given up.
    #[arg(long, default_value = "2,4,8,16,32", value_delimiter = ',')]
    pub schedule: Vec<f64>,
    /// Pause between the events of one call, in milliseconds (calls take time in real life).
    #[arg(long, default_value_t = 0)]
    pub pause_ms: u64,
    /// Send one attempt per callback, no retries (for soak tests that count statuses).
    #[arg(long)]
    pub no_retry: bool,
    /// Stop starting new calls after this many seconds (calls under way finish).
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Send application/x-www-form-urlencoded instead of JSON.
    #[arg(long)]
    pub form: bool,
    /// One JSON line an attempt on stdout, for scripts (`{"call_id",…,"status","sent_ms","answered_ms"}`).
    #[arg(long)]
    pub jsonl: bool,
    /// Print only failed attempts and the summary.
    #[arg(long)]
    pub quiet: bool,
}

/// Distinguishes nonces made in the same millisecond.
static NONCE_COUNTER: AtomicU64 = AtomicU64::new(0);

pub async fn run(args: SimulateArgs) -> i32 {
    let kinds: Vec<EventKind> = if args.event == "family" {
        EventKind::ALL.to_vec()
    } else {
        match EventKind::from_name(&args.event) {
            Some(kind) => vec![kind],
            None => {
                eprintln!("--event must be one of call_create, call_cancel, call_accept, call_reject, call_timeout, family");
                return 2;
            }
        }
    };
    let secret = args
        .secret
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .connector(awc::Connector::new().limit(args.concurrency.max(1)))
        .finish();
    let started = Instant::now();
    let deadline = args
        .duration_secs
        .map(|secs| started + Duration::from_secs_f64(secs));
    let results: Vec<(usize, usize)> = futures_util::stream::iter(0..args.count)
        .take_while(|_| std::future::ready(deadline.is_none_or(|d| Instant::now() < d)))
        .map(|n| {
            let call_id = if args.count == 1 {
                args.call_id.clone()
            } else {
                format!("{}-{n}", args.call_id)
            };
            send_call(&client, &args, &secret, call_id, &kinds)
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let delivered: usize = results.iter().map(|(ok, _)| ok).sum();
    let given_up: usize = results.iter().map(|(_, lost)| lost).sum();
    eprintln!(
        "simulate: {} callbacks, {delivered} answered 200, {given_up} given up, in {:.1}s",
        delivered + given_up,
        started.elapsed().as_secs_f64()
    );
    i32::from(given_up > 0)
}

/// Sends one call's events in order; returns (delivered, given up).
async fn send_call(
    client: &awc::Client,
    args: &SimulateArgs,
    secret: &str,
    call_id: String,
    kinds: &[EventKind],
) -> (usize, usize) {
    let mut counts = (0, 0);
    for (n, &kind) in kinds.iter().enumerate() {
        if n > 0 && args.pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
        }
        if send_with_retries(client, args, secret, &call_id, kind).await {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    counts
}

async fn send_with_retries(
    client: &awc::Client,
    args: &SimulateArgs,
    secret: &str,
    call_id: &str,
    kind: EventKind,
) -> bool {
    let retries = if args.no_retry {
        0
    } else {
        args.schedule.len()
    };
    for attempt in 0..=retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs_f64(args.schedule[attempt - 1])).await;
        }
        let body = signed_body(args, secret, call_id, kind);
        let sent_ms = unix_ms();
        let request = client.post(&args.url);
        let answer = if args.form {
            request
                .content_type("application/x-www-form-urlencoded")
                .send_body(form_encode(&body))
                .await
        } else {
            request
                .content_type("application/json")
                .send_body(body.to_string())
                .await
        };
        let (status, text) = match answer {
            Ok(mut response) => {
                let text = response
                    .body()
                    .await
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                (response.status().as_u16(), text)
            }
            Err(e) => (0, e.to_string()),
        };
        let answered_ms = unix_ms();
        let ok = status == 200;
        if args.jsonl {
            let line = json!({"call_id": call_id, "event": kind.name(), "attempt": attempt + 1, "status": status,
                "sent_ms": sent_ms, "answered_ms": answered_ms, "answer": text});
            println!("{line}");
        } else if !args.quiet || !ok {
            println!(
                "{} call_id={call_id} attempt {}: {status} {text}",
                kind.name(),
                attempt + 1
            );
        }
        if ok {
            return true;
        }
    }
    false
}

/// A fresh attempt: new timestamp, nonce and signature, as ZEGOCLOUD sends each retry.
fn signed_body(args: &SimulateArgs, secret: &str, call_id: &str, kind: EventKind) -> Value {
    let timestamp = unix_ms() / 1000;
    let nonce = format!(
        "{}{}",
        unix_ms() % 1_000_000,
        NONCE_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    sample::callback(kind, &args.appid, call_id, timestamp, &nonce, secret)
}

/// Form encoding: lists as repeated names, numbers as text.
fn form_encode(body: &Value) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in body.as_object().into_iter().flatten() {
        match value {
            Value::Array(items) => {
                for item in items {
                    form.append_pair(name, item.as_str().unwrap_or_default());
                }
            }
            Value::String(text) => {
                form.append_pair(name, text);
            }
            other => {
                form.append_pair(name, &other.to_string());
            }
        }
    }
    form.finish()
}
