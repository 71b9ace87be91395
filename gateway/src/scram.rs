//! The client side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), as Kafka
//! speaks it: no channel binding (`n,,`), no SASLprep (Kafka's own ScramFormatter uses
//! the UTF-8 bytes of user name and password as they are), user names escaped per
//! RFC 5802 (`=` → `=3D`, `,` → `=2C`).
//!
//! Only the messages live here; `upstream.rs` carries them in SaslAuthenticate. The
//! crypto is aws-lc-rs (already the gateway's TLS and JWT backend), so no SCRAM crate
//! is needed: the maintained ones either pin old `ring` versions or bring their own
//! SASL framework.

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// Fewer iterations than this are refused: RFC 7677 asks for at least 4096, and
/// Kafka's own minimum is 4096.
pub const MIN_ITERATIONS: u32 = 4096;
/// More than this is refused as well, so a misbehaving server cannot make each
/// connection burn seconds of CPU (Kafka's maximum is 16384).
pub const MAX_ITERATIONS: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The SASL mechanism name Kafka expects in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn output_len(self) -> usize {
        self.digest().output_len()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("the server refused the authentication: {0}")]
    ServerError(String),
    #[error("malformed server message: {0}")]
    Malformed(&'static str),
    #[error("the server's nonce does not extend ours")]
    NonceMismatch,
    #[error("the server asks for {0} iterations, outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    #[error("the server's signature is wrong: it does not know our password (or it is not the pool)")]
    ServerSignature,
}

/// The salted password, cached between connections: PBKDF2 is the expensive step
/// (thousands of HMACs), and the server keeps the same salt and iteration count for a
/// credential until the credential changes.
#[derive(Clone, PartialEq, Eq)]
pub struct SaltedPassword {
    salt: Vec<u8>,
    iterations: u32,
    key: Vec<u8>,
}

/// One SCRAM exchange, from the client-first message to the server-final check.
pub struct ScramClient {
    mechanism: ScramMechanism,
    /// `n=<user>,r=<client nonce>`
    client_first_bare: String,
    client_nonce: String,
}

/// The state after the client-final message: what the server must prove.
pub struct ServerProofCheck {
    expected: Vec<u8>,
}

fn escape_username(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// A fresh client nonce: 24 random bytes, base64 (printable, without `,`).
pub fn random_nonce() -> String {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 24];
    // SystemRandom only fails when the OS has no entropy source at all; a fixed nonce
    // would weaken replay protection, so fall back to the clock and the pid mixed in.
    if aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let seed = format!("{t}-{}", std::process::id());
        let d = digest::digest(&digest::SHA256, seed.as_bytes());
        bytes.copy_from_slice(&d.as_ref()[..24]);
    }
    B64.encode(bytes)
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, username: &str, client_nonce: String) -> Self {
        let client_first_bare = format!("n={},r={client_nonce}", escape_username(username));
        Self { mechanism, client_first_bare, client_nonce }
    }

    /// `n,,n=<user>,r=<nonce>`: the first SaslAuthenticate payload.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Reads the server-first message and answers with the client-final message
    /// (carrying the proof). `cache` holds a salted password from an earlier exchange;
    /// it is reused when salt and iterations match and replaced otherwise.
    pub fn client_final(
        &self,
        server_first: &str,
        password: &[u8],
        cache: &mut Option<SaltedPassword>,
    ) -> Result<(String, ServerProofCheck), ScramError> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                Some(("e", v)) => return Err(ScramError::ServerError(v.to_owned())),
                // "m" is a mandatory extension this client does not know: RFC 5802 says fail.
                Some(("m", _)) => return Err(ScramError::Malformed("mandatory extension (m=) not supported")),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(ScramError::Malformed("no nonce (r=)"))?;
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(&self.client_nonce) {
            return Err(ScramError::NonceMismatch);
        }
        if nonce.contains(',') || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ScramError::Malformed("nonce has unprintable characters"));
        }
        let salt = B64.decode(salt.ok_or(ScramError::Malformed("no salt (s=)"))?).map_err(|_| ScramError::Malformed("salt is not base64"))?;
        if salt.is_empty() {
            return Err(ScramError::Malformed("empty salt"));
        }
        let iterations: u32 = iterations
            .ok_or(ScramError::Malformed("no iteration count (i=)"))?
            .parse()
            .map_err(|_| ScramError::Malformed("iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let salted = match cache {
            Some(c) if c.salt == salt && c.iterations == iterations && c.key.len() == self.mechanism.output_len() => c.key.clone(),
            _ => {
                let mut key = vec![0u8; self.mechanism.output_len()];
                // In range (checked above), hence non-zero.
                let n = NonZeroU32::new(iterations).ok_or(ScramError::Iterations(iterations))?;
                pbkdf2::derive(self.mechanism.pbkdf2(), n, &salt, password, &mut key);
                *cache = Some(SaltedPassword { salt, iterations, key: key.clone() });
                key
            }
        };
        let salted_key = hmac::Key::new(self.mechanism.hmac(), &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(self.mechanism.digest(), client_key.as_ref());
        // c=biws is base64("n,,"): the GS2 header without channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac::sign(&hmac::Key::new(self.mechanism.hmac(), stored_key.as_ref()), auth_message.as_bytes());
        let proof: Vec<u8> =
            client_key.as_ref().iter().zip(client_signature.as_ref()).map(|(k, s)| k ^ s).collect();
        let server_key = hmac::sign(&salted_key, b"Server Key");
        let server_signature = hmac::sign(&hmac::Key::new(self.mechanism.hmac(), server_key.as_ref()), auth_message.as_bytes());
        Ok((
            format!("{without_proof},p={}", B64.encode(proof)),
            ServerProofCheck { expected: server_signature.as_ref().to_vec() },
        ))
    }
}

