//! Produce and Fetch: the data path. Record batches stay `Bytes` slices of the frames
//! they arrived in; only topic names, ids and error messages change.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::ForgottenTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName};
use sluice_quota::{Charge, Direction};
use sluice_tenancy::policy::Action;
use uuid::Uuid;

use super::{
    answer, code, decode_request, decode_response, encode_request, topic_name_error, Admission, Ctx, Denied,
    DeniedTopic, MapError, Plan, Req,
};
use crate::rewrite::Advertised;

/// How many fetch sessions one connection may hold; a client uses one per broker
/// connection, so a few cover reconnects inside one connection's life.
const MAX_FETCH_SESSIONS: usize = 8;

/// Resolves a topic a data request names (by name before topic ids, by id after) to its
/// tenant name and pool name, or the code to deny it with.
pub(super) fn resolve_topic(
    ctx: &Ctx<'_>,
    by_id: bool,
    name: &TopicName,
    id: Uuid,
    action: Action,
) -> Result<(TopicName, TopicName), (TopicName, i16)> {
    if by_id {
        let Some(tenant_name) = ctx.id_out(id) else {
            return Err((TopicName::default(), code::UNKNOWN_TOPIC_ID));
        };
        if !ctx.allows(action, tenant_name.0.as_str()) {
            return Err((tenant_name, code::TOPIC_AUTHORIZATION_FAILED));
        }
        // Pool name unchanged: the request carries the id, not the name.
        return Ok((tenant_name, name.clone()));
    }
    match ctx.topic_in(name) {
        Err(e) => Err((name.clone(), topic_name_error(&e))),
        Ok(_) if !ctx.allows(action, name.0.as_str()) => Err((name.clone(), code::TOPIC_AUTHORIZATION_FAILED)),
        Ok(pool) => Ok((name.clone(), pool)),
    }
}

pub fn produce(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: ProduceRequest = decode_request(req.api, req.version, body)?;
    let by_id = req.version >= 13;
    let mut denied = Denied::default();
    // A transactional produce needs the transactional id too; without it every
    // partition is answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka does.
    let mut txn_denied = false;
    if let Some(txn) = &r.transactional_id {
        match ctx.txn_in(txn) {
            Ok(pool) if ctx.allows(Action::AlterTransactionalId, txn.0.as_str()) => r.transactional_id = Some(pool),
            _ => txn_denied = true,
        }
    }
    let mut kept = Vec::with_capacity(r.topic_data.len());
    // (tenant topic, partition, record bytes) of what is forwarded, for the quotas.
    let mut written = Vec::new();
    let limits = *ctx.view.quota.config();
    for mut t in std::mem::take(&mut r.topic_data) {
        let partitions = || t.partition_data.iter().map(|p| p.index).collect::<Vec<_>>();
        match resolve_topic(ctx, by_id, &t.name, t.topic_id, Action::WriteData) {
            Ok(_) if txn_denied => denied.topics.push(DeniedTopic {
                name: t.name.clone(),
                id: t.topic_id,
                partitions: partitions(),
                code: code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                message: None,
            }),
            Ok((tenant_name, pool)) => {
                if body.len() as u64 > limits.max_request_bytes {
                    denied.topics.push(DeniedTopic {
                        name: t.name.clone(),
                        id: t.topic_id,
                        partitions: partitions(),
                        code: code::RECORD_LIST_TOO_LARGE,
                        message: Some(format!(
                            "the request ({} bytes) exceeds this tenant's max_request_bytes ({})",
                            body.len(),
                            limits.max_request_bytes
                        )),
                    });
                    continue;
                }
                // A batch over the tenant's message size is refused per partition; the
                // rest of the topic goes through.
                let (fits, too_large): (Vec<_>, Vec<_>) = std::mem::take(&mut t.partition_data)
                    .into_iter()
                    .partition(|p| p.records.as_ref().is_none_or(|r| r.len() as u64 <= limits.max_message_bytes));
                for p in too_large {
                    denied.topics.push(DeniedTopic {
                        name: t.name.clone(),
                        id: t.topic_id,
                        partitions: vec![p.index],
                        code: code::MESSAGE_TOO_LARGE,
                        message: Some(format!(
                            "a record batch of {} bytes exceeds this tenant's max_message_bytes ({})",
                            p.records.as_ref().map_or(0, |r| r.len()),
                            limits.max_message_bytes
                        )),
                    });
                }
                if fits.is_empty() {
                    continue;
                }
                t.partition_data = fits;
                let key = tenant_name.0.into_bytes();
                let load_topic = if by_id { super::topic_ids().pool_name(t.topic_id) } else { Some(pool.clone()) };
                for p in &t.partition_data {
                    let bytes = p.records.as_ref().map_or(0, |r| r.len() as u64);
                    written.push((key.clone(), p.index, bytes));
                    if let Some(lt) = &load_topic {
                        crate::load::registry().record_in(lt.0.as_str(), p.index, bytes); // placement load
                    }
                }
                t.name = pool;
                kept.push(t);
            }
            Err((_, code)) => {
                denied.topics.push(DeniedTopic {
                    name: t.name.clone(),
                    id: t.topic_id,
                    partitions: partitions(),
                    code,
                    message: None,
                })
            }
        }
    }
    r.topic_data = kept;
    // The crossing request still goes through; its response reports the throttle, and
    // the connection reads nothing more until the bytes are paid for (KIP-219).
    denied.throttle_ms = ctx.view.charge(Direction::Write, written);
    denied.throttled_at = Some(std::time::Instant::now());
    if r.topic_data.is_empty() {
        if r.acks == 0 {
            return Ok(Admission::Drop);
        }
        let mut resp = ProduceResponse::default();
        append_produce_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    let body = encode_request(req.api, req.version, &r)?;
    Ok(Admission::Forward { body: Some(body), plan: Plan::Map(Box::new(denied)) })
}

fn append_produce_denied(resp: &mut ProduceResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.responses.push(
            TopicProduceResponse::default().with_name(d.name.clone()).with_topic_id(d.id).with_partition_responses(
                d.partitions
                    .iter()
                    .map(|&p| {
                        PartitionProduceResponse::default()
                            .with_index(p)
                            .with_error_code(d.code)
                            .with_error_message(d.message.clone().map(StrBytes::from_string))
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                    })
                    .collect(),
            ),
        );
    }
}

