//! The audit log (SPEC 9): admin-API mutations, Kafka control-plane calls of tenant
//! connections and failed authentications, appended as JSON to the pool topic
//! `__sluice_audit` (a `crate::journal`) and read back per tenant by the admin API.
//!
//! - **Recording never blocks the data path**: [`Audit::record`] puts the event on a
//!   bounded queue; when the queue is full the event is dropped and counted in
//!   `sluice_audit_dropped_total` (and logged at most every 10 s).
//! - **One writer task** appends what is queued at least once a second and once more on
//!   shutdown. Every event carries `id` = instance + sequence, so a batch retried after a
//!   produce that did write is read back once.
//! - **One tail task** reads the journal from its start into an in-memory index per
//!   tenant (newest [`AuditSettings::index_per_tenant`] events each); the journal is the
//!   truth, so a restarted gateway serves what earlier ones wrote.
//! - **Names are the tenant's view**: Kafka resources come from the answer the tenant
//!   got (already stripped of the pool prefix), admin-API resources from the path.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Decodable;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::journal::{self, Appender, Reader};
use crate::kclient::PoolAccess;

/// `[audit]`: where the audit log lives and how much of it the gateway indexes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The journal topic (one partition).
    pub topic: String,
    /// `retention.ms` of a newly created topic, in days.
    pub retention_days: u64,
    /// Events waiting for the writer; beyond this they are dropped and counted.
    pub queue: usize,
    /// Newest events per tenant the API can page through.
    pub index_per_tenant: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { topic: "__sluice_audit".into(), retention_days: 90, queue: 10_000, index_per_tenant: 100_000 }
    }
}

/// How a call ended, for the whole call or one resource.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    /// Kafka's error name (`TOPIC_ALREADY_EXISTS`), or `SASL_AUTHENTICATION_FAILED`.
    pub code: Option<String>,
    /// The HTTP status of an admin-API call.
    pub status: Option<u16>,
    pub message: Option<String>,
}

impl Outcome {
    pub fn ok() -> Self {
        Self { ok: true, ..Default::default() }
    }

    /// From a Kafka error code and message (code 0 is success).
    pub fn kafka(code: i16, message: Option<&str>) -> Self {
        Self {
            ok: code == 0,
            code: (code != 0).then(|| crate::meters::error_label(code)),
            status: None,
            message: message.map(str::to_owned),
        }
    }

    pub fn http(status: u16, message: Option<String>) -> Self {
        Self { ok: (200..300).contains(&status), code: None, status: Some(status), message }
    }
}

/// One resource a call touched, named as its tenant sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub outcome: Outcome,
}

/// One audit event, as stored in the journal and served by the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// `<instance>-<sequence>`: unique, so repeats of a retried append are dropped.
    pub id: String,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub instance: String,
    pub tenant: Option<String>,
    /// The subject (tenant principal, or admin-token subject).
    pub principal: Option<String>,
    pub source_ip: Option<String>,
    /// `kafka:CreateTopics`, `api:PUT /v1/tenants/{tenant}/limits`, `auth:failed`.
    pub action: String,
    pub resources: Vec<Resource>,
    pub outcome: Outcome,
}

impl Event {
    /// An event without identity and time ([`Audit::record`] sets them).
    pub fn new(action: impl Into<String>, tenant: Option<&str>, principal: Option<&str>, source: Option<IpAddr>) -> Self {
        Self {
            id: String::new(),
            time: String::new(),
            instance: String::new(),
            tenant: tenant.map(str::to_owned),
            principal: principal.map(str::to_owned),
            source_ip: source.map(|ip| ip.to_string()),
            action: action.into(),
            resources: Vec::new(),
            outcome: Outcome::ok(),
        }
    }
}

/// The audit sink and index of one gateway.
pub struct Audit {
    settings: AuditSettings,
    tx: mpsc::Sender<Event>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    instance: String,
    seq: AtomicU64,
    last_drop_log: AtomicI64,
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    /// Per tenant, oldest first: (journal offset, time in ms, event).
    tenants: HashMap<String, VecDeque<(i64, i64, Arc<Event>)>>,
    seen: HashSet<String>,
}

/// A page of a tenant's events, newest first.
pub struct Page {
    pub items: Vec<Arc<Event>>,
    /// The offset to continue below.
    pub next: Option<i64>,
}

