//! What a certificate given with `--cert` tells the clients that will check it: the names and
//! addresses it is valid for, when, and whether it is a CA's. The server loads any chain
//! rustls accepts, but a client refuses a leaf that has expired, is a CA's, or is for other
//! names than the address it dials; the binary warns of those at start, and the command it
//! prints names the server a client must check when its address is not in the certificate.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;

/// The leaf certificate's facts a client's verification turns on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// DNS names (subject alternative names), as written (`*.example.com` included).
    pub dns_names: Vec<String>,
    /// IP addresses (subject alternative names).
    pub ips: Vec<IpAddr>,
    /// Not valid before this time.
    pub not_before: SystemTime,
    /// Not valid after this time.
    pub not_after: SystemTime,
    /// A CA's certificate (basic constraints `CA:TRUE`), which a client refuses as a server's.
    pub is_ca: bool,
}

/// Why a certificate's facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CertFactsError {
    /// The text holds no PEM block.
    #[error("no PEM certificate in it")]
    NoPem,
    /// The first PEM block is not an X.509 certificate that parses.
    #[error("its first certificate does not parse: {0}")]
    Parse(String),
}

impl CertFacts {
    /// The facts of the first certificate (the leaf) of a PEM chain.
    pub fn of_pem(pem: &[u8]) -> Result<Self, CertFactsError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| CertFactsError::NoPem)?;
        let cert = pem
            .parse_x509()
            .map_err(|e| CertFactsError::Parse(e.to_string()))?;
        let mut dns_names = Vec::new();
        let mut ips = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => dns_names.push((*n).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(b)) if b.value.ca);
        let validity = cert.validity();
        Ok(Self {
            dns_names,
            ips,
            not_before: at(validity.not_before.timestamp()),
            not_after: at(validity.not_after.timestamp()),
            is_ca,
        })
    }

    /// Whether a client that dials `ip` and checks no other name accepts the certificate's
    /// name: the address is among its IP addresses.
    pub fn covers(&self, ip: IpAddr) -> bool {
        self.ips.contains(&ip)
    }

    /// What a client will refuse in it at `now`, each said as a warning the server prints: an
    /// expired or not yet valid certificate, a CA's.
    pub fn problems(&self, now: SystemTime) -> Vec<String> {
        let mut said = Vec::new();
        if now > self.not_after {
            said.push(format!(
                "it expired on {}: QUIC, TLS and WSS clients will refuse it",
                day(self.not_after)
            ));
        } else if now < self.not_before {
            said.push(format!(
                "it is not valid before {}: QUIC, TLS and WSS clients will refuse it until then",
                day(self.not_before)
            ));
        }
        if self.is_ca {
            said.push(
                "it is a CA's certificate (basicConstraints CA:TRUE, as `openssl req -x509` makes by default), which clients refuse as a server's: make it with `-addext basicConstraints=critical,CA:FALSE`, or give the server's own certificate first in the chain"
                    .to_string(),
            );
        }
        said
    }

    /// What it is valid for, as the banner says: names and addresses, and until when.
    pub fn describe(&self) -> String {
        let mut names: Vec<String> = self.dns_names.clone();
        names.extend(self.ips.iter().map(IpAddr::to_string));
        let names = if names.is_empty() {
            "no name or address (no subject alternative names)".to_string()
        } else {
            names.join(", ")
        };
        format!("valid for {names} until {}", day(self.not_after))
    }
}

/// A certificate's time (seconds since 1970, earlier ones at 1970).
fn at(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// A time as its day, `2027-03-01`.
fn day(t: SystemTime) -> String {
    let full = humantime::format_rfc3339_seconds(t).to_string();
    full.split('T').next().unwrap_or(&full).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(params: rcgen::CertificateParams) -> String {
        let key = rcgen::KeyPair::generate().expect("a key");
        params.self_signed(&key).expect("a certificate").pem()
    }

    #[test]
    fn names_addresses_and_validity_are_read_from_the_leaf() {
        let pem = cert(
            rcgen::CertificateParams::new(vec!["chat.example.com".into(), "10.0.0.5".into()])
                .expect("names"),
        );
        let facts = CertFacts::of_pem(pem.as_bytes()).expect("facts");
        assert_eq!(facts.dns_names, vec!["chat.example.com".to_string()]);
        assert_eq!(facts.ips, vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(facts.covers("10.0.0.5".parse().unwrap()));
        assert!(!facts.covers("127.0.0.1".parse().unwrap()));
        assert!(!facts.is_ca);
        assert!(facts.problems(SystemTime::now()).is_empty());
        assert!(
            facts
                .describe()
                .starts_with("valid for chat.example.com, 10.0.0.5 until "),
            "{}",
            facts.describe()
        );
    }

    #[test]
    fn an_expired_certificate_and_a_cas_are_said() {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).expect("names");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let facts = CertFacts::of_pem(cert(params).as_bytes()).expect("facts");
        let said = facts.problems(SystemTime::now());
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("expired on 2021-01-01"), "{said:?}");
        assert!(said[1].contains("CA's certificate"), "{said:?}");
        // Before it began, it is not valid yet.
        let said = facts.problems(at(1_500_000_000));
        assert!(said[0].contains("not valid before 2020-01-01"), "{said:?}");
    }

    #[test]
    fn text_that_is_no_certificate_is_an_error() {
        assert!(matches!(
            CertFacts::of_pem(b"hello"),
            Err(CertFactsError::NoPem)
        ));
    }
}
