//! Kafka's client quotas inside a tenant (SPEC 7): `kafka-configs --entity-type
//! users/clients` and the Admin client's `describeClientQuotas`/`alterClientQuotas` read
//! and write the tenant's sub-quotas, which live in its document in the tenant store.
//!
//! - Users are the tenant's principals (token subjects), client ids the tenant's own; the
//!   pool's quotas and other tenants' entries are never visible.
//! - Describe needs `kafka-cluster:DescribeClusterDynamicConfiguration`, alter
//!   `kafka-cluster:AlterClusterDynamicConfiguration` (Kafka checks DESCRIBE_CONFIGS /
//!   ALTER_CONFIGS on the cluster).
//! - A value above the tenant's own limit is refused with POLICY_VIOLATION naming the
//!   limit; the limiters also cap every sub-quota at the tenant's limit, so lowering the
//!   tenant's limit later narrows its sub-quotas too.
//! - Alter writes one new version of the tenant document (read back before the answer),
//!   retried on a version race with another writer; the answer waits for it without
//!   blocking the connection's reader.
//! - Tenants have no SCRAM credentials, so DescribeUserScramCredentials (which
//!   `kafka-configs --describe --entity-type users` also sends) answers that no user has any.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, describe_user_scram_credentials_response,
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_quota::{QuotaConfig, Quotas, SubKind};
use sluice_tenancy::client_quota::{self, ClientQuota, NameMatch, QuotaKey};
use sluice_tenancy::policy::Action;
use sluice_tenancy::store::TenantDoc;
use tracing::{info, warn};

use super::{answer, code, decode_request, Admission, Ctx, MapError, Req, SubQuotas};
use crate::store::{StoreError, TenantStore};

/// How often an alter is retried when another writer changed the tenant meanwhile.
const STORE_ATTEMPTS: usize = 5;

/// The sub-quota limiters for `user` with `client_id` in `doc`, capped by the tenant's
/// limits `ceiling`.
pub fn subs_for(doc: &TenantDoc, user: &str, client_id: &str, quotas: &Quotas, ceiling: &QuotaConfig) -> SubQuotas {
    let sub = |key: QuotaKey, kind: SubKind| {
        let r = client_quota::resolve(&doc.client_quotas, user, client_id, key)?;
        quotas.sub(doc.id.as_str(), kind, &r.group, r.value, ceiling)
    };
    SubQuotas {
        write: sub(QuotaKey::ProducerByteRate, SubKind::Write),
        read: sub(QuotaKey::ConsumerByteRate, SubKind::Read),
        requests: sub(QuotaKey::RequestPercentage, SubKind::Requests),
        mutations: sub(QuotaKey::ControllerMutationRate, SubKind::Mutations),
    }
}

/// The `connection_creation_rate` limiter for `user` with `client_id`, if one is set.
pub fn connection_sub(
    doc: &TenantDoc,
    user: &str,
    client_id: &str,
    quotas: &Quotas,
    ceiling: &QuotaConfig,
) -> Option<Arc<sluice_quota::SubQuota>> {
    let r = client_quota::resolve(&doc.client_quotas, user, client_id, QuotaKey::ConnectionCreationRate)?;
    quotas.sub(doc.id.as_str(), SubKind::Connections, &r.group, r.value, ceiling)
}

fn denied_message(action: Action) -> Option<StrBytes> {
    Some(StrBytes::from_string(format!("not authorized: {}", action.name())))
}

pub fn describe(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let r: DescribeClientQuotasRequest = decode_request(req.api, req.version, body)?;
    let fail = |error_code: i16, message: String| {
        let resp = DescribeClientQuotasResponse::default()
            .with_error_code(error_code)
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_entries(None);
        answer(req.api, req.version, req.correlation_id, &resp).map(Admission::Answer)
    };
    let action = Action::DescribeClusterDynamicConfiguration;
    if !ctx.allows(action, "") {
        let resp = DescribeClientQuotasResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(denied_message(action))
            .with_entries(None);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    let mut filter = Vec::with_capacity(r.components.len());
    for c in &r.components {
        let kind = c.entity_type.as_str();
        if kind != client_quota::USER && kind != client_quota::CLIENT_ID {
            return fail(code::INVALID_REQUEST, format!("entity type {kind:?} is not supported; use user and client-id"));
        }
        let m = match (c.match_type, &c._match) {
            (0, Some(name)) => NameMatch::Exact(name.to_string()),
            (0, None) | (1, _) => NameMatch::Default,
            (2, _) => NameMatch::Any,
            (other, _) => return fail(code::INVALID_REQUEST, format!("unknown match type {other}")),
        };
        filter.push((kind, m));
    }
    let stored = ctx.view.tenant.as_ref().map(|(t, _)| t.clone());
    let entries = stored.as_ref().map(|t| client_quota::describe(&t.doc.client_quotas, &filter, r.strict)).unwrap_or_default();
    let entries = entries
        .into_iter()
        .map(|e| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    e.entity_parts()
                        .into_iter()
                        .map(|(kind, name)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(StrBytes::from_static_str(kind))
                                .with_entity_name(name.map(|n| StrBytes::from_string(n.to_owned())))
                        })
                        .collect(),
                )
                .with_values(
                    e.quotas
                        .iter()
                        .map(|(k, &v)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(StrBytes::from_string(k.clone()))
                                .with_value(v)
                        })
                        .collect(),
                )
        })
        .collect();
    let resp = DescribeClientQuotasResponse::default().with_entries(Some(entries));
    Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?))
}

