//! The shared TLS configuration still verifies: a server whose certificate no root of it vouches
//! for is refused, while the same server, trusted explicitly, answers (so the refusal is the
//! verification's, not a broken server's). `fixtures/` holds a CA and a `localhost` certificate
//! it signed, made for this test only with `openssl` (P-256, 100 years); the CA's key was
//! discarded.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CERT: &[u8] = include_bytes!("fixtures/localhost-test-only.crt.pem");
const KEY: &[u8] = include_bytes!("fixtures/localhost-test-only.key.pem");
const CA: &[u8] = include_bytes!("fixtures/test-only-ca.crt.pem");

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS server on localhost answering every request `200 ok`; returns its port.
async fn serve() -> Result<u16, Box<dyn std::error::Error>> {
    let cert = CertificateDer::from_pem_slice(CERT)?;
    let key = PrivateKeyDer::from_pem_slice(KEY)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    Ok(port)
}

#[tokio::test]
async fn a_certificate_no_root_vouches_for_is_refused() -> Result<(), Box<dyn std::error::Error>> {
    let port = serve().await?;
    let url = format!("https://localhost:{port}/");

    let refused = reelay_http::client_builder()
        .http1_only()
        .build()?
        .get(&url)
        .send()
        .await;
    let err = refused
        .err()
        .ok_or("an untrusted certificate was accepted")?;
    assert!(err.is_connect(), "{err:?}");

    // Control: trusting the test CA, the same server answers.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(CA)?)?;
    let trusting = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let answer = reqwest::Client::builder()
        .tls_backend_preconfigured(trusting)
        .http1_only()
        .build()?
        .get(&url)
        .send()
        .await?;
    assert_eq!(answer.status(), 200);
    Ok(())
}
