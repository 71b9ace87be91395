//! Transactions and idempotent producers: transactional ids, and the topics and groups
//! that transaction APIs name.
//!
//! Protocol facts used here:
//! - A transactional id is authorized in the tenant's view (AlterTransactionalId to use
//!   it, DescribeTransactionalId to see it) and forwarded as `<tenant>.<id>`.
//! - AddPartitionsToTxn is all or nothing in Kafka: when any partition is refused, the
//!   refused ones get their code and every other one OPERATION_NOT_ATTEMPTED, and
//!   nothing is added. The gateway does the same, so that request is never split.
//! - AddPartitionsToTxn v4+ (batched, `verify_only`) is for brokers: Kafka requires
//!   CLUSTER_ACTION, which no tenant holds, and answers CLUSTER_AUTHORIZATION_FAILED.
//!   Clients send v0–3.
//! - ListTransactions lists the whole pool; the answer keeps the tenant's ids that it may
//!   describe. A v2 `transactional_id_pattern` is confined to the tenant's prefix.

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    describe_transactions_response, txn_offset_commit_response, AddOffsetsToTxnRequest, AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_tenancy::policy::Action;
use sluice_tenancy::NameError;
use uuid::Uuid;

use super::data::resolve_topic;
use super::groups::{denied_topic, forward, group_check, local, names_out, pass_through, split_topics};
use super::{answer, code, decode_request, decode_response, Admission, Ctx, Denied, DeniedTopic, MapError, Req};

/// The transactional id's pool id, or the code to answer it with when `action` is not
/// granted or the name cannot be the tenant's.
fn txn_check(ctx: &Ctx<'_>, id: &TransactionalId, action: Action) -> Result<TransactionalId, i16> {
    let refused = match action {
        Action::DescribeTransactionalId | Action::AlterTransactionalId => code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        _ => code::INVALID_REQUEST,
    };
    match ctx.txn_in(id) {
        // Kafka refuses an empty id as INVALID_REQUEST; a reserved one is not the
        // tenant's, which Kafka would answer as an authorization failure.
        Err(NameError::Empty) => Err(code::INVALID_REQUEST),
        Err(_) => Err(refused),
        Ok(_) if !ctx.allows(action, id.0.as_str()) => Err(refused),
        Ok(pool) => Ok(pool),
    }
}

// === InitProducerId ===

/// AlterTransactionalId with a transactional id; WriteDataIdempotently on the cluster
/// without one.
pub fn init_producer_id(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: InitProducerIdRequest = decode_request(req.api, req.version, body)?;
    let refuse = |code: i16| {
        local(req, &InitProducerIdResponse::default().with_error_code(code).with_producer_id((-1).into()).with_producer_epoch(-1))
    };
    match &r.transactional_id {
        Some(id) => match txn_check(ctx, id, Action::AlterTransactionalId) {
            Ok(pool) => r.transactional_id = Some(pool),
            Err(code) => return refuse(code),
        },
        None if !ctx.allows(Action::WriteDataIdempotently, "") => return refuse(code::CLUSTER_AUTHORIZATION_FAILED),
        None => {}
    }
    pass_through(req, &r)
}

// === AddPartitionsToTxn ===

fn add_partitions_results(topics: &[DeniedTopic]) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|d| {
            AddPartitionsToTxnTopicResult::default().with_name(d.name.clone()).with_results_by_partition(
                d.partitions
                    .iter()
                    .map(|&p| AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(d.code))
                    .collect(),
            )
        })
        .collect()
}

