//! The tenant store's data model, pure and without I/O: the stored tenant document
//! ([`TenantDoc`]: limits, named policies, principals, OAuth clients), the record encoding in the
//! compacted `__sluice_tenants` topic, and the apply rule that turns the topic's log into
//! a [`TenantsSnapshot`].
//!
//! Every gateway instance reads the same log in the same order and applies the same rule,
//! so all of them agree: a record whose version is exactly one above the current one (or
//! 1 for an absent tenant) is applied; any other version lost a race and is skipped; a
//! null value (tombstone) deletes the tenant. Records that do not parse are skipped, never
//! fatal, so one bad write cannot stop the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::client_quota::{self, ClientQuota, ClientQuotaError};
use crate::policy::PolicyDocument;
use crate::TenantId;

/// Key prefix of tenant records: `tenant/<id>`.
pub const KEY_PREFIX: &str = "tenant/";

/// The principal entry that applies to every principal without an own entry.
pub const ANY_PRINCIPAL: &str = "*";

/// Per-tenant limits; `None` means the gateway default (SPEC 7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct TenantLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produce_bytes_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consume_bytes_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_produce_bytes_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_consume_bytes_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_partitions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_compacted_partitions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_mutations_per_5min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_consumer_groups: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_rate: Option<u64>,
}

/// The policies attached to one principal, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalEntry {
    /// Names of the tenant's stored policies.
    #[serde(default)]
    pub policies: Vec<String>,
}

/// Longest OAuth client name (the part after `<tenant>.` in a client id).
pub const MAX_CLIENT_NAME: usize = 64;

/// An OAuth2 client of sluice's own issuer (client-credentials grant), kept in its
/// tenant's document under its name. Clients use the id `<tenant>.<name>`: tenant ids
/// contain no `.`, so the id names the tenant and is unique across the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    /// argon2 PHC string of the secret; the secret itself is never stored.
    pub secret_hash: String,
    /// The principal (`sub`) of the tokens this client gets.
    pub subject: String,
    /// Stored policy names put into the token's `sluice:policies` claim; `None` leaves the
    /// claim out, so the subject's attached policies apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<String>>,
    /// When the client was created, seconds since the Unix epoch.
    pub created_at: u64,
    /// sluice scopes its tokens may carry when asked for: only [`ADMIN_SCOPE`] (tenant
    /// admin over the HTTP API). Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// The OAuth scope of tenant-admin tokens for the HTTP API (SPEC 9).
pub const ADMIN_SCOPE: &str = "sluice:admin";
/// The OAuth scope of operator tokens; never granted to a tenant's client.
pub const OPERATOR_SCOPE: &str = "sluice:operator";

