//! Consumer groups (classic and KIP-848), share groups (KIP-932) and FindCoordinator:
//! group ids, the topic names and ids inside group APIs, and the coordinator keys.
//!
//! Protocol facts used here:
//! - A group id is authorized in the tenant's view and forwarded as `<tenant>.<group>`;
//!   group answers from the pool are dropped unless they carry the tenant's prefix.
//! - Batched APIs (OffsetFetch v8+, DescribeShareGroupOffsets) name topics per group.
//!   For these, `Denied::keys` lists every requested group in request order (`NONE` for
//!   the ones forwarded) and each denied topic's `id` is the index of its group in
//!   `keys` ([`tag`]): neither request carries topic ids, so the field is free. The
//!   response is rebuilt in request order from that list.
//! - Members' client ids were forwarded as `<tenant>.<client id>` (SPEC §3); describe
//!   answers give them back without the prefix.
//! - `authorized_operations` computed by the pool is the gateway's own; it is recomputed
//!   from the tenant's grants.
//! - Share sessions count epochs per request on the broker, so a ShareFetch or
//!   ShareAcknowledge whose topics were all denied is still forwarded (emptied) when its
//!   group is allowed: answering it locally would put the client's epoch out of step.
//! - Classic groups of protocol type `consumer` carry topic names inside their opaque
//!   member payloads (ConsumerProtocol subscriptions and assignments); these are mapped
//!   both ways too, so the pool's coordinator only ever sees pool names.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_group_describe_response, delete_groups_response, describe_groups_response,
    describe_share_group_offsets_response, find_coordinator_response, offset_commit_response,
    offset_delete_response, offset_fetch_response, share_acknowledge_response, share_fetch_response,
    share_group_describe_response, alter_share_group_offsets_response, delete_share_group_offsets_response,
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, ApiKey, ConsumerGroupDescribeRequest,
    ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
    ShareFetchResponse, ShareGroupDescribeRequest, ShareGroupDescribeResponse, ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_tenancy::policy::Action;
use tracing::debug;
use uuid::Uuid;

use super::data::resolve_topic;
use super::{
    answer, code, decode_request, decode_response, encode_request, Admission, Ctx, Denied, DeniedTopic, MapError,
    Plan, Req,
};
use crate::rewrite::Advertised;

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// Kafka's `authorized_operations` value when the client did not ask for them.
const OPS_OMITTED: i32 = i32::MIN;

// === Shared helpers (also used by `txn`) ===

/// Forwards `msg` (re-encoded) and maps the response with what was denied.
pub(super) fn forward<M: Encodable>(req: Req, msg: &M, denied: Denied) -> Result<Admission, MapError> {
    Ok(Admission::Forward { body: Some(encode_request(req.api, req.version, msg)?), plan: Plan::Map(Box::new(denied)) })
}

/// Forwards `msg` (re-encoded); the response carries no tenant names.
pub(super) fn pass_through<M: Encodable>(req: Req, msg: &M) -> Result<Admission, MapError> {
    Ok(Admission::Forward { body: Some(encode_request(req.api, req.version, msg)?), plan: Plan::PassThrough })
}

/// Answers the request locally with `resp`.
pub(super) fn local<M: Encodable>(req: Req, resp: &M) -> Result<Admission, MapError> {
    Ok(Admission::Answer(answer(req.api, req.version, req.correlation_id, resp)?))
}

pub(super) fn denied_topic(name: TopicName, id: Uuid, partitions: Vec<i32>, code: i16) -> DeniedTopic {
    DeniedTopic { name, id, partitions, code, message: None }
}

/// The group's pool id, or the code to answer it with: INVALID_GROUP_ID for names the
/// tenant cannot use, GROUP_AUTHORIZATION_FAILED when `action` is not granted.
pub(super) fn group_check(ctx: &Ctx<'_>, group: &GroupId, action: Action) -> Result<GroupId, i16> {
    match ctx.group_in(group) {
        Err(_) => Err(code::INVALID_GROUP_ID),
        Ok(_) if !ctx.allows(action, group.0.as_str()) => Err(code::GROUP_AUTHORIZATION_FAILED),
        Ok(pool) => Ok(pool),
    }
}

/// SPEC 7's group-count limit: a group the tenant does not hold yet may start only while
/// the tenant holds fewer than its `max_consumer_groups`. The refusal names the limit.
fn group_limit(ctx: &Ctx<'_>, pool: &GroupId) -> Result<(), String> {
    let max = ctx.view.quota.config().max_groups;
    super::inventory::inventory().admit_group(pool.0.as_str(), max).map_err(|held| {
        let message = format!(
            "tenant {} holds {held} groups, its max_consumer_groups limit ({max}); delete a group to start another",
            ctx.ns().tenant()
        );
        tracing::info!(tenant = %ctx.ns().tenant(), group = %pool.0.as_str(), reason = %message, "group refused");
        message
    })
}

/// The group a denied topic of a batched request belongs to, as its index in
/// `Denied::keys` (see the module docs).
pub(super) fn tag(index: usize) -> Uuid {
    Uuid::from_u128(index as u128)
}

/// Splits name-based topics into allowed ones (renamed to pool names) and denied ones,
/// recorded with `id` (a [`tag`] for batched requests, nil otherwise).
pub(super) fn split_topics<T>(
    ctx: &Ctx<'_>,
    topics: Vec<T>,
    action: Action,
    id: Uuid,
    denied: &mut Vec<DeniedTopic>,
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
            Err((_, code)) => denied.push(denied_topic(n, id, partitions(&t), code)),
        }
    }
    kept
}

/// Maps response topic names back, dropping the ones that are not the tenant's.
pub(super) fn names_out<T>(ctx: &Ctx<'_>, topics: &mut Vec<T>, name: impl Fn(&mut T) -> &mut TopicName) {
    topics.retain_mut(|t| match ctx.topic_out(name(t)) {
        Some(n) => {
            *name(t) = n;
            true
        }
        None => false,
    });
}

/// A tenant's topic name that it may `action`, from a pool name; `None` drops it.
fn visible_topic(ctx: &Ctx<'_>, pool: &TopicName, action: Action) -> Option<TopicName> {
    ctx.topic_out(pool).filter(|n| ctx.allows(action, n.0.as_str()))
}

/// A pool key (group or transactional id) in the tenant's view.
pub(super) fn key_out(ctx: &Ctx<'_>, pool: &StrBytes) -> Option<StrBytes> {
    ctx.group_out(&GroupId(pool.clone())).map(|g| g.0)
}

/// A member's client id without the `<tenant>.` the gateway added on the way in.
fn client_id_out(ctx: &Ctx<'_>, client_id: &StrBytes) -> StrBytes {
    key_out(ctx, client_id).unwrap_or_else(|| client_id.clone())
}

/// Kafka's authorized-operations bit set of a group (READ, DELETE, DESCRIBE), from the
/// tenant's grants, replacing the gateway principal's set the pool computed.
fn group_ops(ctx: &Ctx<'_>, group: &GroupId, pool_value: i32) -> i32 {
    if pool_value == OPS_OMITTED {
        return OPS_OMITTED;
    }
    let name = group.0.as_str();
    let mut ops = 0;
    for (action, bit) in [(Action::AlterGroup, 3), (Action::DeleteGroup, 6), (Action::DescribeGroup, 8)] {
        if ctx.allows(action, name) {
            ops |= 1 << bit;
        }
    }
    ops
}

/// A pool regex set through the gateway, back in the tenant's view.
fn regex_out(ctx: &Ctx<'_>, re: &StrBytes) -> StrBytes {
    match ctx.ns().regex_from_pool(re.as_str()) {
        inner if inner.len() == re.len() => re.clone(),
        inner => StrBytes::from_string(inner.to_owned()),
    }
}

/// Rebuilds a batched response in request order: every key of `denied.keys` becomes one
/// group, the broker's own entry when it was forwarded (`NONE`) and answered, else one
/// made with `make(key, code)`; denied topics tagged with the key's index are added
/// with `add`. Broker entries that match no key are dropped.
fn merge_batched<G>(
    denied: &Denied,
    mut got: Vec<G>,
    id: impl Fn(&G) -> &StrBytes,
    make: impl Fn(&StrBytes, i16) -> G,
    add: impl Fn(&mut G, &DeniedTopic),
) -> Vec<G> {
    let mut out = Vec::with_capacity(denied.keys.len());
    for (i, (key, code)) in denied.keys.iter().enumerate() {
        let found = if *code == code::NONE { got.iter().position(|g| id(g) == key) } else { None };
        let mut g = match found {
            Some(at) => got.remove(at),
            None => make(key, *code),
        };
        for d in denied.topics.iter().filter(|d| d.id == tag(i)) {
            add(&mut g, d);
        }
        out.push(g);
    }
    out
}

// === FindCoordinator ===