/// AlterTransactionalId on the id, WriteData per topic; all or nothing (module docs).
pub fn add_partitions_to_txn(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    if req.version >= 4 {
        return local(req, &AddPartitionsToTxnResponse::default().with_error_code(code::CLUSTER_AUTHORIZATION_FAILED));
    }
    let mut r: AddPartitionsToTxnRequest = decode_request(req.api, req.version, body)?;
    let txn = txn_check(ctx, &r.v3_and_below_transactional_id, Action::AlterTransactionalId);
    let mut answered = Vec::with_capacity(r.v3_and_below_topics.len());
    let mut any_refused = false;
    for t in &mut r.v3_and_below_topics {
        let code = match (&txn, resolve_topic(ctx, false, &t.name, Uuid::nil(), Action::WriteData)) {
            (Err(code), _) => *code,
            (Ok(_), Err((_, code))) => code,
            (Ok(_), Ok(_)) => code::OPERATION_NOT_ATTEMPTED,
        };
        any_refused |= code != code::OPERATION_NOT_ATTEMPTED;
        answered.push(denied_topic(t.name.clone(), Uuid::nil(), t.partitions.clone(), code));
    }
    let pool_txn = match txn {
        Ok(pool) if !any_refused => pool,
        _ => {
            let resp = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(add_partitions_results(&answered));
            return local(req, &resp);
        }
    };
    r.v3_and_below_transactional_id = pool_txn;
    for t in &mut r.v3_and_below_topics {
        // Every name resolved above.
        if let Ok(pool) = ctx.topic_in(&t.name) {
            t.name = pool;
        }
    }
    forward(req, &r, Denied::default())
}

pub fn add_partitions_to_txn_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    _denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: AddPartitionsToTxnResponse = decode_response(req.api, req.version, &body)?;
    names_out(ctx, &mut resp.results_by_topic_v3_and_below, |t| &mut t.name);
    // v4+ is never forwarded (module docs); mapped anyway should that change.
    resp.results_by_transaction.retain_mut(|t| match ctx.txn_out(&t.transactional_id) {
        Some(id) => {
            t.transactional_id = id;
            names_out(ctx, &mut t.topic_results, |r| &mut r.name);
            true
        }
        None => false,
    });
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === AddOffsetsToTxn, EndTxn ===

/// AlterTransactionalId on the id, then AlterGroup on the group (Kafka's order).
pub fn add_offsets_to_txn(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: AddOffsetsToTxnRequest = decode_request(req.api, req.version, body)?;
    let mapped = txn_check(ctx, &r.transactional_id, Action::AlterTransactionalId)
        .and_then(|txn| group_check(ctx, &r.group_id, Action::AlterGroup).map(|group| (txn, group)));
    match mapped {
        Ok((txn, group)) => {
            r.transactional_id = txn;
            r.group_id = group;
            pass_through(req, &r)
        }
        Err(code) => local(req, &AddOffsetsToTxnResponse::default().with_error_code(code)),
    }
}

pub fn end_txn(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: EndTxnRequest = decode_request(req.api, req.version, body)?;
    match txn_check(ctx, &r.transactional_id, Action::AlterTransactionalId) {
        Ok(pool) => {
            r.transactional_id = pool;
            pass_through(req, &r)
        }
        Err(code) => local(
            req,
            &EndTxnResponse::default().with_error_code(code).with_producer_id((-1).into()).with_producer_epoch(-1),
        ),
    }
}

// === TxnOffsetCommit ===

fn txn_offset_commit_denied(resp: &mut TxnOffsetCommitResponse, topics: &[DeniedTopic]) {
    for d in topics {
        resp.topics.push(
            txn_offset_commit_response::TxnOffsetCommitResponseTopic::default().with_name(d.name.clone()).with_partitions(
                d.partitions
                    .iter()
                    .map(|&p| {
                        txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(d.code)
                    })
                    .collect(),
            ),
        );
    }
}

