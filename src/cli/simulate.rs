//! `simulate`: sends correctly signed callbacks like ZEGOCLOUD does, retrying non-2xx answers
//! on its 2/4/8/16/32 s schedule with a fresh nonce, timestamp and signature each attempt.
//! Answers no retry can fix (400, 401, 403, 404, …) end a callback at once unless
//! `--retry-all`; Ctrl-C prints the summary so far; a closed stdout ends it quietly.

use std::io::IsTerminal;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use super::output::{Stdout, Written};
use crate::callback::catalogue::{EventKind, Family, Product};
use crate::callback::event::callback_id;
use crate::callback::sample;
use crate::clock::unix_ms;

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Where the bridge takes callbacks [default: from BIND_ADDR and CALLBACK_PATH, else
    /// http://127.0.0.1:8080/zego/callback].
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8080", hide = true)]
    pub bind_addr: String,
    #[arg(
        long,
        env = "CALLBACK_PATH",
        default_value = "/zego/callback",
        hide = true
    )]
    pub callback_path: String,
    /// With an https:// --url: also trust the certificates in this PEM file (a private CA).
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// With an https:// --url: accept any certificate (a self-signed one); the server must still
    /// hold its key. For tests, never for a production check.
    #[arg(long)]
    pub insecure: bool,
    /// The bridge's callback secret, ZEGO_CALLBACK_SECRET (of a comma-separated list, the first).
    #[arg(long, env = "ZEGO_CALLBACK_SECRET", hide_env_values = true, value_parser = non_empty)]
    pub secret: String,
    /// The ZEGOCLOUD AppID to send.
    #[arg(long, default_value = "1")]
    pub appid: String,
    /// The event to send [default: call_accept]: any name (catalogued events get realistic
    /// fields, and go to their product's path), or `family` for the call family's five events.
    /// With --family, picks that family's event of this name (e.g. rtc's room_create).
    #[arg(long)]
    pub event: Option<String>,
    /// Send every event of a family, in life-cycle order, for each call: call, login, message,
    /// group, room, rtc, recording, ai_agent, or `all` for every event of every family.
    #[arg(long)]
    pub family: Option<String>,
    /// The record key each callback carries (call_id, room_id, group_id, task_id, …); with
    /// --count above 1 each call gets `<key>-<n>`.
    #[arg(long, visible_alias = "key", default_value = sample::SEED_CALL_ID)]
    pub call_id: String,
    /// How many calls to send.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Calls in flight at once (events of one call are always sent one after another).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Seconds to wait before each retry; after the last one the callback is given up.
    #[arg(long, default_value = "2,4,8,16,32", value_delimiter = ',', value_parser = seconds)]
    pub schedule: Vec<f64>,
    /// Retry every non-2xx answer as ZEGOCLOUD does, even those no retry can fix (4xx).
    #[arg(long)]
    pub retry_all: bool,
    /// Pause between the events of one call, in milliseconds (calls take time in real life).
    #[arg(long, default_value_t = 0)]
    pub pause_ms: u64,
    /// Send one attempt per callback, no retries (for soak tests that count statuses).
    #[arg(long)]
    pub no_retry: bool,
    /// Stop starting new calls after this many seconds (calls under way finish).
    #[arg(long, value_parser = seconds)]
    pub duration_secs: Option<f64>,
    /// Send application/x-www-form-urlencoded instead of JSON.
    #[arg(long)]
    pub form: bool,
    /// Set a field, e.g. `--set user_id=bob` (the value is JSON when it parses as JSON, text
    /// otherwise). Repeatable; applied after --data; the body is signed afterwards unless
    /// `signature` itself is set.
    #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = field_assignment)]
    pub sets: Vec<(String, Value)>,
    /// Fields to merge into every callback, as a JSON object: inline, or `@file.json`.
    #[arg(long, value_name = "JSON|@FILE", value_parser = json_object)]
    pub data: Option<Map<String, Value>>,
    /// One JSON line per attempt on stdout, for scripts (the bridge's answer embedded as JSON).
    #[arg(long)]
    pub jsonl: bool,
    /// Print only failed attempts and the summary.
    #[arg(long)]
    pub quiet: bool,
}

fn non_empty(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("must not be empty: use the bridge's ZEGO_CALLBACK_SECRET".into()),
        secret => Ok(secret.to_string()),
    }
}