/// The pool key of one coordinator key, or the code to answer it with.
fn coordinator_key(ctx: &Ctx<'_>, key_type: i8, key: &StrBytes) -> Result<StrBytes, i16> {
    match key_type {
        KEY_GROUP => group_check(ctx, &GroupId(key.clone()), Action::DescribeGroup).map(|g| g.0),
        KEY_TRANSACTION => match ctx.ns().id_to_pool(key.as_str()) {
            Err(_) => Err(code::INVALID_REQUEST),
            Ok(_) if !ctx.allows(Action::DescribeTransactionalId, key.as_str()) => {
                Err(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            }
            Ok(pool) => Ok(StrBytes::from_string(pool)),
        },
        // Share-state coordinators (2) are for brokers only; other types do not exist.
        _ => Err(code::INVALID_REQUEST),
    }
}

fn no_coordinator(key: &StrBytes, code: i16) -> find_coordinator_response::Coordinator {
    find_coordinator_response::Coordinator::default()
        .with_key(key.clone())
        .with_node_id((-1).into())
        .with_host(StrBytes::default())
        .with_port(-1)
        .with_error_code(code)
}

pub fn find_coordinator(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: FindCoordinatorRequest = decode_request(req.api, req.version, body)?;
    // v0 has no key type: always a group.
    let key_type = if req.version >= 1 { r.key_type } else { KEY_GROUP };
    if req.version < 4 {
        return match coordinator_key(ctx, key_type, &r.key) {
            Ok(pool) => {
                r.key = pool;
                forward(req, &r, Denied::default())
            }
            Err(code) => local(
                req,
                &FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_node_id((-1).into())
                    .with_host(StrBytes::default())
                    .with_port(-1),
            ),
        };
    }
    let mut denied = Denied::default();
    let mut kept = Vec::with_capacity(r.coordinator_keys.len());
    for key in std::mem::take(&mut r.coordinator_keys) {
        match coordinator_key(ctx, key_type, &key) {
            Ok(pool) => kept.push(pool),
            Err(code) => denied.keys.push((key, code)),
        }
    }
    if kept.is_empty() {
        let coordinators = denied.keys.iter().map(|(k, c)| no_coordinator(k, *c)).collect();
        return local(req, &FindCoordinatorResponse::default().with_coordinators(coordinators));
    }
    r.coordinator_keys = kept;
    forward(req, &r, denied)
}

pub fn find_coordinator_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
    adv: &Advertised,
) -> Result<Bytes, MapError> {
    let mut resp: FindCoordinatorResponse = decode_response(req.api, req.version, &body)?;
    if req.version < 4 {
        if resp.node_id.0 >= 0 {
            (resp.host, resp.port) = adv.endpoint(resp.node_id.0);
        }
        resp.error_message = ctx.scrub(&resp.error_message);
    } else {
        resp.coordinators.retain_mut(|c| {
            let Some(key) = key_out(ctx, &c.key) else { return false };
            c.key = key;
            if c.node_id.0 >= 0 {
                (c.host, c.port) = adv.endpoint(c.node_id.0);
            }
            c.error_message = ctx.scrub(&c.error_message);
            true
        });
        resp.coordinators.extend(denied.keys.iter().map(|(k, c)| no_coordinator(k, *c)));
    }
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === Classic membership: JoinGroup, SyncGroup, Heartbeat, LeaveGroup ===

/// Maps the group id of a membership request; AlterGroup (Kafka's READ on the group).
/// JoinGroup and SyncGroup of `consumer` groups also carry topic names inside their
/// member payloads, mapped both ways ([`payloads`]); everything else the responses carry
/// names no group or topic, so they pass through.
pub fn membership(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    match req.api {
        ApiKey::JoinGroup => {
            let mut r: JoinGroupRequest = decode_request(req.api, req.version, body)?;
            match group_check(ctx, &r.group_id, Action::AlterGroup) {
                Ok(pool) if group_limit(ctx, &pool).is_err() => {
                    // JoinGroup has no error message; the gateway's log names the limit.
                    local(req, &JoinGroupResponse::default().with_error_code(code::POLICY_VIOLATION))
                }
                Ok(pool) => {
                    let group = std::mem::replace(&mut r.group_id, pool).0;
                    let consumer = r.protocol_type.as_str() == CONSUMER_PROTOCOL;
                    ctx.view.classic.remember(&group, consumer);
                    if !consumer {
                        return pass_through(req, &r);
                    }
                    for p in &mut r.protocols {
                        p.metadata = subscription_payload(ctx, &p.metadata, Payloads::Consumer, Dir::In);
                    }
                    forward(req, &r, Denied { keys: vec![(group, code::NONE)], ..Denied::default() })
                }
                Err(code) => local(req, &JoinGroupResponse::default().with_error_code(code)),
            }
        }
        ApiKey::SyncGroup => {
            let mut r: SyncGroupRequest = decode_request(req.api, req.version, body)?;
            match group_check(ctx, &r.group_id, Action::AlterGroup) {
                Ok(pool) => {
                    let group = std::mem::replace(&mut r.group_id, pool).0;
                    if let Some(t) = &r.protocol_type {
                        ctx.view.classic.remember(&group, t.as_str() == CONSUMER_PROTOCOL);
                    }
                    let kind = payloads(ctx, &group, r.protocol_type.as_ref());
                    if kind == Payloads::Other {
                        return pass_through(req, &r);
                    }
                    for a in &mut r.assignments {
                        a.assignment = assignment_payload(ctx, &a.assignment, kind, Dir::In);
                    }
                    forward(req, &r, Denied { keys: vec![(group, code::NONE)], ..Denied::default() })
                }
                Err(code) => local(req, &SyncGroupResponse::default().with_error_code(code)),
            }
        }
        ApiKey::Heartbeat => {
            let mut r: HeartbeatRequest = decode_request(req.api, req.version, body)?;
            match group_check(ctx, &r.group_id, Action::AlterGroup) {
                Ok(pool) => {
                    r.group_id = pool;
                    pass_through(req, &r)
                }
                Err(code) => local(req, &HeartbeatResponse::default().with_error_code(code)),
            }
        }
        _ => {
            let mut r: LeaveGroupRequest = decode_request(req.api, req.version, body)?;
            match group_check(ctx, &r.group_id, Action::AlterGroup) {
                Ok(pool) => {
                    r.group_id = pool;
                    pass_through(req, &r)
                }
                Err(code) => local(req, &LeaveGroupResponse::default().with_error_code(code)),
            }
        }
    }
}

/// The JoinGroup or SyncGroup response of a request that [`membership`] mapped (its
/// `Denied::keys` holds the group): member subscriptions (to the leader) and the
/// member's assignment back in the tenant's view.
pub fn membership_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let group = denied.keys.first().map(|(g, _)| g.clone()).unwrap_or_default();
    if req.api == ApiKey::JoinGroup {
        let mut resp: JoinGroupResponse = decode_response(req.api, req.version, &body)?;
        let kind = payloads(ctx, &group, resp.protocol_type.as_ref());
        for m in &mut resp.members {
            m.metadata = subscription_payload(ctx, &m.metadata, kind, Dir::Out);
        }
        answer(req.api, req.version, req.correlation_id, &resp)
    } else {
        let mut resp: SyncGroupResponse = decode_response(req.api, req.version, &body)?;
        let kind = payloads(ctx, &group, resp.protocol_type.as_ref());
        resp.assignment = assignment_payload(ctx, &resp.assignment, kind, Dir::Out);
        answer(req.api, req.version, req.correlation_id, &resp)
    }
}

// === Classic consumer protocol payloads ===
//
// A classic group of protocol type `consumer` carries Kafka's ConsumerProtocol inside
// its opaque member bytes: JoinGroup `protocols[].metadata`, the JoinGroup response's
// `members[].metadata` and DescribeGroups' `member_metadata` are a
// ConsumerProtocolSubscription; SyncGroup `assignments[].assignment`, the SyncGroup
// response's `assignment` and DescribeGroups' `member_assignment` are a
// ConsumerProtocolAssignment. Each is an i16 version and then the body at that version.
// The pool's coordinator reads these (KIP-496 expiry of unsubscribed topics' offsets,
// classic to KIP-848 online migration), so it must see pool names; clients see theirs.
// Kafka reads a version newer than it knows at its highest known version and ignores the
// bytes after it; the gateway does the same and keeps those bytes as they are.
// `user_data` is the assignor's own (Streams puts topic names there) and is read only
// by the tenant's own members, so it stays in the tenant's view.

/// The protocol type whose member payloads are ConsumerProtocol messages.
const CONSUMER_PROTOCOL: &str = "consumer";

/// How many groups' protocol types a connection remembers. A member uses one or a few
/// groups per coordinator connection; the oldest entry is forgotten first.
const REMEMBERED_GROUPS: usize = 16;

/// The protocol types of the classic groups this connection joined (tenant-view group
/// id, whether it is `consumer`). SyncGroup below v5 and JoinGroup responses below v7
/// do not carry the type, and librdkafka uses exactly those versions.
#[derive(Debug, Default)]
pub struct ClassicProtocols {
    groups: std::collections::VecDeque<(StrBytes, bool)>,
}

impl ClassicProtocols {
    fn remember(&mut self, group: &StrBytes, consumer: bool) {
        self.groups.retain(|(g, _)| g != group);
        if self.groups.len() >= REMEMBERED_GROUPS {
            self.groups.pop_front();
        }
        self.groups.push_back((group.clone(), consumer));
    }

    fn get(&self, group: &StrBytes) -> Option<bool> {
        self.groups.iter().find(|(g, _)| g == group).map(|(_, c)| *c)
    }
}

/// What a classic group's member payloads are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payloads {
    /// Protocol type `consumer`: ConsumerProtocol messages (a client may still use its
    /// own format under that type, so undecodable bytes pass unchanged).
    Consumer,
    /// Another protocol type (Connect...): opaque, never touched.
    Other,
    /// Not known on this connection (a SyncGroup below v5 whose JoinGroup went through
    /// another connection): mapped only if the bytes are exactly a ConsumerProtocol
    /// message of a known version.
    Unknown,
}

/// The payload kind from the message's own protocol type, else from what this
/// connection saw of the group.
fn payloads(ctx: &Ctx<'_>, group: &StrBytes, protocol_type: Option<&StrBytes>) -> Payloads {
    let consumer = match protocol_type {
        Some(t) => Some(t.as_str() == CONSUMER_PROTOCOL),
        None => ctx.view.classic.get(group),
    };
    match consumer {
        Some(true) => Payloads::Consumer,
        Some(false) => Payloads::Other,
        None => Payloads::Unknown,
    }
}

/// Which way a payload's topic names go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Tenant to pool: the raw prefix, unvalidated, as KIP-848 subscriptions get
    /// ([`subscribed_in`]): a name the tenant cannot use names a topic that cannot exist.
    In,
    /// Pool to tenant: the prefix removed; names that are not the tenant's are dropped.
    Out,
}

/// One topic name mapped `dir`; `None` drops it.
fn payload_topic(ctx: &Ctx<'_>, name: &StrBytes, dir: Dir) -> Option<StrBytes> {
    match dir {
        Dir::In => {
            let prefix = ctx.ns().prefix();
            let mut pool = String::with_capacity(prefix.len() + name.len());
            pool.push_str(prefix);
            pool.push_str(name.as_str());
            Some(StrBytes::from_string(pool))
        }
        Dir::Out => ctx.topic_out(&TopicName(name.clone())).map(|t| t.0),
    }
}

/// The highest ConsumerProtocol version the protocol crate knows.
const CONSUMER_PROTOCOL_MAX: i16 = 3;

/// Splits a payload into its version, its message and the bytes after it. `exact` (for
/// [`Payloads::Unknown`]) accepts only a known version with nothing left over.
fn decode_payload<M: Decodable>(bytes: &Bytes, exact: bool) -> Option<(i16, M, Bytes)> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 || (exact && version > CONSUMER_PROTOCOL_MAX) {
        return None;
    }
    let msg = M::decode(&mut buf, version.min(CONSUMER_PROTOCOL_MAX)).ok()?;
    if exact && !buf.is_empty() {
        return None;
    }
    Some((version, msg, buf))
}

fn encode_payload<M: Encodable>(version: i16, msg: &M, rest: &Bytes) -> Option<Bytes> {
    let mut out = BytesMut::new();
    out.put_i16(version);
    msg.encode(&mut out, version.min(CONSUMER_PROTOCOL_MAX)).ok()?;
    out.extend_from_slice(rest);
    Some(out.freeze())
}

/// Decodes a payload of `kind`, maps it with `map` and re-encodes it at its version.
/// Empty payloads, other protocols and bytes that are not a ConsumerProtocol message
/// come back unchanged: a client may use its own format under the `consumer` type, and
/// that is no reason to close its connection.
fn map_payload<M: Decodable + Encodable>(bytes: &Bytes, kind: Payloads, what: &'static str, map: impl FnOnce(&mut M)) -> Bytes {
    if bytes.is_empty() || kind == Payloads::Other {
        return bytes.clone();
    }
    let Some((version, mut msg, rest)) = decode_payload::<M>(bytes, kind == Payloads::Unknown) else {
        debug!(what, len = bytes.len(), ?kind, "not a ConsumerProtocol message: forwarded unchanged");
        return bytes.clone();
    };
    map(&mut msg);
    encode_payload(version, &msg, &rest).unwrap_or_else(|| {
        debug!(what, version, "mapped ConsumerProtocol message does not encode: forwarded unchanged");
        bytes.clone()
    })
}

/// A ConsumerProtocolSubscription with `topics` and `owned_partitions` mapped `dir`.
fn subscription_payload(ctx: &Ctx<'_>, bytes: &Bytes, kind: Payloads, dir: Dir) -> Bytes {
    map_payload(bytes, kind, "subscription", |m: &mut ConsumerProtocolSubscription| {
        m.topics = std::mem::take(&mut m.topics).iter().filter_map(|t| payload_topic(ctx, t, dir)).collect();
        m.owned_partitions.retain_mut(|p| match payload_topic(ctx, &p.topic.0, dir) {
            Some(n) => {
                p.topic = TopicName(n);
                true
            }
            None => false,
        });
    })
}

/// A ConsumerProtocolAssignment with `assigned_partitions` mapped `dir`.
fn assignment_payload(ctx: &Ctx<'_>, bytes: &Bytes, kind: Payloads, dir: Dir) -> Bytes {
    map_payload(bytes, kind, "assignment", |m: &mut ConsumerProtocolAssignment| {
        m.assigned_partitions.retain_mut(|p| match payload_topic(ctx, &p.topic.0, dir) {
            Some(n) => {
                p.topic = TopicName(n);
                true
            }
            None => false,
        });
    })
}

// === OffsetCommit ===

fn offset_commit_denied(resp: &mut OffsetCommitResponse, topics: &[DeniedTopic]) {
    for d in topics {
        resp.topics.push(
            offset_commit_response::OffsetCommitResponseTopic::default().with_name(d.name.clone()).with_partitions(
                d.partitions
                    .iter()
                    .map(|&p| {
                        offset_commit_response::OffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(d.code)
                    })
                    .collect(),
            ),
        );
    }
}

