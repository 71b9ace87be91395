//! Sub-quotas inside a tenant: Kafka's client quotas on `user` and `client-id` entities
//! (SPEC 7), stored in the tenant document and resolved the way Kafka brokers resolve them.
//!
//! - An entity names a user (the token's subject), a client id, or both; either part may
//!   be the *default* (`null` in JSON, `entity_name = null` on the wire), which applies to
//!   every user or client id without a more specific entry.
//! - Each quota key resolves separately, most specific entity first (Kafka's order):
//!   user+client, user+default client, user, default user+client, default user+default
//!   client, default user, client, default client.
//! - The matched entity decides who shares the limit: the user part is shared per actual
//!   user when the entity has a user part, the client part per actual client id when it has
//!   a client part. So `{"user": null}` gives every user its own limit, while
//!   `{"user": "alice"}` is shared by all of alice's client ids ([`Resolved::group`]).
//!
//! Values are Kafka's: bytes/s for the byte rates, a share of the tenant's request rate in
//! percent, partition mutations/s and connections/s. Bounds against the tenant's own limits
//! are checked by the gateway, which knows them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest user or client-id name in an entity.
pub const MAX_ENTITY_NAME: usize = 255;

/// Most client-quota entries one tenant may store.
pub const MAX_ENTRIES: usize = 1000;

/// Kafka's client-quota keys that sluice enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKey {
    /// `producer_byte_rate`: bytes/s produced.
    ProducerByteRate,
    /// `consumer_byte_rate`: bytes/s fetched.
    ConsumerByteRate,
    /// `request_percentage`: share of the tenant's request rate, in percent.
    RequestPercentage,
    /// `controller_mutation_rate`: partitions created or deleted per second.
    ControllerMutationRate,
    /// `connection_creation_rate`: new connections per second.
    ConnectionCreationRate,
}

impl QuotaKey {
    /// Every key, in wire-name order.
    pub const ALL: [QuotaKey; 5] = [
        QuotaKey::ConnectionCreationRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::ControllerMutationRate,
        QuotaKey::ProducerByteRate,
        QuotaKey::RequestPercentage,
    ];

    /// The key by its Kafka name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Kafka's name of the key.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
            QuotaKey::ConnectionCreationRate => "connection_creation_rate",
        }
    }
}

/// Kafka's entity types for client quotas.
pub const USER: &str = "user";
/// See [`USER`].
pub const CLIENT_ID: &str = "client-id";

/// Absent → `None`; `null` → `Some(None)` (the default entity); a name → `Some(Some(name))`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// One stored sub-quota: an entity and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientQuota {
    /// The user part: absent, `null` (default user) or a subject.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub user: Option<Option<String>>,
    /// The client-id part: absent, `null` (default client id) or a client id.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Option<String>>,
    /// Kafka quota key → value.
    pub quotas: BTreeMap<String, f64>,
}

/// A client-quota entity or value that cannot be stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientQuotaError {
    /// Neither a user nor a client-id part.
    #[error("a client-quota entity needs a user or a client-id part")]
    EmptyEntity,
    /// An entity type other than `user` and `client-id` (e.g. `ip`).
    #[error("entity type {0:?} is not supported; use user and client-id")]
    EntityType(String),
    /// The same entity type twice.
    #[error("entity type {0:?} appears twice")]
    DuplicateType(String),
    /// A name that is empty or too long.
    #[error("{kind} name must be 1 to {MAX_ENTITY_NAME} characters (null for the default)")]
    BadName {
        /// `user` or `client-id`.
        kind: &'static str,
    },
    /// A key Kafka does not define, or one sluice does not enforce.
    #[error("unknown quota key {0:?}; expected one of producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate, connection_creation_rate")]
    UnknownKey(String),
    /// Zero, negative, NaN or infinite.
    #[error("{key} = {value}: must be a positive finite number")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: f64,
    },
    /// Too many entries in one tenant.
    #[error("a tenant may store at most {MAX_ENTRIES} client-quota entries")]
    TooMany,
}

impl ClientQuota {
    /// Builds an entity from Kafka's (entity type, name) pairs.
    pub fn entity_from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<(Option<Option<String>>, Option<Option<String>>), ClientQuotaError> {
        let (mut user, mut client) = (None, None);
        for (kind, name) in parts {
            let slot = match kind {
                USER => &mut user,
                CLIENT_ID => &mut client,
                other => return Err(ClientQuotaError::EntityType(other.to_owned())),
            };
            if slot.is_some() {
                return Err(ClientQuotaError::DuplicateType(kind.to_owned()));
            }
            *slot = Some(name.map(str::to_owned));
        }
        let entry = ClientQuota { user, client_id: client, quotas: BTreeMap::new() };
        entry.validate_entity()?;
        Ok((entry.user, entry.client_id))
    }

