//! The accept loop: plain TCP or native TLS (rustls), HTTP/1.1 served by
//! hyper with a header-read timeout (a client that sends its request head
//! too slowly is disconnected instead of holding a connection), the peer
//! address handed to the router as `ConnectInfo`, and graceful shutdown
//! (stop accepting, let in-flight requests finish).
//!
//! `axum::serve` does neither TLS nor a header timeout, hence this loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// Certificate chain and private key files (PEM) for native TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Reads the certificate chain and key, checking that they make a usable
/// server configuration (so a bad file fails at start, not per connection).
pub fn tls_acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the TLS certificate chain {}", files.cert.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a PEM private key from {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!("the TLS key {} does not fit the certificate {}", files.key.display(), files.cert.display())
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` until `signal` completes, then stops
/// accepting and waits for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    signal: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let http = Arc::new(http);
    tokio::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors, mostly: wait a little instead
                    // of spinning, and keep serving the connections we have.
                    metrics::counter!("hearth_accept_errors_total").increment(1);
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let watcher = graceful.watcher();
        let service = router.clone().map_request(move |mut request: axum::extract::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let service = TowerToHyperService::new(service);
        let http = http.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let outcome = match tls {
                None => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                Some(acceptor) => match handshake(&acceptor, stream, header_timeout).await {
                    Ok(stream) => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                    Err(error) => {
                        metrics::counter!("hearth_tls_handshake_failures_total").increment(1);
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(error) = outcome {
                if error.is_timeout() {
                    metrics::counter!("hearth_header_timeouts_total").increment(1);
                    tracing::debug!(%peer, "request head not received in time; connection closed");
                } else {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A TLS handshake, bounded like a request head: a client that starts one
/// and stalls does not hold the connection.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    limit: Duration,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake not finished in time")),
    }
}