/// AlterGroup on the group (else every partition gets the group's code), ReadData per topic.
pub fn offset_commit(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: OffsetCommitRequest = decode_request(req.api, req.version, body)?;
    let partitions = |t: &kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic| {
        t.partitions.iter().map(|p| p.partition_index).collect::<Vec<_>>()
    };
    let mut denied = Denied::default();
    let checked = group_check(ctx, &r.group_id, Action::AlterGroup)
        .and_then(|pool| group_limit(ctx, &pool).map(|()| pool).map_err(|_| code::POLICY_VIOLATION));
    match checked {
        Err(code) => {
            let mut resp = OffsetCommitResponse::default();
            let all: Vec<_> =
                r.topics.iter().map(|t| denied_topic(t.name.clone(), Uuid::nil(), partitions(t), code)).collect();
            offset_commit_denied(&mut resp, &all);
            return local(req, &resp);
        }
        Ok(pool) => r.group_id = pool,
    }
    let asked = !r.topics.is_empty();
    r.topics = split_topics(
        ctx,
        std::mem::take(&mut r.topics),
        Action::ReadData,
        Uuid::nil(),
        &mut denied.topics,
        |t| &mut t.name,
        partitions,
    );
    if asked && r.topics.is_empty() {
        let mut resp = OffsetCommitResponse::default();
        offset_commit_denied(&mut resp, &denied.topics);
        return local(req, &resp);
    }
    forward(req, &r, denied)
}

pub fn offset_commit_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: OffsetCommitResponse = decode_response(req.api, req.version, &body)?;
    names_out(ctx, &mut resp.topics, |t| &mut t.name);
    offset_commit_denied(&mut resp, &denied.topics);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === OffsetFetch ===

fn fetch_partition_v7(p: i32, code: i16) -> offset_fetch_response::OffsetFetchResponsePartition {
    offset_fetch_response::OffsetFetchResponsePartition::default()
        .with_partition_index(p)
        .with_committed_offset(-1)
        .with_committed_leader_epoch(-1)
        .with_metadata(Some(StrBytes::default()))
        .with_error_code(code)
}

fn fetch_partition_v8(p: i32, code: i16) -> offset_fetch_response::OffsetFetchResponsePartitions {
    offset_fetch_response::OffsetFetchResponsePartitions::default()
        .with_partition_index(p)
        .with_committed_offset(-1)
        .with_committed_leader_epoch(-1)
        .with_metadata(Some(StrBytes::default()))
        .with_error_code(code)
}

fn offset_fetch_denied_v7(resp: &mut OffsetFetchResponse, topics: &[DeniedTopic]) {
    for d in topics {
        resp.topics.push(
            offset_fetch_response::OffsetFetchResponseTopic::default()
                .with_name(d.name.clone())
                .with_partitions(d.partitions.iter().map(|&p| fetch_partition_v7(p, d.code)).collect()),
        );
    }
}

/// DescribeGroup on each group, DescribeTopic per named topic. A `null` topic list (all
/// committed topics) is filtered in the response to the topics the tenant may describe.
pub fn offset_fetch(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: OffsetFetchRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    if req.version < 8 {
        let explicit = r.topics.is_some();
        match group_check(ctx, &r.group_id, Action::DescribeGroup) {
            Err(code) => {
                // v2+ carries the group's error at the top; v1 only per partition.
                let mut resp = OffsetFetchResponse::default().with_error_code(code);
                let all: Vec<_> = r
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| denied_topic(t.name.clone(), Uuid::nil(), t.partition_indexes.clone(), code))
                    .collect();
                offset_fetch_denied_v7(&mut resp, &all);
                return local(req, &resp);
            }
            Ok(pool) => r.group_id = pool,
        }
        if let Some(topics) = r.topics.take() {
            let kept = split_topics(
                ctx,
                topics,
                Action::DescribeTopic,
                Uuid::nil(),
                &mut denied.topics,
                |t| &mut t.name,
                |t| t.partition_indexes.clone(),
            );
            if kept.is_empty() && !denied.topics.is_empty() {
                let mut resp = OffsetFetchResponse::default();
                offset_fetch_denied_v7(&mut resp, &denied.topics);
                return local(req, &resp);
            }
            r.topics = Some(kept);
        }
        denied.explicit = explicit;
        return forward(req, &r, denied);
    }
    let mut kept_groups = Vec::with_capacity(r.groups.len());
    for (i, mut g) in std::mem::take(&mut r.groups).into_iter().enumerate() {
        let pool = match group_check(ctx, &g.group_id, Action::DescribeGroup) {
            Err(code) => {
                denied.keys.push((g.group_id.0.clone(), code));
                continue;
            }
            Ok(pool) => pool,
        };
        denied.keys.push((g.group_id.0.clone(), code::NONE));
        g.group_id = pool;
        if let Some(topics) = g.topics.take() {
            let asked = !topics.is_empty();
            let kept = split_topics(
                ctx,
                topics,
                Action::DescribeTopic,
                tag(i),
                &mut denied.topics,
                |t| &mut t.name,
                |t| t.partition_indexes.clone(),
            );
            if asked && kept.is_empty() {
                // Nothing left to ask for this group: answered from `denied` alone.
                continue;
            }
            g.topics = Some(kept);
        }
        kept_groups.push(g);
    }
    if kept_groups.is_empty() {
        let resp = OffsetFetchResponse::default().with_groups(merge_offset_fetch_groups(&denied, Vec::new()));
        return local(req, &resp);
    }
    r.groups = kept_groups;
    forward(req, &r, denied)
}

fn merge_offset_fetch_groups(
    denied: &Denied,
    got: Vec<offset_fetch_response::OffsetFetchResponseGroup>,
) -> Vec<offset_fetch_response::OffsetFetchResponseGroup> {
    merge_batched(
        denied,
        got,
        |g| &g.group_id.0,
        |key, code| {
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(key.clone()))
                .with_error_code(code)
        },
        |g, d| {
            g.topics.push(
                offset_fetch_response::OffsetFetchResponseTopics::default()
                    .with_name(d.name.clone())
                    .with_partitions(d.partitions.iter().map(|&p| fetch_partition_v8(p, d.code)).collect()),
            )
        },
    )
}

pub fn offset_fetch_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: OffsetFetchResponse = decode_response(req.api, req.version, &body)?;
    if req.version < 8 {
        resp.topics.retain_mut(|t| match visible_topic(ctx, &t.name, Action::DescribeTopic) {
            Some(n) => {
                t.name = n;
                true
            }
            None => false,
        });
        offset_fetch_denied_v7(&mut resp, &denied.topics);
    } else {
        for g in &mut resp.groups {
            let Some(id) = ctx.group_out(&g.group_id) else { continue };
            g.group_id = id;
            g.topics.retain_mut(|t| match visible_topic(ctx, &t.name, Action::DescribeTopic) {
                Some(n) => {
                    t.name = n;
                    true
                }
                None => false,
            });
        }
        let groups = std::mem::take(&mut resp.groups);
        resp.groups = merge_offset_fetch_groups(&denied, groups);
    }
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === OffsetDelete ===

fn offset_delete_denied(resp: &mut OffsetDeleteResponse, topics: &[DeniedTopic]) {
    for d in topics {
        resp.topics.push(
            offset_delete_response::OffsetDeleteResponseTopic::default().with_name(d.name.clone()).with_partitions(
                d.partitions
                    .iter()
                    .map(|&p| {
                        offset_delete_response::OffsetDeleteResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(d.code)
                    })
                    .collect(),
            ),
        );
    }
}

/// DeleteGroup on the group (top-level error), ReadData per topic.
pub fn offset_delete(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: OffsetDeleteRequest = decode_request(req.api, req.version, body)?;
    match group_check(ctx, &r.group_id, Action::DeleteGroup) {
        Err(code) => return local(req, &OffsetDeleteResponse::default().with_error_code(code)),
        Ok(pool) => r.group_id = pool,
    }
    let mut denied = Denied::default();
    let asked = !r.topics.is_empty();
    r.topics = split_topics(
        ctx,
        std::mem::take(&mut r.topics),
        Action::ReadData,
        Uuid::nil(),
        &mut denied.topics,
        |t| &mut t.name,
        |t| t.partitions.iter().map(|p| p.partition_index).collect(),
    );
    if asked && r.topics.is_empty() {
        let mut resp = OffsetDeleteResponse::default();
        offset_delete_denied(&mut resp, &denied.topics);
        return local(req, &resp);
    }
    forward(req, &r, denied)
}

pub fn offset_delete_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: OffsetDeleteResponse = decode_response(req.api, req.version, &body)?;
    names_out(ctx, &mut resp.topics, |t| &mut t.name);
    offset_delete_denied(&mut resp, &denied.topics);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === DescribeGroups, ListGroups, DeleteGroups ===

/// Splits a list of group ids into pool ids to forward and denied keys.
fn split_groups(ctx: &Ctx<'_>, groups: Vec<GroupId>, action: Action, denied: &mut Denied) -> Vec<GroupId> {
    let mut kept = Vec::with_capacity(groups.len());
    for g in groups {
        match group_check(ctx, &g, action) {
            Ok(pool) => kept.push(pool),
            Err(code) => denied.keys.push((g.0, code)),
        }
    }
    kept
}

fn described_group_denied(key: &StrBytes, code: i16) -> describe_groups_response::DescribedGroup {
    describe_groups_response::DescribedGroup::default()
        .with_group_id(GroupId(key.clone()))
        .with_error_code(code)
        .with_authorized_operations(OPS_OMITTED)
}

pub fn describe_groups(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DescribeGroupsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    r.groups = split_groups(ctx, std::mem::take(&mut r.groups), Action::DescribeGroup, &mut denied);
    if r.groups.is_empty() {
        let groups = denied.keys.iter().map(|(k, c)| described_group_denied(k, *c)).collect();
        return local(req, &DescribeGroupsResponse::default().with_groups(groups));
    }
    forward(req, &r, denied)
}

pub fn describe_groups_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: DescribeGroupsResponse = decode_response(req.api, req.version, &body)?;
    resp.groups.retain_mut(|g| {
        let Some(id) = ctx.group_out(&g.group_id) else { return false };
        g.authorized_operations = group_ops(ctx, &id, g.authorized_operations);
        g.group_id = id;
        g.error_message = ctx.scrub(&g.error_message);
        // DescribeGroups names the protocol type itself, whatever the version.
        let kind = if g.protocol_type.as_str() == CONSUMER_PROTOCOL { Payloads::Consumer } else { Payloads::Other };
        for m in &mut g.members {
            m.client_id = client_id_out(ctx, &m.client_id);
            m.member_metadata = subscription_payload(ctx, &m.member_metadata, kind, Dir::Out);
            m.member_assignment = assignment_payload(ctx, &m.member_assignment, kind, Dir::Out);
        }
        true
    });
    resp.groups.extend(denied.keys.iter().map(|(k, c)| described_group_denied(k, *c)));
    answer(req.api, req.version, req.correlation_id, &resp)
}

/// The pool lists every group; the answer keeps the tenant's that it may describe.
pub fn list_groups(_ctx: &mut Ctx<'_>, _req: Req, _body: &Bytes) -> Result<Admission, MapError> {
    Ok(Admission::Forward { body: None, plan: Plan::Map(Box::default()) })
}

pub fn list_groups_response(ctx: &mut Ctx<'_>, req: Req, _denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: ListGroupsResponse = decode_response(req.api, req.version, &body)?;
    resp.groups.retain_mut(|g| match ctx.group_out(&g.group_id) {
        Some(id) if ctx.allows(Action::DescribeGroup, id.0.as_str()) => {
            g.group_id = id;
            true
        }
        _ => false,
    });
    answer(req.api, req.version, req.correlation_id, &resp)
}

fn deletable_denied(key: &StrBytes, code: i16) -> delete_groups_response::DeletableGroupResult {
    delete_groups_response::DeletableGroupResult::default().with_group_id(GroupId(key.clone())).with_error_code(code)
}