impl ServerProofCheck {
    /// Checks the server-final message (`v=<signature>`, or `e=<error>`).
    pub fn verify(&self, server_final: &str) -> Result<(), ScramError> {
        let mut verifier = None;
        for attr in server_final.split(',') {
            match attr.split_once('=') {
                Some(("e", v)) => return Err(ScramError::ServerError(v.to_owned())),
                Some(("v", v)) => verifier = Some(v),
                _ => {}
            }
        }
        let given = B64
            .decode(verifier.ok_or(ScramError::Malformed("no server signature (v=)"))?)
            .map_err(|_| ScramError::Malformed("server signature is not base64"))?;
        constant_time::verify_slices_are_equal(&given, &self.expected).map_err(|_| ScramError::ServerSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_sha256_vector() {
        let c = ScramClient::new(ScramMechanism::Sha256, "user", "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let mut cache = None;
        let (client_final, check) = c.client_final(server_first, b"pencil", &mut cache).unwrap();
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        check.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        // A server that does not know the password cannot produce the signature.
        assert_eq!(check.verify("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), Err(ScramError::ServerSignature));
        assert_eq!(check.verify("e=invalid-proof"), Err(ScramError::ServerError("invalid-proof".into())));
        // The cached salted password gives the same proof, and a wrong password another.
        assert!(cache.is_some());
        let (again, _) = c.client_final(server_first, b"pencil", &mut cache).unwrap();
        assert_eq!(again, client_final);
        let (wrong, _) = c.client_final(server_first, b"pencil", &mut None).map(|(f, c)| (f.replace("p=", ""), c)).unwrap();
        assert_ne!(wrong, client_final);
        let (other, _) = c.client_final(server_first, b"crayon", &mut None).unwrap();
        assert_ne!(other, client_final);
    }

    /// SCRAM-SHA-512 has no RFC vector; this one was computed independently (Python's
    /// hashlib/hmac, the same formulas) and checks the SHA-512 plumbing.
    #[test]
    fn sha512_matches_an_independent_computation() {
        let c = ScramClient::new(ScramMechanism::Sha512, "sluice", "clientnonce".into());
        let server_first = "r=clientnonceSERVER,s=c2FsdHNhbHRzYWx0,i=4096";
        let (client_final, check) = c.client_final(server_first, b"secret", &mut None).unwrap();
        assert_eq!(client_final, format!("c=biws,r=clientnonceSERVER,p={}", SHA512_PROOF));
        check.verify(&format!("v={SHA512_SERVER_SIGNATURE}")).unwrap();
    }

    const SHA512_PROOF: &str = "sXZ8N7XtQUtP2mmVdXJ3sUIVxesOjWdQpO5EhSgH8jX+kIo4jetS5EUakagSgv7VcB7maKyACzS8dWajgh5zbw==";
    const SHA512_SERVER_SIGNATURE: &str =
        "h/Hl5uzVopubgdTORSrzuyRM0RrqqXzyWcloj/B/F3Ph++1W3Zi7XrR0z/ftMTnzLINIEmaScbFWC/gwLSH6Dg==";

    #[test]
    fn server_messages_are_checked() {
        let c = ScramClient::new(ScramMechanism::Sha256, "a=b,c", "nonce".into());
        assert_eq!(c.client_first(), "n,,n=a=3Db=2Cc,r=nonce");
        let mut cache = None;
        let err = |m: &str| c.client_final(m, b"pw", &mut cache.clone()).err();
        assert_eq!(err("r=other,s=c2FsdA==,i=4096"), Some(ScramError::NonceMismatch));
        assert_eq!(err("r=nonce,s=c2FsdA==,i=4096"), Some(ScramError::NonceMismatch));
        assert_eq!(err("r=nonceX,s=c2FsdA==,i=1"), Some(ScramError::Iterations(1)));
        assert_eq!(err("r=nonceX,s=c2FsdA==,i=4000000000"), Some(ScramError::Iterations(4_000_000_000)));
        assert!(matches!(err("r=nonceX,i=4096"), Some(ScramError::Malformed(_))));
        assert!(matches!(err("r=nonceX,s=!!,i=4096"), Some(ScramError::Malformed(_))));
        assert!(matches!(err("m=ext,r=nonceX,s=c2FsdA==,i=4096"), Some(ScramError::Malformed(_))));
        assert_eq!(err("e=unknown-user"), Some(ScramError::ServerError("unknown-user".into())));
        assert!(c.client_final("r=nonceX,s=c2FsdA==,i=4096", b"pw", &mut cache).is_ok());
        assert_eq!(ScramMechanism::parse("scram-sha-512"), Some(ScramMechanism::Sha512));
        assert_eq!(ScramMechanism::parse("PLAIN"), None);
        let n = random_nonce();
        assert!(n.len() >= 32 && !n.contains(',') && n != random_nonce());
    }
}
