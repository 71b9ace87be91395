//! Topic-level APIs: metadata, offsets, topic administration and topic configs.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{
    create_partitions_response, delete_records_response, describe_producers_response, describe_topic_partitions_request,
    describe_topic_partitions_response, incremental_alter_configs_response,
    AlterConfigsRequest, AlterConfigsResponse, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_tenancy::policy::Action;
use sluice_tenancy::topic_config::{check_topic_config, ConfigAction, ConfigContext};
use uuid::Uuid;

use super::data::resolve_topic;
use super::{
    answer, code, decode_request, decode_response, encode_request, topic_name_error, Admission, Ctx, Denied,
    DeniedResource, DeniedTopic, MapError, Plan, Req,
};
use crate::rewrite::{rewrite_metadata_brokers, Advertised, Observed};

/// DescribeConfigs/AlterConfigs resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

fn forward<M: kafka_protocol::protocol::Encodable>(req: Req, msg: &M, denied: Denied) -> Result<Admission, MapError> {
    Ok(Admission::Forward { body: Some(encode_request(req.api, req.version, msg)?), plan: Plan::Map(Box::new(denied)) })
}

fn deny_topic(denied: &mut Denied, name: TopicName, partitions: Vec<i32>, code: i16) {
    denied.topics.push(DeniedTopic { name, id: Uuid::nil(), partitions, code, message: None })
}

/// Splits the topics of a name-based request into the allowed ones (renamed to pool
/// names) and denied ones. `name` and `partitions` read a topic entry.
fn split_topics<T>(
    ctx: &Ctx<'_>,
    topics: Vec<T>,
    action: Action,
    denied: &mut Denied,
    name: impl Fn(&mut T) -> &mut TopicName,
    partitions: impl Fn(&T) -> Vec<i32>,
) -> Vec<T> {
    let mut kept = Vec::with_capacity(topics.len());
    for mut t in topics {
        let n = name(&mut t).clone();
        match resolve_topic(ctx, false, &n, Uuid::nil(), action) {
            Ok((_, pool)) => {
                *name(&mut t) = pool;
                kept.push(t);
            }
            Err((_, code)) => deny_topic(denied, n, partitions(&t), code),
        }
    }
    kept
}

/// Maps response topic names back, dropping any that are not the tenant's.
fn names_out<T>(ctx: &Ctx<'_>, topics: &mut Vec<T>, name: impl Fn(&mut T) -> &mut TopicName) {
    topics.retain_mut(|t| match ctx.topic_out(name(t)) {
        Some(n) => {
            *name(t) = n;
            true
        }
        None => false,
    });
}

/// KIP-599: charges `partitions` created or deleted against the tenant's budget.
/// `Ok(())` admits; `Err(ms)` refuses with THROTTLING_QUOTA_EXCEEDED (versions that know
/// it) and the throttle time. Older versions are admitted and the connection is held
/// for the wait instead, as Kafka does.
fn mutation(ctx: &mut Ctx<'_>, partitions: i32, throttling_known: bool) -> Result<(), i32> {
    let n = u64::try_from(partitions.max(1)).unwrap_or(1);
    // The user's or client's own mutation rate first, so a refusal there leaves the
    // tenant's budget untouched.
    let sub = ctx.view.subs.mutations.as_ref().map_or(Ok(()), |s| s.check(n));
    match sub.and_then(|()| ctx.view.quota.mutate(n)) {
        Ok(()) => Ok(()),
        Err(wait) => {
            let charge = sluice_quota::Charge::mute(wait);
            let ms = charge.throttle_ms();
            if throttling_known {
                Err(ms)
            } else {
                ctx.view.charge.merge(charge);
                Ok(())
            }
        }
    }
}

/// Whether the tenant may add `adding` partitions (`compacted_adding` of them compacted)
/// to what it holds, or the POLICY_VIOLATION message naming the limit.
fn partition_room(ctx: &Ctx<'_>, adding: u64, compacted: bool, compacted_adding: u64) -> Result<(), String> {
    let inv = super::inventory::inventory();
    if !inv.is_ready() {
        return Ok(());
    }
    let limits = ctx.view.quota.config();
    let held = inv.counts(ctx.ns().tenant().as_str());
    if held.partitions + adding > limits.max_partitions {
        return Err(format!(
            "this tenant holds {} partitions; {} more would exceed its max_partitions ({})",
            held.partitions, adding, limits.max_partitions
        ));
    }
    if compacted && held.compacted_partitions + compacted_adding > limits.max_compacted_partitions {
        return Err(format!(
            "this tenant holds {} compacted partitions; {} more would exceed its max_compacted_partitions ({})",
            held.compacted_partitions, compacted_adding, limits.max_compacted_partitions
        ));
    }
    Ok(())
}