fn field_assignment(text: &str) -> Result<(String, Value), String> {
    let (field, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected FIELD=VALUE, got {text:?}"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
    Ok((field.to_string(), value))
}

fn json_object(text: &str) -> Result<Map<String, Value>, String> {
    let content = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?,
        None => text.to_string(),
    };
    match serde_json::from_str(&content) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err("must be a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// Distinguishes nonces made in the same millisecond.
static NONCE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What happened so far, for the progress line and the summary.
#[derive(Default)]
struct Tally {
    delivered: usize,
    duplicates: usize,
    given_up: usize,
    refused_for_good: usize,
    attempts: usize,
    latencies_ms: Vec<f64>,
}

/// How one callback ended.
enum Ended {
    Delivered {
        duplicate: bool,
    },
    /// An answer no retry can fix.
    Refused,
    GivenUp,
    /// stdout went away: stop quietly.
    OutputClosed,
}

struct Run {
    args: SimulateArgs,
    url: String,
    secret: String,
    client: awc::Client,
    tally: Mutex<Tally>,
    stdout: Mutex<Stdout>,
    hinted: std::sync::atomic::AtomicBool,
}

pub async fn run(args: SimulateArgs) -> i32 {
    let events = match planned_events(&args) {
        Ok(events) => events,
        Err(why) => {
            eprintln!("simulate: {why}");
            return 2;
        }
    };
    let url = args.url.clone().unwrap_or_else(|| {
        let addr = args
            .bind_addr
            .replacen("0.0.0.0", "127.0.0.1", 1)
            .replacen("[::]", "[::1]", 1);
        format!("http://{addr}{}", args.callback_path)
    });
    let secret = args
        .secret
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut connector = awc::Connector::new().limit(args.concurrency.max(1));
    if url.starts_with("https://") {
        let tls = match args.insecure {
            true => super::tls_client::any_certificate(),
            false => super::tls_client::verified(args.ca_file.as_deref()),
        };
        match tls {
            Ok(tls) => connector = connector.rustls_0_23(std::sync::Arc::new(tls)),
            Err(why) => {
                eprintln!("simulate: {why}");
                return 2;
            }
        }
    }
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .connector(connector)
        .finish();
    let run = Rc::new(Run {
        args,
        url,
        secret,
        client,
        tally: Mutex::default(),
        stdout: Mutex::default(),
        hinted: Default::default(),
    });
    let started = Instant::now();
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| actix_web::rt::spawn(show_progress(run.clone(), started)));
    let stopped_early = tokio::select! {
        output_closed = send_all(&run, &events) => output_closed,
        _ = tokio::signal::ctrl_c() => {
            eprintln!();
            eprintln!("simulate: interrupted");
            true
        }
    };
    if let Some(progress) = progress {
        progress.abort();
        eprint!("\r\x1b[K");
    }
    let tally = run.tally.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!("{}", summary(&tally, started.elapsed()));
    i32::from(stopped_early || tally.given_up > 0 || tally.refused_for_good > 0)
}

/// One event to send: catalogued (realistic fields, its product's path) or just a name.
#[derive(Debug, Clone)]
struct Planned {
    kind: Option<EventKind>,
    name: String,
}

impl Planned {
    fn of(kind: EventKind) -> Self {
        Planned {
            kind: Some(kind),
            name: kind.name().to_string(),
        }
    }
}

/// The events each call sends, from --family and --event.
fn planned_events(args: &SimulateArgs) -> Result<Vec<Planned>, String> {
    let family = match args.family.as_deref() {
        None => None,
        Some("all") => return Ok(EventKind::all().map(Planned::of).collect()),
        Some(name) => Some(Family::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
            format!(
                "--family {name:?} is not a family: all, {}",
                names.join(", ")
            )
        })?),
    };
    let event = args.event.as_deref();
    if let Some(family) = family {
        let events: Vec<Planned> = family
            .events()
            .filter(|k| event.is_none_or(|e| k.name() == e || k.spec().any_name))
            .map(Planned::of)
            .collect();
        if events.is_empty() {
            return Err(format!(
                "the {} family has no event {:?}",
                family.name(),
                event.unwrap_or_default()
            ));
        }
        return Ok(events);
    }
    Ok(match event.unwrap_or("call_accept") {
        "family" => crate::callback::catalogue::call::normal_life()
            .into_iter()
            .map(Planned::of)
            .collect(),
        name => {
            let kind = EventKind::named(name);
            vec![Planned {
                kind,
                name: name.to_string(),
            }]
        }
    })
}

