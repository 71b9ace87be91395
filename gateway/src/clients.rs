//! OAuth clients of sluice's issuer (client-credentials grant), kept in their tenant's
//! document in the tenant store (`__sluice_tenants`, `TenantDoc::clients`): creating,
//! listing and deleting them with conditional writes, and checking a client's secret
//! against its argon2 hash. A client's id is `<tenant>.<name>`, so the id alone finds
//! the client. The secret is generated here and shown once; only its hash is stored.

use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use sluice_tenancy::store::{client_id, split_client_id, valid_client_name, OAuthClient, TenantsSnapshot};
use sluice_tenancy::TenantId;

use crate::store::{StoreError, TenantStore};

/// Conditional writes lost to a concurrent writer are retried this many times.
const WRITE_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("hashing the secret failed: {0}")]
    Hash(String),
    #[error("{0:?} is not a valid client name ([A-Za-z0-9._-], 1 to 64 characters)")]
    BadName(String),
    #[error("{0:?} is not a client id (<tenant>.<name>)")]
    BadId(String),
    #[error("tenant {0} does not exist")]
    NoTenant(TenantId),
    #[error("client {0} already exists (delete it first to issue a new secret)")]
    Exists(String),
    #[error("client {0} does not exist")]
    NoClient(String),
    /// Not `#[source]`: the store's message already carries its cause, and `{:#}` would
    /// print it twice.
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        ClientError::Store(e)
    }
}

/// The credentials a new client gets, shown once.
pub struct NewClient {
    pub client_id: String,
    pub secret: String,
}

/// A client whose secret checked out: what its tokens carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClient {
    pub client_id: String,
    pub tenant: TenantId,
    pub subject: String,
    pub policies: Option<Vec<String>>,
    /// sluice scopes the client may ask for.
    pub scopes: Vec<String>,
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A fresh secret: 32 random bytes, base64url.
pub fn new_secret() -> String {
    random_token(32)
}

/// The argon2id PHC string of `secret`, with a random salt.
pub fn hash_secret(secret: &str) -> Result<String, ClientError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ClientError::Hash(e.to_string()))
}

/// Whether `secret` matches the PHC string `hash`.
pub fn verify_secret(hash: &str, secret: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(secret.as_bytes(), &h).is_ok())
}

/// The client `client_id` of `snapshot` if `secret` is its secret. Unknown ids and
/// wrong secrets look alike, in the answer and in the time taken (argon2 is slow:
/// call this off the async workers).
pub fn authenticate(snapshot: &TenantsSnapshot, client_id: &str, secret: &str) -> Option<VerifiedClient> {
    let Some((tenant, client)) = snapshot.client(client_id) else {
        // Spend the same work as a real check so timing does not reveal valid ids.
        let _ = Argon2::default().hash_password(secret.as_bytes(), &SaltString::generate(&mut OsRng));
        return None;
    };
    verify_secret(&client.secret_hash, secret).then(|| VerifiedClient {
        client_id: client_id.to_owned(),
        tenant: tenant.doc.id.clone(),
        subject: client.subject.clone(),
        policies: client.policies.clone(),
        scopes: client.scopes.clone(),
    })
}

/// Creates client `name` of `tenant` (id `<tenant>.<name>`); its tokens carry `subject`
/// (default: the client id) and `policies` (default: none named, so the subject's attached
/// policies apply). Returns once the write has been read back from the store.
pub async fn create(
    store: &TenantStore,
    tenant: &TenantId,
    name: &str,
    subject: Option<String>,
    policies: Option<Vec<String>>,
    scopes: Vec<String>,
) -> Result<NewClient, ClientError> {
    if !valid_client_name(name) {
        return Err(ClientError::BadName(name.to_owned()));
    }
    let id = client_id(tenant, name);
    let secret = new_secret();
    let secret_hash = hash_secret(&secret)?;
    let created_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let client = OAuthClient { secret_hash, subject: subject.unwrap_or_else(|| id.clone()), policies, created_at, scopes };
    update(store, tenant, |doc| {
        if doc.clients.contains_key(name) {
            return Err(ClientError::Exists(id.clone()));
        }
        doc.clients.insert(name.to_owned(), client.clone());
        Ok(())
    })
    .await?;
    Ok(NewClient { client_id: id, secret })
}