    /// The entity as Kafka's (entity type, name) pairs, user first.
    pub fn entity_parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut parts = Vec::with_capacity(2);
        if let Some(u) = &self.user {
            parts.push((USER, u.as_deref()));
        }
        if let Some(c) = &self.client_id {
            parts.push((CLIENT_ID, c.as_deref()));
        }
        parts
    }

    fn validate_entity(&self) -> Result<(), ClientQuotaError> {
        if self.user.is_none() && self.client_id.is_none() {
            return Err(ClientQuotaError::EmptyEntity);
        }
        for (kind, part) in [(USER, &self.user), (CLIENT_ID, &self.client_id)] {
            if let Some(Some(name)) = part {
                if name.is_empty() || name.len() > MAX_ENTITY_NAME {
                    return Err(ClientQuotaError::BadName { kind });
                }
            }
        }
        Ok(())
    }

    /// Checks the entity and every key and value.
    pub fn validate(&self) -> Result<(), ClientQuotaError> {
        self.validate_entity()?;
        for (key, &value) in &self.quotas {
            if QuotaKey::parse(key).is_none() {
                return Err(ClientQuotaError::UnknownKey(key.clone()));
            }
            if !(value.is_finite() && value > 0.0) {
                return Err(ClientQuotaError::BadValue { key: key.clone(), value });
            }
        }
        Ok(())
    }

    fn same_entity(&self, user: &Option<Option<String>>, client: &Option<Option<String>>) -> bool {
        &self.user == user && &self.client_id == client
    }
}

/// Checks a tenant's whole list: each entry valid, at most [`MAX_ENTRIES`], and each entity
/// stored once.
pub fn validate_all(entries: &[ClientQuota]) -> Result<(), ClientQuotaError> {
    if entries.len() > MAX_ENTRIES {
        return Err(ClientQuotaError::TooMany);
    }
    for (i, e) in entries.iter().enumerate() {
        e.validate()?;
        if entries[..i].iter().any(|o| o.same_entity(&e.user, &e.client_id)) {
            return Err(ClientQuotaError::DuplicateType("entity (the same user/client-id pair is stored twice)".into()));
        }
    }
    Ok(())
}

/// One change to a stored entity's values: set, or remove when `value` is `None`.
pub type QuotaOp<'a> = (&'a str, Option<f64>);

/// Applies `ops` to `entity` in `entries` (Kafka's AlterClientQuotas for one entry): values
/// are set or removed, and an entity left without values is dropped.
pub fn alter(
    entries: &mut Vec<ClientQuota>,
    user: Option<Option<String>>,
    client_id: Option<Option<String>>,
    ops: &[QuotaOp<'_>],
) -> Result<(), ClientQuotaError> {
    let at = entries.iter().position(|e| e.same_entity(&user, &client_id));
    let mut entry = match at {
        Some(i) => entries[i].clone(),
        None => ClientQuota { user, client_id, quotas: BTreeMap::new() },
    };
    for &(key, value) in ops {
        if QuotaKey::parse(key).is_none() {
            return Err(ClientQuotaError::UnknownKey(key.to_owned()));
        }
        match value {
            Some(v) => entry.quotas.insert(key.to_owned(), v),
            None => entry.quotas.remove(key),
        };
    }
    entry.validate()?;
    match (at, entry.quotas.is_empty()) {
        (Some(i), true) => {
            entries.remove(i);
        }
        (Some(i), false) => entries[i] = entry,
        (None, true) => {}
        (None, false) => {
            if entries.len() >= MAX_ENTRIES {
                return Err(ClientQuotaError::TooMany);
            }
            entries.push(entry);
        }
    }
    Ok(())
}

/// A resolved quota for one connection: its value and who shares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The value.
    pub value: f64,
    /// Everyone with the same group shares one limiter: `u=<user>` and/or `c=<client id>`.
    pub group: String,
}