/// Sends every call; true when stdout went away.
async fn send_all(run: &Rc<Run>, events: &[Planned]) -> bool {
    let args = &run.args;
    let deadline = args
        .duration_secs
        .map(|secs| Instant::now() + Duration::from_secs_f64(secs));
    let mut calls = futures_util::stream::iter(0..args.count)
        .take_while(|_| std::future::ready(deadline.is_none_or(|d| Instant::now() < d)))
        .map(|n| {
            let call_id = if args.count == 1 {
                args.call_id.clone()
            } else {
                format!("{}-{n}", args.call_id)
            };
            send_call(run, call_id, events)
        })
        .buffer_unordered(args.concurrency.max(1));
    while let Some(output_closed) = calls.next().await {
        if output_closed {
            return true;
        }
    }
    false
}

/// One call's events, in order; true when stdout went away.
async fn send_call(run: &Run, call_id: String, events: &[Planned]) -> bool {
    for (n, event) in events.iter().enumerate() {
        if n > 0 && run.args.pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(run.args.pause_ms)).await;
        }
        let ended = send_with_retries(run, &call_id, event).await;
        let mut tally = run.tally.lock().unwrap_or_else(|p| p.into_inner());
        match ended {
            Ended::Delivered { duplicate } => {
                tally.delivered += 1;
                tally.duplicates += usize::from(duplicate);
            }
            Ended::Refused => tally.refused_for_good += 1,
            Ended::GivenUp => tally.given_up += 1,
            Ended::OutputClosed => return true,
        }
    }
    false
}

/// An answer, or why there was none.
struct Attempt {
    status: u16,
    answer: Value,
    /// Set when nothing was answered (0 status).
    error: Option<String>,
}

async fn send_with_retries(run: &Run, call_id: &str, planned: &Planned) -> Ended {
    let args = &run.args;
    let event = planned.name.as_str();
    let product = planned.kind.map_or(Product::Zim, |k| k.family().product());
    // `--url` is In-app Chat's: the other products' paths are under it.
    let url = product.path_under(&run.url);
    let retries = if args.no_retry {
        0
    } else {
        args.schedule.len()
    };
    for attempt in 0..=retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs_f64(args.schedule[attempt - 1])).await;
        }
        let body = callback_body(run, call_id, planned);
        let names = product.envelope();
        let callback_id = body
            .as_object()
            .map(|fields| callback_id(fields, [names.nonce, names.timestamp, names.signature]));
        let sent_ms = unix_ms();
        let sent = Instant::now();
        let result = send_once(run, &url, &body).await;
        let answered_ms = unix_ms();
        {
            let mut tally = run.tally.lock().unwrap_or_else(|p| p.into_inner());
            tally.attempts += 1;
            if result.status != 0 {
                tally
                    .latencies_ms
                    .push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let ok = result.status == 200;
        let line = if args.jsonl {
            Some(
                json!({"call_id": call_id, "event": event,
                "family": planned.kind.map(|k| k.family().name()),
                "callback_id": callback_id, "attempt": attempt + 1,
                "status": result.status, "sent_ms": sent_ms, "answered_ms": answered_ms,
                "answer": result.answer, "error": result.error})
                .to_string(),
            )
        } else if !args.quiet || !ok {
            let what = result
                .error
                .clone()
                .unwrap_or_else(|| result.answer.to_string());
            // No answer has no status: say what happened, not "0".
            Some(match result.status {
                0 => format!("{event} key={call_id} attempt {}: {what}", attempt + 1),
                status => format!(
                    "{event} key={call_id} attempt {}: {status} {what}",
                    attempt + 1
                ),
            })
        } else {
            None
        };
        if let Some(line) = line {
            let written = run
                .stdout
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .line(&line);
            if written == Written::Closed {
                return Ended::OutputClosed;
            }
        }
        if ok {
            return Ended::Delivered {
                duplicate: result.answer["duplicate"] == json!(true),
            };
        }
        if is_unfixable(result.status) && !args.retry_all {
            hint(run, &result);
            return Ended::Refused;
        }
    }
    Ended::GivenUp
}