/// Whether `name` is a valid client name: `[A-Za-z0-9._-]{1,64}`.
pub fn valid_client_name(name: &str) -> bool {
    (1..=MAX_CLIENT_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Splits a client id `<tenant>.<name>` at its first `.`; `None` unless both parts are valid.
pub fn split_client_id(client_id: &str) -> Option<(TenantId, &str)> {
    let (tenant, name) = client_id.split_once('.')?;
    let tenant = tenant.parse().ok()?;
    valid_client_name(name).then_some((tenant, name))
}

/// The id clients use for client `name` of `tenant`.
pub fn client_id(tenant: &TenantId, name: &str) -> String {
    format!("{tenant}.{name}")
}

/// One tenant as the operator stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDoc {
    /// The tenant id.
    pub id: TenantId,
    /// Limits overriding the gateway defaults.
    #[serde(default)]
    pub limits: TenantLimits,
    /// Named policy documents.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyDocument>,
    /// Principals (token `sub`) and their attached policies; `"*"` covers every principal
    /// without an own entry.
    #[serde(default)]
    pub principals: BTreeMap<String, PrincipalEntry>,
    /// OAuth clients of sluice's issuer by name (`sluice client create`); their id is
    /// `<tenant>.<name>`. Left out when empty, so documents without clients read the same
    /// as before the field existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clients: BTreeMap<String, OAuthClient>,
    /// Sub-quotas per user and client id inside the tenant's limits (Kafka's client
    /// quotas, set with AlterClientQuotas). Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_quotas: Vec<ClientQuota>,
}

/// A tenant document that is inconsistent, or a policy lookup that cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    /// A principal names a policy the tenant does not store.
    #[error("principals.{principal}.policies: no policy named {policy:?} in this tenant")]
    UnknownPrincipalPolicy {
        /// The principal.
        principal: String,
        /// The missing policy name.
        policy: String,
    },
    /// A principal name is empty.
    #[error("principals: a principal name is empty")]
    EmptyPrincipal,
    /// A policy name is empty.
    #[error("policies: a policy name is empty")]
    EmptyPolicyName,
    /// A client name is not `[A-Za-z0-9._-]{1,64}`.
    #[error("clients: {client:?} is not a valid client name ([A-Za-z0-9._-], 1 to 64 characters)")]
    BadClientName {
        /// The name.
        client: String,
    },
    /// A client names a policy the tenant does not store.
    #[error("clients.{client}.policies: no policy named {policy:?} in this tenant")]
    UnknownClientPolicy {
        /// The client name.
        client: String,
        /// The missing policy name.
        policy: String,
    },
    /// A client may only hold [`ADMIN_SCOPE`].
    #[error("clients.{client}.scopes: {scope:?} cannot be granted to a tenant's client (only sluice:admin)")]
    ClientScope {
        /// The client name.
        client: String,
        /// The scope.
        scope: String,
    },
    /// A client's subject is empty.
    #[error("clients.{client}.subject is empty")]
    EmptyClientSubject {
        /// The client name.
        client: String,
    },
    /// A client's secret is stored as something other than an argon2 PHC string.
    #[error("clients.{client}.secret_hash is not an argon2 PHC string ($argon2...); secrets are never stored in clear")]
    ClientSecretNotHashed {
        /// The client name.
        client: String,
    },
    /// A client-quota entry is invalid.
    #[error("client_quotas: {0}")]
    ClientQuota(String),
    /// A token names a policy the tenant does not store.
    #[error("the token names policy {policy:?}, which tenant {tenant} does not have")]
    UnknownPolicy {
        /// The tenant.
        tenant: TenantId,
        /// The missing policy name.
        policy: String,
    },
}

impl TenantDoc {
    /// A tenant with nothing but its id.
    pub fn new(id: TenantId) -> Self {
        TenantDoc {
            id,
            limits: TenantLimits::default(),
            policies: BTreeMap::new(),
            principals: BTreeMap::new(),
            clients: BTreeMap::new(),
            client_quotas: Vec::new(),
        }
    }

    /// Checks what serde cannot: names are non-empty and every policy a principal or a
    /// client references exists; client names are valid and their secrets hashed.
    pub fn validate(&self) -> Result<(), DocError> {
        if self.policies.keys().any(|n| n.is_empty()) {
            return Err(DocError::EmptyPolicyName);
        }
        for (principal, entry) in &self.principals {
            if principal.is_empty() {
                return Err(DocError::EmptyPrincipal);
            }
            if let Some(missing) = entry.policies.iter().find(|p| !self.policies.contains_key(*p)) {
                return Err(DocError::UnknownPrincipalPolicy { principal: principal.clone(), policy: missing.clone() });
            }
        }
        for (name, entry) in &self.clients {
            let client = || name.clone();
            if !valid_client_name(name) {
                return Err(DocError::BadClientName { client: client() });
            }
            if entry.subject.is_empty() {
                return Err(DocError::EmptyClientSubject { client: client() });
            }
            if !entry.secret_hash.starts_with("$argon2") {
                return Err(DocError::ClientSecretNotHashed { client: client() });
            }
            if let Some(scope) = entry.scopes.iter().find(|s| s.as_str() != ADMIN_SCOPE) {
                return Err(DocError::ClientScope { client: client(), scope: scope.clone() });
            }
            if let Some(missing) = entry.policies.iter().flatten().find(|p| !self.policies.contains_key(*p)) {
                return Err(DocError::UnknownClientPolicy { client: client(), policy: missing.clone() });
            }
        }
        client_quota::validate_all(&self.client_quotas).map_err(|e: ClientQuotaError| DocError::ClientQuota(e.to_string()))?;
        Ok(())
    }

