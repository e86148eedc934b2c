//! `sign` and `verify`: make or check a ZEGOCLOUD callback signature by hand, e.g. to test the
//! bridge with curl or to find out why a captured callback was refused.

use std::io::Read;

use bytes::Bytes;
use clap::Args;

use crate::callback::catalogue::Product;
use crate::callback::policy::{parse_secrets, CallbackPolicy};
use crate::callback::{body, signature, verify};
use crate::clock::unix_ms;

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The callback secret (ZEGO_CALLBACK_SECRET; of a comma-separated list, the first).
    #[arg(long, env = "ZEGO_CALLBACK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The callback's `timestamp`, exactly as it will be sent [default: now, in seconds].
    #[arg(long)]
    pub timestamp: Option<String>,
    /// The callback's `nonce`, exactly as it will be sent.
    #[arg(long)]
    pub nonce: String,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The callback secret(s), comma-separated as in ZEGO_CALLBACK_SECRET.
    #[arg(long, env = "ZEGO_CALLBACK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The callback body: inline, `@file`, or read from stdin when absent.
    #[arg(long, value_name = "BODY|@FILE")]
    pub data: Option<String>,
    /// Its Content-Type.
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
    /// Also check the timestamp is within this many seconds of now (0: not checked).
    #[arg(long, default_value_t = 0)]
    pub tolerance_secs: u64,
    /// The product that sent it (the URL it was posted to): zim, rtc, recording or ai-agent.
    #[arg(long, default_value = "zim", value_parser = product)]
    pub product: Product,
}

fn product(name: &str) -> Result<Product, String> {
    Product::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Product::ALL.iter().map(|p| p.name()).collect();
        format!("must be one of {}", names.join(", "))
    })
}

/// Prints `timestamp`, `nonce` and `signature` as JSON fields to paste into a body.
pub fn sign(args: SignArgs) -> i32 {
    let secret = args.secret.split(',').next().unwrap_or_default().trim();
    if secret.is_empty() {
        eprintln!("sign: --secret must not be empty");
        return 2;
    }
    let timestamp = args
        .timestamp
        .unwrap_or_else(|| (unix_ms() / 1000).to_string());
    let signature = signature::sign(secret, &timestamp, &args.nonce);
    println!("{signature}");
    eprintln!(
        "sign: \"timestamp\":{timestamp},\"nonce\":{:?},\"signature\":\"{signature}\"",
        args.nonce
    );
    0
}

/// The largest body `verify` reads: 16 MiB, past any sensible `MAX_BODY_BYTES`.
const MAX_VERIFY_BYTES: u64 = 16 << 20;

/// Runs the bridge's own checks on a body: exit 0 and which secret matched, or exit 1 and why.
pub fn check(args: VerifyArgs) -> i32 {
    // At most what the bridge itself would read (the largest MAX_BODY_BYTES), plus one byte
    // to tell "too large" apart: a huge file or an endless pipe is refused, not slurped.
    let bounded = |reader: &mut dyn Read| {
        let mut body = Vec::new();
        reader
            .take(MAX_VERIFY_BYTES + 1)
            .read_to_end(&mut body)
            .map(|_| body)
    };
    let text = match args.data.as_deref() {
        Some(path) if path.starts_with('@') => {
            std::fs::File::open(&path[1..]).and_then(|mut file| bounded(&mut file))
        }
        Some(inline) => Ok(inline.as_bytes().to_vec()),
        None => bounded(&mut std::io::stdin()),
    };
    if text
        .as_ref()
        .is_ok_and(|t| t.len() as u64 > MAX_VERIFY_BYTES)
    {
        eprintln!(
            "verify: the body is over {MAX_VERIFY_BYTES} bytes, more than the bridge would read"
        );
        return 2;
    }
    let text = match text {
        Ok(text) => text,
        Err(e) => {
            eprintln!("verify: cannot read the body: {e}");
            return 2;
        }
    };
    let secrets = match parse_secrets(&args.secret) {
        Ok(secrets) => secrets,
        Err(why) => {
            eprintln!("verify: --secret {why}");
            return 2;
        }
    };
    let count = secrets.len();
    let mut policy = CallbackPolicy::with_secret("");
    policy.secrets = secrets;
    policy.timestamp_tolerance =
        (args.tolerance_secs > 0).then(|| std::time::Duration::from_secs(args.tolerance_secs));
    policy.unknown_events = crate::callback::policy::UnknownEvents::Forward;
    let checked = body::decode(Bytes::from(text), Some(&args.content_type))
        .and_then(|decoded| verify(decoded, &policy, args.product, unix_ms() / 1000));
    match checked {
        Ok(callback) => {
            println!(
                "valid: signed with secret {} of {count}; family {} event {} key {} callback id {}",
                callback.signed_by_secret_at,
                callback.family().map_or("-", |f| f.name()),
                callback.event,
                callback.key.as_deref().unwrap_or("-"),
                callback.id
            );
            0
        }
        Err(rejection) => {
            println!("invalid: {} ({rejection})", rejection.code());
            1
        }
    }
}
