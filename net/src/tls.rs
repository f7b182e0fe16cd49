//! TLS for client connections (rustls), configured with Redis's `tls-*`
//! parameters. Encryption ends here: the engine sees plaintext.
//!
//! What maps onto rustls and what cannot:
//! - `tls-protocols`: TLSv1.2 and TLSv1.3. TLSv1 and TLSv1.1 are not
//!   implemented by rustls; asking only for them is a start-up error, asking
//!   for them with newer ones keeps the newer ones (with a warning).
//! - `tls-ciphersuites` (TLS 1.3) and `tls-ciphers` (TLS 1.2): OpenSSL's
//!   names for the suites rustls implements; unknown names are ignored with
//!   a warning, and a list with no usable suite is a start-up error.
//! - `tls-auth-clients yes|optional|no`: a client certificate is required,
//!   checked if offered, or not asked for. `yes` and `optional` need
//!   `tls-ca-cert-file` or `tls-ca-cert-dir`, as in Redis.
//! - The verified client certificate's subject CN goes to the engine
//!   ([`peer_common_name`], `Input::PeerCertificate`), which uses it for
//!   `tls-auth-clients-user CN`.

use cinnabar_engine::Config;
use rustls::crypto::ring as provider;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("Failed to load {path}: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &data[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("Failed to load {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("Failed to load {path}: no certificate found"));
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let data = std::fs::read(path).map_err(|e| format!("Failed to load {path}: {e}"))?;
    rustls_pemfile::private_key(&mut &data[..])
        .map_err(|e| format!("Failed to load {path}: {e}"))?
        .ok_or_else(|| format!("Failed to load {path}: no private key found"))
}

/// The trusted roots for client certificates.
fn roots(cfg: &Config) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let mut files = Vec::new();
    if !cfg.tls_ca_cert_file.is_empty() {
        files.push(cfg.tls_ca_cert_file.clone());
    }
    if !cfg.tls_ca_cert_dir.is_empty() {
        let dir = std::fs::read_dir(&cfg.tls_ca_cert_dir)
            .map_err(|e| format!("Failed to load {}: {e}", cfg.tls_ca_cert_dir))?;
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.path().display().to_string())
            .collect();
        names.sort();
        files.extend(names);
    }
    for f in files {
        // A CA directory may hold other files (hash links, CRLs).
        let Ok(certs) = read_certs(&f) else { continue };
        for c in certs {
            store
                .add(c)
                .map_err(|e| format!("Failed to load CA certificate {f}: {e}"))?;
        }
    }
    Ok(store)
}

/// TLS 1.2 and 1.3 suite names (OpenSSL's, as Redis takes them) of the
/// suites rustls implements.
const SUITE_NAMES: &[(&str, &str)] = &[
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// Keeps the suites of one protocol generation named in an OpenSSL-style
/// list (`:`-separated); `None` when no list is configured.
fn filter_suites(
    all: &[SupportedCipherSuite],
    list: &str,
    tls13: bool,
) -> Option<Vec<SupportedCipherSuite>> {
    if list.trim().is_empty() {
        return None;
    }
    let mut keep = Vec::new();
    for name in list.split(':').map(str::trim).filter(|n| !n.is_empty()) {
        let rustls_name = SUITE_NAMES
            .iter()
            .find(|(o, r)| o.eq_ignore_ascii_case(name) || r.eq_ignore_ascii_case(name))
            .map(|(_, r)| *r);
        let found = all.iter().find(|s| {
            let is13 = matches!(s, SupportedCipherSuite::Tls13(_));
            is13 == tls13 && Some(format!("{:?}", s.suite()).as_str()) == rustls_name
        });
        match found {
            Some(s) => keep.push(*s),
            None => tracing::warn!("TLS cipher suite '{name}' is not supported; ignored"),
        }
    }
    Some(keep)
}

/// Builds the acceptor for `tls-port`, or the reason it cannot be.
pub fn acceptor(cfg: &Config) -> Result<TlsAcceptor, String> {
    if cfg.tls_cert_file.is_empty() {
        return Err("No tls-cert-file configured!".into());
    }
    if cfg.tls_key_file.is_empty() {
        return Err("No tls-key-file configured!".into());
    }
    let auth = cfg.tls_auth_clients.as_str();
    if (auth == "yes" || auth == "optional")
        && cfg.tls_ca_cert_file.is_empty()
        && cfg.tls_ca_cert_dir.is_empty()
    {
        return Err("Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, tls-replication or tls-auth-clients are enabled!".into());
    }
    // Protocol versions.
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if cfg.tls_protocols.trim().is_empty() {
        versions.extend([&rustls::version::TLS12, &rustls::version::TLS13]);
    } else {
        for p in cfg.tls_protocols.split_whitespace() {
            match p.to_ascii_lowercase().as_str() {
                "tlsv1.2" => versions.push(&rustls::version::TLS12),
                "tlsv1.3" => versions.push(&rustls::version::TLS13),
                "tlsv1" | "tlsv1.1" => {
                    tracing::warn!("{p} is not supported by rustls; ignored")
                }
                _ => {
                    return Err("Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'.".into())
                }
            }
        }
        if versions.is_empty() {
            return Err(
                "tls-protocols: none of the requested protocols is supported (only TLSv1.2 and TLSv1.3)"
                    .into(),
            );
        }
    }
    // Cipher suites: TLS 1.3 from tls-ciphersuites, TLS 1.2 from tls-ciphers.
    let base = provider::default_provider();
    let mut suites: Vec<SupportedCipherSuite> = Vec::new();
    let t13 = filter_suites(&base.cipher_suites, &cfg.tls_ciphersuites, true);
    let t12 = filter_suites(&base.cipher_suites, &cfg.tls_ciphers, false);
    for s in &base.cipher_suites {
        let is13 = matches!(s, SupportedCipherSuite::Tls13(_));
        let allowed = if is13 { &t13 } else { &t12 };
        match allowed {
            None => suites.push(*s),
            Some(list) if list.iter().any(|x| x.suite() == s.suite()) => suites.push(*s),
            Some(_) => {}
        }
    }
    if suites.is_empty() {
        return Err("no usable TLS cipher suite in tls-ciphersuites / tls-ciphers".into());
    }
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..base
    });
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let builder = match auth {
        "no" => builder.with_no_client_auth(),
        _ => {
            let roots = Arc::new(roots(cfg)?);
            let v = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let v = if auth == "optional" {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| format!("TLS client verification: {e}"))?,
            )
        }
    };
    let mut server = builder
        .with_single_cert(
            read_certs(&cfg.tls_cert_file)?,
            read_key(&cfg.tls_key_file)?,
        )
        .map_err(|e| format!("TLS certificate/key: {e}"))?;
    server.ignore_client_order = cfg.tls_prefer_server_ciphers;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The subject CN of the certificate the client presented (rustls has
/// already verified it against the CA, or the handshake failed), if any.
pub fn peer_common_name(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
