//! OAuth client credentials for the client-credentials grant: one JSON file of
//! clients, each bound to a tenant and a principal, with the secret stored only as an
//! argon2 hash. The secret is shown once, when the client is created.
//!
//! This file is the store until the tenant store in the pool (`__sluice_tenants`)
//! lands. The gateway re-reads it when it changes, so a client created with the CLI
//! works at once.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sluice_tenancy::TenantId;

#[derive(Debug, thiserror::Error)]
pub enum ClientStoreError {
    #[error("reading client store {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("client store {path} is not valid JSON: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("writing client store {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("hashing the secret failed: {0}")]
    Hash(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRecord {
    pub client_id: String,
    pub tenant: TenantId,
    /// The principal (`sub`) tokens for this client carry.
    pub subject: String,
    /// Stored policy names put into `sluice:policies`; none means the principal's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<String>>,
    /// argon2id PHC string; the secret itself is never stored.
    pub secret_hash: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    clients: Vec<ClientRecord>,
}

/// The credentials a new client gets, shown once.
pub struct NewClient {
    pub client_id: String,
    pub secret: String,
}

pub struct ClientStore {
    path: PathBuf,
    /// Parsed file and the modification time it was read at.
    cache: Mutex<(Option<SystemTime>, Vec<ClientRecord>)>,
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

impl ClientStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path, cache: Mutex::new((None, Vec::new())) }
    }

    fn read_file(path: &Path) -> Result<StoreFile, ClientStoreError> {
        let shown = path.display().to_string();
        match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile::default()),
            Err(source) => Err(ClientStoreError::Read { path: shown, source }),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ClientStoreError::Parse { path: shown, source }),
        }
    }

    /// Creates a client for `tenant` and returns its id and secret.
    pub fn create(
        &self,
        tenant: TenantId,
        subject: Option<String>,
        policies: Option<Vec<String>>,
    ) -> Result<NewClient, ClientStoreError> {
        let mut file = Self::read_file(&self.path)?;
        let client_id = format!("{}-{}", tenant.as_str(), random_token(9));
        let secret = random_token(32);
        let salt = SaltString::generate(&mut OsRng);
        let secret_hash = Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map_err(|e| ClientStoreError::Hash(e.to_string()))?
            .to_string();
        file.clients.push(ClientRecord {
            subject: subject.unwrap_or_else(|| client_id.clone()),
            client_id: client_id.clone(),
            tenant,
            policies,
            secret_hash,
        });
        let shown = self.path.display().to_string();
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ClientStoreError::Write { path: shown.clone(), source })?;
        }
        let json = serde_json::to_vec_pretty(&file).map_err(|source| ClientStoreError::Parse { path: shown.clone(), source })?;
        // Write then rename, so a reader never sees half a file.
        let tmp = self.path.with_extension("tmp");
        crate::issuer::write_private(&tmp, &json).map_err(|source| ClientStoreError::Write { path: shown.clone(), source })?;
        std::fs::rename(&tmp, &self.path).map_err(|source| ClientStoreError::Write { path: shown, source })?;
        Ok(NewClient { client_id, secret })
    }

    /// The client if `secret` is its secret. Unknown ids and wrong secrets look alike
    /// to the caller.
    pub fn authenticate(&self, client_id: &str, secret: &str) -> Result<Option<ClientRecord>, ClientStoreError> {
        let record = self.lookup(client_id)?;
        let Some(record) = record else {
            // Spend the same work as a real check so timing does not reveal valid ids.
            let _ = Argon2::default().hash_password(secret.as_bytes(), &SaltString::generate(&mut OsRng));
            return Ok(None);
        };
        let Ok(hash) = PasswordHash::new(&record.secret_hash) else {
            return Ok(None);
        };
        Ok(Argon2::default().verify_password(secret.as_bytes(), &hash).is_ok().then_some(record))
    }

    fn lookup(&self, client_id: &str) -> Result<Option<ClientRecord>, ClientStoreError> {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut cache = self.cache.lock().map_err(|_| ClientStoreError::Hash("client store lock poisoned".into()))?;
        if cache.0 != modified || modified.is_none() {
            *cache = (modified, Self::read_file(&self.path)?.clients);
        }
        Ok(cache.1.iter().find(|c| c.client_id == client_id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hashed_and_checked() {
        let path = std::env::temp_dir().join(format!("sluice-clients-{}.json", std::process::id()));
        let store = ClientStore::new(path.clone());
        let created = store.create("demo".parse().unwrap(), None, None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&created.secret), "the secret itself is never stored");
        assert!(text.contains("$argon2"));
        let record = store.authenticate(&created.client_id, &created.secret).unwrap().unwrap();
        assert_eq!(record.tenant.as_str(), "demo");
        assert!(store.authenticate(&created.client_id, "wrong").unwrap().is_none());
        assert!(store.authenticate("nobody", &created.secret).unwrap().is_none());
        std::fs::remove_file(path).ok();
    }
}
