//! Certificates: the server's identity (made at start, or read from PEM files) and the trust a
//! client places in it.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::resume::ServerSessions;
use crate::TransportError;

/// Names a self-signed certificate is valid for by default: what loopback clients dial.
pub const DEFAULT_CERT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The server's certificate chain and private key.
pub struct ServerIdentity {
    /// The certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// The certificate chain as PEM, for clients to trust.
    pub cert_chain_pem: String,
    /// Sessions clients may resume, shared by every listener presenting this identity (and by
    /// its clones).
    pub sessions: Arc<ServerSessions>,
}

impl Clone for ServerIdentity {
    fn clone(&self) -> Self {
        Self {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            cert_chain_pem: self.cert_chain_pem.clone(),
            sessions: self.sessions.clone(),
        }
    }
}

impl ServerIdentity {
    /// A fresh self-signed certificate valid for `names` (DNS names or IP addresses).
    pub fn self_signed<S: AsRef<str>>(names: &[S]) -> Result<Self, TransportError> {
        let names: Vec<String> = names.iter().map(|n| n.as_ref().to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TransportError::Tls(format!("generating a certificate: {e}")))?;
        let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
        Ok(Self {
            cert_chain: vec![made.cert.der().clone()],
            key: key.into(),
            cert_chain_pem: made.cert.pem(),
            sessions: ServerSessions::new(),
        })
    }

    /// Reads a PEM certificate chain and a PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let cert_chain = read_certs(cert)?;
        let cert_chain_pem = std::fs::read_to_string(cert)
            .map_err(|e| TransportError::Tls(format!("reading {}: {e}", cert.display())))?;
        let key_path = key;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| TransportError::Tls(format!("reading key {}: {e}", key.display())))?;
        // Checked here, not only where a TLS or QUIC listener is configured: a server started
        // with TCP or WS alone would otherwise take a wrong pair without a word.
        rustls::sign::CertifiedKey::from_der(cert_chain.clone(), key.clone_key(), &provider())
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => TransportError::Tls(format!(
                    "{} is not the private key of the first certificate in {}",
                    key_path.display(),
                    cert.display()
                )),
                e => TransportError::Tls(format!("key {}: {e}", key_path.display())),
            })?;
        Ok(Self {
            cert_chain,
            key,
            cert_chain_pem,
            sessions: ServerSessions::new(),
        })
    }

    /// What a client needs to trust this identity.
    pub fn client_trust(&self) -> ClientTrust {
        ClientTrust {
            roots: self.cert_chain.clone(),
        }
    }
}

/// The certificates a client accepts as roots when it verifies the server.
#[derive(Clone, Debug)]
pub struct ClientTrust {
    /// Trusted root (or self-signed leaf) certificates.
    pub roots: Vec<CertificateDer<'static>>,
}

impl ClientTrust {
    /// Trusts the certificates in a PEM file (for a self-signed server, its own certificate).
    pub fn from_pem_file(path: &Path) -> Result<Self, TransportError> {
        Ok(Self {
            roots: read_certs(path)?,
        })
    }

    pub(crate) fn root_store(&self) -> Result<Arc<rustls::RootCertStore>, TransportError> {
        let mut store = rustls::RootCertStore::empty();
        for cert in &self.roots {
            store
                .add(cert.clone())
                .map_err(|e| TransportError::Tls(format!("adding a trusted certificate: {e}")))?;
        }
        Ok(Arc::new(store))
    }
}

/// The crypto provider every TLS configuration here uses (ring).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let err = |e: &dyn std::fmt::Display| {
        TransportError::Tls(format!("reading certificates from {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    if certs.is_empty() {
        return Err(err(&"no CERTIFICATE block found"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pem_reads_back() {
        let id = ServerIdentity::self_signed(&DEFAULT_CERT_NAMES).unwrap();
        let dir = std::env::temp_dir().join(format!("imbench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cert.pem");
        std::fs::write(&path, &id.cert_chain_pem).unwrap();
        let trust = ClientTrust::from_pem_file(&path).unwrap();
        assert_eq!(trust.roots, id.cert_chain);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A certificate with another certificate's key is refused when the files are read,
    /// whatever listeners use them; its own key is taken.
    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("imbench-tls-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a.example".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.example".to_string()]).unwrap();
        std::fs::write(dir.join("a.pem"), a.cert.pem()).unwrap();
        std::fs::write(dir.join("a.key"), a.signing_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("b.key"), b.signing_key.serialize_pem()).unwrap();
        let err = ServerIdentity::from_pem_files(&dir.join("a.pem"), &dir.join("b.key"))
            .err()
            .expect("refused");
        assert!(
            err.to_string()
                .contains("b.key is not the private key of the first certificate in"),
            "{err}"
        );
        assert!(ServerIdentity::from_pem_files(&dir.join("a.pem"), &dir.join("a.key")).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_or_empty_cert_file_is_an_error() {
        let err = ClientTrust::from_pem_file(Path::new("/nonexistent/cert.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
