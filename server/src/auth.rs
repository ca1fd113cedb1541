//! Token authentication: a client proves it may speak as a user id, until a time, with an
//! HMAC-SHA256 of that id and that time under the server's secret. Whoever holds the secret
//! (the load generator, a login service) can mint tokens; nobody else can, and a token that
//! was copied stops working when it expires.
//!
//! A token is [`TOKEN_LEN`] bytes: its expiry (Unix seconds, big-endian u64), then the first 24
//! bytes of HMAC-SHA256(secret, `imbench-token` | user id | expiry).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imbench_proto::TOKEN_LEN;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Length of a secret in bytes.
pub const SECRET_LEN: usize = 32;

/// How long a token minted by [`Secret::token_for`] is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a token's tag signs, in front of the user id and the expiry.
const TOKEN_CONTEXT: &[u8] = b"imbench-token";

/// Bytes of a token that hold its expiry; the rest is the tag.
const EXPIRY_LEN: usize = 8;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Signed for another user, under another secret, or altered.
    #[error("token is not valid for this user")]
    Invalid,
    /// Valid, but its time is past.
    #[error("token expired {0} s ago")]
    Expired(u64),
}

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
        if bytes.iter().all(|&b| b == 0) {
            return Err(SecretError::Format(
                "all zeros, which anyone can guess; make one with imbench-server or `openssl rand -hex 32`".into(),
            ));
        }
        Ok(Self::from_bytes(bytes))
    }

    /// Reads a secret file written by `imbench-server`.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_hex(&text).map_err(|e| match e {
            SecretError::Format(why) => SecretError::Format(format!("{}: {why}", path.display())),
            other => other,
        })
    }

    /// The secret as 64 hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A token that lets a client speak as `user` for [`TOKEN_LIFETIME`] from now.
    pub fn token_for(&self, user: u64) -> [u8; TOKEN_LEN] {
        self.token_until(user, SystemTime::now() + TOKEN_LIFETIME)
    }

    /// A token that lets a client speak as `user` until `expiry` (to the second).
    pub fn token_until(&self, user: u64, expiry: SystemTime) -> [u8; TOKEN_LEN] {
        let expiry = unix_seconds(expiry);
        let mut token = [0u8; TOKEN_LEN];
        token[..EXPIRY_LEN].copy_from_slice(&expiry.to_be_bytes());
        let tag = self.tag(user, expiry);
        token[EXPIRY_LEN..].copy_from_slice(&tag.as_ref()[..TOKEN_LEN - EXPIRY_LEN]);
        token
    }

    /// Whether `token` lets a client speak as `user` now (the tag compared in constant time).
    pub fn check(&self, user: u64, token: &[u8; TOKEN_LEN]) -> Result<(), TokenRefusal> {
        let mut expiry = [0u8; EXPIRY_LEN];
        expiry.copy_from_slice(&token[..EXPIRY_LEN]);
        let expiry = u64::from_be_bytes(expiry);
        let tag = self.tag(user, expiry);
        let same = tag.as_ref()[..TOKEN_LEN - EXPIRY_LEN]
            .iter()
            .zip(&token[EXPIRY_LEN..])
            .fold(0u8, |diff, (a, b)| diff | (a ^ b));
        if same != 0 {
            return Err(TokenRefusal::Invalid);
        }
        let now = unix_seconds(SystemTime::now());
        if now >= expiry {
            return Err(TokenRefusal::Expired(now - expiry));
        }
        Ok(())
    }

    fn tag(&self, user: u64, expiry: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(TOKEN_CONTEXT);
        ctx.update(&user.to_be_bytes());
        ctx.update(&expiry.to_be_bytes());
        ctx.sign()
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hold_only_for_their_user_and_secret_and_until_they_expire() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        let t = a.token_for(42);
        assert_eq!(a.check(42, &t), Ok(()));
        assert_eq!(a.check(43, &t), Err(TokenRefusal::Invalid));
        assert_eq!(b.check(42, &t), Err(TokenRefusal::Invalid));
        let old = a.token_until(42, SystemTime::now() - Duration::from_secs(60));
        assert!(
            matches!(a.check(42, &old), Err(TokenRefusal::Expired(s)) if (60..70).contains(&s)),
            "{:?}",
            a.check(42, &old)
        );
        // Pushing an expired token's time forward breaks its tag.
        let mut forged = old;
        forged[..EXPIRY_LEN].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(a.check(42, &forged), Err(TokenRefusal::Invalid));
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let s = Secret::generate().unwrap();
        let back = Secret::from_hex(&format!("  {}\n", s.to_hex())).unwrap();
        assert_eq!(back.token_for(7), s.token_for(7));
        assert!(Secret::from_hex("abc").is_err());
        assert!(
            Secret::from_hex(&"00".repeat(SECRET_LEN)).is_err(),
            "all zeros"
        );
        assert!(Secret::from_hex(&"zz".repeat(SECRET_LEN)).is_err());
    }
}
