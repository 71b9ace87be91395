//! sluice as a token issuer: an Ed25519 signing key (generated, persisted as PKCS#8
//! PEM, or loaded from config), its JWKS, and minting of JWTs with sluice's claims.
//! The gateway's own verifier (tenancy) accepts these tokens like any issuer's.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("reading signing key {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("writing signing key {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("signing key {path} is not an Ed25519 PKCS#8 PEM: {reason}")]
    BadKey { path: String, reason: String },
    #[error("generating a key failed")]
    Generate,
    #[error("signing a token failed: {0}")]
    Sign(String),
}

const PEM_LABEL: &str = "PRIVATE KEY";

pub struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

/// The claims sluice puts into the tokens it mints.
#[derive(Debug, Serialize)]
pub struct Claims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// Absent only on operator tokens (scope `sluice:operator`).
    #[serde(rename = "sluice:tenant", skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    #[serde(rename = "sluice:policies", skip_serializing_if = "Option::is_none")]
    pub policies: Option<&'a [String]>,
    /// OAuth2 scope: `sluice:admin` / `sluice:operator` open the /v1 API; others are the
    /// client's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
}

impl SigningKey {
    pub fn generate() -> Result<Self, IssuerError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| IssuerError::Generate)?;
        Self::from_pkcs8(doc.as_ref().to_vec()).map_err(|_| IssuerError::Generate)
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| e.to_string())?;
        let public = pair.public_key().as_ref().to_vec();
        // The kid is derived from the public key, so it is stable across restarts.
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public);
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        Ok(Self { kid, pkcs8, public })
    }

    pub fn load(path: &Path) -> Result<Self, IssuerError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| IssuerError::Read { path: shown.clone(), source })?;
        let bad = |reason: String| IssuerError::BadKey { path: shown.clone(), reason };
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with(&format!("-----BEGIN {PEM_LABEL}-----")))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        if body.is_empty() {
            return Err(bad(format!("no {PEM_LABEL} block")));
        }
        let der = STANDARD.decode(body.trim()).map_err(|e| bad(e.to_string()))?;
        Self::from_pkcs8(der).map_err(bad)
    }

    /// Loads the key at `path`, or generates one and writes it there (mode 0600).
    pub fn load_or_generate(path: &Path) -> Result<Self, IssuerError> {
        if path.exists() {
            return Self::load(path);
        }
        let key = Self::generate()?;
        key.save(path)?;
        Ok(key)
    }

    pub fn save(&self, path: &Path) -> Result<(), IssuerError> {
        let shown = path.display().to_string();
        let encoded = STANDARD.encode(&self.pkcs8);
        let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
        for chunk in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| IssuerError::Write { path: shown.clone(), source })?;
        }
        write_private(path, pem.as_bytes()).map_err(|source| IssuerError::Write { path: shown, source })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JSON Web Key Set.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&self.public),
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
    }

    pub fn mint(&self, claims: &Claims<'_>) -> Result<String, IssuerError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8))
            .map_err(|e| IssuerError::Sign(e.to_string()))
    }
}

/// Seconds since the epoch, and that plus `ttl`, for `iat`/`exp`.
pub fn now_and_expiry(ttl: Duration) -> (u64, u64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    (now, now + ttl.as_secs())
}

/// Writes a file readable only by its owner.
#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn minted_tokens_verify_with_the_published_jwks() {
        let dir = std::env::temp_dir().join(format!("sluice-issuer-{}", std::process::id()));
        let key_path = dir.join("key.pem");
        let key = SigningKey::load_or_generate(&key_path).unwrap();
        let again = SigningKey::load_or_generate(&key_path).unwrap();
        assert_eq!(key.kid(), again.kid(), "a persisted key is reused");
        let jwks_path = dir.join("jwks.json");
        std::fs::write(&jwks_path, key.jwks().to_string()).unwrap();

        let (now, exp) = now_and_expiry(Duration::from_secs(300));
        let token = again
            .mint(&Claims {
                iss: "https://sluice.test",
                aud: "sluice",
                sub: "alice",
                iat: now,
                nbf: now,
                exp,
                tenant: Some("demo"),
                policies: None,
                scope: None,
            })
            .unwrap();
        let issuer = sluice_tenancy::IssuerConfig {
            issuer: "https://sluice.test".into(),
            audience: vec!["sluice".into()],
            jwks_file: Some(jwks_path),
            ..Default::default()
        };
        let tenants: sluice_tenancy::StaticTenants = ["demo".parse().unwrap()].into_iter().collect();
        let auth = sluice_tenancy::Authenticator::new(vec![issuer], Arc::new(tenants)).unwrap();
        auth.refresh_keys().await.unwrap();
        let principal = auth.verify(&token).await.unwrap();
        assert_eq!((principal.subject.as_str(), principal.tenant.as_str()), ("alice", "demo"));
        std::fs::remove_dir_all(dir).ok();
    }
}