    /// The policies that apply to `subject`: the ones the token names (`named`), failing
    /// on a name the tenant does not have; otherwise the subject's own entry, else the
    /// `"*"` entry, else none. Names without a document are skipped there (a validated
    /// document has none).
    pub fn policies_for(&self, subject: &str, named: Option<&[String]>) -> Result<Vec<&PolicyDocument>, DocError> {
        if let Some(names) = named {
            return names
                .iter()
                .map(|n| {
                    self.policies
                        .get(n)
                        .ok_or_else(|| DocError::UnknownPolicy { tenant: self.id.clone(), policy: n.clone() })
                })
                .collect();
        }
        let entry = self.principals.get(subject).or_else(|| self.principals.get(ANY_PRINCIPAL));
        Ok(entry.map(|e| e.policies.iter().filter_map(|n| self.policies.get(n)).collect()).unwrap_or_default())
    }
}

impl TenantDoc {
    /// Parses and validates a document as an operator writes it, naming the failing
    /// field by its path (`limits.max_connections`, `policies.<name>.Statement`, ...).
    pub fn parse_checked(text: &str) -> Result<TenantDoc, String> {
        use serde::de::Deserialize as _;
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let obj = v.as_object().ok_or("a tenant document is a JSON object")?;
        for (field, value) in obj {
            let at = |e: serde_json::Error| format!("{field}: {e}");
            match field.as_str() {
                "id" => {
                    TenantId::deserialize(value).map_err(at)?;
                }
                "limits" => {
                    TenantLimits::deserialize(value).map_err(at)?;
                }
                "policies" | "principals" | "clients" => {
                    let map = value.as_object().ok_or_else(|| format!("{field}: expected an object of named entries"))?;
                    for (name, entry) in map {
                        let r = match field.as_str() {
                            "policies" => PolicyDocument::deserialize(entry).map(drop),
                            "principals" => PrincipalEntry::deserialize(entry).map(drop),
                            _ => OAuthClient::deserialize(entry).map(drop),
                        };
                        r.map_err(|e| format!("{field}.{name}: {e}"))?;
                    }
                }
                "client_quotas" => {
                    let list = value.as_array().ok_or("client_quotas: expected an array of entries")?;
                    for (i, entry) in list.iter().enumerate() {
                        ClientQuota::deserialize(entry).map_err(|e| format!("client_quotas[{i}]: {e}"))?;
                    }
                }
                other => {
                    return Err(format!(
                        "unknown field {other:?}, expected one of id, limits, policies, principals, clients, client_quotas"
                    ))
                }
            }
        }
        let doc: TenantDoc = serde_json::from_value(v).map_err(|e| e.to_string())?;
        doc.validate().map_err(|e| e.to_string())?;
        Ok(doc)
    }
}

/// A tenant as applied from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTenant {
    /// 1 for the first write, one more per later write.
    pub version: u64,
    /// The document.
    pub doc: TenantDoc,
}

/// The JSON value of a tenant record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordValue {
    /// The version this write creates.
    pub version: u64,
    /// The document.
    pub tenant: TenantDoc,
}

/// The record key and JSON value for writing `doc` as `version`.
pub fn encode_record(doc: &TenantDoc, version: u64) -> (Vec<u8>, Vec<u8>) {
    (record_key(&doc.id), encode_value(doc, version))
}

/// The record key of a tenant: `tenant/<id>`.
pub fn record_key(id: &TenantId) -> Vec<u8> {
    format!("{KEY_PREFIX}{id}").into_bytes()
}

/// The JSON value `{"version":N,"tenant":{...}}` of a stored tenant.
pub fn encode_value(doc: &TenantDoc, version: u64) -> Vec<u8> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        version: u64,
        tenant: &'a TenantDoc,
    }
    // Strings, integers and maps with string keys only: serializing cannot fail.
    serde_json::to_vec(&Borrowed { version, tenant: doc }).unwrap_or_default()
}

/// A record that cannot be applied at all (as opposed to a stale one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The key is not `tenant/<valid id>`.
    #[error("offset {offset}: key {key:?} is not tenant/<id>")]
    BadKey {
        /// Log offset.
        offset: i64,
        /// The key, lossily decoded.
        key: String,
    },
    /// The value is not a valid `{"version":N,"tenant":{...}}`.
    #[error("offset {offset}: value for tenant {tenant} does not parse: {reason}")]
    BadValue {
        /// Log offset.
        offset: i64,
        /// The tenant the key names.
        tenant: TenantId,
        /// What is wrong.
        reason: String,
    },
}

