//! The crate's two error types: [`AuthError`] for a rejected token (one variant per reason,
//! worded for the client's user) and [`TenancyError`] for configuration and key loading (worded
//! for the operator).

use std::path::PathBuf;

/// Why a token was rejected.
///
/// Each `Display` text is meant to reach the client (SASL error message): it says what to fix and
/// never contains key material, the token itself or the gateway's internal state. Values echoed
/// from the token (issuer, `kid`, `alg`, tenant) are quoted and cut to 64 characters.
/// [`AuthError::kind`] gives a short fixed label for metrics and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is longer than the configured maximum; rejected before any parsing.
    #[error("token is {size} bytes, over the limit of {limit} bytes")]
    Oversize {
        /// Length of the presented token.
        size: usize,
        /// The limit that applied (the largest of all issuers', or the token's issuer's).
        limit: usize,
    },
    /// Not a compact JWS with a JSON header and payload.
    #[error("token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    /// `alg` is `none`, unknown, or not in the issuer's `algorithms`.
    #[error("token algorithm {alg} is not accepted for this issuer (accepted: {allowed})")]
    AlgorithmNotAllowed {
        /// The token's `alg`, quoted.
        alg: String,
        /// The issuer's accepted algorithms, comma separated (empty before the issuer is known).
        allowed: String,
    },
    /// The key named by `kid` is of another type than `alg` needs (e.g. an HS256 token naming an
    /// RSA key: the classic algorithm confusion).
    #[error("token algorithm {alg} does not match the type of signing key {kid}")]
    AlgorithmKeyMismatch {
        /// The token's `alg`.
        alg: String,
        /// The key's `kid`, quoted, or `(none)`.
        kid: String,
    },
    /// No key with this `kid` in the issuer's JWKS, even after a refresh; or no `kid` while the
    /// issuer publishes several keys.
    #[error("{}", match kid {
        Some(kid) => format!("signing key {kid} is not published by the token's issuer; get a token signed with a current key"),
        None => "token has no kid header and its issuer publishes more than one key".to_owned(),
    })]
    UnknownKey {
        /// The token's `kid`, quoted; `None` when the header has none.
        kid: Option<String>,
    },
    /// The signature does not verify with the issuer's key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` (plus the issuer's leeway) is in the past.
    #[error("token has expired; get a new token")]
    Expired,
    /// `nbf` (minus the issuer's leeway) is in the future.
    #[error("token is not valid yet (nbf is in the future); check the clocks of the token issuer and client")]
    NotYetValid,
    /// `aud` is missing or names none of the issuer's configured audiences.
    #[error("token audience (aud) must include one of: {expected}")]
    WrongAudience {
        /// The accepted audiences, comma separated (configuration, not secret).
        expected: String,
    },
    /// `iss` is missing or not a configured issuer.
    #[error("{}", match issuer {
        Some(iss) => format!("token issuer {iss} is not trusted by this gateway"),
        None => "token has no issuer (iss) claim".to_owned(),
    })]
    WrongIssuer {
        /// The token's `iss`, quoted; `None` when absent or not a string.
        issuer: Option<String>,
    },
    /// No `exp` claim: tokens must expire.
    #[error("token has no expiry (exp) claim; tokens must expire")]
    MissingExpiry,
    /// No `sub` claim, or an empty one.
    #[error("token has no subject (sub) claim")]
    MissingSubject,
    /// No `sluice:tenant` claim.
    #[error("token has no sluice:tenant claim")]
    MissingTenant,
    /// `sluice:tenant` is not a valid tenant id.
    #[error("sluice:tenant {value} is not a valid tenant id (lowercase letters, digits and '-', 2 to 31 characters, not starting with '-')")]
    InvalidTenantId {
        /// The claim's value, quoted (or its JSON type when not a string).
        value: String,
    },
    /// `sluice:tenant` names no tenant of this gateway.
    #[error("tenant {tenant} does not exist")]
    UnknownTenant {
        /// The tenant named by the token.
        tenant: String,
    },
    /// A claim has the wrong JSON type (e.g. `sluice:policies` not an array of strings).
    #[error("claim {claim} is invalid: {expected}")]
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

