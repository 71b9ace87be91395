//! Tenant identity: the validated [`TenantId`] and the [`TenantDirectory`] that says which
//! tenants exist.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crate::TenancyError;

/// A tenant id: `^[a-z0-9][a-z0-9-]{1,30}$` (SPEC §4). It prefixes every pool name of the tenant
/// (`<tenant>.<topic>`), so the rule keeps those names valid Kafka names and keeps tenants from
/// reaching `__`-prefixed internal topics.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(s: &str) -> bool {
        let b = s.as_bytes();
        (2..=31).contains(&b.len())
            && matches!(b[0], b'a'..=b'z' | b'0'..=b'9')
            && b[1..]
                .iter()
                .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'))
    }
}

impl FromStr for TenantId {
    type Err = TenancyError;

    /// Fails with [`TenancyError::InvalidTenantId`] unless `s` matches `^[a-z0-9][a-z0-9-]{1,30}$`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s) {
            Ok(TenantId(s.to_owned()))
        } else {
            Err(TenancyError::InvalidTenantId {
                value: s.to_owned(),
            })
        }
    }
}

impl TryFrom<String> for TenantId {
    type Error = TenancyError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if Self::is_valid(&s) {
            Ok(TenantId(s))
        } else {
            Err(TenancyError::InvalidTenantId { value: s })
        }
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Which tenants exist. A token naming a tenant that does not exist is rejected, so removing a
/// tenant locks its principals out even while their tokens are still valid.
pub trait TenantDirectory: Send + Sync {
    /// Whether `tenant` exists (and may connect).
    fn exists(&self, tenant: &TenantId) -> bool;
}

/// A fixed set of tenants, from the gateway's configuration (until the tenant store lands).
#[derive(Debug, Clone, Default)]
pub struct StaticTenants(pub HashSet<TenantId>);

impl FromIterator<TenantId> for StaticTenants {
    fn from_iter<I: IntoIterator<Item = TenantId>>(iter: I) -> Self {
        StaticTenants(iter.into_iter().collect())
    }
}

impl TenantDirectory for StaticTenants {
    fn exists(&self, tenant: &TenantId) -> bool {
        self.0.contains(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_id_accepts_the_spec_pattern_only() {
        for ok in [
            "ab",
            "a1",
            "0a",
            "acme",
            "acme-prod",
            "a-",
            &format!("a{}", "b".repeat(30)),
        ] {
            assert!(ok.parse::<TenantId>().is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            "a",
            "-ab",
            "Acme",
            "ac_me",
            "__consumer",
            "ac.me",
            "acme ",
            "ä-b",
            &format!("a{}", "b".repeat(31)),
        ] {
            assert!(
                matches!(
                    bad.parse::<TenantId>(),
                    Err(TenancyError::InvalidTenantId { .. })
                ),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn tenant_id_serde_validates() {
        let t: TenantId = serde_json::from_str("\"acme\"").expect("valid id");
        assert_eq!(t.as_ref(), "acme");
        assert_eq!(serde_json::to_string(&t).expect("serialize"), "\"acme\"");
        assert!(serde_json::from_str::<TenantId>("\"__x\"").is_err());
    }

    #[test]
    fn static_tenants() {
        let dir: StaticTenants = ["acme", "globex"]
            .iter()
            .map(|s| s.parse().expect("valid"))
            .collect();
        assert!(dir.exists(&"acme".parse().expect("valid")));
        assert!(!dir.exists(&"initech".parse().expect("valid")));
    }
}
