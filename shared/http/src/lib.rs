//! The outbound HTTPS set-up every upstream client (Ssemble, TikTok, clients' webhooks) starts
//! from: one TLS configuration per process, shared by all of them.
//!
//! Why: reqwest's default rustls verifier reads the system's CA store anew for each client it
//! builds (about 3 ms each on a Debian `/etc/ssl/certs` of 292 entries; benchmark 4's cold-start
//! split), and a function builds up to three clients at its cold start. Mozilla's roots
//! (`webpki-roots`, the set reqwest used by default before 0.13) are compiled in: no file is read
//! and nothing is parsed, once or per client. The AWS SDK keeps its own (system) roots.

use std::sync::{Arc, LazyLock};

/// `h2` first, as reqwest offers it by itself when HTTP/2 is enabled.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

static TLS: LazyLock<Result<rustls::ClientConfig, rustls::Error>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
});

/// A client builder on the shared TLS configuration; callers add their own timeouts and
/// headers. The configuration is built on the first call, in microseconds.
pub fn client_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match &*TLS {
        Ok(tls) => builder.tls_backend_preconfigured(tls.clone()),
        // Cannot happen with aws-lc-rs's default provider; reqwest's own roots then serve.
        Err(_) => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_configuration_builds_and_offers_h2_then_http1() {
        let Ok(tls) = &*TLS else {
            panic!("the TLS configuration did not build");
        };
        assert_eq!(tls.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(client_builder().build().is_ok());
    }
}