pub fn produce_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
    adv: &Advertised,
) -> Result<Bytes, MapError> {
    let mut resp: ProduceResponse = decode_response(req.api, req.version, &body)?;
    let by_id = req.version >= 13;
    resp.responses.retain_mut(|t| {
        if !by_id {
            match ctx.topic_out(&t.name) {
                Some(name) => t.name = name,
                None => return false,
            }
        }
        for p in &mut t.partition_responses {
            p.error_message = ctx.scrub(&p.error_message);
            for e in &mut p.record_errors {
                e.batch_index_error_message = ctx.scrub(&e.batch_index_error_message);
            }
        }
        true
    });
    for e in &mut resp.node_endpoints {
        (e.host, e.port) = adv.endpoint(e.node_id.0);
    }
    resp.throttle_time_ms = resp.throttle_time_ms.max(denied.produce_throttle_ms());
    append_produce_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

pub fn fetch(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: FetchRequest = decode_request(req.api, req.version, body)?;
    if r.replica_id.0 >= 0 || r.replica_state.replica_id.0 >= 0 {
        // Only brokers fetch as replicas.
        return Ok(Admission::Answer(answer(
            req.api,
            req.version,
            req.correlation_id,
            &FetchResponse::default().with_error_code(code::CLUSTER_AUTHORIZATION_FAILED),
        )?));
    }
    if r.session_id != 0 && !ctx.view.fetch_sessions.contains(&r.session_id) {
        // Not a session this connection was given: it may be another tenant's. Epoch 0
        // ("close session X, open a new one", KIP-227) and -1 (sessionless) are what a
        // client sends after reconnecting; they become requests that never name X. An
        // incremental request (epoch > 0) is refused, and the client starts over.
        if r.session_epoch <= 0 {
            r.session_id = 0;
        } else {
            return Ok(Admission::Answer(answer(
            req.api,
            req.version,
            req.correlation_id,
            &FetchResponse::default().with_error_code(code::FETCH_SESSION_ID_NOT_FOUND),
        )?));
        }
    }
    if r.session_epoch <= 0 {
        // A tenant that owes read time gets an empty answer with the wait (SPEC 7), and
        // this connection is muted for it. Incremental fetches (epoch > 0) are forwarded
        // instead: the pool advances the session epoch on every request, so a local
        // answer would put the client's session out of step.
        let owed = ctx.view.quota.owed(Direction::Read);
        if !owed.is_zero() {
            let wait = Charge::mute(owed);
            let resp = FetchResponse::default().with_throttle_time_ms(wait.throttle_ms());
            ctx.view.charge.merge(wait);
            return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
        }
    }
    let by_id = req.version >= 13;
    let mut denied = Denied::default();
    let mut kept = Vec::with_capacity(r.topics.len());
    for mut t in std::mem::take(&mut r.topics) {
        match resolve_topic(ctx, by_id, &t.topic, t.topic_id, Action::ReadData) {
            Ok((_, pool)) => {
                t.topic = pool;
                kept.push(t);
            }
            Err((_, code)) => denied.topics.push(DeniedTopic {
                name: t.topic.clone(),
                id: t.topic_id,
                partitions: t.partitions.iter().map(|p| p.partition).collect(),
                code,
                message: None,
            }),
        }
    }
    r.topics = kept;
    let forgotten: Vec<ForgottenTopic> = std::mem::take(&mut r.forgotten_topics_data)
        .into_iter()
        .filter_map(|mut f| {
            if by_id {
                ctx.id_out(f.topic_id).map(|_| f)
            } else {
                ctx.topic_in(&f.topic).ok().map(|pool| {
                    f.topic = pool;
                    f
                })
            }
        })
        .collect();
    r.forgotten_topics_data = forgotten;
    if r.topics.is_empty() && r.forgotten_topics_data.is_empty() && r.session_id == 0 {
        let mut resp = FetchResponse::default();
        append_fetch_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    let body = encode_request(req.api, req.version, &r)?;
    Ok(Admission::Forward { body: Some(body), plan: Plan::Map(Box::new(denied)) })
}

fn denied_partition(p: i32, code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(p)
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

fn append_fetch_denied(resp: &mut FetchResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.responses.push(
            FetchableTopicResponse::default()
                .with_topic(d.name.clone())
                .with_topic_id(d.id)
                .with_partitions(d.partitions.iter().map(|&p| denied_partition(p, d.code)).collect()),
        );
    }
}

pub fn fetch_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
    adv: &Advertised,
) -> Result<Bytes, MapError> {
    let mut resp: FetchResponse = decode_response(req.api, req.version, &body)?;
    if resp.session_id != 0 && !ctx.view.fetch_sessions.contains(&resp.session_id) {
        if ctx.view.fetch_sessions.len() >= MAX_FETCH_SESSIONS {
            ctx.view.fetch_sessions.remove(0);
        }
        ctx.view.fetch_sessions.push(resp.session_id);
    }
    let by_id = req.version >= 13;
    // A session may still hold topics that were allowed when they were added; every
    // response is checked against the grants of now, and anything not the tenant's is
    // dropped (defence in depth: the session binding above already keeps others out).
    let mut read = Vec::new();
    resp.responses.retain_mut(|t| {
        let tenant_name = if by_id { ctx.id_out(t.topic_id) } else { ctx.topic_out(&t.topic) };
        let Some(tenant_name) = tenant_name else { return false };
        if !ctx.allows(Action::ReadData, tenant_name.0.as_str()) {
            for p in &mut t.partitions {
                *p = denied_partition(p.partition_index, code::TOPIC_AUTHORIZATION_FAILED);
            }
        }
        let key = tenant_name.0.clone().into_bytes();
        let load_topic = if by_id { super::topic_ids().pool_name(t.topic_id) } else { Some(t.topic.clone()) };
        for p in &mut t.partitions {
            if let Some(records) = &mut p.records {
                // The partial batch a size-capped fetch ends with is useless to the client
                // (it fetches it again from its offset): dropped, so it is neither sent
                // nor charged to the read quota twice (a consumer reached 0.95 of it).
                let whole = crate::protocol::complete_batches_len(records);
                if whole > 0 && whole < records.len() {
                    records.truncate(whole);
                }
                read.push((key.clone(), p.partition_index, records.len() as u64));
                if let Some(lt) = &load_topic {
                    crate::load::registry().record_out(lt.0.as_str(), p.partition_index, records.len() as u64); // placement load
                }
            }
        }
        if !by_id {
            t.topic = tenant_name;
        }
        true
    });
    let throttle_ms = ctx.view.charge(Direction::Read, read);
    resp.throttle_time_ms = resp.throttle_time_ms.max(throttle_ms);
    for e in &mut resp.node_endpoints {
        (e.host, e.port) = adv.endpoint(e.node_id.0);
    }
    append_fetch_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}