/// Deletes the client `<tenant>.<name>`; tokens already minted stay valid until they expire.
pub async fn delete(store: &TenantStore, client_id: &str) -> Result<(), ClientError> {
    let (tenant, name) = split_client_id(client_id).ok_or_else(|| ClientError::BadId(client_id.to_owned()))?;
    update(store, &tenant, |doc| match doc.clients.remove(name) {
        Some(_) => Ok(()),
        None => Err(ClientError::NoClient(client_id.to_owned())),
    })
    .await
}

/// Every client of `tenant` (every tenant when `None`), as (client id, client).
pub fn list(snapshot: &TenantsSnapshot, tenant: Option<&TenantId>) -> Vec<(String, OAuthClient)> {
    snapshot
        .iter()
        .filter(|(id, _)| tenant.is_none_or(|t| t == *id))
        .flat_map(|(id, t)| t.doc.clients.iter().map(move |(name, c)| (client_id(id, name), c.clone())))
        .collect()
}

/// Applies `change` to the tenant's current document and writes it conditionally on the
/// version it read; a concurrent write in between is retried on the new version.
async fn update<F>(store: &TenantStore, tenant: &TenantId, mut change: F) -> Result<(), ClientError>
where
    F: FnMut(&mut sluice_tenancy::store::TenantDoc) -> Result<(), ClientError>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = store.get(tenant).ok_or_else(|| ClientError::NoTenant(tenant.clone()))?;
        let mut doc = current.doc.clone();
        change(&mut doc)?;
        match store.put(doc, Some(current.version)).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) if attempt < WRITE_ATTEMPTS => {
                // Another writer changed the tenant; our store's tail shows its version
                // once it has been read back, so wait for that before re-reading.
                let mut rx = store.subscribe();
                let moved = rx.wait_for(|s| s.get(tenant).map(|t| t.version) != Some(current.version));
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), moved).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_tenancy::store::{encode_record, TenantDoc};

    fn snapshot_with(tenant: &str, name: &str, secret: &str) -> TenantsSnapshot {
        let mut doc = TenantDoc::new(tenant.parse().unwrap());
        let hash = hash_secret(secret).unwrap();
        doc.clients.insert(
            name.into(),
            OAuthClient { secret_hash: hash, subject: "alice".into(), policies: None, created_at: 1, scopes: Vec::new() },
        );
        let mut s = TenantsSnapshot::new();
        let (k, v) = encode_record(&doc, 1);
        s.apply(0, &k, Some(&v)).unwrap();
        s
    }

    #[test]
    fn secrets_are_hashed_and_checked() {
        let secret = new_secret();
        let hash = hash_secret(&secret).unwrap();
        assert!(hash.starts_with("$argon2id$") && !hash.contains(&secret), "{hash}");
        assert!(verify_secret(&hash, &secret));
        assert!(!verify_secret(&hash, "wrong"));
        assert!(!verify_secret("not a hash", &secret));
        // Salted: the same secret hashes differently each time.
        assert_ne!(hash, hash_secret(&secret).unwrap());
    }

    #[test]
    fn authenticate_finds_the_client_by_id() {
        let s = snapshot_with("demo", "app", "s3cret");
        let v = authenticate(&s, "demo.app", "s3cret").unwrap();
        assert_eq!(
            v,
            VerifiedClient { client_id: "demo.app".into(), tenant: "demo".parse().unwrap(), subject: "alice".into(), policies: None, scopes: Vec::new() }
        );
        assert_eq!(authenticate(&s, "demo.app", "wrong"), None);
        assert_eq!(authenticate(&s, "demo.other", "s3cret"), None);
        assert_eq!(authenticate(&s, "acme.app", "s3cret"), None);
        assert_eq!(authenticate(&s, "app", "s3cret"), None);
        assert_eq!(list(&s, None).len(), 1);
        assert_eq!(list(&s, Some(&"demo".parse().unwrap()))[0].0, "demo.app");
        assert!(list(&s, Some(&"acme".parse().unwrap())).is_empty());
    }

    #[test]
    fn unknown_clients_cost_as_much_as_known_ones() {
        let s = snapshot_with("demo", "app", "s3cret");
        // The fastest of three runs, so other work on the machine does not skew it.
        let time = |id: &str| {
            (0..3)
                .map(|_| {
                    let start = std::time::Instant::now();
                    let _ = authenticate(&s, id, "wrong");
                    start.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let (known, unknown) = (time("demo.app"), time("demo.nobody"));
        // Both do one argon2 computation; a lookup alone would be ~1000x faster.
        assert!(unknown * 3 > known && known * 3 > unknown, "known {known:?} unknown {unknown:?}");
    }
}
