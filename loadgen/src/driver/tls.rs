//! TLS to other systems' servers (NATS, MQTT, XMPP): the trust a target's `ca=FILE` names, or
//! the machine's own roots without one, and a connection that is plain TCP or TLS over it, in
//! halves the drivers read and write.
//!
//! The halves are an enum rather than a boxed stream so that a plain connection, the common
//! case in a benchmark, reads and writes its socket as it did before TLS existed here.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How a target's clients set up TLS: the roots they trust, read once for every client.
#[derive(Clone)]
pub struct TlsClient {
    /// The CA file given, if any; otherwise the machine's roots.
    ca: Option<PathBuf>,
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").field("ca", &self.ca).finish()
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        self.ca == other.ca
    }
}

impl Eq for TlsClient {}

impl TlsClient {
    /// Trusts the certificates in the PEM file `ca`, or the machine's roots when there is
    /// none; TLS 1.2 or 1.3, as the server chooses.
    pub fn new(ca: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) if path.as_os_str().is_empty() => {
                return Err("ca= needs a file: ca=/path/to/ca.pem".into())
            }
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("ca={}: {e}", path.display()))?;
                if certs.is_empty() {
                    return Err(format!(
                        "ca={}: no CERTIFICATE in it (a PEM file of the certificates that sign the server's)",
                        path.display()
                    ));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| format!("ca={}: {e}", path.display()))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    // One unreadable root of the machine's does not stop the others.
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(
                        "this machine has no trusted roots (Debian: the ca-certificates package); give the server's CA with ca=FILE".into(),
                    );
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Every client shares this configuration: with rustls's default session cache, each
        // after the first would resume another's session, and `connect` would not include
        // the full handshake a client of its own makes.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            ca: ca.map(Path::to_path_buf),
            config: Arc::new(config),
        })
    }

    /// The rustls configuration, for a library that makes its own connections.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// `TLS (CA FILE)` or `TLS (system roots)`.
    pub fn describe(&self) -> String {
        match &self.ca {
            Some(ca) => format!("TLS, CA {}", ca.display()),
            None => "TLS, system roots".to_string(),
        }
    }

    /// The TLS handshake over `tcp`, verifying that the server's certificate is valid for
    /// `name` (a host name or an IP address); `plain` is how the target is written without TLS,
    /// for a port that does not speak it.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        name: &str,
        plain: &str,
    ) -> Result<TlsStream<TcpStream>, String> {
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| format!("{name:?} is not a name a certificate can be checked against"))?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| self.handshake_failed(&e, name, plain))
    }

    /// What a failed handshake's error means, in words, with what to do about it.
    pub fn handshake_failed(&self, e: &io::Error, name: &str, plain: &str) -> String {
        use rustls::CertificateError as C;
        let Some(rustls::Error::InvalidCertificate(why)) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            // Garbage or a reset where a TLS answer should be: a listener that speaks plain.
            return format!(
                "the TLS handshake failed: {e} (does this port speak TLS? A plain listener takes {plain})"
            );
        };
        let trusted = match &self.ca {
            Some(ca) => format!("a certificate in {}", ca.display()),
            None => "a root this machine trusts (give the CA that signed it, or a self-signed server's own certificate, with ca=FILE)".to_string(),
        };
        let what = match why {
            C::UnknownIssuer => format!("it is not signed by {trusted}"),
            // A trusted certificate bears the issuer's name, but another key signed it (two
            // self-signed certificates made with the same subject, say).
            C::BadSignature => format!(
                "it is not signed by {trusted} (one there has its issuer's name, but another key signed it)"
            ),
            // A trusted certificate bears the issuer's name but holds a key of another kind
            // (a self-signed server certificate for `localhost` beside Debian's RSA snake-oil
            // one, which /etc/ssl/certs holds under the same name).
            C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => format!(
                "it is not signed by {trusted}; one there has its issuer's name, but a key of another kind"
            ),
            C::NotValidForName => format!("it is not valid for {name}: give the target by a name the certificate holds"),
            C::NotValidForNameContext { presented, .. } => format!(
                "it is for {} and not for {name}: give the target by a name the certificate holds",
                presented
                    .iter()
                    .map(|n| presented_name(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            C::Expired | C::ExpiredContext { .. } => "it has expired".to_string(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "it is not valid yet (is this machine's clock right?)".to_string()
            }
            other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                "the server presents a CA certificate as its own: a self-signed certificate made with CA:TRUE (as openssl req -x509 makes it unless told otherwise); make it with -addext basicConstraints=critical,CA:FALSE, or sign a server certificate with that CA and give the CA as ca=FILE".to_string()
            }
            other => format!("{other:?}"),
        };
        format!("the server's certificate is refused: {what}")
    }
}

/// A target's TLS, from its options: `enabled` by its scheme or an option, trusting the file of
/// `ca=` (`ca` as written in the URL, percent-encoded) or else the machine's roots; `enable`
/// says how a target asks for TLS, for a `ca=` given without it.
pub fn from_options(
    enabled: bool,
    ca: Option<&str>,
    enable: &str,
) -> Result<Option<TlsClient>, String> {
    let ca = ca
        .map(|v| {
            super::url::percent_decode(v).ok_or_else(|| {
                format!("ca={v}: a % that is not %XX (write % in a file name as %25)")
            })
        })
        .transpose()?;
    match (enabled, ca) {
        (false, Some(_)) => Err(format!("ca= is for TLS: {enable}")),
        (false, None) => Ok(None),
        (true, ca) => TlsClient::new(ca.as_deref().map(Path::new)).map(Some),
    }
}