fn throttled_message(ctx: &Ctx<'_>) -> String {
    format!(
        "over this tenant's partition mutation rate ({} partition creations and deletions per 5 minutes)",
        ctx.view.quota.config().partition_mutations_per_5min
    )
}

fn only_clients(replica_id: i32) -> bool {
    // -1 consumers, -2 debug tools; broker ids are followers.
    replica_id < 0
}

// === ListOffsets ===

pub fn list_offsets(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: ListOffsetsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let topics = std::mem::take(&mut r.topics);
    if !only_clients(r.replica_id.0) {
        for t in topics {
            deny_topic(&mut denied, t.name, t.partitions.iter().map(|p| p.partition_index).collect(), code::CLUSTER_AUTHORIZATION_FAILED);
        }
    } else {
        r.topics = split_topics(ctx, topics, Action::DescribeTopic, &mut denied, |t| &mut t.name, |t| {
            t.partitions.iter().map(|p| p.partition_index).collect()
        });
    }
    if r.topics.is_empty() {
        let mut resp = ListOffsetsResponse::default();
        list_offsets_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn list_offsets_denied(resp: &mut ListOffsetsResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.topics.push(ListOffsetsTopicResponse::default().with_name(d.name.clone()).with_partitions(
            d.partitions
                .iter()
                .map(|&p| {
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p)
                        .with_error_code(d.code)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1)
                })
                .collect(),
        ));
    }
}

pub fn list_offsets_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: ListOffsetsResponse = decode_response(req.api, req.version, &body)?;
    names_out(ctx, &mut resp.topics, |t| &mut t.name);
    list_offsets_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === Metadata ===

pub fn metadata(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: MetadataRequest = decode_request(req.api, req.version, body)?;
    // Tenants create topics through CreateTopics, where names, configs and limits are
    // checked; auto-creation would bypass all of that.
    // (The field exists from v4; below it Kafka never auto-creates from Metadata.)
    if req.version >= 4 {
        r.allow_auto_topic_creation = false;
    }
    let mut denied = Denied::default();
    if let Some(topics) = r.topics.take() {
        denied.explicit = true;
        let mut kept = Vec::with_capacity(topics.len());
        for mut t in topics {
            // By id, clients send a null or an empty name.
            let by_name = t.name.clone().filter(|n| !n.0.is_empty() || t.topic_id.is_nil());
            match by_name {
                Some(name) => match resolve_topic(ctx, false, &name, Uuid::nil(), Action::DescribeTopic) {
                    Ok((_, pool)) => {
                        t.name = Some(pool);
                        kept.push(t);
                    }
                    Err((_, code)) => deny_topic(&mut denied, name, Vec::new(), code),
                },
                None => match resolve_topic(ctx, true, &TopicName::default(), t.topic_id, Action::DescribeTopic) {
                    Ok(_) => kept.push(t),
                    Err((name, code)) => denied.topics.push(DeniedTopic {
                        name,
                        id: t.topic_id,
                        partitions: Vec::new(),
                        code,
                        message: None,
                    }),
                },
            }
        }
        r.topics = Some(kept);
    }
    forward(req, &r, denied)
}