/// 4xx answers a retry cannot change (408 and 429 can).
fn is_unfixable(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// Says once what usually causes a refusal, on stderr.
fn hint(run: &Run, attempt: &Attempt) {
    let hint = match attempt.answer["error"].as_str() {
        Some("invalid_signature") => {
            "--secret must match the bridge's ZEGO_CALLBACK_SECRET".to_string()
        }
        Some("unknown_app") => "--appid must be one of the bridge's ZEGO_APP_IDS".to_string(),
        Some("stale_timestamp") => {
            "this machine's clock and the bridge's differ by more than TIMESTAMP_TOLERANCE_SECS"
                .to_string()
        }
        _ if attempt.status == 404 => format!(
            "{} is not the bridge's callback path: check --url or CALLBACK_PATH",
            run.url
        ),
        _ => return,
    };
    if !run.hinted.swap(true, Ordering::Relaxed) {
        eprintln!(
            "simulate: {} {}: not retried (--retry-all retries it as ZEGOCLOUD would); hint: {hint}",
            attempt.status,
            attempt.answer["error"].as_str().unwrap_or("refused")
        );
    }
}

async fn send_once(run: &Run, url: &str, body: &Value) -> Attempt {
    let request = run.client.post(url);
    let sent = if run.args.form {
        request
            .content_type("application/x-www-form-urlencoded")
            .send_body(sample::form_encode(body))
            .await
    } else {
        request
            .content_type("application/json")
            .send_body(body.to_string())
            .await
    };
    match sent {
        Ok(mut response) => {
            let bytes = response.body().await.unwrap_or_default();
            let answer = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            Attempt {
                status: response.status().as_u16(),
                answer,
                error: None,
            }
        }
        Err(e) => Attempt {
            status: 0,
            answer: Value::Null,
            error: Some(describe_send_error(url, &e)),
        },
    }
}

/// "connection refused: is the bridge listening on 127.0.0.1:8080?" rather than awc's words.
fn describe_send_error(url: &str, error: &awc::error::SendRequestError) -> String {
    let target = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(url);
    match error {
        awc::error::SendRequestError::Connect(awc::error::ConnectError::Io(io))
            if io.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            format!("connection refused: is the bridge listening on {target}?")
        }
        awc::error::SendRequestError::Timeout => format!("no answer from {target} within 30s"),
        other => format!("cannot send to {target}: {other}"),
    }
}

/// A number of seconds: finite and not negative (a NaN or negative pause would panic later).
fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(secs),
        _ => Err(format!("{text:?} is not a number of seconds (0 or more)")),
    }
}

/// A fresh attempt: new timestamp, nonce and signature, as ZEGOCLOUD sends each retry, with
/// `--data` and `--set` applied before signing.
fn callback_body(run: &Run, call_id: &str, planned: &Planned) -> Value {
    let args = &run.args;
    let timestamp = unix_ms() / 1000;
    let nonce = format!(
        "{}{}",
        unix_ms() % 1_000_000,
        NONCE_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut body = match planned.kind {
        Some(kind) => sample::callback(kind, &args.appid, call_id, timestamp, &nonce, &run.secret),
        None => json!({"appid": args.appid, "event": planned.name, "nonce": nonce,
            "timestamp": timestamp, "call_id": call_id}),
    };
    if let Some(fields) = body.as_object_mut() {
        fields.extend(args.data.clone().unwrap_or_default());
        fields.extend(args.sets.iter().cloned());
    }
    if !args.sets.iter().any(|(field, _)| field == "signature")
        && !args
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key("signature"))
    {
        sample::sign(&mut body, &run.secret);
    }
    body
}

/// Redraws one progress line on stderr every second (only when stderr is a terminal).
async fn show_progress(run: Rc<Run>, started: Instant) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let tally = run.tally.lock().unwrap_or_else(|p| p.into_inner());
        eprint!(
            "\r\x1b[Ksimulate: {} attempts, {} answered 200, {} refused, {} given up, {:.0}s",
            tally.attempts,
            tally.delivered,
            tally.refused_for_good,
            tally.given_up,
            started.elapsed().as_secs_f64()
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// "simulate: N callbacks, M answered 200 (D duplicates), R refused, K given up, in S s; …"
fn summary(tally: &Tally, elapsed: Duration) -> String {
    let mut latencies = tally.latencies_ms.clone();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let callbacks = tally.delivered + tally.refused_for_good + tally.given_up;
    let secs = elapsed.as_secs_f64();
    let counts = format!(
        "simulate: {callbacks} callbacks, {} answered 200 ({} duplicates), {} refused, {} given up, in {secs:.1}s; {} attempts",
        tally.delivered,
        tally.duplicates,
        tally.refused_for_good,
        tally.given_up,
        tally.attempts,
    );
    // A rate and latencies only of what was answered: none answered, none to report.
    if latencies.is_empty() {
        return format!("{counts}; nothing was answered");
    }
    format!(
        "{counts}, {:.1} answered callbacks/s, latency p50 {:.1} ms p99 {:.1} ms",
        (tally.delivered + tally.refused_for_good) as f64 / secs.max(0.001),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    )
}