pub fn delete_groups(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DeleteGroupsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    r.groups_names = split_groups(ctx, std::mem::take(&mut r.groups_names), Action::DeleteGroup, &mut denied);
    if r.groups_names.is_empty() {
        let results = denied.keys.iter().map(|(k, c)| deletable_denied(k, *c)).collect();
        return local(req, &DeleteGroupsResponse::default().with_results(results));
    }
    forward(req, &r, denied)
}

pub fn delete_groups_response(ctx: &mut Ctx<'_>, req: Req, denied: Denied, body: Bytes) -> Result<Bytes, MapError> {
    let mut resp: DeleteGroupsResponse = decode_response(req.api, req.version, &body)?;
    resp.results.retain_mut(|g| match ctx.group_out(&g.group_id) {
        Some(id) => {
            g.group_id = id;
            true
        }
        None => false,
    });
    resp.results.extend(denied.keys.iter().map(|(k, c)| deletable_denied(k, *c)));
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === KIP-848 consumer groups ===

/// Subscribed names get the raw prefix, unvalidated: a name the tenant cannot use simply
/// names a topic that cannot exist. Kafka answers TOPIC_AUTHORIZATION_FAILED when any
/// subscribed topic may not be described; the same check runs on the tenant's grants.
fn subscribed_in(ctx: &Ctx<'_>, names: &mut [TopicName]) -> Result<(), i16> {
    if names.iter().any(|n| !ctx.allows(Action::DescribeTopic, n.0.as_str())) {
        return Err(code::TOPIC_AUTHORIZATION_FAILED);
    }
    let prefix = ctx.ns().prefix();
    for n in names {
        let mut pool = String::with_capacity(prefix.len() + n.0.len());
        pool.push_str(prefix);
        pool.push_str(n.0.as_str());
        *n = TopicName(StrBytes::from_string(pool));
    }
    Ok(())
}

/// AlterGroup on the group; subscriptions mapped into the tenant's prefix, a regex
/// confined with `regex_to_pool` (INVALID_REGULAR_EXPRESSION when it could escape).
pub fn consumer_group_heartbeat(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: ConsumerGroupHeartbeatRequest = decode_request(req.api, req.version, body)?;
    let refuse = |code: i16| local(req, &ConsumerGroupHeartbeatResponse::default().with_error_code(code));
    match group_check(ctx, &r.group_id, Action::AlterGroup) {
        Err(code) => return refuse(code),
        Ok(pool) => {
            if let Err(message) = group_limit(ctx, &pool) {
                let resp = ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(code::POLICY_VIOLATION)
                    .with_error_message(Some(StrBytes::from_string(message)));
                return local(req, &resp);
            }
            r.group_id = pool
        }
    }
    if let Some(names) = &mut r.subscribed_topic_names {
        if let Err(code) = subscribed_in(ctx, names) {
            return refuse(code);
        }
    }
    if let Some(re) = &r.subscribed_topic_regex {
        // An empty regex clears the subscription; it stays empty.
        if !re.is_empty() {
            match ctx.ns().regex_to_pool(re.as_str()) {
                Ok(pool) => r.subscribed_topic_regex = Some(StrBytes::from_string(pool)),
                Err(_) => return refuse(code::INVALID_REGULAR_EXPRESSION),
            }
        }
    }
    pass_through(req, &r)
}

fn cg_described_denied(key: &StrBytes, code: i16) -> consumer_group_describe_response::DescribedGroup {
    consumer_group_describe_response::DescribedGroup::default()
        .with_group_id(GroupId(key.clone()))
        .with_error_code(code)
        .with_authorized_operations(OPS_OMITTED)
}

pub fn consumer_group_describe(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: ConsumerGroupDescribeRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    r.group_ids = split_groups(ctx, std::mem::take(&mut r.group_ids), Action::DescribeGroup, &mut denied);
    if r.group_ids.is_empty() {
        let groups = denied.keys.iter().map(|(k, c)| cg_described_denied(k, *c)).collect();
        return local(req, &ConsumerGroupDescribeResponse::default().with_groups(groups));
    }
    forward(req, &r, denied)
}

/// Maps a described member's topic names; returns false when one of them may not be
/// described by the tenant (Kafka then fails the whole group with
/// TOPIC_AUTHORIZATION_FAILED).
fn topic_names_out(ctx: &Ctx<'_>, names: &mut Vec<TopicName>) -> bool {
    let mut ok = true;
    names.retain_mut(|n| match ctx.topic_out(n) {
        Some(t) => {
            ok &= ctx.allows(Action::DescribeTopic, t.0.as_str());
            *n = t;
            true
        }
        None => false,
    });
    ok
}

fn cg_assignment_out(ctx: &Ctx<'_>, a: &mut consumer_group_describe_response::Assignment) -> bool {
    let mut ok = true;
    a.topic_partitions.retain_mut(|tp| match ctx.topic_out(&tp.topic_name) {
        Some(t) => {
            ok &= ctx.allows(Action::DescribeTopic, t.0.as_str());
            tp.topic_name = t;
            true
        }
        None => false,
    });
    ok
}

pub fn consumer_group_describe_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: ConsumerGroupDescribeResponse = decode_response(req.api, req.version, &body)?;
    resp.groups.retain_mut(|g| {
        let Some(id) = ctx.group_out(&g.group_id) else { return false };
        g.authorized_operations = group_ops(ctx, &id, g.authorized_operations);
        g.group_id = id;
        g.error_message = ctx.scrub(&g.error_message);
        let mut ok = true;
        for m in &mut g.members {
            m.client_id = client_id_out(ctx, &m.client_id);
            ok &= topic_names_out(ctx, &mut m.subscribed_topic_names);
            m.subscribed_topic_regex = m.subscribed_topic_regex.as_ref().map(|re| regex_out(ctx, re));
            ok &= cg_assignment_out(ctx, &mut m.assignment);
            ok &= cg_assignment_out(ctx, &mut m.target_assignment);
        }
        if !ok {
            *g = cg_described_denied(&g.group_id.0, code::TOPIC_AUTHORIZATION_FAILED);
        }
        true
    });
    resp.groups.extend(denied.keys.iter().map(|(k, c)| cg_described_denied(k, *c)));
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === KIP-932 share groups ===

pub fn share_group_heartbeat(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: ShareGroupHeartbeatRequest = decode_request(req.api, req.version, body)?;
    let refuse = |code: i16| local(req, &ShareGroupHeartbeatResponse::default().with_error_code(code));
    match group_check(ctx, &r.group_id, Action::AlterGroup) {
        Err(code) => return refuse(code),
        Ok(pool) => {
            if let Err(message) = group_limit(ctx, &pool) {
                let resp = ShareGroupHeartbeatResponse::default()
                    .with_error_code(code::POLICY_VIOLATION)
                    .with_error_message(Some(StrBytes::from_string(message)));
                return local(req, &resp);
            }
            r.group_id = pool
        }
    }
    if let Some(names) = &mut r.subscribed_topic_names {
        if let Err(code) = subscribed_in(ctx, names) {
            return refuse(code);
        }
    }
    pass_through(req, &r)
}

fn sg_described_denied(key: &StrBytes, code: i16) -> share_group_describe_response::DescribedGroup {
    share_group_describe_response::DescribedGroup::default()
        .with_group_id(GroupId(key.clone()))
        .with_error_code(code)
        .with_authorized_operations(OPS_OMITTED)
}

pub fn share_group_describe(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: ShareGroupDescribeRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    r.group_ids = split_groups(ctx, std::mem::take(&mut r.group_ids), Action::DescribeGroup, &mut denied);
    if r.group_ids.is_empty() {
        let groups = denied.keys.iter().map(|(k, c)| sg_described_denied(k, *c)).collect();
        return local(req, &ShareGroupDescribeResponse::default().with_groups(groups));
    }
    forward(req, &r, denied)
}

pub fn share_group_describe_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: ShareGroupDescribeResponse = decode_response(req.api, req.version, &body)?;
    resp.groups.retain_mut(|g| {
        let Some(id) = ctx.group_out(&g.group_id) else { return false };
        g.authorized_operations = group_ops(ctx, &id, g.authorized_operations);
        g.group_id = id;
        g.error_message = ctx.scrub(&g.error_message);
        let mut ok = true;
        for m in &mut g.members {
            m.client_id = client_id_out(ctx, &m.client_id);
            ok &= topic_names_out(ctx, &mut m.subscribed_topic_names);
            m.assignment.topic_partitions.retain_mut(|tp| match ctx.topic_out(&tp.topic_name) {
                Some(t) => {
                    ok &= ctx.allows(Action::DescribeTopic, t.0.as_str());
                    tp.topic_name = t;
                    true
                }
                None => false,
            });
        }
        if !ok {
            *g = sg_described_denied(&g.group_id.0, code::TOPIC_AUTHORIZATION_FAILED);
        }
        true
    });
    resp.groups.extend(denied.keys.iter().map(|(k, c)| sg_described_denied(k, *c)));
    answer(req.api, req.version, req.correlation_id, &resp)
}

/// The share group of a ShareFetch/ShareAcknowledge (AlterGroup: Kafka's READ on the
/// group); a missing group id is the broker's to refuse.
fn share_group_in(ctx: &Ctx<'_>, group: &mut Option<GroupId>) -> Result<(), i16> {
    if let Some(g) = group {
        *g = group_check(ctx, g, Action::AlterGroup)?;
    }
    Ok(())
}

/// Splits id-based share topics: ReadData, ids resolved through the tenant's names only.
fn split_share_topics<T>(
    ctx: &Ctx<'_>,
    topics: Vec<T>,
    denied: &mut Denied,
    id: impl Fn(&T) -> Uuid,
    partitions: impl Fn(&T) -> Vec<i32>,
) -> Vec<T> {
    let mut kept = Vec::with_capacity(topics.len());
    for t in topics {
        match resolve_topic(ctx, true, &TopicName::default(), id(&t), Action::ReadData) {
            Ok(_) => kept.push(t),
            Err((name, code)) => denied.topics.push(denied_topic(name, id(&t), partitions(&t), code)),
        }
    }
    kept
}

fn share_fetch_partition(p: i32, code: i16) -> share_fetch_response::PartitionData {
    share_fetch_response::PartitionData::default()
        .with_partition_index(p)
        .with_error_code(code)
        .with_acknowledge_error_code(code)
        .with_current_leader(
            share_fetch_response::LeaderIdAndEpoch::default().with_leader_id(-1).with_leader_epoch(-1),
        )
        .with_records(Some(Bytes::new()))
}

fn share_fetch_denied(resp: &mut ShareFetchResponse, topics: &[DeniedTopic]) {
    for d in topics {
        resp.responses.push(
            share_fetch_response::ShareFetchableTopicResponse::default()
                .with_topic_id(d.id)
                .with_partitions(d.partitions.iter().map(|&p| share_fetch_partition(p, d.code)).collect()),
        );
    }
}

pub fn share_fetch(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: ShareFetchRequest = decode_request(req.api, req.version, body)?;
    if let Err(code) = share_group_in(ctx, &mut r.group_id) {
        return local(req, &ShareFetchResponse::default().with_error_code(code));
    }
    let mut denied = Denied::default();
    r.topics = split_share_topics(
        ctx,
        std::mem::take(&mut r.topics),
        &mut denied,
        |t| t.topic_id,
        |t| t.partitions.iter().map(|p| p.partition_index).collect(),
    );
    // Forgetting a topic the tenant cannot name would be a no-op at best.
    r.forgotten_topics_data.retain(|f| ctx.id_out(f.topic_id).is_some());
    forward(req, &r, denied)
}

