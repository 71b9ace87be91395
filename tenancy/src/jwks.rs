//! JWKS loading (file or URL) and the per-issuer key set: `kid` → verification key with the
//! algorithm(s) it may verify.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use reqwest::header::ACCEPT;

use crate::config::{IssuerSettings, JwksSource};
use crate::TenancyError;

/// Largest JWKS document accepted (real ones are a few KiB).
const MAX_JWKS_BYTES: usize = 1 << 20;

/// One verification key from a JWKS.
#[derive(Debug)]
pub(crate) struct CachedKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    /// The key's own `alg` (or the one its curve implies); `None`: any algorithm of `family`.
    pub alg: Option<Algorithm>,
    /// The key type, as the algorithm family it serves.
    pub family: AlgorithmFamily,
}

impl CachedKey {
    /// Whether this key may verify a token signed with `alg`: same family, and the key's own
    /// `alg` when it has one. This is what stops an HS256 token from using an RSA public key
    /// as its HMAC secret.
    pub fn fits(&self, alg: Algorithm) -> bool {
        alg.family() == self.family && self.alg.is_none_or(|a| a == alg)
    }
}

/// The usable keys of one issuer.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<CachedKey>>,
    /// The key for tokens without `kid`: set only when the JWKS has exactly one usable key.
    only: Option<Arc<CachedKey>>,
}

impl KeySet {
    /// The key for a token's `kid` (or for a token without one, the issuer's only key).
    pub fn find(&self, kid: Option<&str>) -> Option<Arc<CachedKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => self.only.clone(),
        }
    }

    /// Parses a JWKS document, keeping the keys usable with the issuer's algorithms. A key that
    /// cannot be used (unknown `kty` or curve, `use: enc`, `alg` inconsistent with its type,
    /// bad parameters, duplicate `kid`) is skipped with a warning; only a document that is not
    /// a JWKS, or has no usable key at all, is an error.
    pub fn parse(settings: &IssuerSettings, document: &[u8]) -> Result<KeySet, TenancyError> {
        let issuer = &settings.issuer;
        let parse_err = |reason: String| TenancyError::JwksParse {
            issuer: issuer.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(document).map_err(|e| parse_err(e.to_string()))?;
        let entries = value
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| parse_err("no \"keys\" array".into()))?;

        let mut set = KeySet::default();
        let mut all = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let key = match usable_key(settings, entry) {
                Ok(Some(key)) => Arc::new(key),
                Ok(None) => continue,
                Err(why) => {
                    let kid = entry
                        .get("kid")
                        .and_then(|k| k.as_str())
                        .unwrap_or("(none)");
                    tracing::warn!(%issuer, index, kid, "JWKS key skipped: {why}");
                    continue;
                }
            };
            if let Some(kid) = &key.kid {
                if set.by_kid.contains_key(kid) {
                    tracing::warn!(%issuer, index, kid, "JWKS key skipped: duplicate kid (the first one is used)");
                    continue;
                }
                set.by_kid.insert(kid.clone(), key.clone());
            }
            all.push(key);
        }
        if all.is_empty() {
            return Err(TenancyError::NoUsableKeys {
                issuer: issuer.clone(),
                algorithms: settings.algorithm_list(),
            });
        }
        if all.len() == 1 {
            set.only = all.pop();
        }
        Ok(set)
    }

    /// Fetches or reads the issuer's JWKS and parses it.
    pub async fn load(
        settings: &IssuerSettings,
        http: Option<&reqwest::Client>,
    ) -> Result<KeySet, TenancyError> {
        let document = match &settings.source {
            JwksSource::File(path) => read_file(settings, path).await?,
            JwksSource::Url(url) => {
                let client = http.ok_or_else(|| TenancyError::InvalidIssuerConfig {
                    issuer: settings.issuer.clone(),
                    reason: "no HTTP client for jwks_url".into(),
                })?;
                fetch(settings, client, url).await?
            }
        };
        Self::parse(settings, &document)
    }
}

/// Turns one JWKS entry into a key, `Ok(None)` for keys that are fine but not for us (another
/// algorithm family than the issuer accepts, or encryption keys), `Err(why)` for keys to warn
/// about.
fn usable_key(
    settings: &IssuerSettings,
    entry: &serde_json::Value,
) -> Result<Option<CachedKey>, String> {
    let jwk: Jwk =
        serde_json::from_value(entry.clone()).map_err(|e| format!("not a supported JWK: {e}"))?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let (family, implied_alg) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => (AlgorithmFamily::Ec, Some(Algorithm::ES256)),
            EllipticCurve::P384 => (AlgorithmFamily::Ec, Some(Algorithm::ES384)),
            ref other => return Err(format!("unsupported EC curve {other:?}")),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => (AlgorithmFamily::Ed, Some(Algorithm::EdDSA)),
            ref other => return Err(format!("unsupported OKP curve {other:?}")),
        },
        AlgorithmParameters::OctetKey(_) => (AlgorithmFamily::Hmac, None),
        _ => {
            let kty = entry
                .get("kty")
                .and_then(|k| k.as_str())
                .unwrap_or("(missing)");
            return Err(format!(
                "unsupported key type or curve, or missing parameters (kty {kty:?})"
            ));
        }
    };
    let declared = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => {
            let alg = Algorithm::try_from(ka).map_err(|_| format!("unsupported alg {ka}"))?;
            if alg.family() != family || implied_alg.is_some_and(|implied| implied != alg) {
                return Err(format!("alg {alg:?} does not fit the key's type"));
            }
            Some(alg)
        }
    };
    if !settings.accepts_family(family) {
        tracing::debug!(issuer = %settings.issuer, ?family, "JWKS key ignored: no accepted algorithm uses it");
        return Ok(None);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad key parameters: {e}"))?;
    Ok(Some(CachedKey {
        kid: jwk.common.key_id,
        key,
        alg: declared.or(implied_alg),
        family,
    }))
}

async fn read_file(
    settings: &IssuerSettings,
    path: &std::path::Path,
) -> Result<Vec<u8>, TenancyError> {
    let read_err = |source| TenancyError::JwksRead {
        issuer: settings.issuer.clone(),
        path: path.to_owned(),
        source,
    };
    let owned = path.to_owned();
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(owned))
        .await
        .map_err(|e| read_err(std::io::Error::other(e)))?
        .map_err(read_err)?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(TenancyError::JwksTooLarge {
            issuer: settings.issuer.clone(),
            limit: MAX_JWKS_BYTES,
        });
    }
    Ok(bytes)
}

async fn fetch(
    settings: &IssuerSettings,
    client: &reqwest::Client,
    url: &reqwest::Url,
) -> Result<Vec<u8>, TenancyError> {
    let fetch_err = |source| TenancyError::JwksFetch {
        issuer: settings.issuer.clone(),
        url: url.to_string(),
        source,
    };
    let too_large = || TenancyError::JwksTooLarge {
        issuer: settings.issuer.clone(),
        limit: MAX_JWKS_BYTES,
    };
    let mut response = client
        .get(url.clone())
        .header(ACCEPT, "application/jwk-set+json, application/json")
        .send()
        .await
        .map_err(fetch_err)?;
    if !response.status().is_success() {
        return Err(TenancyError::JwksHttpStatus {
            issuer: settings.issuer.clone(),
            url: url.to_string(),
            status: response.status().as_u16(),
        });
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fetch_err)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
