//! Token verification: route a JWT to its issuer, pick the key, verify, and turn the claims into a
//! [`Principal`].
//!
//! Order of checks, cheapest and least revealing first: size; shape and header (`alg none` and
//! `crit` refused); `iss` read *unverified*, only to choose the issuer; the issuer's size limit and
//! algorithms; the key by `kid` (refreshing the JWKS once if unknown) and its type against `alg`;
//! then signature, `exp`/`nbf` with leeway, `iss` and `aud` by jsonwebtoken; and only after the
//! signature holds, the sluice claims and the tenant's existence, so unsigned probes learn
//! nothing about tenants.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::config::{IssuerSettings, JwksSource};
use crate::error::quoted;
use crate::jwks::{CachedKey, KeySet};
use crate::{AuthError, IssuerConfig, TenancyError, TenantDirectory, TenantId};

/// Timeout for one JWKS fetch, connection included.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `sub`: the principal's name within its tenant (non-empty).
    pub subject: String,
    /// `sluice:tenant`: a tenant that existed when the token was verified.
    pub tenant: TenantId,
    /// `sluice:policies`: names of the tenant's stored policies to apply; `None` when absent
    /// (then the principal's attached policies apply). `Some(vec![])` grants nothing.
    pub policies: Option<Vec<String>>,
    /// `sluice:session_policy`: an inline policy document that can only narrow the stored ones.
    /// Always a JSON object (a claim holding the document as a JSON string is parsed); not yet
    /// validated as a policy.
    pub session_policy: Option<Value>,
    /// The issuer that signed the token (its configured `issuer`).
    pub issuer: String,
    /// `exp`: when the token, and so the SASL session (KIP-368), expires.
    pub expires_at: SystemTime,
}

/// Verifies tokens against the configured issuers. Cheap to clone; share one per gateway.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    /// Issuers by their `iss`.
    issuers: HashMap<String, Issuer>,
    /// The largest `max_token_bytes` of all issuers: the limit before the issuer is known.
    max_token_bytes: usize,
    tenants: Arc<dyn TenantDirectory>,
}

/// One issuer's settings and live key cache.
struct Issuer {
    settings: IssuerSettings,
    /// One prepared validation per accepted algorithm.
    validations: HashMap<Algorithm, Validation>,
    /// Only present for `jwks_url` issuers.
    http: Option<reqwest::Client>,
    /// The current keys; swapped whole on refresh, so readers never block on a fetch.
    keys: RwLock<Arc<KeySet>>,
    /// Serialises loads (single flight) and holds when the last unknown-`kid` refresh started
    /// (for `refresh_min_interval`).
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuers", &self.inner.issuers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Authenticator {
    /// Validates the issuers and prepares (empty) key caches; call [`Self::refresh_keys`] next.
    ///
    /// Fails on an invalid or duplicate issuer entry, or if the HTTP client cannot be built.
    /// An empty issuer list is allowed (every token is then rejected as `WrongIssuer`).
    pub fn new(
        issuers: Vec<IssuerConfig>,
        known_tenants: Arc<dyn TenantDirectory>,
    ) -> Result<Self, TenancyError> {
        let mut http: Option<reqwest::Client> = None;
        let mut by_iss = HashMap::new();
        for config in &issuers {
            let settings = config.validate()?;
            let client = match settings.source {
                JwksSource::Url(_) => Some(match &http {
                    Some(c) => c.clone(),
                    None => {
                        let c = reqwest::Client::builder()
                            .timeout(JWKS_FETCH_TIMEOUT)
                            .connect_timeout(JWKS_FETCH_TIMEOUT / 2)
                            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
                            .build()
                            .map_err(TenancyError::HttpClient)?;
                        http.insert(c).clone()
                    }
                }),
                JwksSource::File(_) => None,
            };
            let validations = settings
                .algorithms
                .iter()
                .map(|&alg| (alg, validation(&settings, alg)))
                .collect();
            let issuer = Issuer {
                validations,
                http: client,
                keys: RwLock::new(Arc::new(KeySet::default())),
                refresh: tokio::sync::Mutex::new(None),
                settings,
            };
            if by_iss.insert(config.issuer.clone(), issuer).is_some() {
                return Err(TenancyError::DuplicateIssuer {
                    issuer: config.issuer.clone(),
                });
            }
        }
        let max_token_bytes = by_iss
            .values()
            .map(|i| i.settings.max_token_bytes)
            .max()
            .unwrap_or_else(|| IssuerConfig::default().max_token_bytes);
        Ok(Authenticator {
            inner: Arc::new(Inner {
                issuers: by_iss,
                max_token_bytes,
                tenants: known_tenants,
            }),
        })
    }