pub fn share_fetch_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
    adv: &Advertised,
) -> Result<Bytes, MapError> {
    let mut resp: ShareFetchResponse = decode_response(req.api, req.version, &body)?;
    resp.error_message = ctx.scrub(&resp.error_message);
    // Topics of the share session are re-checked against the grants of now, as Fetch is.
    resp.responses.retain_mut(|t| {
        let Some(name) = ctx.id_out(t.topic_id) else { return false };
        let allowed = ctx.allows(Action::ReadData, name.0.as_str());
        for p in &mut t.partitions {
            if !allowed {
                *p = share_fetch_partition(p.partition_index, code::TOPIC_AUTHORIZATION_FAILED);
            }
            p.error_message = ctx.scrub(&p.error_message);
            p.acknowledge_error_message = ctx.scrub(&p.acknowledge_error_message);
        }
        true
    });
    for e in &mut resp.node_endpoints {
        (e.host, e.port) = adv.endpoint(e.node_id.0);
    }
    share_fetch_denied(&mut resp, &denied.topics);
    answer(req.api, req.version, req.correlation_id, &resp)
}

fn share_ack_denied(resp: &mut ShareAcknowledgeResponse, topics: &[DeniedTopic]) {
    for d in topics {
        resp.responses.push(
            share_acknowledge_response::ShareAcknowledgeTopicResponse::default().with_topic_id(d.id).with_partitions(
                d.partitions
                    .iter()
                    .map(|&p| {
                        share_acknowledge_response::PartitionData::default()
                            .with_partition_index(p)
                            .with_error_code(d.code)
                            .with_current_leader(
                                share_acknowledge_response::LeaderIdAndEpoch::default()
                                    .with_leader_id(-1)
                                    .with_leader_epoch(-1),
                            )
                    })
                    .collect(),
            ),
        );
    }
}

pub fn share_acknowledge(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: ShareAcknowledgeRequest = decode_request(req.api, req.version, body)?;
    if let Err(code) = share_group_in(ctx, &mut r.group_id) {
        return local(req, &ShareAcknowledgeResponse::default().with_error_code(code));
    }
    let mut denied = Denied::default();
    r.topics = split_share_topics(
        ctx,
        std::mem::take(&mut r.topics),
        &mut denied,
        |t| t.topic_id,
        |t| t.partitions.iter().map(|p| p.partition_index).collect(),
    );
    forward(req, &r, denied)
}

pub fn share_acknowledge_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
    adv: &Advertised,
) -> Result<Bytes, MapError> {
    let mut resp: ShareAcknowledgeResponse = decode_response(req.api, req.version, &body)?;
    resp.error_message = ctx.scrub(&resp.error_message);
    resp.responses.retain_mut(|t| {
        if ctx.id_out(t.topic_id).is_none() {
            return false;
        }
        for p in &mut t.partitions {
            p.error_message = ctx.scrub(&p.error_message);
        }
        true
    });
    for e in &mut resp.node_endpoints {
        (e.host, e.port) = adv.endpoint(e.node_id.0);
    }
    share_ack_denied(&mut resp, &denied.topics);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === Share group offsets (admin) ===

fn share_offsets_group(key: &StrBytes, code: i16) -> describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup {
    describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup::default()
        .with_group_id(GroupId(key.clone()))
        .with_error_code(code)
}

fn merge_share_offsets_groups(
    denied: &Denied,
    got: Vec<describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup>,
) -> Vec<describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup> {
    use describe_share_group_offsets_response::{
        DescribeShareGroupOffsetsResponsePartition as Partition, DescribeShareGroupOffsetsResponseTopic as Topic,
    };
    merge_batched(denied, got, |g| &g.group_id.0, share_offsets_group, |g, d| {
        g.topics.push(
            Topic::default().with_topic_name(d.name.clone()).with_topic_id(Uuid::nil()).with_partitions(
                d.partitions
                    .iter()
                    .map(|&p| {
                        Partition::default()
                            .with_partition_index(p)
                            .with_start_offset(-1)
                            .with_leader_epoch(-1)
                            .with_error_code(d.code)
                    })
                    .collect(),
            ),
        )
    })
}

/// DescribeGroup on each group, DescribeTopic per named topic (`null` = all, filtered).
pub fn describe_share_group_offsets(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DescribeShareGroupOffsetsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let mut kept_groups = Vec::with_capacity(r.groups.len());
    for (i, mut g) in std::mem::take(&mut r.groups).into_iter().enumerate() {
        match group_check(ctx, &g.group_id, Action::DescribeGroup) {
            Err(code) => {
                denied.keys.push((g.group_id.0.clone(), code));
                continue;
            }
            Ok(pool) => {
                denied.keys.push((g.group_id.0.clone(), code::NONE));
                g.group_id = pool;
            }
        }
        if let Some(topics) = g.topics.take() {
            let asked = !topics.is_empty();
            let kept = split_topics(
                ctx,
                topics,
                Action::DescribeTopic,
                tag(i),
                &mut denied.topics,
                |t| &mut t.topic_name,
                |t| t.partitions.clone(),
            );
            if asked && kept.is_empty() {
                continue;
            }
            g.topics = Some(kept);
        }
        kept_groups.push(g);
    }
    if kept_groups.is_empty() {
        let groups = merge_share_offsets_groups(&denied, Vec::new());
        return local(req, &DescribeShareGroupOffsetsResponse::default().with_groups(groups));
    }
    r.groups = kept_groups;
    forward(req, &r, denied)
}

pub fn describe_share_group_offsets_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: DescribeShareGroupOffsetsResponse = decode_response(req.api, req.version, &body)?;
    for g in &mut resp.groups {
        let Some(id) = ctx.group_out(&g.group_id) else { continue };
        g.group_id = id;
        g.error_message = ctx.scrub(&g.error_message);
        g.topics.retain_mut(|t| match visible_topic(ctx, &t.topic_name, Action::DescribeTopic) {
            Some(n) => {
                t.topic_name = n;
                for p in &mut t.partitions {
                    p.error_message = ctx.scrub(&p.error_message);
                }
                true
            }
            None => false,
        });
    }
    let groups = std::mem::take(&mut resp.groups);
    resp.groups = merge_share_offsets_groups(&denied, groups);
    answer(req.api, req.version, req.correlation_id, &resp)
}

fn alter_share_denied(resp: &mut AlterShareGroupOffsetsResponse, topics: &[DeniedTopic]) {
    use alter_share_group_offsets_response::{
        AlterShareGroupOffsetsResponsePartition as Partition, AlterShareGroupOffsetsResponseTopic as Topic,
    };
    for d in topics {
        resp.responses.push(
            Topic::default().with_topic_name(d.name.clone()).with_partitions(
                d.partitions.iter().map(|&p| Partition::default().with_partition_index(p).with_error_code(d.code)).collect(),
            ),
        );
    }
}

/// AlterGroup on the group (top-level error), ReadData per topic.
pub fn alter_share_group_offsets(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: AlterShareGroupOffsetsRequest = decode_request(req.api, req.version, body)?;
    match group_check(ctx, &r.group_id, Action::AlterGroup) {
        Err(code) => return local(req, &AlterShareGroupOffsetsResponse::default().with_error_code(code)),
        Ok(pool) => r.group_id = pool,
    }
    let mut denied = Denied::default();
    let asked = !r.topics.is_empty();
    r.topics = split_topics(
        ctx,
        std::mem::take(&mut r.topics),
        Action::ReadData,
        Uuid::nil(),
        &mut denied.topics,
        |t| &mut t.topic_name,
        |t| t.partitions.iter().map(|p| p.partition_index).collect(),
    );
    if asked && r.topics.is_empty() {
        let mut resp = AlterShareGroupOffsetsResponse::default();
        alter_share_denied(&mut resp, &denied.topics);
        return local(req, &resp);
    }
    forward(req, &r, denied)
}

pub fn alter_share_group_offsets_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: AlterShareGroupOffsetsResponse = decode_response(req.api, req.version, &body)?;
    resp.error_message = ctx.scrub(&resp.error_message);
    names_out(ctx, &mut resp.responses, |t| &mut t.topic_name);
    for t in &mut resp.responses {
        for p in &mut t.partitions {
            p.error_message = ctx.scrub(&p.error_message);
        }
    }
    alter_share_denied(&mut resp, &denied.topics);
    answer(req.api, req.version, req.correlation_id, &resp)
}

fn delete_share_denied(resp: &mut DeleteShareGroupOffsetsResponse, topics: &[DeniedTopic]) {
    for d in topics {
        resp.responses.push(
            delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(d.name.clone())
                .with_error_code(d.code),
        );
    }
}

/// DeleteGroup on the group (top-level error), ReadData per topic.
pub fn delete_share_group_offsets(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DeleteShareGroupOffsetsRequest = decode_request(req.api, req.version, body)?;
    match group_check(ctx, &r.group_id, Action::DeleteGroup) {
        Err(code) => return local(req, &DeleteShareGroupOffsetsResponse::default().with_error_code(code)),
        Ok(pool) => r.group_id = pool,
    }
    let mut denied = Denied::default();
    let asked = !r.topics.is_empty();
    r.topics = split_topics(
        ctx,
        std::mem::take(&mut r.topics),
        Action::ReadData,
        Uuid::nil(),
        &mut denied.topics,
        |t| &mut t.topic_name,
        |_| Vec::new(),
    );
    if asked && r.topics.is_empty() {
        let mut resp = DeleteShareGroupOffsetsResponse::default();
        delete_share_denied(&mut resp, &denied.topics);
        return local(req, &resp);
    }
    forward(req, &r, denied)
}