impl Audit {
    /// The sink; [`Audit::spawn`] starts its writer and tail.
    pub fn new(settings: &AuditSettings) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        metrics::describe_counter!("sluice_audit_dropped_total", "Audit events dropped because the audit queue was full");
        // Exported from the start, so an alert on its rate has a series to watch.
        metrics::counter!("sluice_audit_dropped_total").increment(0);
        Arc::new(Self {
            settings: settings.clone(),
            tx,
            rx: Mutex::new(Some(rx)),
            instance: crate::placement::rebalancer::gateway_id(),
            seq: AtomicU64::new(0),
            last_drop_log: AtomicI64::new(0),
            index: Mutex::new(Index::default()),
        })
    }

    /// Queues `event` for the journal; never waits.
    pub fn record(&self, mut event: Event) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        event.id = format!("{}-{seq}", self.instance);
        event.time = rfc3339(now);
        event.instance = self.instance.clone();
        debug!(action = %event.action, tenant = ?event.tenant, "audit event");
        if self.tx.try_send(event).is_err() {
            metrics::counter!("sluice_audit_dropped_total").increment(1);
            let last = self.last_drop_log.load(Ordering::Relaxed);
            if now - last >= 10_000 && self.last_drop_log.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                warn!(queue = self.settings.queue, "audit queue full: events dropped (sluice_audit_dropped_total)");
            }
        }
    }

    /// Starts the writer and the tail on `tasks`; both end with `cancel` (the writer after
    /// a last flush).
    pub fn spawn(self: &Arc<Self>, access: PoolAccess, tail_access: PoolAccess, tasks: &tokio_util::task::TaskTracker, cancel: &CancellationToken) {
        let rx = self.rx.lock().ok().and_then(|mut r| r.take());
        if let Some(rx) = rx {
            tasks.spawn(self.clone().write(rx, access, cancel.child_token()));
            tasks.spawn(self.clone().tail(tail_access, cancel.child_token()));
        }
    }

    async fn write(self: Arc<Self>, mut rx: mpsc::Receiver<Event>, access: PoolAccess, cancel: CancellationToken) {
        let topic = self.settings.topic.clone();
        let retention = (self.settings.retention_days.max(1) * 86_400_000).to_string();
        let configs = [("retention.ms", retention.as_str()), ("cleanup.policy", "delete")];
        loop {
            match journal::ensure_topic(&access, &topic, &configs).await {
                Ok(()) => break,
                Err(e) => warn!(%topic, error = %e, "audit topic not ready; retrying"),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        let mut appender = Appender::new(access, topic.clone());
        let mut batch: Vec<(Bytes, Bytes)> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                ev = rx.recv() => match ev {
                    Some(ev) => self.push(&mut batch, ev),
                    None => break,
                },
                _ = tick.tick() => self.flush(&mut appender, &mut batch).await,
            }
        }
        // Shutdown: what is queued now goes out in a last batch (a few tries, bounded).
        rx.close();
        while let Ok(ev) = rx.try_recv() {
            self.push(&mut batch, ev);
        }
        for _ in 0..3 {
            if batch.is_empty() {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_secs(3), self.flush(&mut appender, &mut batch)).await;
        }
        if !batch.is_empty() {
            warn!(events = batch.len(), "audit events not written at shutdown");
        }
    }

    fn push(&self, batch: &mut Vec<(Bytes, Bytes)>, ev: Event) {
        // While the pool is unreachable the batch is capped like the queue.
        if batch.len() >= self.settings.queue.max(1) {
            metrics::counter!("sluice_audit_dropped_total").increment(1);
            return;
        }
        match serde_json::to_vec(&ev) {
            Ok(value) => batch.push((Bytes::from(ev.tenant.unwrap_or_default()), Bytes::from(value))),
            Err(e) => warn!(error = %e, "audit event not serialisable"),
        }
    }

    async fn flush(&self, appender: &mut Appender, batch: &mut Vec<(Bytes, Bytes)>) {
        if batch.is_empty() {
            return;
        }
        match appender.append(batch).await {
            Ok(_) => batch.clear(),
            Err(e) => warn!(events = batch.len(), error = %e, "appending to the audit log failed; retrying"),
        }
    }

    async fn tail(self: Arc<Self>, access: PoolAccess, cancel: CancellationToken) {
        let mut reader = Reader::from_start(access, self.settings.topic.clone());
        let mut logged = false;
        loop {
            let polled = tokio::select! {
                _ = cancel.cancelled() => return,
                p = reader.poll(Duration::from_secs(1)) => p,
            };
            match polled {
                Ok((records, _)) => {
                    for r in records {
                        let Some(value) = r.value else { continue };
                        match serde_json::from_slice::<Event>(&value) {
                            Ok(ev) => self.index_event(r.offset, ev),
                            Err(e) => debug!(offset = r.offset, error = %e, "skipping an audit record that is not an event"),
                        }
                    }
                    if !logged {
                        logged = true;
                        info!(topic = %self.settings.topic, position = reader.position(), "audit log read");
                    }
                }
                Err(e) => {
                    debug!(error = %e, "reading the audit log failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    fn index_event(&self, offset: i64, ev: Event) {
        let Some(tenant) = ev.tenant.clone() else { return };
        let Ok(mut index) = self.index.lock() else { return };
        if !index.seen.insert(ev.id.clone()) {
            return;
        }
        let time = parse_time(&ev.time).unwrap_or(0);
        let cap = self.settings.index_per_tenant.max(1);
        let list = index.tenants.entry(tenant).or_default();
        list.push_back((offset, time, Arc::new(ev)));
        let evicted = if list.len() > cap { list.pop_front() } else { None };
        if let Some((_, _, old)) = evicted {
            index.seen.remove(&old.id);
        }
    }

    /// Up to `limit` events of `tenant`, newest first, below offset `before` and with
    /// `from <= time < to` (milliseconds).
    pub fn page(&self, tenant: &str, limit: usize, before: Option<i64>, from: Option<i64>, to: Option<i64>) -> Page {
        let Ok(index) = self.index.lock() else { return Page { items: Vec::new(), next: None } };
        let Some(list) = index.tenants.get(tenant) else { return Page { items: Vec::new(), next: None } };
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        for (offset, time, ev) in list.iter().rev() {
            if before.is_some_and(|b| *offset >= b) || from.is_some_and(|f| *time < f) || to.is_some_and(|t| *time >= t) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(ev.clone());
            last = Some(*offset);
        }
        Page { items, next: if more { last } else { None } }
    }
}

/// The Kafka control-plane APIs that are audited.
pub fn audited(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::CreatePartitions
            | ApiKey::DeleteRecords
            | ApiKey::AlterConfigs
            | ApiKey::IncrementalAlterConfigs
            | ApiKey::DeleteGroups
            | ApiKey::OffsetDelete
            | ApiKey::AlterClientQuotas
    )
}

/// A control-plane call of a tenant connection, recorded when its answer is known.
pub struct KafkaCall {
    audit: Arc<Audit>,
    event: Event,
    api: ApiKey,
    version: i16,
    /// OffsetDelete answers do not name the group; the request does.
    group: Option<String>,
}

impl KafkaCall {
    /// For an audited `api`; `body` is the request body as the tenant sent it.
    pub fn start(
        audit: &Arc<Audit>,
        api: ApiKey,
        version: i16,
        body: &Bytes,
        principal: &sluice_tenancy::Principal,
        source: IpAddr,
    ) -> Option<Box<Self>> {
        if !audited(api) {
            return None;
        }
        let group = (api == ApiKey::OffsetDelete)
            .then(|| kafka_protocol::messages::OffsetDeleteRequest::decode(&mut body.clone(), version).ok())
            .flatten()
            .map(|r| r.group_id.0.to_string());
        let event = Event::new(
            format!("kafka:{api:?}"),
            Some(principal.tenant.as_str()),
            Some(principal.subject.as_str()),
            Some(source),
        );
        // Boxed: it rides in every in-flight entry of the connection, mostly as None.
        Some(Box::new(Self { audit: audit.clone(), event, api, version, group }))
    }

    /// Records the call with the outcome of `frame`, the whole response frame the
    /// tenant receives.
    pub fn finish(mut self: Box<Self>, frame: &Bytes) {
        let decoded = frame
            .get(4..)
            .and_then(|payload| crate::protocol::parse_response_header(payload, self.api, self.version).ok())
            .and_then(|(_, body_at)| {
                let mut body = frame.slice(4 + body_at..);
                outcomes(self.api, self.version, &mut body, self.group.as_deref())
            });
        match decoded {
            Some((top, resources)) => {
                let failed = resources.iter().find(|r| !r.outcome.ok).map(|r| r.outcome.clone());
                self.event.outcome = match (top.ok, failed) {
                    (true, Some(f)) => Outcome { ok: false, ..f },
                    _ => top,
                };
                self.event.resources = resources;
            }
            None => {
                self.event.outcome =
                    Outcome { ok: false, code: Some("UNKNOWN".into()), status: None, message: Some("the answer could not be read".into()) }
            }
        }
        let Self { audit, event, .. } = *self;
        audit.record(event);
    }
}

/// The call's own outcome and each resource's, from a response body.
fn outcomes(api: ApiKey, version: i16, body: &mut Bytes, group: Option<&str>) -> Option<(Outcome, Vec<Resource>)> {
    use kafka_protocol::messages::*;
    fn dec<T: Decodable>(body: &mut Bytes, version: i16) -> Option<T> {
        T::decode(body, version).ok()
    }
    let res = |kind: &str, name: String, code: i16, message: Option<&str>| Resource {
        kind: kind.to_owned(),
        name,
        outcome: Outcome::kafka(code, message),
    };
    let msg = |m: &Option<kafka_protocol::protocol::StrBytes>| m.as_ref().map(|s| s.to_string());
    let mut out = Vec::new();
    let mut top = Outcome::ok();
    match api {
        ApiKey::CreateTopics => {
            let r: CreateTopicsResponse = dec(body, version)?;
            for t in &r.topics {
                out.push(res("topic", t.name.0.to_string(), t.error_code, msg(&t.error_message).as_deref()));
            }
        }
        ApiKey::DeleteTopics => {
            let r: DeleteTopicsResponse = dec(body, version)?;
            for t in &r.responses {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_else(|| t.topic_id.to_string());
                out.push(res("topic", name, t.error_code, msg(&t.error_message).as_deref()));
            }
        }
        ApiKey::CreatePartitions => {
            let r: CreatePartitionsResponse = dec(body, version)?;
            for t in &r.results {
                out.push(res("topic", t.name.0.to_string(), t.error_code, msg(&t.error_message).as_deref()));
            }
        }
        ApiKey::DeleteRecords => {
            let r: DeleteRecordsResponse = dec(body, version)?;
            for t in &r.topics {
                for p in &t.partitions {
                    out.push(res("partition", format!("{}-{}", t.name.0, p.partition_index), p.error_code, None));
                }
            }
        }
        ApiKey::AlterConfigs => {
            let r: AlterConfigsResponse = dec(body, version)?;
            for c in &r.responses {
                out.push(res(config_kind(c.resource_type), c.resource_name.to_string(), c.error_code, msg(&c.error_message).as_deref()));
            }
        }
        ApiKey::IncrementalAlterConfigs => {
            let r: IncrementalAlterConfigsResponse = dec(body, version)?;
            for c in &r.responses {
                out.push(res(config_kind(c.resource_type), c.resource_name.to_string(), c.error_code, msg(&c.error_message).as_deref()));
            }
        }
        ApiKey::DeleteGroups => {
            let r: DeleteGroupsResponse = dec(body, version)?;
            for g in &r.results {
                out.push(res("group", g.group_id.0.to_string(), g.error_code, None));
            }
        }
        ApiKey::OffsetDelete => {
            let r: OffsetDeleteResponse = dec(body, version)?;
            top = Outcome::kafka(r.error_code, None);
            if let Some(g) = group {
                out.push(res("group", g.to_owned(), r.error_code, None));
            }
            for t in &r.topics {
                for p in &t.partitions {
                    out.push(res("partition", format!("{}-{}", t.name.0, p.partition_index), p.error_code, None));
                }
            }
        }
        ApiKey::AlterClientQuotas => {
            let r: AlterClientQuotasResponse = dec(body, version)?;
            for e in &r.entries {
                let name = e
                    .entity
                    .iter()
                    .map(|d| format!("{}={}", d.entity_type, d.entity_name.as_ref().map_or("<default>".to_owned(), |n| n.to_string())))
                    .collect::<Vec<_>>()
                    .join(",");
                out.push(res("client-quota", name, e.error_code, msg(&e.error_message).as_deref()));
            }
        }
        _ => return None,
    }
    Some((top, out))
}

/// Kafka's ConfigResource types.
fn config_kind(t: i8) -> &'static str {
    match t {
        2 => "topic",
        4 => "broker",
        8 => "broker-logger",
        16 => "client-metrics",
        32 => "group",
        _ => "config",
    }
}

/// Kafka's SASL_AUTHENTICATION_FAILED.
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// Records a failed authentication on `via` (`kafka`, `admin-api`); `claimed` is
/// `tenant/subject` (or `user:name`) as the attempt named it. The event belongs to that
/// tenant only when it exists; the claim is unverified, so it says who was tried.
pub fn auth_failed(audit: &Audit, tenant: Option<&str>, claimed: Option<&str>, source: IpAddr, via: &str, outcome: Outcome) {
    let principal = match (tenant, claimed) {
        (Some(t), Some(c)) => c.strip_prefix(t).and_then(|rest| rest.strip_prefix('/')).or(Some(c)),
        (None, c) => c,
        (Some(_), None) => None,
    };
    let mut event = Event::new("auth:failed", tenant, principal, Some(source));
    event.resources.push(Resource { kind: "listener".into(), name: via.to_owned(), outcome: outcome.clone() });
    event.outcome = outcome;
    audit.record(event);
}

/// `answer` (a gateway-made answer, empty when the connection must close), recording
/// `call` with it once it is known.
pub fn after(
    answer: futures::future::BoxFuture<'static, Bytes>,
    call: Option<Box<KafkaCall>>,
) -> futures::future::BoxFuture<'static, Bytes> {
    match call {
        None => answer,
        Some(call) => Box::pin(async move {
            let bytes = answer.await;
            if !bytes.is_empty() {
                call.finish(&bytes);
            }
            bytes
        }),
    }
}