    /// Loads every issuer's JWKS. Call at startup. Otherwise keys are re-read only when a token
    /// names an unknown `kid`, so call it periodically too if a key the issuer withdrew must stop
    /// verifying promptly.
    ///
    /// Every issuer is attempted; an issuer whose load fails keeps its previous keys, and the
    /// first failure is returned (the others are logged).
    pub async fn refresh_keys(&self) -> Result<(), TenancyError> {
        let mut first_error = None;
        for issuer in self.inner.issuers.values() {
            let _single_flight = issuer.refresh.lock().await;
            if let Err(e) = issuer.reload().await {
                if first_error.is_some() {
                    tracing::warn!("{e}");
                } else {
                    first_error = Some(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Verifies a compact JWT (without any `Bearer ` prefix) and returns its claims.
    ///
    /// Async because an unknown `kid` triggers one JWKS refresh for the issuer (single flight,
    /// at most once per `refresh_min_interval_secs`); otherwise it does not wait. Fails with the
    /// [`AuthError`] naming the first check the token failed.
    async fn verified_claims(&self, token: &str) -> Result<(&IssuerSettings, Map<String, Value>), AuthError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(AuthError::Oversize {
                size: token.len(),
                limit: inner.max_token_bytes,
            });
        }
        let (header, payload) = split_token(token)?;
        let header = parse_header(header)?;
        let issuer = route(inner, payload)?;
        let settings = &issuer.settings;
        if token.len() > settings.max_token_bytes {
            return Err(AuthError::Oversize {
                size: token.len(),
                limit: settings.max_token_bytes,
            });
        }
        let not_allowed = || AuthError::AlgorithmNotAllowed {
            alg: quoted(&header.alg),
            allowed: settings.algorithm_list(),
        };
        let alg: Algorithm = header.alg.parse().map_err(|_| not_allowed())?;
        let validation = issuer.validations.get(&alg).ok_or_else(not_allowed)?;
        let key = issuer.key(header.kid.as_deref()).await?;
        if !key.fits(alg) {
            let kid = key
                .kid
                .as_deref()
                .map_or_else(|| "(none)".to_owned(), quoted);
            return Err(AuthError::AlgorithmKeyMismatch {
                alg: header.alg,
                kid,
            });
        }
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map_err(|e| jwt_error(e.into_kind(), settings, &header.alg))?
            .claims;
        Ok((settings, claims))
    }

    /// Verifies a compact JWT (without any `Bearer ` prefix) for the Kafka listeners and
    /// returns the tenant principal it names.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let (settings, claims) = self.verified_claims(token).await?;
        principal(settings, claims, &*self.inner.tenants)
    }

    /// Verifies a bearer token for the admin API: the same checks as [`Self::verify`], but
    /// `sluice:tenant` is optional (operator tokens have none) and the OAuth `scope` claim
    /// (space-separated string, or `scp` as an array) is returned.
    pub async fn verify_admin(&self, token: &str) -> Result<AdminPrincipal, AuthError> {
        let (settings, mut claims) = self.verified_claims(token).await?;
        let subject = match claims.remove("sub") {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(AuthError::MissingSubject),
        };
        let tenant = match claims.remove("sluice:tenant") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                s.parse::<TenantId>()
                    .map_err(|_| AuthError::InvalidTenantId { value: quoted(&s) })?,
            ),
            Some(other) => {
                return Err(AuthError::InvalidTenantId {
                    value: format!("(a JSON {})", json_type(&other)),
                })
            }
        };
        let mut scopes: Vec<String> = match claims.remove("scope") {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        if let Some(Value::Array(items)) = claims.remove("scp") {
            scopes.extend(items.into_iter().filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            }));
        }
        Ok(AdminPrincipal {
            subject,
            tenant,
            scopes,
            issuer: settings.issuer.clone(),
        })
    }
}

/// Who called the admin API, from a verified bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    /// `sub`.
    pub subject: String,
    /// `sluice:tenant`, when present (tenant-admin tokens are bound to one).
    pub tenant: Option<TenantId>,
    /// OAuth scopes (`scope` or `scp`).
    pub scopes: Vec<String>,
    /// The issuer that signed the token (its configured `issuer`).
    pub issuer: String,
}

impl Issuer {
    /// The key for `kid`; on a miss, refreshes the JWKS once (single flight, rate-limited).
    async fn key(&self, kid: Option<&str>) -> Result<Arc<CachedKey>, AuthError> {
        if let Some(key) = self.current().find(kid) {
            return Ok(key);
        }
        let unknown = || AuthError::UnknownKey {
            kid: kid.map(quoted),
        };
        let mut last = self.refresh.lock().await;
        // Whoever held the lock may just have loaded the key.
        if let Some(key) = self.current().find(kid) {
            return Ok(key);
        }
        if last.is_some_and(|t| t.elapsed() < self.settings.refresh_min_interval) {
            return Err(unknown());
        }
        *last = Some(Instant::now());
        if let Err(e) = self.reload().await {
            tracing::warn!("JWKS refresh for an unknown kid failed: {e}");
        }
        self.current().find(kid).ok_or_else(unknown)
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads the JWKS and swaps it in; on error the old keys stay. Callers hold `refresh`.
    async fn reload(&self) -> Result<(), TenancyError> {
        let set = KeySet::load(&self.settings, self.http.as_ref()).await?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        tracing::info!(issuer = %self.settings.issuer, "JWKS loaded");
        Ok(())
    }
}

fn validation(settings: &IssuerSettings, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = settings.leeway_secs;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_issuer(&[&settings.issuer]);
    v.set_audience(&settings.audience);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

/// Splits `header.payload.signature`, returning the first two (still encoded).
fn split_token(token: &str) -> Result<(&str, &str), AuthError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(_sig), None) if !h.is_empty() && !p.is_empty() => Ok((h, p)),
        _ => Err(AuthError::Malformed(
            "expected three base64url parts separated by '.'",
        )),
    }
}