/// The half of a connection a driver reads.
pub enum ReadHalf {
    /// Plain TCP.
    Plain(OwnedReadHalf),
    /// TLS over TCP.
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The half of a connection a driver writes.
pub enum WriteHalf {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS over TCP.
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

/// A plain connection's halves.
pub fn split_plain(tcp: TcpStream) -> (ReadHalf, WriteHalf) {
    let (r, w) = tcp.into_split();
    (ReadHalf::Plain(r), WriteHalf::Plain(w))
}

/// A TLS connection's halves.
pub fn split_tls(tls: TlsStream<TcpStream>) -> (ReadHalf, WriteHalf) {
    let (r, w) = tokio::io::split(tls);
    (ReadHalf::Tls(r), WriteHalf::Tls(w))
}

/// The TCP connection of two plain halves, for a protocol that starts TLS on it (STARTTLS);
/// `None` when they are not plain halves of one connection.
pub fn reunite_plain(read: ReadHalf, write: WriteHalf) -> Option<TcpStream> {
    match (read, write) {
        (ReadHalf::Plain(r), WriteHalf::Plain(w)) => r.reunite(w).ok(),
        _ => None,
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(r) => Pin::new(r).poll_read(cx, buf),
            Self::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(w) => Pin::new(w).poll_write(cx, buf),
            Self::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(w) => Pin::new(w).poll_flush(cx),
            Self::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(w) => Pin::new(w).poll_shutdown(cx),
            Self::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            Self::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(w) => w.is_write_vectored(),
            Self::Tls(w) => w.is_write_vectored(),
        }
    }
}

/// Starts a shutdown of the write half without waiting for it.
pub fn shutdown_now(w: &mut WriteHalf) -> std::io::Result<()> {
    use tokio::io::AsyncWrite;
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(w).poll_shutdown(&mut cx) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => Ok(()),
    }
}

/// A CA file (a self-signed certificate for `localhost`) for tests that need TLS set up
/// without relying on the machine's roots; its folder goes when the value is dropped.
#[cfg(test)]
pub(crate) struct TestCaFile {
    dir: PathBuf,
    pub path: PathBuf,
}

#[cfg(test)]
impl TestCaFile {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("imbench-ca-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder for the CA file");
        let id =
            imbench_transport::tls::ServerIdentity::self_signed(&["localhost"]).expect("a cert");
        let path = dir.join("ca.pem");
        std::fs::write(&path, &id.cert_chain_pem).expect("the CA file");
        Self { dir, path }
    }
}

#[cfg(test)]
impl Drop for TestCaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A name a certificate holds, as rustls reports it (`DnsName("chat.example")`,
/// `IpAddress(10.0.0.5)`), as a person writes it.
fn presented_name(reported: &str) -> &str {
    ["DnsName(", "IpAddress("]
        .iter()
        .find_map(|kind| reported.strip_prefix(kind)?.strip_suffix(')'))
        .map_or(reported, |inner| inner.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("imbench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TlsClient::new(Some(&empty)).unwrap_err();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let e = TlsClient::new(Some(Path::new(""))).unwrap_err();
        assert!(e.contains("needs a file"), "{e}");
        let e = TlsClient::new(Some(&dir.join("missing.pem"))).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        let id = imbench_transport::tls::ServerIdentity::self_signed(&["localhost"]).unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(&good, &id.cert_chain_pem).unwrap();
        let client = TlsClient::new(Some(&good)).unwrap();
        assert!(client.describe().contains("ca.pem"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_handshake_says_what_to_do() {
        // As without ca=, whatever roots this machine has (none needed here).
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let system = TlsClient {
            ca: None,
            config: Arc::new(config),
        };
        let cert = |why: rustls::CertificateError| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(why),
            )
        };
        let e = system.handshake_failed(
            &cert(rustls::CertificateError::UnknownIssuer),
            "h",
            "nats://",
        );
        assert!(
            e.contains("not signed by a root this machine trusts"),
            "{e}"
        );
        assert!(e.contains("ca=FILE"), "{e}");
        // A root of the same name with a key of another kind (Debian's snake-oil certificate
        // for `localhost`): no OIDs in bytes, just that it is not signed by a trusted one.
        let e = system.handshake_failed(
            &cert(
                rustls::CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                    signature_algorithm_id: vec![6, 8, 42],
                    public_key_algorithm_id: vec![6, 9, 42],
                },
            ),
            "localhost",
            "nats://",
        );
        assert!(
            e.contains("not signed by a root this machine trusts") && !e.contains("[6,"),
            "{e}"
        );
        let e = system.handshake_failed(
            &cert(rustls::CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("127.0.0.1").unwrap(),
                presented: vec!["DnsName(\"example.org\")".into()],
            }),
            "127.0.0.1",
            "nats://",
        );
        assert!(
            e.contains("it is for example.org and not for 127.0.0.1"),
            "{e}"
        );
        assert_eq!(super::presented_name("IpAddress(10.0.0.5)"), "10.0.0.5");
        assert_eq!(super::presented_name("other"), "other");
        let e = system.handshake_failed(
            &io::Error::new(io::ErrorKind::ConnectionReset, "reset"),
            "h",
            "mqtt://",
        );
        assert!(e.contains("A plain listener takes mqtt://"), "{e}");
    }
}