/// The value of `key` for `user` with `client_id`, from the most specific stored entity
/// (Kafka's order), or `None` when no entity sets it.
pub fn resolve(entries: &[ClientQuota], user: &str, client_id: &str, key: QuotaKey) -> Option<Resolved> {
    let name = key.name();
    let exact = |part: &Option<Option<String>>, actual: &str| matches!(part, Some(Some(n)) if n == actual);
    let default = |part: &Option<Option<String>>| matches!(part, Some(None));
    // (user test, client test) in Kafka's order of precedence.
    type Test<'t> = &'t dyn Fn(&ClientQuota) -> bool;
    let levels: [Test<'_>; 8] = [
        &|e| exact(&e.user, user) && exact(&e.client_id, client_id),
        &|e| exact(&e.user, user) && default(&e.client_id),
        &|e| exact(&e.user, user) && e.client_id.is_none(),
        &|e| default(&e.user) && exact(&e.client_id, client_id),
        &|e| default(&e.user) && default(&e.client_id),
        &|e| default(&e.user) && e.client_id.is_none(),
        &|e| e.user.is_none() && exact(&e.client_id, client_id),
        &|e| e.user.is_none() && default(&e.client_id),
    ];
    levels.iter().find_map(|matches| {
        let entry = entries.iter().find(|e| matches(e) && e.quotas.contains_key(name))?;
        let value = *entry.quotas.get(name)?;
        let mut group = String::new();
        if entry.user.is_some() {
            group.push_str("u=");
            group.push_str(user);
        }
        if entry.client_id.is_some() {
            if !group.is_empty() {
                group.push('\u{0}');
            }
            group.push_str("c=");
            group.push_str(client_id);
        }
        Some(Resolved { value, group })
    })
}

/// Kafka's DescribeClientQuotas filter component: an entity type and how its name must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// Exactly this name.
    Exact(String),
    /// The default entity.
    Default,
    /// Any name, including the default.
    Any,
}