fn decode_json_part(part: &str, what: &'static str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed(what))
}

struct Header {
    alg: String,
    kid: Option<String>,
}

/// Reads `alg` and `kid`, refusing `alg: none` and any `crit` (sluice implements no JWS
/// extensions, and RFC 7515 §4.1.11 says to reject tokens whose critical ones are not understood).
fn parse_header(part: &str) -> Result<Header, AuthError> {
    let header = decode_json_part(part, "the header is not base64url-encoded JSON")?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(AuthError::Malformed("the header has no alg")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgorithmNotAllowed {
            alg: quoted(&alg),
            allowed: "signed algorithms only".into(),
        });
    }
    if header.contains_key("crit") {
        return Err(AuthError::Malformed(
            "the header has critical extensions (crit), which are not supported",
        ));
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed("the header's kid is not a string")),
    };
    Ok(Header { alg, kid })
}

/// Chooses the issuer by the payload's `iss`, read without verification. Nothing else from this
/// unverified read is used.
fn route<'a>(inner: &'a Inner, payload: &str) -> Result<&'a Issuer, AuthError> {
    let claims = decode_json_part(payload, "the payload is not base64url-encoded JSON")?;
    match claims.get("iss") {
        Some(Value::String(iss)) => inner
            .issuers
            .get(iss)
            .ok_or_else(|| AuthError::WrongIssuer {
                issuer: Some(quoted(iss)),
            }),
        _ => Err(AuthError::WrongIssuer { issuer: None }),
    }
}

fn jwt_error(kind: ErrorKind, settings: &IssuerSettings, alg: &str) -> AuthError {
    let wrong_audience = || AuthError::WrongAudience {
        expected: settings.audience.join(", "),
    };
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => wrong_audience(),
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer { issuer: None },
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => AuthError::MissingExpiry,
            "sub" => AuthError::MissingSubject,
            "aud" => wrong_audience(),
            _ => AuthError::WrongIssuer { issuer: None },
        },
        ErrorKind::InvalidClaimFormat(claim) => match claim.as_str() {
            "nbf" => AuthError::InvalidClaim {
                claim: "nbf",
                expected: "a NumericDate (seconds since the epoch)",
            },
            _ => AuthError::InvalidClaim {
                claim: "exp",
                expected: "a NumericDate (seconds since the epoch)",
            },
        },
        ErrorKind::InvalidAlgorithm => AuthError::AlgorithmNotAllowed {
            alg: quoted(alg),
            allowed: settings.algorithm_list(),
        },
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
        _ => AuthError::Malformed("the token could not be decoded"),
    }
}

/// Builds the principal from verified claims.
fn principal(
    settings: &IssuerSettings,
    mut claims: Map<String, Value>,
    tenants: &dyn TenantDirectory,
) -> Result<Principal, AuthError> {
    let subject = match claims.remove("sub") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err(AuthError::MissingSubject),
    };
    let expires_at = claims
        .get("exp")
        .and_then(|exp| {
            exp.as_u64()
                .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64))
        })
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .ok_or(AuthError::MissingExpiry)?;
    let tenant = match claims.remove("sluice:tenant") {
        None | Some(Value::Null) => return Err(AuthError::MissingTenant),
        Some(Value::String(s)) => s
            .parse::<TenantId>()
            .map_err(|_| AuthError::InvalidTenantId { value: quoted(&s) })?,
        Some(other) => {
            return Err(AuthError::InvalidTenantId {
                value: format!("(a JSON {})", json_type(&other)),
            })
        }
    };
    let policies = match claims.remove("sluice:policies") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(()),
                })
                .collect::<Result<Vec<_>, ()>>()
                .map_err(|()| AuthError::InvalidClaim {
                    claim: "sluice:policies",
                    expected: "must be an array of policy names (strings)",
                })?,
        ),
        Some(_) => {
            return Err(AuthError::InvalidClaim {
                claim: "sluice:policies",
                expected: "must be an array of policy names (strings)",
            })
        }
    };
    let invalid_session = AuthError::InvalidClaim {
        claim: "sluice:session_policy",
        expected: "must be a policy document (a JSON object, or a string holding one)",
    };
    let session_policy = match claims.remove("sluice:session_policy") {
        None | Some(Value::Null) => None,
        Some(doc @ Value::Object(_)) => Some(doc),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(doc @ Value::Object(_)) => Some(doc),
            _ => return Err(invalid_session),
        },
        Some(_) => return Err(invalid_session),
    };
    if !tenants.exists(&tenant) {
        return Err(AuthError::UnknownTenant {
            tenant: tenant.to_string(),
        });
    }
    Ok(Principal {
        subject,
        tenant,
        policies,
        session_policy,
        issuer: settings.issuer.clone(),
        expires_at,
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