/// One requested entry after checking: its entity and ops, or the error to answer.
struct Checked {
    entity: Vec<(StrBytes, Option<StrBytes>)>,
    change: Result<Change, (i16, String)>,
}

struct Change {
    user: Option<Option<String>>,
    client_id: Option<Option<String>>,
    ops: Vec<(String, Option<f64>)>,
}

/// The tenant's own limit for `key`, in Kafka's unit for that key.
fn ceiling_of(key: QuotaKey, limits: &QuotaConfig) -> (f64, &'static str) {
    match key {
        QuotaKey::ProducerByteRate => (limits.tenant_write as f64, "the tenant's produce rate (bytes/s)"),
        QuotaKey::ConsumerByteRate => (limits.tenant_read as f64, "the tenant's consume rate (bytes/s)"),
        QuotaKey::RequestPercentage => (100.0, "100 (percent of the tenant's request rate)"),
        QuotaKey::ControllerMutationRate => {
            (limits.partition_mutations_per_5min as f64 / 300.0, "the tenant's partition mutation rate (per second)")
        }
        QuotaKey::ConnectionCreationRate => (limits.connection_rate as f64, "the tenant's connection rate (per second)"),
    }
}

/// Whether `value` of `key` is a valid sub-quota within the tenant's `limits`: the Kafka
/// error code and a message naming the bound when not.
pub fn check_value(key: QuotaKey, value: f64, limits: &QuotaConfig) -> Result<(), (i16, String)> {
    let (ceiling, what) = ceiling_of(key, limits);
    if !(value.is_finite() && value > 0.0) {
        return Err((code::INVALID_REQUEST, format!("{} = {value}: must be a positive number", key.name())));
    }
    if matches!(key, QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate) && value < 1024.0 {
        return Err((code::INVALID_REQUEST, format!("{} = {value}: byte rates start at 1024 bytes/s", key.name())));
    }
    if value > ceiling {
        return Err((
            code::POLICY_VIOLATION,
            format!("{} = {value} is above {what}, {ceiling}: sub-quotas live inside the tenant's limits", key.name()),
        ));
    }
    Ok(())
}

fn check_entry(entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData, limits: &QuotaConfig) -> Checked {
    let entity: Vec<_> = entry.entity.iter().map(|e| (e.entity_type.clone(), e.entity_name.clone())).collect();
    let change = (|| {
        let parts = entry.entity.iter().map(|e| (e.entity_type.as_str(), e.entity_name.as_ref().map(|n| n.as_str())));
        let (user, client_id) =
            ClientQuota::entity_from_parts(parts).map_err(|e| (code::INVALID_REQUEST, e.to_string()))?;
        let mut ops = Vec::with_capacity(entry.ops.len());
        for op in &entry.ops {
            let key = QuotaKey::parse(op.key.as_str())
                .ok_or_else(|| (code::INVALID_REQUEST, format!("unknown quota key {:?}", op.key.as_str())))?;
            if op.remove {
                ops.push((key.name().to_owned(), None));
                continue;
            }
            check_value(key, op.value, limits)?;
            ops.push((key.name().to_owned(), Some(op.value)));
        }
        Ok(Change { user, client_id, ops })
    })();
    Checked { entity, change }
}

/// Applies the valid changes to `doc`; a change the list refuses (too many entries) turns
/// into that entry's error.
fn apply(doc: &mut TenantDoc, checked: &mut [Checked]) {
    for c in checked.iter_mut() {
        if let Ok(change) = &c.change {
            let ops: Vec<_> = change.ops.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            if let Err(e) = client_quota::alter(&mut doc.client_quotas, change.user.clone(), change.client_id.clone(), &ops) {
                c.change = Err((code::INVALID_REQUEST, e.to_string()));
            }
        }
    }
}