/// AlterTransactionalId and AlterGroup (else every partition gets that code), ReadData
/// per topic.
pub fn txn_offset_commit(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: TxnOffsetCommitRequest = decode_request(req.api, req.version, body)?;
    let partitions = |t: &kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic| {
        t.partitions.iter().map(|p| p.partition_index).collect::<Vec<_>>()
    };
    let mapped = txn_check(ctx, &r.transactional_id, Action::AlterTransactionalId)
        .and_then(|txn| group_check(ctx, &r.group_id, Action::AlterGroup).map(|group| (txn, group)));
    match mapped {
        Err(code) => {
            let all: Vec<_> =
                r.topics.iter().map(|t| denied_topic(t.name.clone(), Uuid::nil(), partitions(t), code)).collect();
            let mut resp = TxnOffsetCommitResponse::default();
            txn_offset_commit_denied(&mut resp, &all);
            return local(req, &resp);
        }
        Ok((txn, group)) => {
            r.transactional_id = txn;
            r.group_id = group;
        }
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
        partitions,
    );
    if asked && r.topics.is_empty() {
        let mut resp = TxnOffsetCommitResponse::default();
        txn_offset_commit_denied(&mut resp, &denied.topics);
        return local(req, &resp);
    }
    forward(req, &r, denied)
}

pub fn txn_offset_commit_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: TxnOffsetCommitResponse = decode_response(req.api, req.version, &body)?;
    names_out(ctx, &mut resp.topics, |t| &mut t.name);
    txn_offset_commit_denied(&mut resp, &denied.topics);
    answer(req.api, req.version, req.correlation_id, &resp)
}

// === DescribeTransactions, ListTransactions ===

fn txn_state_denied(key: &StrBytes, code: i16) -> describe_transactions_response::TransactionState {
    describe_transactions_response::TransactionState::default()
        .with_transactional_id(TransactionalId(key.clone()))
        .with_error_code(code)
        .with_transaction_start_time_ms(-1)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1)
}

/// DescribeTransactionalId per id.
pub fn describe_transactions(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    let mut r: DescribeTransactionsRequest = decode_request(req.api, req.version, body)?;
    let mut denied = Denied::default();
    let mut kept = Vec::with_capacity(r.transactional_ids.len());
    for id in std::mem::take(&mut r.transactional_ids) {
        match txn_check(ctx, &id, Action::DescribeTransactionalId) {
            Ok(pool) => kept.push(pool),
            Err(code) => denied.keys.push((id.0, code)),
        }
    }
    if kept.is_empty() {
        let states = denied.keys.iter().map(|(k, c)| txn_state_denied(k, *c)).collect();
        return local(req, &DescribeTransactionsResponse::default().with_transaction_states(states));
    }
    r.transactional_ids = kept;
    forward(req, &r, denied)
}

/// Ids mapped back; the topics of each transaction are kept only when they are the
/// tenant's and it may describe them (Kafka filters them the same way).
pub fn describe_transactions_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: DescribeTransactionsResponse = decode_response(req.api, req.version, &body)?;
    resp.transaction_states.retain_mut(|s| {
        let Some(id) = ctx.txn_out(&s.transactional_id) else { return false };
        s.transactional_id = id;
        s.topics.retain_mut(|t| match ctx.topic_out(&t.topic) {
            Some(n) if ctx.allows(Action::DescribeTopic, n.0.as_str()) => {
                t.topic = n;
                true
            }
            _ => false,
        });
        true
    });
    resp.transaction_states.extend(denied.keys.iter().map(|(k, c)| txn_state_denied(k, *c)));
    answer(req.api, req.version, req.correlation_id, &resp)
}

/// Forwarded with a v2 pattern confined to the tenant (`.*` when none was given, so the
/// pool does not list other tenants' ids only for the gateway to drop them).
pub fn list_transactions(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    if req.version < 2 {
        return Ok(Admission::Forward { body: None, plan: super::Plan::Map(Box::default()) });
    }
    let mut r: ListTransactionsRequest = decode_request(req.api, req.version, body)?;
    let pattern = r.transactional_id_pattern.as_ref().map(|p| p.as_str()).filter(|p| !p.is_empty()).unwrap_or(".*");
    match ctx.ns().regex_to_pool(pattern) {
        Ok(pool) => r.transactional_id_pattern = Some(StrBytes::from_string(pool)),
        Err(_) => {
            let resp = ListTransactionsResponse::default().with_error_code(super::code::INVALID_REGULAR_EXPRESSION);
            return Ok(Admission::Answer(super::answer(req.api, req.version, req.correlation_id, &resp)?));
        }
    }
    forward(req, &r, Denied::default())
}