/// `tenant/subject` from the claims of a JWT, unverified (the token was refused: this is
/// only who it claims to be).
pub fn claimed_by_token(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let sub = claims.get("sub").and_then(|s| s.as_str())?;
    match claims.get("sluice:tenant").and_then(|t| t.as_str()) {
        Some(t) => Some(format!("{t}/{sub}")),
        None => Some(sub.to_owned()),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// An RFC 3339 date-time (`2026-11-30T04:00:00Z`, fractions and offsets allowed) or
/// milliseconds since the epoch, as milliseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &t[start..i.min(start + 3)];
        frac_ms = digits.parse::<i64>().ok()? * 10_i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match t.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && matches!(&tz[..1], "+" | "-") && &tz[3..4] == ":" => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if &tz[..1] == "-" { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60) * 1000) + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for ms in [0, 1_764_477_433_123, 951_782_400_000, -86_400_000] {
            assert_eq!(parse_time(&rfc3339(ms)), Some(ms), "{}", rfc3339(ms));
        }
        assert_eq!(rfc3339(1_764_477_433_123), "2025-11-30T04:37:13.123Z");
        assert_eq!(parse_time("2025-11-30T05:37:13+01:00"), Some(1_764_477_433_000));
        assert_eq!(parse_time("1764477433000"), Some(1_764_477_433_000));
        assert_eq!(parse_time("2025-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn a_full_queue_drops_instead_of_waiting() {
        let audit = Audit::new(&AuditSettings { queue: 2, ..Default::default() });
        for _ in 0..5 {
            audit.record(Event::new("auth:failed", None, None, None));
        }
        let mut rx = audit.rx.lock().unwrap().take().unwrap();
        let mut queued = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            queued.push(ev);
        }
        assert_eq!(queued.len(), 2);
        assert_ne!(queued[0].id, queued[1].id);
        assert!(queued[0].id.starts_with(&queued[0].instance) && parse_time(&queued[0].time).is_some());
    }

    #[test]
    fn pages_newest_first_without_repeats() {
        let audit = Audit::new(&AuditSettings { index_per_tenant: 3, ..Default::default() });
        for i in 0..5 {
            let mut ev = Event::new("kafka:CreateTopics", Some("t1"), Some("app"), None);
            ev.id = format!("x-{i}");
            ev.time = rfc3339(1000 * i);
            audit.index_event(i, ev.clone());
            audit.index_event(i, ev); // a retried append
        }
        let first = audit.page("t1", 2, None, None, None);
        assert_eq!(first.items.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["x-4", "x-3"]);
        let second = audit.page("t1", 2, first.next, None, None);
        assert_eq!(second.items.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["x-2"]);
        assert_eq!(second.next, None);
        assert!(audit.page("t2", 10, None, None, None).items.is_empty());
        assert_eq!(audit.page("t1", 10, None, Some(3000), Some(4000)).items.len(), 1);
    }
}