pub fn alter(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let r: AlterClientQuotasRequest = decode_request(req.api, req.version, body)?;
    let limits = *ctx.view.quota.config();
    let mut checked: Vec<Checked> = r.entries.iter().map(|e| check_entry(e, &limits)).collect();
    let action = Action::AlterClusterDynamicConfiguration;
    let allowed = ctx.allows(action, "");
    let tenant = ctx.view.tenant.clone();
    let tenant_id = ctx.ns().tenant().clone();
    let respond = move |checked: Vec<Checked>, store_error: Option<String>| {
        let entries = checked
            .into_iter()
            .map(|c| {
                let (error_code, message) = match (&store_error, c.change) {
                    _ if !allowed => (code::CLUSTER_AUTHORIZATION_FAILED, denied_message(action)),
                    (_, Err((code, message))) => (code, Some(StrBytes::from_string(message))),
                    (Some(e), Ok(_)) => (code::REQUEST_TIMED_OUT, Some(StrBytes::from_string(e.clone()))),
                    (None, Ok(_)) => (code::NONE, None),
                };
                alter_client_quotas_response::EntryData::default()
                    .with_error_code(error_code)
                    .with_error_message(message)
                    .with_entity(
                        c.entity
                            .into_iter()
                            .map(|(kind, name)| {
                                alter_client_quotas_response::EntityData::default()
                                    .with_entity_type(kind)
                                    .with_entity_name(name)
                            })
                            .collect(),
                    )
            })
            .collect();
        let resp = AlterClientQuotasResponse::default().with_entries(entries);
        answer(req.api, req.version, req.correlation_id, &resp)
    };
    let nothing_to_write = !allowed || checked.iter().all(|c| c.change.is_err());
    let Some((stored, store)) = tenant.filter(|_| !nothing_to_write) else {
        return respond(checked, None).map(Admission::Answer);
    };
    if r.validate_only {
        let mut doc = stored.doc.clone();
        apply(&mut doc, &mut checked);
        let invalid = doc.validate().err().map(|e| e.to_string());
        return respond(checked, invalid).map(Admission::Answer);
    }
    Ok(Admission::Later(Box::pin(async move {
        let outcome = write(&store, &tenant_id, &mut checked).await;
        let error = match outcome {
            Ok(version) => {
                info!(tenant = %tenant_id, version, "client quotas altered");
                None
            }
            Err(e) => {
                warn!(tenant = %tenant_id, error = %e, "client quotas not stored");
                Some(format!("the tenant store did not take the change: {e}"))
            }
        };
        // Encoding a response built from the request's own entries cannot fail in
        // practice; if it does, an empty frame closes the connection rather than lying.
        respond(checked, error).unwrap_or_else(|e| {
            warn!(error = %e, "cannot encode AlterClientQuotas response");
            Bytes::new()
        })
    })))
}

/// Writes the changes as the tenant's next version, retrying version races.
async fn write(store: &TenantStore, tenant: &sluice_tenancy::TenantId, checked: &mut [Checked]) -> Result<u64, StoreError> {
    let mut last = None;
    for _ in 0..STORE_ATTEMPTS {
        let Some(current) = store.get(tenant) else { return Err(StoreError::Stopped) };
        let mut doc = current.doc.clone();
        let mut attempt: Vec<Checked> = checked
            .iter()
            .map(|c| Checked {
                entity: c.entity.clone(),
                change: match &c.change {
                    Ok(ch) => Ok(Change { user: ch.user.clone(), client_id: ch.client_id.clone(), ops: ch.ops.clone() }),
                    Err(e) => Err(e.clone()),
                },
            })
            .collect();
        apply(&mut doc, &mut attempt);
        match store.put(doc, Some(current.version)).await {
            Ok(v) => {
                for (c, a) in checked.iter_mut().zip(attempt) {
                    c.change = a.change;
                }
                return Ok(v);
            }
            Err(e @ StoreError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(StoreError::Stopped))
}

/// Tenants have no SCRAM credentials: every named user has none (RESOURCE_NOT_FOUND, as a
/// broker answers for a user without credentials) and the full listing is empty.
pub fn describe_scram_users(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let r: DescribeUserScramCredentialsRequest = decode_request(req.api, req.version, body)?;
    let action = Action::DescribeClusterDynamicConfiguration;
    let resp = if !ctx.allows(action, "") {
        DescribeUserScramCredentialsResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(denied_message(action))
    } else {
        let results = r
            .users
            .unwrap_or_default()
            .into_iter()
            .map(|u| {
                describe_user_scram_credentials_response::DescribeUserScramCredentialsResult::default()
                    .with_user(u.name)
                    .with_error_code(code::RESOURCE_NOT_FOUND)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "tenant principals authenticate with tokens and have no SCRAM credentials",
                    )))
            })
            .collect();
        DescribeUserScramCredentialsResponse::default().with_results(results)
    };
    debug_assert_eq!(req.api, ApiKey::DescribeUserScramCredentials);
    Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?))
}
