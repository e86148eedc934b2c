//! `healthcheck`: GET /healthz over HTTP, or HTTPS when the bridge serves it; exit 0 or 1, so a
//! container image needs no curl.
//!
//! Over HTTPS the server's certificate is not checked against a CA: the probe connects to its
//! own process on a loopback address, for which no certificate names a host. The handshake is
//! still verified (the server must hold the certificate's key).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

/// How long the whole probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// Address the bridge listens on; 0.0.0.0 is asked on 127.0.0.1.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: String,
    /// The bridge's certificate (as it serves it): when set, the probe speaks HTTPS.
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
}

pub async fn run(args: HealthcheckArgs) -> i32 {
    let addr = args
        .addr
        .replacen("0.0.0.0", "127.0.0.1", 1)
        .replacen("[::]", "[::1]", 1);
    let https = args.tls_cert_file.is_some();
    let scheme = if https { "https" } else { "http" };
    let url = format!("{scheme}://{addr}/healthz");
    let probed = tokio::task::spawn_blocking(move || probe(&addr, https)).await;
    match probed {
        Ok(Ok(200)) => 0,
        Ok(Ok(status)) => {
            eprintln!("{url}: {status}");
            1
        }
        Ok(Err(e)) => {
            eprintln!("{url}: {e}");
            1
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            1
        }
    }
}

/// The status code of `GET /healthz`.
fn probe(addr: &str, https: bool) -> std::io::Result<u16> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    if https {
        let config = super::tls_client::any_certificate().map_err(std::io::Error::other)?;
        let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
        let connection =
            ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let mut tls = StreamOwned::new(connection, stream);
        tls.write_all(request.as_bytes())?;
        read_answer(&mut tls, &mut answer)?;
    } else {
        let mut stream = stream;
        stream.write_all(request.as_bytes())?;
        read_answer(&mut stream, &mut answer)?;
    }
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .filter(|_| text.starts_with("HTTP/"))
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {:.40}", text)))
}

/// Reads until the peer closes; a TLS peer that closes without `close_notify` is fine here.
fn read_answer(stream: &mut impl Read, answer: &mut Vec<u8>) -> std::io::Result<()> {
    match stream.read_to_end(answer) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => Ok(()),
        other => other.map(|_| ()),
    }
}