pub fn list_transactions_response(
    ctx: &mut Ctx<'_>,
    req: Req,
    _denied: Denied,
    body: Bytes,
) -> Result<Bytes, MapError> {
    let mut resp: ListTransactionsResponse = decode_response(req.api, req.version, &body)?;
    resp.transaction_states.retain_mut(|s| match ctx.txn_out(&s.transactional_id) {
        Some(id) if ctx.allows(Action::DescribeTransactionalId, id.0.as_str()) => {
            s.transactional_id = id;
            true
        }
        _ => false,
    });
    answer(req.api, req.version, req.correlation_id, &resp)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
    use kafka_protocol::messages::{describe_transactions_response as dtr, list_transactions_response as ltr, ApiKey};

    use super::*;
    use crate::tenant::groups::tests::{
        answered, forwarded, group, req, run_admit, run_respond, s, topic, view, view_with, Outcome,
    };
    use crate::tenant::{Plan, TopicIds};

    fn txn(v: &str) -> TransactionalId {
        TransactionalId(s(v))
    }

    #[test]
    fn init_producer_id_needs_the_transactional_id_or_idempotent_write() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::InitProducerId, 5);
        let ok = InitProducerIdRequest::default().with_transactional_id(Some(txn("ok-tx")));
        let (fwd, plan): (InitProducerIdRequest, _) = forwarded(run_admit(&mut v, &ids, r, &ok));
        assert_eq!(fwd.transactional_id.unwrap().0.as_str(), "acme.ok-tx");
        assert!(matches!(plan, Plan::PassThrough));

        for (id, want) in [
            (Some("secret"), code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            (Some(""), code::INVALID_REQUEST),
            (None, code::CLUSTER_AUTHORIZATION_FAILED),
        ] {
            let msg = InitProducerIdRequest::default().with_transactional_id(id.map(txn));
            let out: InitProducerIdResponse = answered(r, run_admit::<_, InitProducerIdRequest>(&mut v, &ids, r, &msg));
            assert_eq!(out.error_code, want, "{id:?}");
            assert_eq!(out.producer_id.0, -1);
        }

        let mut idem = view_with(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Action":["kafka-cluster:WriteDataIdempotently"],"Resource":["arn:sluice:kafka:::cluster/acme"]}]}"#,
        );
        let msg = InitProducerIdRequest::default().with_transactional_id(None);
        let (fwd, _): (InitProducerIdRequest, _) = forwarded(run_admit(&mut idem, &ids, r, &msg));
        assert!(fwd.transactional_id.is_none());
    }

    fn add_topic(name: &str, parts: &[i32]) -> AddPartitionsToTxnTopic {
        AddPartitionsToTxnTopic::default().with_name(topic(name)).with_partitions(parts.to_vec())
    }

    fn partition_codes(resp: &AddPartitionsToTxnResponse) -> Vec<(&str, i32, i16)> {
        resp.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition.iter().map(move |p| (t.name.0.as_str(), p.partition_index, p.partition_error_code))
            })
            .collect()
    }

    #[test]
    fn add_partitions_to_txn_is_all_or_nothing() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::AddPartitionsToTxn, 3);
        let mixed = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn("ok-tx"))
            .with_v3_and_below_topics(vec![add_topic("ok-t", &[0, 1]), add_topic("secret", &[2])]);
        let out: AddPartitionsToTxnResponse =
            answered(r, run_admit::<_, AddPartitionsToTxnRequest>(&mut v, &ids, r, &mixed));
        assert_eq!(
            partition_codes(&out),
            [
                ("ok-t", 0, code::OPERATION_NOT_ATTEMPTED),
                ("ok-t", 1, code::OPERATION_NOT_ATTEMPTED),
                ("secret", 2, code::TOPIC_AUTHORIZATION_FAILED)
            ]
        );

        let bad_txn = mixed.clone().with_v3_and_below_transactional_id(txn("secret-tx"));
        let out: AddPartitionsToTxnResponse =
            answered(r, run_admit::<_, AddPartitionsToTxnRequest>(&mut v, &ids, r, &bad_txn));
        assert!(partition_codes(&out).iter().all(|p| p.2 == code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));

        let ok = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn("ok-tx"))
            .with_v3_and_below_topics(vec![add_topic("ok-t", &[0]), add_topic("ok-u", &[1])]);
        let (fwd, plan): (AddPartitionsToTxnRequest, _) = forwarded(run_admit(&mut v, &ids, r, &ok));
        assert_eq!(fwd.v3_and_below_transactional_id.0.as_str(), "acme.ok-tx");
        assert_eq!(
            fwd.v3_and_below_topics.iter().map(|t| t.name.0.as_str()).collect::<Vec<_>>(),
            ["acme.ok-t", "acme.ok-u"]
        );
        let broker = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic("acme.ok-t"))
                .with_results_by_partition(vec![AddPartitionsToTxnPartitionResult::default().with_partition_index(0)]),
            AddPartitionsToTxnTopicResult::default().with_name(topic("other.x")),
        ]);
        let out: AddPartitionsToTxnResponse = run_respond(&mut v, &ids, r, plan, &broker);
        assert_eq!(partition_codes(&out), [("ok-t", 0, 0)]);

        // The batched form is for brokers.
        let r = req(ApiKey::AddPartitionsToTxn, 4);
        let out: AddPartitionsToTxnResponse = answered(
            r,
            run_admit::<_, AddPartitionsToTxnRequest>(&mut v, &ids, r, &AddPartitionsToTxnRequest::default()),
        );
        assert_eq!(out.error_code, code::CLUSTER_AUTHORIZATION_FAILED);
    }

    #[test]
    fn add_offsets_and_end_txn_check_id_then_group() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::AddOffsetsToTxn, 4);
        let ok = AddOffsetsToTxnRequest::default().with_transactional_id(txn("ok-tx")).with_group_id(group("ok-g"));
        let (fwd, _): (AddOffsetsToTxnRequest, _) = forwarded(run_admit(&mut v, &ids, r, &ok));
        assert_eq!((fwd.transactional_id.0.as_str(), fwd.group_id.0.as_str()), ("acme.ok-tx", "acme.ok-g"));
        for (t, g, want) in [
            ("secret", "secret", code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            ("ok-tx", "secret", code::GROUP_AUTHORIZATION_FAILED),
        ] {
            let msg = AddOffsetsToTxnRequest::default().with_transactional_id(txn(t)).with_group_id(group(g));
            let out: AddOffsetsToTxnResponse = answered(r, run_admit::<_, AddOffsetsToTxnRequest>(&mut v, &ids, r, &msg));
            assert_eq!(out.error_code, want);
        }

        let r = req(ApiKey::EndTxn, 5);
        let msg = EndTxnRequest::default().with_transactional_id(txn("ok-tx"));
        let (fwd, _): (EndTxnRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(fwd.transactional_id.0.as_str(), "acme.ok-tx");
        let msg = EndTxnRequest::default().with_transactional_id(txn("__tx"));
        let out: EndTxnResponse = answered(r, run_admit::<_, EndTxnRequest>(&mut v, &ids, r, &msg));
        assert_eq!(out.error_code, code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }

    #[test]
    fn txn_offset_commit_merges_denied_topics() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::TxnOffsetCommit, 5);
        let t = |n: &str| {
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic(n))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default().with_partition_index(0)])
        };
        let msg = TxnOffsetCommitRequest::default()
            .with_transactional_id(txn("ok-tx"))
            .with_group_id(group("ok-g"))
            .with_topics(vec![t("ok-t"), t("secret")]);
        let (fwd, plan): (TxnOffsetCommitRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(fwd.topics.iter().map(|t| t.name.0.as_str()).collect::<Vec<_>>(), ["acme.ok-t"]);
        let broker = TxnOffsetCommitResponse::default().with_topics(vec![
            txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                .with_name(topic("acme.ok-t"))
                .with_partitions(vec![txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()]),
        ]);
        let out: TxnOffsetCommitResponse = run_respond(&mut v, &ids, r, plan, &broker);
        let got: Vec<_> = out.topics.iter().map(|t| (t.name.0.as_str(), t.partitions[0].error_code)).collect();
        assert_eq!(got, [("ok-t", 0), ("secret", code::TOPIC_AUTHORIZATION_FAILED)]);

        let msg = msg.with_group_id(group("secret"));
        let out: TxnOffsetCommitResponse = answered(r, run_admit::<_, TxnOffsetCommitRequest>(&mut v, &ids, r, &msg));
        assert!(out.topics.iter().all(|t| t.partitions[0].error_code == code::GROUP_AUTHORIZATION_FAILED));
        assert_eq!(out.topics.len(), 2);
    }

    #[test]
    fn describe_transactions_maps_ids_and_filters_topics() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::DescribeTransactions, 0);
        let msg = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn("ok-tx"), txn("secret")]);
        let (fwd, plan): (DescribeTransactionsRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(fwd.transactional_ids.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(), ["acme.ok-tx"]);
        let broker = DescribeTransactionsResponse::default().with_transaction_states(vec![dtr::TransactionState::default()
            .with_transactional_id(txn("acme.ok-tx"))
            .with_topics(
                ["acme.ok-t", "acme.hidden", "other.ok-t"]
                    .iter()
                    .map(|n| dtr::TopicData::default().with_topic(topic(n)))
                    .collect(),
            )]);
        let out: DescribeTransactionsResponse = run_respond(&mut v, &ids, r, plan, &broker);
        let s0 = &out.transaction_states[0];
        assert_eq!(s0.transactional_id.0.as_str(), "ok-tx");
        assert_eq!(s0.topics.iter().map(|t| t.topic.0.as_str()).collect::<Vec<_>>(), ["ok-t"]);
        let s1 = &out.transaction_states[1];
        assert_eq!((s1.transactional_id.0.as_str(), s1.error_code), ("secret", code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
    }

    #[test]
    fn list_transactions_confines_the_pattern_and_filters() {
        let (mut v, ids) = (view(), TopicIds::default());
        let r = req(ApiKey::ListTransactions, 2);
        let msg = ListTransactionsRequest::default().with_transactional_id_pattern(Some(s("ok-.*")));
        let (fwd, plan): (ListTransactionsRequest, _) = forwarded(run_admit(&mut v, &ids, r, &msg));
        assert_eq!(fwd.transactional_id_pattern.unwrap().as_str(), "acme\\.(?:ok-.*)");
        let (fwd, _): (ListTransactionsRequest, _) =
            forwarded(run_admit(&mut v, &ids, r, &ListTransactionsRequest::default()));
        assert_eq!(fwd.transactional_id_pattern.unwrap().as_str(), "acme\\.(?:.*)");

        let broker = ListTransactionsResponse::default().with_transaction_states(
            ["acme.ok-tx", "acme.secret", "other.ok-tx"]
                .iter()
                .map(|t| ltr::TransactionState::default().with_transactional_id(txn(t)))
                .collect(),
        );
        let out: ListTransactionsResponse = run_respond(&mut v, &ids, r, plan, &broker);
        assert_eq!(out.transaction_states.iter().map(|t| t.transactional_id.0.as_str()).collect::<Vec<_>>(), ["ok-tx"]);

        // v0-1 carry no pattern: forwarded unchanged, filtered all the same.
        let r = req(ApiKey::ListTransactions, 1);
        match run_admit::<_, ListTransactionsRequest>(&mut v, &ids, r, &ListTransactionsRequest::default()) {
            Outcome::Forward(_, plan) => {
                let out: ListTransactionsResponse = run_respond(&mut v, &ids, r, plan, &broker);
                assert_eq!(out.transaction_states.len(), 1);
            }
            Outcome::Answer(_) => panic!("answered locally"),
        }
    }
}