/// The stored entries that match Kafka's DescribeClientQuotas filter: every component must
/// match; with `strict`, the entity may have no other parts.
pub fn describe<'a>(entries: &'a [ClientQuota], filter: &[(&str, NameMatch)], strict: bool) -> Vec<&'a ClientQuota> {
    entries
        .iter()
        .filter(|e| {
            let parts = e.entity_parts();
            let all_match = filter.iter().all(|(kind, m)| {
                parts.iter().any(|(k, name)| {
                    k == kind
                        && match m {
                            NameMatch::Exact(want) => name.is_some_and(|n| n == want),
                            NameMatch::Default => name.is_none(),
                            NameMatch::Any => true,
                        }
                })
            });
            all_match && (!strict || parts.len() == filter.len())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: Option<Option<&str>>, client: Option<Option<&str>>, key: &str, v: f64) -> ClientQuota {
        ClientQuota {
            user: user.map(|u| u.map(str::to_owned)),
            client_id: client.map(|c| c.map(str::to_owned)),
            quotas: [(key.to_owned(), v)].into(),
        }
    }

    #[test]
    fn json_tells_absent_default_and_named_apart() {
        let e: ClientQuota =
            serde_json::from_str(r#"{"user": null, "client_id": "app", "quotas": {"producer_byte_rate": 1024}}"#).unwrap();
        assert_eq!(e.user, Some(None));
        assert_eq!(e.client_id, Some(Some("app".into())));
        let back = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<ClientQuota>(&back).unwrap(), e);
        let only_user: ClientQuota = serde_json::from_str(r#"{"user": "alice", "quotas": {}}"#).unwrap();
        assert_eq!(only_user.client_id, None);
        assert!(!serde_json::to_string(&only_user).unwrap().contains("client_id"));
        assert!(serde_json::from_str::<ClientQuota>(r#"{"ip": "1.2.3.4", "quotas": {}}"#).is_err());
    }

    #[test]
    fn resolution_follows_kafkas_precedence_per_key() {
        const P: &str = "producer_byte_rate";
        let all = vec![
            entry(None, Some(None), P, 8.0),
            entry(None, Some(Some("app")), P, 7.0),
            entry(Some(None), None, P, 6.0),
            entry(Some(None), Some(None), P, 5.0),
            entry(Some(None), Some(Some("app")), P, 4.0),
            entry(Some(Some("alice")), None, P, 3.0),
            entry(Some(Some("alice")), Some(None), P, 2.0),
            entry(Some(Some("alice")), Some(Some("app")), P, 1.0),
        ];
        // Dropping the most specific entry each time reveals the next level.
        for n in (1..=8).rev() {
            let r = resolve(&all[..n], "alice", "app", QuotaKey::ProducerByteRate).unwrap();
            assert_eq!(r.value, 9.0 - n as f64, "{n} entries");
        }
        // Other users and clients fall through to the defaults only.
        assert_eq!(resolve(&all, "bob", "other", QuotaKey::ProducerByteRate).unwrap().value, 5.0);
        assert!(resolve(&all, "alice", "app", QuotaKey::ConsumerByteRate).is_none());
    }

    #[test]
    fn each_key_resolves_separately() {
        let mut specific = entry(Some(Some("alice")), Some(Some("app")), "consumer_byte_rate", 2048.0);
        specific.quotas.insert("request_percentage".into(), 50.0);
        let all = vec![entry(Some(Some("alice")), None, "producer_byte_rate", 4096.0), specific];
        let p = resolve(&all, "alice", "app", QuotaKey::ProducerByteRate).unwrap();
        assert_eq!((p.value, p.group.as_str()), (4096.0, "u=alice"));
        let c = resolve(&all, "alice", "app", QuotaKey::ConsumerByteRate).unwrap();
        assert_eq!((c.value, c.group.as_str()), (2048.0, "u=alice\u{0}c=app"));
    }

    #[test]
    fn defaults_give_each_entity_its_own_group() {
        let all = vec![entry(Some(None), None, "producer_byte_rate", 1.0), entry(None, Some(None), "consumer_byte_rate", 1.0)];
        let a = resolve(&all, "alice", "x", QuotaKey::ProducerByteRate).unwrap();
        let b = resolve(&all, "bob", "x", QuotaKey::ProducerByteRate).unwrap();
        assert_ne!(a.group, b.group);
        let c1 = resolve(&all, "alice", "x", QuotaKey::ConsumerByteRate).unwrap();
        let c2 = resolve(&all, "bob", "x", QuotaKey::ConsumerByteRate).unwrap();
        assert_eq!(c1.group, c2.group, "a client-id quota is shared across users");
    }

    #[test]
    fn alter_sets_removes_and_drops_empty_entities() {
        let mut all = Vec::new();
        alter(&mut all, Some(Some("alice".into())), None, &[("producer_byte_rate", Some(2048.0))]).unwrap();
        alter(&mut all, Some(Some("alice".into())), None, &[("consumer_byte_rate", Some(4096.0))]).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].quotas.len(), 2);
        alter(&mut all, Some(Some("alice".into())), None, &[("producer_byte_rate", None), ("consumer_byte_rate", None)])
            .unwrap();
        assert!(all.is_empty());
        let err = alter(&mut all, Some(None), None, &[("bogus", Some(1.0))]).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = alter(&mut all, Some(None), None, &[("producer_byte_rate", Some(-1.0))]).unwrap_err();
        assert!(matches!(err, ClientQuotaError::BadValue { .. }));
    }

    #[test]
    fn entities_are_checked() {
        assert_eq!(ClientQuota::entity_from_parts([]), Err(ClientQuotaError::EmptyEntity));
        assert!(matches!(ClientQuota::entity_from_parts([("ip", None)]), Err(ClientQuotaError::EntityType(_))));
        assert!(matches!(
            ClientQuota::entity_from_parts([("user", Some("a")), ("user", Some("b"))]),
            Err(ClientQuotaError::DuplicateType(_))
        ));
        assert!(matches!(ClientQuota::entity_from_parts([("user", Some(""))]), Err(ClientQuotaError::BadName { .. })));
        let (u, c) = ClientQuota::entity_from_parts([("client-id", None), ("user", Some("a"))]).unwrap();
        assert_eq!((u, c), (Some(Some("a".into())), Some(None)));
    }

    #[test]
    fn describe_filters_like_kafka() {
        let all = vec![
            entry(Some(Some("alice")), None, "producer_byte_rate", 1.0),
            entry(Some(None), None, "producer_byte_rate", 1.0),
            entry(Some(Some("alice")), Some(Some("app")), "producer_byte_rate", 1.0),
            entry(None, Some(Some("app")), "producer_byte_rate", 1.0),
        ];
        assert_eq!(describe(&all, &[], false).len(), 4);
        assert_eq!(describe(&all, &[(USER, NameMatch::Any)], false).len(), 3);
        assert_eq!(describe(&all, &[(USER, NameMatch::Any)], true).len(), 2);
        assert_eq!(describe(&all, &[(USER, NameMatch::Default)], false).len(), 1);
        assert_eq!(describe(&all, &[(USER, NameMatch::Exact("alice".into()))], true).len(), 1);
        assert_eq!(describe(&all, &[(CLIENT_ID, NameMatch::Exact("app".into()))], false).len(), 2);
        assert_eq!(describe(&all, &[(USER, NameMatch::Exact("bob".into()))], false).len(), 0);
    }
}