pub fn delete_share_group_offsets_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: DeleteShareGroupOffsetsResponse = decode_response(req.api, req.version, &body)?;
    resp.error_message = ctx.scrub(&resp.error_message);
    names_out(ctx, &mut resp.responses, |t| &mut t.topic_name);
    for t in &mut resp.responses {
        t.error_message = ctx.scrub(&t.error_message);
    }
    delete_share_denied(&mut resp, &denied.topics);
    answer(req.api, req.version, req.correlation_id, &resp)
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use kafka_protocol::messages::consumer_group_describe_response as cgd;
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
    use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{list_groups_response, ListGroupsRequest};
    use kafka_protocol::protocol::Decodable;
    use sluice_tenancy::policy::{Grants, PolicyDocument};
    use sluice_tenancy::{Namespace, TenantId};

    use super::*;
    use crate::protocol::parse_response_header;
    use crate::rewrite::Addressing;
    use crate::tenant::{admit, respond, TenantView, TopicIds};

    /// Tenant `acme` may do everything on groups, topics and transactional ids whose
    /// names start with `ok`, and nothing else.
    pub(crate) fn view() -> TenantView {
        view_with(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Action":["kafka-cluster:*Group","kafka-cluster:DescribeTopic","kafka-cluster:ReadData",
                      "kafka-cluster:WriteData","kafka-cluster:*TransactionalId"],
            "Resource":["arn:sluice:kafka:::group/acme/ok*","arn:sluice:kafka:::topic/acme/ok*",
                        "arn:sluice:kafka:::transactional-id/acme/ok*"]}]}"#,
        )
    }

    pub(crate) fn view_with(policy: &str) -> TenantView {
        let tenant: TenantId = "acme".parse().unwrap();
        let doc = PolicyDocument::parse(policy).unwrap();
        let grants = Grants::new(&tenant, &[&doc], None);
        TenantView::new(
            Namespace::new(tenant),
            Arc::new(grants),
            Arc::new(sluice_quota::TenantQuota::new(sluice_quota::QuotaConfig::default()).unwrap()),
        )
    }

    pub(crate) fn adv() -> Advertised {
        Advertised {
            addressing: Addressing::PortPerBroker { host: StrBytes::from_static_str("gw.local"), base: 9100 },
            cluster_admin: false,
        }
    }

    pub(crate) fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    pub(crate) fn topic(v: &str) -> TopicName {
        TopicName(s(v))
    }

    pub(crate) fn group(v: &str) -> GroupId {
        GroupId(s(v))
    }

    pub(crate) fn req(api: ApiKey, version: i16) -> Req {
        Req { api, version, correlation_id: 7 }
    }

    pub(crate) fn encode<M: Encodable>(m: &M, version: i16) -> Bytes {
        let mut out = bytes::BytesMut::new();
        m.encode(&mut out, version).unwrap();
        out.freeze()
    }

    /// What `admit` decided, with the forwarded body decoded as `M`.
    pub(crate) enum Outcome<M> {
        Forward(M, Plan),
        Answer(Bytes),
    }

    pub(crate) fn run_admit<Q: Encodable, M: Decodable>(
        view: &mut TenantView,
        ids: &TopicIds,
        r: Req,
        msg: &Q,
    ) -> Outcome<M> {
        let body = encode(msg, r.version);
        let mut ctx = Ctx { view, ids };
        match admit(&mut ctx, r, &body).unwrap() {
            Admission::Forward { body: Some(b), plan } => Outcome::Forward(M::decode(&mut b.clone(), r.version).unwrap(), plan),
            Admission::Forward { body: None, plan } => Outcome::Forward(M::decode(&mut body.clone(), r.version).unwrap(), plan),
            Admission::Answer(frame) => Outcome::Answer(frame),
            Admission::Drop => panic!("dropped"),
            Admission::Later(_) => panic!("answered later"),
        }
    }

    pub(crate) fn forwarded<M: Decodable>(o: Outcome<M>) -> (M, Plan) {
        match o {
            Outcome::Forward(m, p) => (m, p),
            Outcome::Answer(_) => panic!("answered locally, expected a forward"),
        }
    }

    /// Decodes a complete response frame built by `answer`.
    pub(crate) fn frame_body<M: Decodable>(r: Req, frame: &Bytes) -> M {
        let (corr, at) = parse_response_header(&frame[4..], r.api, r.version).unwrap();
        assert_eq!(corr, r.correlation_id);
        M::decode(&mut frame.slice(4 + at..), r.version).unwrap()
    }

    pub(crate) fn answered<M: Decodable>(r: Req, o: Outcome<impl Sized>) -> M {
        match o {
            Outcome::Answer(frame) => frame_body(r, &frame),
            Outcome::Forward(..) => panic!("forwarded, expected a local answer"),
        }
    }

    /// Runs `respond` on a fake broker response and decodes the client's answer.
    pub(crate) fn run_respond<P: Encodable, M: Decodable>(
        view: &mut TenantView,
        ids: &TopicIds,
        r: Req,
        plan: Plan,
        broker: &P,
    ) -> M {
        let mut ctx = Ctx { view, ids };
        let out = respond(&mut ctx, r, plan, encode(broker, r.version), &adv(), &mut Default::default())
            .unwrap()
            .expect("mapped");
        frame_body(r, &out)
    }

    fn names<'a>(it: impl Iterator<Item = &'a StrBytes>) -> Vec<&'a str> {
        it.map(|n| n.as_str()).collect()
    }

    #[test]
    fn find_coordinator_batched_maps_keys_and_merges_denials() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::FindCoordinator, 4);
        let msg = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![
            s("ok-g"),
            s("secret"),
            s("__consumer"),
        ]);
        let (fwd, plan): (FindCoordinatorRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(names(fwd.coordinator_keys.iter()), ["acme.ok-g"]);

        let broker = FindCoordinatorResponse::default().with_coordinators(vec![
            find_coordinator_response::Coordinator::default()
                .with_key(s("acme.ok-g"))
                .with_node_id(2.into())
                .with_host(s("pool-2"))
                .with_port(29092),
            find_coordinator_response::Coordinator::default().with_key(s("other.g")).with_node_id(1.into()),
        ]);
        let out: FindCoordinatorResponse = run_respond(&mut v, &ids, r, plan, &broker);
        let got: Vec<_> =
            out.coordinators.iter().map(|c| (c.key.as_str(), c.error_code, c.host.as_str(), c.port)).collect();
        assert_eq!(
            got,
            [
                ("ok-g", 0, "gw.local", 9102),
                ("secret", code::GROUP_AUTHORIZATION_FAILED, "", -1),
                ("__consumer", code::INVALID_GROUP_ID, "", -1),
            ]
        );
    }

    #[test]
    fn find_coordinator_single_denials_are_local() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::FindCoordinator, 3);
        let txn = FindCoordinatorRequest::default().with_key_type(1).with_key(s("secret-tx"));
        let out: FindCoordinatorResponse = answered(r, run_admit::<_, FindCoordinatorRequest>(&mut v, &ids, r, &txn));
        assert_eq!(out.error_code, code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        assert_eq!(out.node_id.0, -1);

        let share = FindCoordinatorRequest::default().with_key_type(2).with_key(s("ok-g:x:0"));
        let out: FindCoordinatorResponse =
            answered(r, run_admit::<_, FindCoordinatorRequest>(&mut v, &ids, r, &share));
        assert_eq!(out.error_code, code::INVALID_REQUEST);

        let ok = FindCoordinatorRequest::default().with_key_type(1).with_key(s("ok-tx"));
        let (fwd, _) = forwarded::<FindCoordinatorRequest>(run_admit(&mut v, &ids, r, &ok));
        assert_eq!(fwd.key.as_str(), "acme.ok-tx");
    }

    #[test]
    fn membership_maps_the_group_or_refuses_it() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::JoinGroup, 9);
        let ok = JoinGroupRequest::default().with_group_id(group("ok-g")).with_protocol_type(s("consumer"));
        let (fwd, plan): (JoinGroupRequest, _) = forwarded(run_admit(&mut v, &ids, r, &ok));
        assert_eq!(fwd.group_id.0.as_str(), "acme.ok-g");
        // A `consumer` group's response carries subscriptions to map back.
        assert!(matches!(plan, Plan::Map(_)));

        let denied = JoinGroupRequest::default().with_group_id(group("secret"));
        let out: JoinGroupResponse = answered(r, run_admit::<_, JoinGroupRequest>(&mut v, &ids, r, &denied));
        assert_eq!(out.error_code, code::GROUP_AUTHORIZATION_FAILED);

        let r = req(ApiKey::Heartbeat, 4);
        let bad = HeartbeatRequest::default().with_group_id(group("__g"));
        let out: HeartbeatResponse = answered(r, run_admit::<_, HeartbeatRequest>(&mut v, &ids, r, &bad));
        assert_eq!(out.error_code, code::INVALID_GROUP_ID);
    }

    fn commit_topic(name: &str, parts: &[i32]) -> OffsetCommitRequestTopic {
        OffsetCommitRequestTopic::default().with_name(topic(name)).with_partitions(
            parts.iter().map(|&p| OffsetCommitRequestPartition::default().with_partition_index(p)).collect(),
        )
    }

    #[test]
    fn offset_commit_forwards_allowed_topics_and_merges_denied() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::OffsetCommit, 9);
        let msg = OffsetCommitRequest::default()
            .with_group_id(group("ok-g"))
            .with_topics(vec![commit_topic("ok-t", &[0, 1]), commit_topic("secret", &[3])]);
        let (fwd, plan): (OffsetCommitRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(fwd.group_id.0.as_str(), "acme.ok-g");
        assert_eq!(names(fwd.topics.iter().map(|t| &t.name.0)), ["acme.ok-t"]);

        let broker = OffsetCommitResponse::default().with_topics(vec![
            offset_commit_response::OffsetCommitResponseTopic::default().with_name(topic("acme.ok-t")).with_partitions(
                vec![offset_commit_response::OffsetCommitResponsePartition::default().with_partition_index(0)],
            ),
        ]);
        let out: OffsetCommitResponse = run_respond(&mut v, &ids, r, plan, &broker);
        let got: Vec<_> = out
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.as_str(), p.partition_index, p.error_code)))
            .collect();
        assert_eq!(got, [("ok-t", 0, 0), ("secret", 3, code::TOPIC_AUTHORIZATION_FAILED)]);

        // A denied group refuses every partition, locally.
        let msg = OffsetCommitRequest::default().with_group_id(group("secret")).with_topics(vec![commit_topic("ok-t", &[0])]);
        let out: OffsetCommitResponse = answered(r, run_admit::<_, OffsetCommitRequest>(&mut v, &ids, r, &msg));
        assert_eq!(out.topics[0].partitions[0].error_code, code::GROUP_AUTHORIZATION_FAILED);
    }

    fn fetch_group(id: &str, topics: Option<&[&str]>) -> OffsetFetchRequestGroup {
        OffsetFetchRequestGroup::default().with_group_id(group(id)).with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| OffsetFetchRequestTopics::default().with_name(topic(t)).with_partition_indexes(vec![0]))
                .collect()
        }))
    }

    #[test]
    fn offset_fetch_batched_keeps_request_order_and_groups_their_denials() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::OffsetFetch, 9);
        let msg = OffsetFetchRequest::default().with_groups(vec![
            fetch_group("ok-a", Some(&["ok-t", "secret"])),
            fetch_group("secret-g", None),
            fetch_group("ok-b", Some(&["hidden"])),
            fetch_group("ok-c", None),
        ]);
        let (fwd, plan): (OffsetFetchRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        let sent: Vec<_> = fwd
            .groups
            .iter()
            .map(|g| (g.group_id.0.as_str(), g.topics.as_ref().map(|ts| names(ts.iter().map(|t| &t.name.0)))))
            .collect();
        assert_eq!(sent, [("acme.ok-a", Some(vec!["acme.ok-t"])), ("acme.ok-c", None)]);

        let partitions =
            vec![offset_fetch_response::OffsetFetchResponsePartitions::default().with_partition_index(0).with_committed_offset(42)];
        let t = |n: &str| {
            offset_fetch_response::OffsetFetchResponseTopics::default().with_name(topic(n)).with_partitions(partitions.clone())
        };
        let broker = OffsetFetchResponse::default().with_groups(vec![
            offset_fetch_response::OffsetFetchResponseGroup::default().with_group_id(group("acme.ok-a")).with_topics(vec![t("acme.ok-t")]),
            // All topics of ok-c: only the ones the tenant may describe survive.
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(group("acme.ok-c"))
                .with_topics(vec![t("acme.ok-u"), t("acme.hidden"), t("other.ok-t")]),
        ]);
        let out: OffsetFetchResponse = run_respond(&mut v, &ids, r, plan, &broker);
        let got: Vec<_> = out
            .groups
            .iter()
            .map(|g| {
                let topics: Vec<_> = g
                    .topics
                    .iter()
                    .map(|t| (t.name.0.as_str(), t.partitions[0].error_code, t.partitions[0].committed_offset))
                    .collect();
                (g.group_id.0.as_str(), g.error_code, topics)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ok-a", 0, vec![("ok-t", 0, 42), ("secret", code::TOPIC_AUTHORIZATION_FAILED, -1)]),
                ("secret-g", code::GROUP_AUTHORIZATION_FAILED, vec![]),
                ("ok-b", 0, vec![("hidden", code::TOPIC_AUTHORIZATION_FAILED, -1)]),
                ("ok-c", 0, vec![("ok-u", 0, 42)]),
            ]
        );
    }

    #[test]
    fn offset_fetch_with_nothing_allowed_is_answered_locally() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::OffsetFetch, 8);
        let msg = OffsetFetchRequest::default()
            .with_groups(vec![fetch_group("secret-g", None), fetch_group("ok-b", Some(&["hidden"]))]);
        let out: OffsetFetchResponse = answered(r, run_admit::<_, OffsetFetchRequest>(&mut v, &ids, r, &msg));
        let got: Vec<_> = out.groups.iter().map(|g| (g.group_id.0.as_str(), g.error_code, g.topics.len())).collect();
        assert_eq!(got, [("secret-g", code::GROUP_AUTHORIZATION_FAILED, 0), ("ok-b", 0, 1)]);

        // v7: a denied group is reported at the top and per partition.
        let r = req(ApiKey::OffsetFetch, 7);
        let msg = OffsetFetchRequest::default().with_group_id(group("secret-g")).with_topics(Some(vec![
            kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic("ok-t"))
                .with_partition_indexes(vec![0, 1]),
        ]));
        let out: OffsetFetchResponse = answered(r, run_admit::<_, OffsetFetchRequest>(&mut v, &ids, r, &msg));
        assert_eq!(out.error_code, code::GROUP_AUTHORIZATION_FAILED);
        assert_eq!(out.topics[0].partitions.len(), 2);
    }

    #[test]
    fn list_groups_keeps_only_the_tenants_describable_groups() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::ListGroups, 5);
        let (_, plan): (ListGroupsRequest, _) = forwarded(run_admit(&mut v, &ids, r, &ListGroupsRequest::default()));
        let broker = ListGroupsResponse::default().with_groups(
            ["acme.ok-g", "acme.secret", "other.ok-g", "__share", "acme.ok-2"]
                .iter()
                .map(|g| list_groups_response::ListedGroup::default().with_group_id(group(g)))
                .collect(),
        );
        let out: ListGroupsResponse = run_respond(&mut v, &ids, r, plan, &broker);
        assert_eq!(names(out.groups.iter().map(|g| &g.group_id.0)), ["ok-g", "ok-2"]);
    }

    #[test]
    fn describe_and_delete_groups_merge_denials() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::DescribeGroups, 5);
        let msg = DescribeGroupsRequest::default().with_groups(vec![group("ok-g"), group("secret")]);
        let (fwd, plan): (DescribeGroupsRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(names(fwd.groups.iter().map(|g| &g.0)), ["acme.ok-g"]);
        let broker = DescribeGroupsResponse::default().with_groups(vec![describe_groups_response::DescribedGroup::default()
            .with_group_id(group("acme.ok-g"))
            .with_authorized_operations(0x7fff)
            .with_members(vec![describe_groups_response::DescribedGroupMember::default().with_client_id(s("acme.app"))])]);
        let out: DescribeGroupsResponse = run_respond(&mut v, &ids, r, plan, &broker);
        assert_eq!(out.groups[0].group_id.0.as_str(), "ok-g");
        assert_eq!(out.groups[0].members[0].client_id.as_str(), "app");
        assert_eq!(out.groups[0].authorized_operations, (1 << 3) | (1 << 6) | (1 << 8));
        assert_eq!(out.groups[1].group_id.0.as_str(), "secret");
        assert_eq!(out.groups[1].error_code, code::GROUP_AUTHORIZATION_FAILED);

        let r = req(ApiKey::DeleteGroups, 2);
        let msg = DeleteGroupsRequest::default().with_groups_names(vec![group("secret"), group("")]);
        let out: DeleteGroupsResponse = answered(r, run_admit::<_, DeleteGroupsRequest>(&mut v, &ids, r, &msg));
        let got: Vec<_> = out.results.iter().map(|g| (g.group_id.0.as_str(), g.error_code)).collect();
        assert_eq!(got, [("secret", code::GROUP_AUTHORIZATION_FAILED), ("", code::INVALID_GROUP_ID)]);
    }

    #[test]
    fn consumer_group_heartbeat_confines_names_and_regexes() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::ConsumerGroupHeartbeat, 1);
        let msg = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("ok-g"))
            .with_subscribed_topic_names(Some(vec![topic("ok-a"), topic("ok-b")]))
            .with_subscribed_topic_regex(Some(s("^ok-.*$")));
        let (fwd, plan): (ConsumerGroupHeartbeatRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert!(matches!(plan, Plan::PassThrough));
        assert_eq!(fwd.group_id.0.as_str(), "acme.ok-g");
        assert_eq!(names(fwd.subscribed_topic_names.iter().flatten().map(|t| &t.0)), ["acme.ok-a", "acme.ok-b"]);
        assert_eq!(fwd.subscribed_topic_regex.unwrap().as_str(), "acme\\.(?:ok-.*)");

        // A regex that would close the tenant's group and match the whole pool.
        for escape in ["x)|(.*", "a\\", "[)]|(.*"] {
            let msg = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group("ok-g"))
                .with_subscribed_topic_regex(Some(s(escape)));
            let out: ConsumerGroupHeartbeatResponse =
                answered(r, run_admit::<_, ConsumerGroupHeartbeatRequest>(&mut v, &ids, r, &msg));
            assert_eq!(out.error_code, code::INVALID_REGULAR_EXPRESSION, "{escape}");
        }

        let msg = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("ok-g"))
            .with_subscribed_topic_names(Some(vec![topic("ok-a"), topic("secret")]));
        let out: ConsumerGroupHeartbeatResponse =
            answered(r, run_admit::<_, ConsumerGroupHeartbeatRequest>(&mut v, &ids, r, &msg));
        assert_eq!(out.error_code, code::TOPIC_AUTHORIZATION_FAILED);
    }

    #[test]
    fn consumer_group_describe_maps_members_back() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::ConsumerGroupDescribe, 1);
        let msg = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group("ok-g"), group("ok-h"), group("secret")]);
        let (fwd, plan): (ConsumerGroupDescribeRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(names(fwd.group_ids.iter().map(|g| &g.0)), ["acme.ok-g", "acme.ok-h"]);

        let assignment = |ts: &[&str]| {
            cgd::Assignment::default().with_topic_partitions(
                ts.iter().map(|t| cgd::TopicPartitions::default().with_topic_name(topic(t)).with_partitions(vec![0])).collect(),
            )
        };
        let member = cgd::Member::default()
            .with_client_id(s("acme.app"))
            .with_subscribed_topic_names(vec![topic("acme.ok-a")])
            .with_subscribed_topic_regex(Some(s("acme\\.(?:ok-.*)")))
            .with_assignment(assignment(&["acme.ok-a", "other.x"]));
        let broker = ConsumerGroupDescribeResponse::default().with_groups(vec![
            cgd::DescribedGroup::default().with_group_id(group("acme.ok-g")).with_members(vec![member]),
            // A member assigned a topic the tenant may not describe fails the group.
            cgd::DescribedGroup::default()
                .with_group_id(group("acme.ok-h"))
                .with_members(vec![cgd::Member::default().with_assignment(assignment(&["acme.hidden"]))]),
        ]);
        let out: ConsumerGroupDescribeResponse = run_respond(&mut v, &ids, r, plan, &broker);
        let m = &out.groups[0].members[0];
        assert_eq!(m.client_id.as_str(), "app");
        assert_eq!(names(m.subscribed_topic_names.iter().map(|t| &t.0)), ["ok-a"]);
        assert_eq!(m.subscribed_topic_regex.as_ref().unwrap().as_str(), "ok-.*");
        assert_eq!(names(m.assignment.topic_partitions.iter().map(|t| &t.topic_name.0)), ["ok-a"]);
        assert_eq!(out.groups[1].group_id.0.as_str(), "ok-h");
        assert_eq!(out.groups[1].error_code, code::TOPIC_AUTHORIZATION_FAILED);
        assert!(out.groups[1].members.is_empty());
        assert_eq!((out.groups[2].group_id.0.as_str(), out.groups[2].error_code), ("secret", code::GROUP_AUTHORIZATION_FAILED));
    }

    #[test]
    fn share_fetch_resolves_ids_through_the_tenant_only() {
        let (mut v, ids) = (view(), TopicIds::default());
        let (mine, secret, theirs) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        ids.learn(mine, &topic("acme.ok-t"));
        ids.learn(secret, &topic("acme.secret"));
        ids.learn(theirs, &topic("other.ok-t"));
        let r = req(ApiKey::ShareFetch, 1);
        let t = |id| FetchTopic::default().with_topic_id(id).with_partitions(vec![FetchPartition::default().with_partition_index(0)]);
        let msg = ShareFetchRequest::default().with_group_id(Some(group("ok-g"))).with_topics(vec![t(mine), t(secret), t(theirs)]);
        let (fwd, plan): (ShareFetchRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(fwd.group_id.as_ref().unwrap().0.as_str(), "acme.ok-g");
        assert_eq!(fwd.topics.iter().map(|t| t.topic_id).collect::<Vec<_>>(), [mine]);

        let broker = ShareFetchResponse::default()
            .with_responses(vec![
                share_fetch_response::ShareFetchableTopicResponse::default()
                    .with_topic_id(mine)
                    .with_partitions(vec![share_fetch_response::PartitionData::default()]),
                share_fetch_response::ShareFetchableTopicResponse::default().with_topic_id(theirs),
            ])
            .with_node_endpoints(vec![share_fetch_response::NodeEndpoint::default()
                .with_node_id(3.into())
                .with_host(s("pool-3"))
                .with_port(29093)]);
        let out: ShareFetchResponse = run_respond(&mut v, &ids, r, plan, &broker);
        let got: Vec<_> = out.responses.iter().map(|t| (t.topic_id, t.partitions[0].error_code)).collect();
        assert_eq!(
            got,
            [(mine, 0), (secret, code::TOPIC_AUTHORIZATION_FAILED), (theirs, code::UNKNOWN_TOPIC_ID)]
        );
        assert_eq!((out.node_endpoints[0].host.as_str(), out.node_endpoints[0].port), ("gw.local", 9103));

        let msg = ShareFetchRequest::default().with_group_id(Some(group("secret"))).with_topics(vec![t(mine)]);
        let out: ShareFetchResponse = answered(r, run_admit::<_, ShareFetchRequest>(&mut v, &ids, r, &msg));
        assert_eq!(out.error_code, code::GROUP_AUTHORIZATION_FAILED);
    }

    // --- Classic consumer protocol payloads ---

    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTp;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTp;
    use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;

    /// A ConsumerProtocol payload as Kafka's ConsumerProtocol writes it: version, body.
    fn payload<M: Encodable>(version: i16, m: &M) -> Bytes {
        let mut out = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut out, version);
        m.encode(&mut out, version).unwrap();
        out.freeze()
    }

    fn read_payload<M: Decodable>(b: &Bytes) -> (i16, M) {
        let mut buf = b.clone();
        let version = bytes::Buf::get_i16(&mut buf);
        let m = M::decode(&mut buf, version).unwrap();
        assert!(buf.is_empty(), "bytes left after a v{version} payload");
        (version, m)
    }

    /// A subscription with every field its version has, naming `topics` and owning
    /// partitions of `owned`.
    fn subscription(version: i16, topics: &[&str], owned: &[&str]) -> ConsumerProtocolSubscription {
        let mut m = ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| s(t)).collect())
            .with_user_data(Some(Bytes::from_static(b"assignor state")));
        if version >= 1 {
            m.owned_partitions =
                owned.iter().map(|t| OwnedTp::default().with_topic(topic(t)).with_partitions(vec![0, 2])).collect();
        }
        if version >= 2 {
            m.generation_id = 42;
        }
        if version >= 3 {
            m.rack_id = Some(s("rack-b"));
        }
        m
    }

    fn assignment(topics: &[&str]) -> ConsumerProtocolAssignment {
        ConsumerProtocolAssignment::default()
            .with_assigned_partitions(
                topics.iter().map(|t| AssignedTp::default().with_topic(topic(t)).with_partitions(vec![1, 3])).collect(),
            )
            .with_user_data(Some(Bytes::from_static(b"sticky")))
    }

    fn join(protocol_type: &str, metadata: Vec<Bytes>) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(group("ok-g"))
            .with_protocol_type(s(protocol_type))
            .with_protocols(
                metadata
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| JoinGroupRequestProtocol::default().with_name(s(&format!("p{i}"))).with_metadata(m))
                    .collect(),
            )
    }

    fn join_response(metadata: Vec<Bytes>) -> JoinGroupResponse {
        JoinGroupResponse::default().with_protocol_name(Some(s("p0"))).with_members(
            metadata
                .into_iter()
                .enumerate()
                .map(|(i, m)| JoinGroupResponseMember::default().with_member_id(s(&format!("m{i}"))).with_metadata(m))
                .collect(),
        )
    }

    fn sync(assignments: Vec<Bytes>) -> SyncGroupRequest {
        SyncGroupRequest::default().with_group_id(group("ok-g")).with_member_id(s("m0")).with_assignments(
            assignments
                .into_iter()
                .enumerate()
                .map(|(i, a)| SyncGroupRequestAssignment::default().with_member_id(s(&format!("m{i}"))).with_assignment(a))
                .collect(),
        )
    }

    fn owned_names(m: &ConsumerProtocolSubscription) -> Vec<&str> {
        m.owned_partitions.iter().map(|p| p.topic.0.as_str()).collect()
    }

    fn assigned_names(m: &ConsumerProtocolAssignment) -> Vec<&str> {
        m.assigned_partitions.iter().map(|p| p.topic.0.as_str()).collect()
    }

    /// JoinGroup v5 (librdkafka's: the response has no protocol type): every protocol's
    /// subscription reaches the pool in pool names at its own version, fields intact; the
    /// leader gets members' subscriptions back in its names, others' topics dropped.
    #[test]
    fn join_group_subscriptions_both_ways_at_every_version() {
        for version in 0..=3i16 {
            let (mut v, ids) = (view(), TopicIds::default());
            let r = req(ApiKey::JoinGroup, 5);
            let mine = subscription(version, &["ok-a", "__x", "secret"], &["ok-a"]);
            let msg = join("consumer", vec![payload(version, &mine), payload(version, &mine)]);
            let (fwd, plan): (JoinGroupRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
            assert_eq!(fwd.group_id.0.as_str(), "acme.ok-g");
            assert_eq!(fwd.protocols.len(), 2);
            for p in &fwd.protocols {
                let (got_version, got): (_, ConsumerProtocolSubscription) = read_payload(&p.metadata);
                assert_eq!(got_version, version);
                assert_eq!(names(got.topics.iter()), ["acme.ok-a", "acme.__x", "acme.secret"], "v{version}");
                let want_owned: &[&str] = if version >= 1 { &["acme.ok-a"] } else { &[] };
                assert_eq!(owned_names(&got), want_owned, "v{version}");
                let expect = subscription(version, &["acme.ok-a", "acme.__x", "acme.secret"], &["acme.ok-a"]);
                assert_eq!(got, expect, "v{version}: other fields changed");
            }

            let theirs = subscription(version, &["acme.ok-a", "other.b", "__consumer_offsets"], &["other.b", "acme.ok-a"]);
            let broker = join_response(vec![payload(version, &theirs), Bytes::new()]);
            let out: JoinGroupResponse = run_respond(&mut v, &ids, r, plan, &broker);
            let (got_version, got): (_, ConsumerProtocolSubscription) = read_payload(&out.members[0].metadata);
            assert_eq!(got_version, version);
            assert_eq!(got, subscription(version, &["ok-a"], &["ok-a"]), "v{version}");
            assert!(out.members[1].metadata.is_empty(), "empty metadata stays empty");
        }
    }

    /// SyncGroup v3 (no protocol type in it): the connection's JoinGroup said `consumer`,
    /// so the leader's assignments reach the pool in pool names and the member's own
    /// assignment comes back in its names, at every version.
    #[test]
    fn sync_group_assignments_both_ways_at_every_version() {
        for version in 0..=3i16 {
            let (mut v, ids) = (view(), TopicIds::default());
            let _ = run_admit::<_, JoinGroupRequest>(&mut v, &ids, req(ApiKey::JoinGroup, 5), &join("consumer", vec![]));
            let r = req(ApiKey::SyncGroup, 3);
            let msg = sync(vec![payload(version, &assignment(&["ok-a", "ok-b"])), Bytes::new()]);
            let (fwd, plan): (SyncGroupRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
            assert_eq!(fwd.group_id.0.as_str(), "acme.ok-g");
            let (got_version, got): (_, ConsumerProtocolAssignment) = read_payload(&fwd.assignments[0].assignment);
            assert_eq!(got_version, version);
            assert_eq!(got, assignment(&["acme.ok-a", "acme.ok-b"]), "v{version}");
            assert!(fwd.assignments[1].assignment.is_empty());

            let broker = SyncGroupResponse::default()
                .with_assignment(payload(version, &assignment(&["acme.ok-a", "other.ok-a", "acme.ok-b"])));
            let out: SyncGroupResponse = run_respond(&mut v, &ids, r, plan, &broker);
            let (got_version, got): (_, ConsumerProtocolAssignment) = read_payload(&out.assignment);
            assert_eq!(got_version, version);
            assert_eq!(assigned_names(&got), ["ok-a", "ok-b"], "v{version}");
            assert_eq!(got.user_data.as_deref(), Some(&b"sticky"[..]));
        }
    }

    /// Versions that name the protocol type use it: JoinGroup v7+ responses and
    /// SyncGroup v5+, with no JoinGroup seen on this connection.
    #[test]
    fn protocol_type_in_the_message_decides() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::SyncGroup, 5);
        let a = payload(1, &assignment(&["ok-a"]));
        let msg = sync(vec![a.clone()]).with_protocol_type(Some(s("consumer"))).with_protocol_name(Some(s("range")));
        let (fwd, plan): (SyncGroupRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        let (_, got): (_, ConsumerProtocolAssignment) = read_payload(&fwd.assignments[0].assignment);
        assert_eq!(assigned_names(&got), ["acme.ok-a"]);
        let broker = SyncGroupResponse::default()
            .with_protocol_type(Some(s("consumer")))
            .with_assignment(payload(1, &assignment(&["acme.ok-a"])));
        let out: SyncGroupResponse = run_respond(&mut v, &ids, r, plan, &broker);
        assert_eq!(out.assignment, a);

        // Another protocol type is never touched, even when its bytes would decode.
        let msg = sync(vec![a.clone()]).with_protocol_type(Some(s("connect"))).with_protocol_name(Some(s("sessioned")));
        let (fwd, plan): (SyncGroupRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(fwd.assignments[0].assignment, a);
        assert!(matches!(plan, Plan::PassThrough));

        let r = req(ApiKey::JoinGroup, 7);
        let sub = payload(2, &subscription(2, &["ok-a"], &[]));
        let msg = join("connect", vec![sub.clone()]);
        let (fwd, plan): (JoinGroupRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(fwd.protocols[0].metadata, sub);
        assert!(matches!(plan, Plan::PassThrough));
        // ... and that connection now knows the group is not `consumer` for SyncGroup v3.
        let r = req(ApiKey::SyncGroup, 3);
        let (fwd, plan): (SyncGroupRequest, _) = forwarded(run_admit(&mut v, &ids, r, &sync(vec![a.clone()])));
        assert_eq!(fwd.assignments[0].assignment, a);
        assert!(matches!(plan, Plan::PassThrough));
    }

    /// Bytes that are not a ConsumerProtocol message under the `consumer` type (a custom
    /// format) are forwarded unchanged both ways, never an error.
    #[test]
    fn undecodable_payloads_pass_through() {
        let (mut v, ids) = (view(), TopicIds::default());
        let garbage = [
            Bytes::from_static(b"\x00"),
            Bytes::from_static(b"\xff\xff\x00\x00"),
            Bytes::from_static(b"\x00\x01\x7f\xff\xff\xff"),
            Bytes::from_static(b"custom assignor bytes"),
        ];
        let r = req(ApiKey::JoinGroup, 5);
        let (fwd, plan): (JoinGroupRequest, _) =
            forwarded(run_admit(&mut v, &ids, r, &join("consumer", garbage.to_vec())));
        let got: Vec<_> = fwd.protocols.iter().map(|p| p.metadata.clone()).collect();
        assert_eq!(got, garbage);
        let out: JoinGroupResponse = run_respond(&mut v, &ids, r, plan, &join_response(garbage.to_vec()));
        let got: Vec<_> = out.members.iter().map(|m| m.metadata.clone()).collect();
        assert_eq!(got, garbage);

        let r = req(ApiKey::SyncGroup, 3);
        let (fwd, plan): (SyncGroupRequest, _) = forwarded(run_admit(&mut v, &ids, r, &sync(garbage.to_vec())));
        let got: Vec<_> = fwd.assignments.iter().map(|a| a.assignment.clone()).collect();
        assert_eq!(got, garbage);
        for g in &garbage {
            let out: SyncGroupResponse = run_respond(
                &mut v,
                &ids,
                r,
                Plan::Map(Box::new(Denied { keys: vec![(s("ok-g"), 0)], ..Denied::default() })),
                &SyncGroupResponse::default().with_assignment(g.clone()),
            );
            assert_eq!(&out.assignment, g);
        }
        let _ = plan;
    }

    /// A SyncGroup v3 on a connection that never saw the group's JoinGroup: mapped only
    /// when the bytes are exactly a ConsumerProtocol message of a known version.
    #[test]
    fn unknown_protocol_maps_only_exact_messages() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::SyncGroup, 3);
        let exact = payload(0, &assignment(&["ok-a"]));
        let mut trailing = exact.to_vec();
        trailing.extend_from_slice(b"more");
        let trailing = Bytes::from(trailing);
        let (fwd, _): (SyncGroupRequest, _) =
            forwarded(run_admit(&mut v, &ids, r, &sync(vec![exact.clone(), trailing.clone()])));
        let (_, got): (_, ConsumerProtocolAssignment) = read_payload(&fwd.assignments[0].assignment);
        assert_eq!(assigned_names(&got), ["acme.ok-a"]);
        assert_eq!(fwd.assignments[1].assignment, trailing);
    }

    /// A version newer than the crate knows is read at v3, as Kafka does; the version and
    /// the bytes after the known fields are kept.
    #[test]
    fn newer_versions_keep_their_version_and_tail() {
        let (mut v, ids) = (view(), TopicIds::default());
        let mut bytes = payload(3, &subscription(3, &["ok-a"], &["ok-a"])).to_vec();
        bytes[..2].copy_from_slice(&4i16.to_be_bytes());
        bytes.extend_from_slice(b"v4 field");
        let r = req(ApiKey::JoinGroup, 5);
        let (fwd, _): (JoinGroupRequest, _) =
            forwarded(run_admit(&mut v, &ids, r, &join("consumer", vec![Bytes::from(bytes)])));
        let mut got = fwd.protocols[0].metadata.clone();
        assert_eq!(bytes::Buf::get_i16(&mut got), 4);
        let m = ConsumerProtocolSubscription::decode(&mut got, 3).unwrap();
        assert_eq!(names(m.topics.iter()), ["acme.ok-a"]);
        assert_eq!(owned_names(&m), ["acme.ok-a"]);
        assert_eq!(&got[..], b"v4 field");
    }

    /// DescribeGroups: `consumer` members' subscriptions and assignments in the tenant's
    /// names, others' topics dropped; other protocol types untouched.
    #[test]
    fn describe_groups_maps_member_payloads() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::DescribeGroups, 5);
        let msg = DescribeGroupsRequest::default().with_groups(vec![group("ok-g"), group("ok-c")]);
        let (_, plan): (DescribeGroupsRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        let sub = payload(1, &subscription(1, &["acme.ok-a", "other.x"], &["acme.ok-a", "other.x"]));
        let asg = payload(3, &assignment(&["acme.ok-a", "other.x"]));
        let member = |m: &Bytes, a: &Bytes| {
            DescribedGroupMember::default()
                .with_member_id(s("m"))
                .with_client_id(s("acme.c"))
                .with_member_metadata(m.clone())
                .with_member_assignment(a.clone())
        };
        let broker = DescribeGroupsResponse::default().with_groups(vec![
            DescribedGroup::default()
                .with_group_id(group("acme.ok-g"))
                .with_protocol_type(s("consumer"))
                .with_members(vec![member(&sub, &asg), member(&Bytes::new(), &Bytes::new())]),
            DescribedGroup::default()
                .with_group_id(group("acme.ok-c"))
                .with_protocol_type(s("connect"))
                .with_members(vec![member(&sub, &asg)]),
        ]);
        let out: DescribeGroupsResponse = run_respond(&mut v, &ids, r, plan, &broker);
        let m = &out.groups[0].members[0];
        let (_, got): (_, ConsumerProtocolSubscription) = read_payload(&m.member_metadata);
        assert_eq!(got, subscription(1, &["ok-a"], &["ok-a"]));
        let (_, got): (_, ConsumerProtocolAssignment) = read_payload(&m.member_assignment);
        assert_eq!(assigned_names(&got), ["ok-a"]);
        assert!(out.groups[0].members[1].member_metadata.is_empty());
        assert!(out.groups[0].members[1].member_assignment.is_empty());
        assert_eq!(out.groups[1].members[0].member_metadata, sub);
        assert_eq!(out.groups[1].members[0].member_assignment, asg);
    }
}
