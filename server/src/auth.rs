//! Token authentication: a client proves it may speak as a user id with an HMAC-SHA256 of that id
//! under the server's secret. Whoever holds the secret (the load generator, a login service) can
//! mint tokens; nobody else can.

use std::path::Path;

use imbench_proto::TOKEN_LEN;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Length of a secret in bytes.
pub const SECRET_LEN: usize = 32;

/// Why a secret could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
    /// The secret file could not be read.
    #[error("reading secret file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not 64 hexadecimal digits.
    #[error("a secret is 64 hexadecimal digits; {0}")]
    Format(String),
}

/// The server's token secret.
#[derive(Clone)]
pub struct Secret {
    key: hmac::Key,
    bytes: [u8; SECRET_LEN],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh random secret.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; SECRET_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SecretError::Random)?;
        Ok(Self::from_bytes(bytes))
    }

    /// A secret from raw bytes.
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            bytes,
        }
    }

    /// Parses the hexadecimal form written by [`Secret::to_hex`] (surrounding space ignored).
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.len() != SECRET_LEN * 2 || !text.is_ascii() {
            return Err(SecretError::Format(format!(
                "got {} characters",
                text.len()
            )));
        }
        let mut bytes = [0u8; SECRET_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| SecretError::Format(format!("bad digits at {}", 2 * i)))?;
        }
        Ok(Self::from_bytes(bytes))
    }

    /// Reads a secret file written by `imbench-server`.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_hex(&text)
    }

    /// The secret as 64 hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The token that lets a client speak as `user`.
    pub fn token_for(&self, user: u64) -> [u8; TOKEN_LEN] {
        let tag = hmac::sign(&self.key, &user.to_be_bytes());
        let mut token = [0u8; TOKEN_LEN];
        token.copy_from_slice(tag.as_ref());
        token
    }

    /// Whether `token` is valid for `user` (constant-time comparison).
    pub fn verify(&self, user: u64, token: &[u8; TOKEN_LEN]) -> bool {
        hmac::verify(&self.key, &user.to_be_bytes(), token).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_user_and_secret() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        let t = a.token_for(42);
        assert!(a.verify(42, &t));
        assert!(!a.verify(43, &t));
        assert!(!b.verify(42, &t));
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let s = Secret::generate().unwrap();
        let back = Secret::from_hex(&format!("  {}\n", s.to_hex())).unwrap();
        assert_eq!(back.token_for(7), s.token_for(7));
        assert!(Secret::from_hex("abc").is_err());
        assert!(Secret::from_hex(&"zz".repeat(SECRET_LEN)).is_err());
    }
}
