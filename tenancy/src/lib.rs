//! sluice tenancy: who is calling, and for which tenant.
//!
//! The gateway's SASL layer (OAUTHBEARER, or PLAIN with the token as password) hands the bearer
//! token to [`Authenticator::verify`], which checks it against the configured token issuers
//! ([`IssuerConfig`], one per `[[auth.issuers]]`) and returns a typed [`Principal`]: subject,
//! [`TenantId`], stored policy names, optional inline session policy, issuer and expiry (the SASL
//! session lifetime, KIP-368). Every rejection is an [`AuthError`] variant whose message a client
//! user can act on; configuration and key-loading problems are [`TenancyError`]s.
//!
//! Tokens are JWTs verified with `jsonwebtoken` (aws-lc-rs backend) against each issuer's JWKS,
//! loaded from a file or an HTTPS URL and cached per issuer by `kid`; an unknown `kid` refreshes
//! the set once (single flight, rate-limited). Accepted: RS256/ES256/EdDSA by default, any other
//! asymmetric algorithm or HS256 only when the issuer lists it. Refused: `alg: none`, algorithms
//! the issuer does not list, a key of another type than `alg` (e.g. HS256 "signed" with an RSA
//! public key), bad signatures, expired or not-yet-valid tokens (with the issuer's leeway),
//! wrong `aud`/`iss`, missing `exp`/`sub`/`sluice:tenant`, invalid or unknown tenants
//! ([`TenantDirectory`]) and oversize tokens.
//!
//! This crate never depends on the gateway; it owns no sockets except JWKS fetches.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authenticator;
pub mod client_quota;
mod config;
mod error;
mod jwks;
mod names;
pub mod policy;
pub mod store;
mod tenant;
pub mod topic_config;

pub use authenticator::{AdminPrincipal, Authenticator, Principal};
pub use config::IssuerConfig;
pub use error::{AuthError, TenancyError};
pub use names::{NameError, Namespace};
pub use policy::{
    Action, Decision, Effect, Grants, PolicyDocument, PolicyError, ResourceKind, Statement,
};
pub use tenant::{StaticTenants, TenantDirectory, TenantId};
pub use topic_config::{check_topic_config, ConfigAction, ConfigContext, ConfigRejection};

#[cfg(test)]
mod tests;