pub fn metadata_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
    adv: &Advertised,
    observed: &mut Observed,
) -> Result<Bytes, MapError> {
    let mut resp: MetadataResponse = decode_response(req.api, req.version, &body)?;
    rewrite_metadata_brokers(&mut resp, adv, observed);
    resp.topics.retain_mut(|t| {
        let Some(pool) = &t.name else { return false };
        ctx.ids.learn(t.topic_id, pool);
        let Some(name) = ctx.topic_out(pool) else { return false };
        // A listing of all topics silently omits what the tenant may not describe, as
        // Kafka does; explicitly named topics were authorized on the way in.
        if !denied.explicit && !ctx.allows(Action::DescribeTopic, name.0.as_str()) {
            return false;
        }
        t.name = Some(name);
        t.is_internal = false;
        true
    });
    for d in &denied.topics {
        resp.topics.push(
            MetadataResponseTopic::default()
                .with_error_code(d.code)
                .with_name(if d.name.0.is_empty() { None } else { Some(d.name.clone()) })
                .with_topic_id(d.id),
        );
    }
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === CreateTopics ===

pub fn create_topics(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: CreateTopicsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied { validate_only: r.validate_only, ..Denied::default() };
    let mut kept = Vec::with_capacity(r.topics.len());
    // Partitions (all, compacted) this request adds before the topic at hand.
    let mut pending = (0u64, 0u64);
    'topics: for mut t in std::mem::take(&mut r.topics) {
        let mut refuse = |code: i16, message: String| {
            denied.topics.push(DeniedTopic {
                name: t.name.clone(),
                id: Uuid::nil(),
                partitions: Vec::new(),
                code,
                message: Some(message),
            })
        };
        let pool = match ctx.topic_in(&t.name) {
            Ok(pool) => pool,
            Err(e) => {
                refuse(topic_name_error(&e), format!("invalid topic name: {e}"));
                continue;
            }
        };
        if !ctx.allows(Action::CreateTopic, t.name.0.as_str()) {
            refuse(code::TOPIC_AUTHORIZATION_FAILED, "not authorized: kafka-cluster:CreateTopic".into());
            continue;
        }
        if !t.assignments.is_empty() {
            refuse(
                code::INVALID_REPLICA_ASSIGNMENT,
                "replica assignments are chosen by the service; leave them out".into(),
            );
            continue;
        }
        let mut configs = Vec::with_capacity(t.configs.len());
        for c in std::mem::take(&mut t.configs) {
            match check_topic_config(c.name.as_str(), c.value.as_deref(), ConfigContext::Create) {
                Ok(ConfigAction::Keep) => configs.push(c),
                Ok(ConfigAction::Drop) => {}
                Err(rejection) => {
                    refuse(code::POLICY_VIOLATION, rejection.to_string());
                    continue 'topics;
                }
            }
        }
        t.configs = configs;
        let compacted = t
            .configs
            .iter()
            .any(|c| c.name.as_str() == "cleanup.policy" && c.value.as_ref().is_some_and(|v| v.contains("compact")));
        let partitions = u64::try_from(t.num_partitions).unwrap_or(1).max(1);
        if let Err(message) = partition_room(ctx, partitions + pending.0, compacted, partitions + pending.1) {
            refuse(code::POLICY_VIOLATION, message);
            continue;
        }
        if let Err(ms) = mutation(ctx, t.num_partitions, req.version >= 6) {
            let message = throttled_message(ctx);
            refuse(code::THROTTLING_QUOTA_EXCEEDED, message);
            denied.throttle_ms = denied.throttle_ms.max(ms);
            continue;
        }
        // The pool's replication factor always applies (SPEC 7): -1 is "the broker default".
        t.replication_factor = -1;
        crate::placement::new_partitions::assign_create_topic(&mut t, pool.0.as_str()); // SPEC 8 placement
        t.name = pool;
        pending.0 += partitions;
        if compacted {
            pending.1 += partitions;
        }
        kept.push(t);
    }
    r.topics = kept;
    if r.topics.is_empty() {
        let mut resp = CreateTopicsResponse::default().with_throttle_time_ms(denied.throttle_ms);
        create_topics_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn create_topics_denied(resp: &mut CreateTopicsResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.topics.push(
            CreatableTopicResult::default()
                .with_name(d.name.clone())
                .with_error_code(d.code)
                .with_error_message(d.message.clone().map(StrBytes::from_string))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        );
    }
}

pub fn create_topics_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: CreateTopicsResponse = decode_response(req.api, req.version, &body)?;
    for t in &resp.topics {
        ctx.ids.learn(t.topic_id, &t.name);
        if t.error_code == code::NONE && !denied.validate_only && ctx.ns().owns(t.name.0.as_str()) {
            let compacted = t.configs.as_ref().and_then(|cs| {
                cs.iter()
                    .find(|c| c.name.as_str() == "cleanup.policy")
                    .map(|c| c.value.as_ref().is_some_and(|v| v.contains("compact")))
            });
            let partitions = u64::try_from(t.num_partitions).unwrap_or(1).max(1);
            super::inventory::inventory().record(t.name.0.as_str(), partitions, compacted);
        }
    }
    names_out(ctx, &mut resp.topics, |t| &mut t.name);
    for t in &mut resp.topics {
        t.error_message = ctx.scrub(&t.error_message);
    }
    resp.throttle_time_ms = resp.throttle_time_ms.max(denied.throttle_ms);
    create_topics_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === DeleteTopics ===

pub fn delete_topics(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DeleteTopicsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let mut names = Vec::with_capacity(r.topic_names.len());
    let throttling_known = req.version >= 5;
    for name in std::mem::take(&mut r.topic_names) {
        match resolve_topic(ctx, false, &name, Uuid::nil(), Action::DeleteTopic) {
            Ok((_, pool)) => match mutation(ctx, 1, throttling_known) {
                Ok(()) => names.push(pool),
                Err(ms) => {
                    deny_topic(&mut denied, name, Vec::new(), code::THROTTLING_QUOTA_EXCEEDED);
                    denied.throttle_ms = denied.throttle_ms.max(ms);
                }
            },
            Err((_, code)) => deny_topic(&mut denied, name, Vec::new(), code),
        }
    }
    r.topic_names = names;
    let mut states = Vec::with_capacity(r.topics.len());
    for mut t in std::mem::take(&mut r.topics) {
        let by_id = t.name.as_ref().is_none_or(|n| n.0.is_empty());
        let name = t.name.clone().unwrap_or_default();
        match resolve_topic(ctx, by_id, &name, t.topic_id, Action::DeleteTopic) {
            Ok((tenant_name, pool)) => {
                if let Err(ms) = mutation(ctx, 1, throttling_known) {
                    denied.topics.push(DeniedTopic {
                        name: tenant_name,
                        id: t.topic_id,
                        partitions: Vec::new(),
                        code: code::THROTTLING_QUOTA_EXCEEDED,
                        message: Some(throttled_message(ctx)),
                    });
                    denied.throttle_ms = denied.throttle_ms.max(ms);
                    continue;
                }
                if !by_id {
                    t.name = Some(pool);
                }
                states.push(t);
            }
            Err((name, code)) => {
                denied.topics.push(DeniedTopic { name, id: t.topic_id, partitions: Vec::new(), code, message: None })
            }
        }
    }
    r.topics = states;
    if r.topics.is_empty() && r.topic_names.is_empty() {
        let mut resp = DeleteTopicsResponse::default().with_throttle_time_ms(denied.throttle_ms);
        delete_topics_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn delete_topics_denied(resp: &mut DeleteTopicsResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.responses.push(
            DeletableTopicResult::default()
                .with_name(if d.name.0.is_empty() { None } else { Some(d.name.clone()) })
                .with_topic_id(d.id)
                .with_error_code(d.code)
                .with_error_message(d.message.clone().map(StrBytes::from_string)),
        );
    }
}

pub fn delete_topics_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: DeleteTopicsResponse = decode_response(req.api, req.version, &body)?;
    resp.responses.retain_mut(|t| {
        match &t.name {
            Some(pool) => match ctx.topic_out(pool) {
                Some(name) => t.name = Some(name),
                None => return false,
            },
            // Deleted by id: the id was resolved for this tenant on the way in.
            None => {
                if ctx.id_out(t.topic_id).is_none() {
                    return false;
                }
            }
        }
        t.error_message = ctx.scrub(&t.error_message);
        if t.error_code == code::NONE {
            ctx.ids.forget(t.topic_id);
            if let Some(name) = &t.name {
                super::inventory::inventory().forget(&format!("{}{}", ctx.ns().prefix(), name.0.as_str()));
            }
        }
        true
    });
    resp.throttle_time_ms = resp.throttle_time_ms.max(denied.throttle_ms);
    delete_topics_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === CreatePartitions ===

pub fn create_partitions(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: CreatePartitionsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let mut kept = Vec::with_capacity(r.topics.len());
    for mut t in std::mem::take(&mut r.topics) {
        if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            denied.topics.push(DeniedTopic {
                name: t.name.clone(),
                id: Uuid::nil(),
                partitions: Vec::new(),
                code: code::INVALID_REPLICA_ASSIGNMENT,
                message: Some("replica assignments are chosen by the service; leave them out".into()),
            });
            continue;
        }
        match resolve_topic(ctx, false, &t.name, Uuid::nil(), Action::AlterTopic) {
            Ok((_, pool)) => {
                // Partitions added: the new total minus what the pool holds (the new
                // total itself when the inventory does not know the topic yet).
                let current = super::inventory::inventory().topic(pool.0.as_str());
                let count = u64::try_from(t.count).unwrap_or(0);
                let adding = current.map_or(count, |c| count.saturating_sub(c.partitions));
                let compacted = current.is_some_and(|c| c.compacted);
                if let Err(message) = partition_room(ctx, adding, compacted, adding) {
                    denied.topics.push(DeniedTopic {
                        name: t.name.clone(),
                        id: Uuid::nil(),
                        partitions: Vec::new(),
                        code: code::POLICY_VIOLATION,
                        message: Some(message),
                    });
                    continue;
                }
                if let Err(ms) = mutation(ctx, i32::try_from(adding).unwrap_or(i32::MAX), req.version >= 3) {
                    denied.topics.push(DeniedTopic {
                        name: t.name.clone(),
                        id: Uuid::nil(),
                        partitions: Vec::new(),
                        code: code::THROTTLING_QUOTA_EXCEEDED,
                        message: Some(throttled_message(ctx)),
                    });
                    denied.throttle_ms = denied.throttle_ms.max(ms);
                    continue;
                }
                crate::placement::new_partitions::assign_create_partitions(&mut t, pool.0.as_str()); // SPEC 8 placement
                t.name = pool;
                kept.push(t);
            }
            Err((name, code)) => deny_topic(&mut denied, name, Vec::new(), code),
        }
    }
    r.topics = kept;
    if r.topics.is_empty() {
        let mut resp = CreatePartitionsResponse::default().with_throttle_time_ms(denied.throttle_ms);
        create_partitions_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn create_partitions_denied(resp: &mut CreatePartitionsResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.results.push(
            create_partitions_response::CreatePartitionsTopicResult::default()
                .with_name(d.name.clone())
                .with_error_code(d.code)
                .with_error_message(d.message.clone().map(StrBytes::from_string)),
        );
    }
}

pub fn create_partitions_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: CreatePartitionsResponse = decode_response(req.api, req.version, &body)?;
    names_out(ctx, &mut resp.results, |t| &mut t.name);
    for t in &mut resp.results {
        t.error_message = ctx.scrub(&t.error_message);
    }
    resp.throttle_time_ms = resp.throttle_time_ms.max(denied.throttle_ms);
    create_partitions_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === DeleteRecords ===

pub fn delete_records(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DeleteRecordsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let topics = std::mem::take(&mut r.topics);
    r.topics = split_topics(ctx, topics, Action::DeleteTopic, &mut denied, |t| &mut t.name, |t| {
        t.partitions.iter().map(|p| p.partition_index).collect()
    });
    if r.topics.is_empty() {
        let mut resp = DeleteRecordsResponse::default();
        delete_records_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn delete_records_denied(resp: &mut DeleteRecordsResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.topics.push(delete_records_response::DeleteRecordsTopicResult::default().with_name(d.name.clone()).with_partitions(
            d.partitions
                .iter()
                .map(|&p| {
                    delete_records_response::DeleteRecordsPartitionResult::default()
                        .with_partition_index(p)
                        .with_low_watermark(-1)
                        .with_error_code(d.code)
                })
                .collect(),
        ));
    }
}

pub fn delete_records_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: DeleteRecordsResponse = decode_response(req.api, req.version, &body)?;
    names_out(ctx, &mut resp.topics, |t| &mut t.name);
    delete_records_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === OffsetForLeaderEpoch ===

pub fn offset_for_leader_epoch(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: OffsetForLeaderEpochRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let topics = std::mem::take(&mut r.topics);
    let parts = |t: &kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderTopic| {
        t.partitions.iter().map(|p| p.partition).collect::<Vec<_>>()
    };
    if !only_clients(r.replica_id.0) {
        for t in topics {
            let p = parts(&t);
            deny_topic(&mut denied, t.topic, p, code::CLUSTER_AUTHORIZATION_FAILED);
        }
    } else {
        r.topics = split_topics(ctx, topics, Action::DescribeTopic, &mut denied, |t| &mut t.topic, parts);
    }
    if r.topics.is_empty() {
        let mut resp = OffsetForLeaderEpochResponse::default();
        offset_for_leader_epoch_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn offset_for_leader_epoch_denied(resp: &mut OffsetForLeaderEpochResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.topics.push(OffsetForLeaderTopicResult::default().with_topic(d.name.clone()).with_partitions(
            d.partitions
                .iter()
                .map(|&p| {
                    EpochEndOffset::default().with_partition(p).with_error_code(d.code).with_leader_epoch(-1).with_end_offset(-1)
                })
                .collect(),
        ));
    }
}

pub fn offset_for_leader_epoch_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: OffsetForLeaderEpochResponse = decode_response(req.api, req.version, &body)?;
    names_out(ctx, &mut resp.topics, |t| &mut t.topic);
    offset_for_leader_epoch_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === DescribeTopicPartitions ===

pub fn describe_topic_partitions(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DescribeTopicPartitionsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    if r.topics.is_empty() {
        // All topics: the pool lists its topics in name order from the cursor, and the
        // tenant's all share one prefix, so they are contiguous. Start at the prefix and
        // cut the answer where the tenant's topics end.
        denied.all_topics = true;
        let cursor = match r.cursor.take() {
            Some(mut c) => match ctx.topic_in(&c.topic_name) {
                Ok(pool) => {
                    c.topic_name = pool;
                    c
                }
                Err(_) => prefix_cursor(ctx),
            },
            None => prefix_cursor(ctx),
        };
        r.cursor = Some(cursor);
    } else {
        let topics = std::mem::take(&mut r.topics);
        r.topics = split_topics(ctx, topics, Action::DescribeTopic, &mut denied, |t| &mut t.name, |_| Vec::new());
        if let Some(c) = r.cursor.as_mut() {
            match ctx.topic_in(&c.topic_name) {
                Ok(pool) => c.topic_name = pool,
                Err(_) => r.cursor = None,
            }
        }
        if r.topics.is_empty() {
            let mut resp = DescribeTopicPartitionsResponse::default();
            describe_topic_partitions_denied(&mut resp, &denied);
            return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
        }
    }
    forward(req, &r, denied)
}

fn prefix_cursor(ctx: &Ctx<'_>) -> describe_topic_partitions_request::Cursor {
    describe_topic_partitions_request::Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(ctx.ns().prefix().to_owned())))
        .with_partition_index(0)
}

fn describe_topic_partitions_denied(resp: &mut DescribeTopicPartitionsResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.topics.push(
            describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(d.code)
                .with_name(Some(d.name.clone())),
        );
    }
}

pub fn describe_topic_partitions_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: DescribeTopicPartitionsResponse = decode_response(req.api, req.version, &body)?;
    let mut ended = false;
    resp.topics.retain_mut(|t| {
        let Some(pool) = &t.name else { return false };
        ctx.ids.learn(t.topic_id, pool);
        let Some(name) = ctx.topic_out(pool) else {
            ended = true;
            return false;
        };
        if ended || (denied.all_topics && !ctx.allows(Action::DescribeTopic, name.0.as_str())) {
            return false;
        }
        t.name = Some(name);
        t.is_internal = false;
        true
    });
    resp.next_cursor = match resp.next_cursor.take() {
        Some(mut c) if !ended => ctx.topic_out(&c.topic_name).map(|name| {
            c.topic_name = name;
            c
        }),
        _ => None,
    };
    describe_topic_partitions_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === Configs ===

/// Maps a topic config resource, or says why it is refused.
fn config_resource(ctx: &Ctx<'_>, resource_type: i8, name: &StrBytes, action: Action) -> Result<StrBytes, DeniedResource> {
    let deny = |code: i16, message: &str| DeniedResource {
        resource_type,
        name: name.clone(),
        code,
        message: Some(message.to_owned()),
    };
    if resource_type != TOPIC_RESOURCE {
        // Brokers, broker loggers, client metrics and group configs are the service's.
        return Err(deny(code::CLUSTER_AUTHORIZATION_FAILED, "only topic configs are available to tenants"));
    }
    let topic = TopicName(name.clone());
    match ctx.topic_in(&topic) {
        Err(e) => Err(deny(topic_name_error(&e), &format!("invalid topic name: {e}"))),
        Ok(_) if !ctx.allows(action, name.as_str()) => {
            Err(deny(code::TOPIC_AUTHORIZATION_FAILED, &format!("not authorized: {}", action.name())))
        }
        Ok(pool) => Ok(pool.0),
    }
}

pub fn describe_configs(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DescribeConfigsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let mut kept = Vec::with_capacity(r.resources.len());
    for mut res in std::mem::take(&mut r.resources) {
        match config_resource(ctx, res.resource_type, &res.resource_name, Action::DescribeTopicDynamicConfiguration) {
            Ok(pool) => {
                res.resource_name = pool;
                kept.push(res);
            }
            Err(d) => denied.resources.push(d),
        }
    }
    r.resources = kept;
    if r.resources.is_empty() {
        let mut resp = DescribeConfigsResponse::default();
        describe_configs_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn describe_configs_denied(resp: &mut DescribeConfigsResponse, denied: &Denied) {
    for d in &denied.resources {
        resp.results.push(
            DescribeConfigsResult::default()
                .with_error_code(d.code)
                .with_error_message(d.message.clone().map(StrBytes::from_string))
                .with_resource_type(d.resource_type)
                .with_resource_name(d.name.clone()),
        );
    }
}

pub fn describe_configs_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: DescribeConfigsResponse = decode_response(req.api, req.version, &body)?;
    resp.results.retain_mut(|r| {
        let Some(name) = ctx.topic_out(&TopicName(r.resource_name.clone())) else { return false };
        r.resource_name = name.0;
        r.error_message = ctx.scrub(&r.error_message);
        true
    });
    describe_configs_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

/// Checks one config of an alter request: `Ok(true)` keep, `Ok(false)` drop silently.
fn alter_config_allowed(name: &StrBytes, value: Option<&StrBytes>) -> Result<bool, String> {
    match check_topic_config(name.as_str(), value.map(|v| v.as_str()), ConfigContext::Alter) {
        Ok(ConfigAction::Keep) => Ok(true),
        Ok(ConfigAction::Drop) => Ok(false),
        Err(rejection) => Err(rejection.to_string()),
    }
}

pub fn alter_configs(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: AlterConfigsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let mut kept = Vec::with_capacity(r.resources.len());
    'resources: for mut res in std::mem::take(&mut r.resources) {
        match config_resource(ctx, res.resource_type, &res.resource_name, Action::AlterTopicDynamicConfiguration) {
            Ok(pool) => {
                let mut configs = Vec::with_capacity(res.configs.len());
                for c in std::mem::take(&mut res.configs) {
                    match alter_config_allowed(&c.name, c.value.as_ref()) {
                        Ok(true) => configs.push(c),
                        Ok(false) => {}
                        Err(message) => {
                            denied.resources.push(DeniedResource {
                                resource_type: res.resource_type,
                                name: res.resource_name.clone(),
                                code: code::INVALID_CONFIG,
                                message: Some(message),
                            });
                            continue 'resources;
                        }
                    }
                }
                res.configs = configs;
                res.resource_name = pool;
                kept.push(res);
            }
            Err(d) => denied.resources.push(d),
        }
    }
    r.resources = kept;
    if r.resources.is_empty() {
        let mut resp = AlterConfigsResponse::default();
        alter_configs_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn alter_configs_denied(resp: &mut AlterConfigsResponse, denied: &Denied) {
    for d in &denied.resources {
        resp.responses.push(
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(d.code)
                .with_error_message(d.message.clone().map(StrBytes::from_string))
                .with_resource_type(d.resource_type)
                .with_resource_name(d.name.clone()),
        );
    }
}

pub fn alter_configs_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: AlterConfigsResponse = decode_response(req.api, req.version, &body)?;
    resp.responses.retain_mut(|r| {
        let Some(name) = ctx.topic_out(&TopicName(r.resource_name.clone())) else { return false };
        r.resource_name = name.0;
        r.error_message = ctx.scrub(&r.error_message);
        true
    });
    alter_configs_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

/// IncrementalAlterConfigs operation DELETE: the value is ignored and the config reset.
const OP_DELETE: i8 = 1;

pub fn incremental_alter_configs(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: IncrementalAlterConfigsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let mut kept = Vec::with_capacity(r.resources.len());
    'resources: for mut res in std::mem::take(&mut r.resources) {
        match config_resource(ctx, res.resource_type, &res.resource_name, Action::AlterTopicDynamicConfiguration) {
            Ok(pool) => {
                let mut configs = Vec::with_capacity(res.configs.len());
                for c in std::mem::take(&mut res.configs) {
                    let value = if c.config_operation == OP_DELETE { None } else { c.value.as_ref() };
                    match alter_config_allowed(&c.name, value) {
                        Ok(true) => configs.push(c),
                        Ok(false) => {}
                        Err(message) => {
                            denied.resources.push(DeniedResource {
                                resource_type: res.resource_type,
                                name: res.resource_name.clone(),
                                code: code::INVALID_CONFIG,
                                message: Some(message),
                            });
                            continue 'resources;
                        }
                    }
                }
                res.configs = configs;
                res.resource_name = pool;
                kept.push(res);
            }
            Err(d) => denied.resources.push(d),
        }
    }
    r.resources = kept;
    if r.resources.is_empty() {
        let mut resp = IncrementalAlterConfigsResponse::default();
        incremental_alter_configs_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn incremental_alter_configs_denied(resp: &mut IncrementalAlterConfigsResponse, denied: &Denied) {
    for d in &denied.resources {
        resp.responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(d.code)
                .with_error_message(d.message.clone().map(StrBytes::from_string))
                .with_resource_type(d.resource_type)
                .with_resource_name(d.name.clone()),
        );
    }
}

pub fn incremental_alter_configs_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: IncrementalAlterConfigsResponse = decode_response(req.api, req.version, &body)?;
    resp.responses.retain_mut(|r| {
        let Some(name) = ctx.topic_out(&TopicName(r.resource_name.clone())) else { return false };
        r.resource_name = name.0;
        r.error_message = ctx.scrub(&r.error_message);
        true
    });
    incremental_alter_configs_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === DescribeProducers ===

pub fn describe_producers(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DescribeProducersRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let topics = std::mem::take(&mut r.topics);
    // Kafka requires READ on the topic to see its producers.
    r.topics = split_topics(ctx, topics, Action::ReadData, &mut denied, |t| &mut t.name, |t| t.partition_indexes.clone());
    if r.topics.is_empty() {
        let mut resp = DescribeProducersResponse::default();
        describe_producers_denied(&mut resp, &denied);
        return Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?));
    }
    forward(req, &r, denied)
}

fn describe_producers_denied(resp: &mut DescribeProducersResponse, denied: &Denied) {
    for d in &denied.topics {
        resp.topics.push(describe_producers_response::TopicResponse::default().with_name(d.name.clone()).with_partitions(
            d.partitions
                .iter()
                .map(|&p| describe_producers_response::PartitionResponse::default().with_partition_index(p).with_error_code(d.code))
                .collect(),
        ));
    }
}

pub fn describe_producers_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: DescribeProducersResponse = decode_response(req.api, req.version, &body)?;
    names_out(ctx, &mut resp.topics, |t| &mut t.name);
    for t in &mut resp.topics {
        for p in &mut t.partitions {
            p.error_message = ctx.scrub(&p.error_message);
        }
    }
    describe_producers_denied(&mut resp, &denied);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === DescribeCluster ===

pub fn describe_cluster(ctx: &mut Ctx<'_>, req: Req, _body: &Bytes) -> Result<Admission, MapError> {
    if ctx.allows(Action::DescribeCluster, "") {
        return Ok(Admission::Forward { body: None, plan: Plan::PassThrough });
    }
    let resp = DescribeClusterResponse::default()
        .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
        .with_error_message(Some(StrBytes::from_static_str("not authorized: kafka-cluster:DescribeCluster")));
    Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, &resp)?))
}