/// What applying one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The tenant now has this version.
    Put {
        /// The tenant.
        tenant: TenantId,
        /// Its new version.
        version: u64,
    },
    /// The tenant was deleted (or was already absent).
    Deleted {
        /// The tenant.
        tenant: TenantId,
    },
    /// The record's version did not follow the current one: a lost race, skipped.
    Stale {
        /// The tenant.
        tenant: TenantId,
        /// The record's version.
        version: u64,
        /// The version in force (0 = absent).
        current: u64,
    },
}

/// Every tenant as of one log offset. Immutable once published; the store clones and
/// applies to make the next one.
#[derive(Debug, Clone, Default)]
pub struct TenantsSnapshot {
    tenants: BTreeMap<TenantId, Arc<StoredTenant>>,
    /// The last offset applied or skipped.
    applied_offset: Option<i64>,
}

impl TenantsSnapshot {
    /// An empty snapshot (no records read).
    pub fn new() -> Self {
        Self::default()
    }

    /// The tenant, if it exists.
    pub fn get(&self, id: &TenantId) -> Option<&Arc<StoredTenant>> {
        self.tenants.get(id)
    }

    /// The OAuth client with id `<tenant>.<name>` and its tenant, if both exist.
    pub fn client(&self, client_id: &str) -> Option<(&Arc<StoredTenant>, &OAuthClient)> {
        let (tenant, name) = split_client_id(client_id)?;
        let stored = self.tenants.get(&tenant)?;
        Some((stored, stored.doc.clients.get(name)?))
    }

