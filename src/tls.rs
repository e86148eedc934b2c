//! HTTPS ingress: `TLS_CERT_FILE` and `TLS_KEY_FILE` (PEM) → a rustls server configuration.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Certificate chain and private key for serving HTTPS (`TLS_CERT_FILE`, `TLS_KEY_FILE`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads the certificate chain and key; every failure names the variable and the file.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, String> {
    let cert_error = |why: String| format!("TLS_CERT_FILE {}: {why}", files.cert.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_error("no certificate in the file".into()));
    }
    // The key's contents never appear in an error: only its path.
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "TLS_KEY_FILE {}: cannot read a private key: {e}",
            files.key.display()
        )
    })?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("TLS_CERT_FILE/TLS_KEY_FILE do not match or are unusable: {e}"))?;
    // HTTP/1.1 only (see startup/http_server.rs): a client asking for h2 gets HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