impl AuthError {
    /// A short fixed label for this rejection (for metrics and audit records).
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Oversize { .. } => "oversize",
            AuthError::Malformed(_) => "malformed",
            AuthError::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            AuthError::AlgorithmKeyMismatch { .. } => "algorithm_key_mismatch",
            AuthError::UnknownKey { .. } => "unknown_key",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongAudience { .. } => "wrong_audience",
            AuthError::WrongIssuer { .. } => "wrong_issuer",
            AuthError::MissingExpiry => "missing_expiry",
            AuthError::MissingSubject => "missing_subject",
            AuthError::MissingTenant => "missing_tenant",
            AuthError::InvalidTenantId { .. } => "invalid_tenant_id",
            AuthError::UnknownTenant { .. } => "unknown_tenant",
            AuthError::InvalidClaim { .. } => "invalid_claim",
        }
    }
}

/// Configuration and key-loading errors (for the operator; each names the issuer at fault).
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// A string is not a valid tenant id.
    #[error("invalid tenant id {value:?}: use 2 to 31 lowercase letters, digits and '-', starting with a letter or digit")]
    InvalidTenantId {
        /// The rejected string.
        value: String,
    },
    /// An `[[auth.issuers]]` entry is inconsistent.
    #[error("issuer {issuer:?}: {reason}")]
    InvalidIssuerConfig {
        /// The entry's `issuer`.
        issuer: String,
        /// What is wrong, and how to fix it.
        reason: String,
    },
    /// Two entries share one `issuer`.
    #[error("issuer {issuer:?} is configured twice")]
    DuplicateIssuer {
        /// The repeated `issuer`.
        issuer: String,
    },
    /// The HTTP client for JWKS URLs could not be built (TLS setup).
    #[error("cannot build the HTTP client for JWKS URLs: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// Fetching a JWKS URL failed (connection, TLS, timeout, body).
    #[error("issuer {issuer:?}: fetching JWKS from {url} failed: {source}")]
    JwksFetch {
        /// The issuer.
        issuer: String,
        /// The JWKS URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A JWKS URL answered with a non-2xx status.
    #[error("issuer {issuer:?}: JWKS URL {url} answered HTTP {status}")]
    JwksHttpStatus {
        /// The issuer.
        issuer: String,
        /// The JWKS URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// A JWKS document is larger than the gateway accepts.
    #[error("issuer {issuer:?}: JWKS document is larger than {limit} bytes")]
    JwksTooLarge {
        /// The issuer.
        issuer: String,
        /// The size limit in bytes.
        limit: usize,
    },
    /// Reading a JWKS file failed.
    #[error("issuer {issuer:?}: reading JWKS file {path:?} failed: {source}")]
    JwksRead {
        /// The issuer.
        issuer: String,
        /// The JWKS file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JWKS document is not a JSON object with a `keys` array.
    #[error("issuer {issuer:?}: JWKS is not a JSON object with a \"keys\" array: {reason}")]
    JwksParse {
        /// The issuer.
        issuer: String,
        /// What is wrong.
        reason: String,
    },
    /// A JWKS holds no key usable with the issuer's algorithms (unsupported or skipped keys are
    /// logged as warnings). The previous keys, if any, stay in use.
    #[error("issuer {issuer:?}: JWKS has no key usable with the algorithms {algorithms} (see earlier warnings)")]
    NoUsableKeys {
        /// The issuer.
        issuer: String,
        /// The issuer's algorithms, comma separated.
        algorithms: String,
    },
}

/// Quotes a value taken from a token for an error message, cut to 64 characters.
pub(crate) fn quoted(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}