    /// Every tenant, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = (&TenantId, &Arc<StoredTenant>)> {
        self.tenants.iter()
    }

    /// How many tenants exist.
    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    /// Whether no tenant exists.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The offset of the last record applied or skipped, if any.
    pub fn applied_offset(&self) -> Option<i64> {
        self.applied_offset
    }

    /// Applies the record at `offset` by the store's rule (module docs). Whatever the
    /// outcome, `applied_offset` moves to `offset`.
    pub fn apply(&mut self, offset: i64, key: &[u8], value: Option<&[u8]>) -> Result<Applied, RecordError> {
        self.applied_offset = Some(offset);
        let tenant = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix(KEY_PREFIX))
            .and_then(|id| id.parse::<TenantId>().ok())
            .ok_or_else(|| RecordError::BadKey { offset, key: String::from_utf8_lossy(key).into_owned() })?;
        let Some(value) = value else {
            self.tenants.remove(&tenant);
            return Ok(Applied::Deleted { tenant });
        };
        let parsed: RecordValue = serde_json::from_slice(value).map_err(|e| RecordError::BadValue {
            offset,
            tenant: tenant.clone(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| RecordError::BadValue { offset, tenant: tenant.clone(), reason };
        if parsed.tenant.id != tenant {
            return Err(bad(format!("the document's id is {}", parsed.tenant.id)));
        }
        parsed.tenant.validate().map_err(|e| bad(e.to_string()))?;
        let current = self.tenants.get(&tenant).map(|t| t.version).unwrap_or(0);
        if parsed.version != current + 1 {
            return Ok(Applied::Stale { tenant, version: parsed.version, current });
        }
        self.tenants
            .insert(tenant.clone(), Arc::new(StoredTenant { version: parsed.version, doc: parsed.tenant }));
        Ok(Applied::Put { tenant, version: parsed.version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kafka-cluster:*"],"Resource":["*"]}]}"#;

    fn id(s: &str) -> TenantId {
        s.parse().expect("valid id")
    }

    fn doc(t: &str) -> TenantDoc {
        let mut d = TenantDoc::new(id(t));
        d.policies.insert("all".into(), PolicyDocument::parse(ALLOW_ALL).expect("valid policy"));
        d.principals.insert("*".into(), PrincipalEntry { policies: vec!["all".into()] });
        d
    }

    fn put(s: &mut TenantsSnapshot, offset: i64, d: &TenantDoc, version: u64) -> Result<Applied, RecordError> {
        let (k, v) = encode_record(d, version);
        s.apply(offset, &k, Some(&v))
    }

    #[test]
    fn versions_apply_in_order_and_stale_ones_are_skipped() {
        let mut s = TenantsSnapshot::new();
        let mut d = doc("acme");
        assert_eq!(put(&mut s, 0, &d, 1), Ok(Applied::Put { tenant: id("acme"), version: 1 }));
        d.limits.max_connections = Some(7);
        // A second writer of version 1 lost the race.
        assert_eq!(put(&mut s, 1, &d, 1), Ok(Applied::Stale { tenant: id("acme"), version: 1, current: 1 }));
        assert_eq!(s.get(&id("acme")).map(|t| t.doc.limits.max_connections), Some(None));
        // A gap is a lost race too.
        assert!(matches!(put(&mut s, 2, &d, 3), Ok(Applied::Stale { current: 1, .. })));
        assert_eq!(put(&mut s, 3, &d, 2), Ok(Applied::Put { tenant: id("acme"), version: 2 }));
        let t = s.get(&id("acme")).expect("present");
        assert_eq!((t.version, t.doc.limits.max_connections), (2, Some(7)));
        assert_eq!(s.applied_offset(), Some(3));
        // Absent tenants start at 1, not 2.
        assert!(matches!(put(&mut s, 4, &doc("globex"), 2), Ok(Applied::Stale { current: 0, .. })));
        assert!(s.get(&id("globex")).is_none());
    }

    #[test]
    fn tombstones_delete_and_versions_restart() {
        let mut s = TenantsSnapshot::new();
        put(&mut s, 0, &doc("acme"), 1).expect("applies");
        assert_eq!(s.apply(1, b"tenant/acme", None), Ok(Applied::Deleted { tenant: id("acme") }));
        assert!(s.get(&id("acme")).is_none());
        assert_eq!(put(&mut s, 2, &doc("acme"), 1), Ok(Applied::Put { tenant: id("acme"), version: 1 }));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn garbage_is_an_error_and_changes_nothing() {
        let mut s = TenantsSnapshot::new();
        put(&mut s, 0, &doc("acme"), 1).expect("applies");
        assert!(matches!(s.apply(1, b"tenant/Not_Valid", Some(b"{}")), Err(RecordError::BadKey { offset: 1, .. })));
        assert!(matches!(s.apply(2, b"other/acme", None), Err(RecordError::BadKey { .. })));
        assert!(matches!(s.apply(3, b"\xff\xfe", None), Err(RecordError::BadKey { .. })));
        assert!(matches!(s.apply(4, b"tenant/acme", Some(b"not json")), Err(RecordError::BadValue { offset: 4, .. })));
        // The key and the document disagree on the id.
        let (_, v) = encode_record(&doc("globex"), 2);
        assert!(matches!(s.apply(5, b"tenant/acme", Some(&v)), Err(RecordError::BadValue { .. })));
        // Unknown fields are refused, at both levels.
        let e = s.apply(6, b"tenant/acme", Some(br#"{"version":2,"tenant":{"id":"acme"},"extra":1}"#));
        assert!(matches!(e, Err(RecordError::BadValue { .. })), "{e:?}");
        let e = s.apply(7, b"tenant/acme", Some(br#"{"version":2,"tenant":{"id":"acme","limits":{"max_conns":1}}}"#));
        match e {
            Err(RecordError::BadValue { reason, .. }) => assert!(reason.contains("max_conns"), "{reason}"),
            other => panic!("expected BadValue, got {other:?}"),
        }
        assert_eq!(s.get(&id("acme")).map(|t| t.version), Some(1));
        assert_eq!(s.applied_offset(), Some(7));
        // Later good records still apply.
        assert!(matches!(put(&mut s, 8, &doc("acme"), 2), Ok(Applied::Put { version: 2, .. })));
    }

    #[test]
    fn documents_round_trip_through_records() {
        let mut d = doc("acme");
        d.limits.produce_bytes_per_sec = Some(1 << 20);
        let (k, v) = encode_record(&d, 4);
        assert_eq!(k, b"tenant/acme");
        let parsed: RecordValue = serde_json::from_slice(&v).expect("parses");
        assert_eq!(parsed.version, 4);
        assert_eq!(parsed.tenant, d);
        // Minimal documents take defaults.
        let min: TenantDoc = serde_json::from_str(r#"{"id":"acme"}"#).expect("parses");
        assert_eq!(min, TenantDoc::new(id("acme")));
    }

    #[test]
    fn validate_names_the_problem() {
        let mut d = doc("acme");
        assert_eq!(d.validate(), Ok(()));
        d.principals.insert("alice".into(), PrincipalEntry { policies: vec!["nope".into()] });
        assert_eq!(
            d.validate(),
            Err(DocError::UnknownPrincipalPolicy { principal: "alice".into(), policy: "nope".into() })
        );
        let mut d = doc("acme");
        d.principals.insert(String::new(), PrincipalEntry::default());
        assert_eq!(d.validate(), Err(DocError::EmptyPrincipal));
        // A record that fails validation is not applied.
        let mut s = TenantsSnapshot::new();
        let (k, v) = encode_record(&d, 1);
        assert!(matches!(s.apply(0, &k, Some(&v)), Err(RecordError::BadValue { .. })));
    }

    #[test]
    fn parse_checked_names_the_field() {
        let ok = format!(r#"{{"id":"acme","policies":{{"all":{ALLOW_ALL}}},"principals":{{"*":{{"policies":["all"]}}}}}}"#);
        assert_eq!(TenantDoc::parse_checked(&ok).expect("valid"), doc("acme"));
        for (text, needle) in [
            (r#"{"id":"Bad_Id"}"#.to_string(), "id:"),
            (r#"{"id":"acme","limits":{"max_conns":1}}"#.to_string(), "limits: unknown field `max_conns`"),
            (r#"{"id":"acme","limits":{"max_connections":-1}}"#.to_string(), "limits:"),
            (r#"{"id":"acme","policies":{"p":{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}}}"#.to_string(), "policies.p:"),
            (r#"{"id":"acme","principals":{"bob":{"policies":["nope"]}}}"#.to_string(), "principals.bob.policies"),
            (r#"{"id":"acme","tenants":1}"#.to_string(), "\"tenants\""),
            (r#"{"limits":{}}"#.to_string(), "missing field `id`"),
            ("[1]".to_string(), "JSON object"),
        ] {
            let err = TenantDoc::parse_checked(&text).expect_err(&text);
            assert!(err.contains(needle), "{text}: {err} should contain {needle}");
        }
    }

    fn client(subject: &str, policies: Option<Vec<String>>) -> OAuthClient {
        OAuthClient {
            secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            subject: subject.into(),
            policies,
            created_at: 1,
            scopes: Vec::new(),
        }
    }

    #[test]
    fn client_ids_name_their_tenant() {
        assert_eq!(split_client_id("acme.app"), Some((id("acme"), "app")));
        // Split at the first dot: names may contain dots, tenant ids never do.
        assert_eq!(split_client_id("acme.app.v2"), Some((id("acme"), "app.v2")));
        assert_eq!(client_id(&id("acme"), "app.v2"), "acme.app.v2");
        for bad in ["acme", "acme.", ".app", "Acme.app", "acme.a b", "acme.a/b", "a.x", &format!("acme.{}", "n".repeat(65))] {
            assert_eq!(split_client_id(bad), None, "{bad}");
        }
        assert!(valid_client_name(&"n".repeat(64)) && valid_client_name("A-z_0.9"));
        assert!(!valid_client_name("") && !valid_client_name("ü") && !valid_client_name("a:b"));
    }

    #[test]
    fn clients_are_validated() {
        let mut d = doc("acme");
        d.clients.insert("app".into(), client("alice", Some(vec!["all".into()])));
        d.clients.insert("svc.v2".into(), client("svc", None));
        assert_eq!(d.validate(), Ok(()));
        let mut bad = d.clone();
        bad.clients.insert("has space".into(), client("x", None));
        assert_eq!(bad.validate(), Err(DocError::BadClientName { client: "has space".into() }));
        let mut bad = d.clone();
        bad.clients.insert(String::new(), client("x", None));
        assert_eq!(bad.validate(), Err(DocError::BadClientName { client: String::new() }));
        let mut bad = d.clone();
        bad.clients.insert("x".into(), client("x", Some(vec!["nope".into()])));
        assert_eq!(bad.validate(), Err(DocError::UnknownClientPolicy { client: "x".into(), policy: "nope".into() }));
        let mut bad = d.clone();
        bad.clients.insert("x".into(), client("", None));
        assert_eq!(bad.validate(), Err(DocError::EmptyClientSubject { client: "x".into() }));
        let mut bad = d.clone();
        bad.clients.insert("x".into(), OAuthClient { secret_hash: "plain-secret".into(), ..client("x", None) });
        let mut operator = doc("acme");
        operator.clients.insert("ops".into(), OAuthClient { scopes: vec![OPERATOR_SCOPE.into()], ..client("x", None) });
        assert!(matches!(operator.validate(), Err(DocError::ClientScope { .. })));
        assert_eq!(bad.validate(), Err(DocError::ClientSecretNotHashed { client: "x".into() }));
        // A record with an invalid client is not applied.
        let mut s = TenantsSnapshot::new();
        let (k, v) = encode_record(&bad, 1);
        assert!(matches!(s.apply(0, &k, Some(&v)), Err(RecordError::BadValue { .. })));
        // parse_checked names the field.
        let text = serde_json::to_string(&bad).expect("serializes");
        let err = TenantDoc::parse_checked(&text).expect_err("plain secret");
        assert!(err.contains("clients.x.secret_hash"), "{err}");
        let err = TenantDoc::parse_checked(r#"{"id":"acme","clients":{"app":{"subject":"a"}}}"#).expect_err("missing");
        assert!(err.starts_with("clients.app:") && err.contains("secret_hash"), "{err}");
    }

    #[test]
    fn clients_are_found_by_id_in_the_snapshot() {
        let mut s = TenantsSnapshot::new();
        let mut d = doc("acme");
        d.clients.insert("app".into(), client("alice", Some(vec!["all".into()])));
        put(&mut s, 0, &d, 1).expect("applies");
        let mut g = doc("globex");
        g.clients.insert("app".into(), client("bob", None));
        put(&mut s, 1, &g, 1).expect("applies");
        let (t, c) = s.client("acme.app").expect("found");
        assert_eq!((t.doc.id.as_str(), c.subject.as_str()), ("acme", "alice"));
        assert_eq!(c.policies.as_deref(), Some(&["all".to_string()][..]));
        // The same name in another tenant is another client.
        let (t, c) = s.client("globex.app").expect("found");
        assert_eq!((t.doc.id.as_str(), c.subject.as_str(), c.policies.clone()), ("globex", "bob", None));
        assert!(s.client("acme.other").is_none());
        assert!(s.client("initech.app").is_none());
        assert!(s.client("app").is_none());
        // Removing the client, or deleting the tenant, ends it.
        d.clients.clear();
        put(&mut s, 2, &d, 2).expect("applies");
        assert!(s.client("acme.app").is_none());
        s.apply(3, b"tenant/globex", None).expect("tombstone");
        assert!(s.client("globex.app").is_none());
    }

    #[test]
    fn documents_without_clients_serialize_as_before() {
        let d = doc("acme");
        let v: serde_json::Value = serde_json::to_value(&d).expect("serializes");
        assert!(v.get("clients").is_none(), "{v}");
        let mut with = doc("acme");
        with.clients.insert("app".into(), client("a", None));
        let (_, bytes) = encode_record(&with, 1);
        let parsed: RecordValue = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(parsed.tenant, with);
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert!(v["tenant"]["clients"]["app"].get("policies").is_none(), "{v}");
    }

    #[test]
    fn policies_for_resolution() {
        let read = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kafka-cluster:ReadData","Resource":"*"}]}"#,
        )
        .expect("valid");
        let mut d = doc("acme");
        d.policies.insert("read".into(), read.clone());
        d.principals.insert("alice".into(), PrincipalEntry { policies: vec!["read".into()] });
        let all = d.policies.get("all").expect("present").clone();
        // Own entry first.
        assert_eq!(d.policies_for("alice", None).expect("ok"), vec![&read]);
        // Then "*".
        assert_eq!(d.policies_for("bob", None).expect("ok"), vec![&all]);
        // Token-named policies win over entries.
        assert_eq!(d.policies_for("alice", Some(&["all".into(), "read".into()])).expect("ok"), vec![&all, &read]);
        assert_eq!(
            d.policies_for("alice", Some(&["nope".into()])),
            Err(DocError::UnknownPolicy { tenant: id("acme"), policy: "nope".into() })
        );
        // No entry and no "*": nothing.
        d.principals.remove("*");
        assert!(d.policies_for("bob", None).expect("ok").is_empty());
        assert!(d.policies_for("bob", Some(&[])).expect("ok").is_empty());
    }
}
