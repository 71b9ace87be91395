//! `sluice placement plan|apply|status|cancel`: the operator's view of placement, printing
//! one JSON document per line on standard output (progress of `apply` included).
//!
//! `apply` takes the same lease as the gateways' rebalancer (holder `cli-<pid>`), so a
//! background rebalancer never runs a plan at the same time.

use std::time::Duration;

use serde_json::{json, Value};
use sluice_placement::Plan;
use tokio_util::sync::CancellationToken;

use super::state::{ApplierState, Lease, KEY_APPLIER, KEY_LEASE};
use super::{tenant_of, Placement, PlacementFailure, Snapshot};
use crate::config::PlacementSettings;

pub enum Action {
    Plan,
    Apply,
    Status,
    Cancel,
}

pub struct Request {
    pub action: Action,
    pub bootstrap: Vec<String>,
    pub connect_timeout: Duration,
    /// TLS/SASL towards the pool, from `--config` (plaintext without one).
    pub upstream: crate::upstream::Upstream,
    pub settings: PlacementSettings,
}

/// A plan as JSON: figures, leadership changes and moves.
pub fn plan_json(snap: &Snapshot, plan: &Plan) -> Value {
    json!({
        "brokers": snap.brokers.len(),
        "partitions": snap.cluster.partitions.len(),
        "imbalance_before": plan.imbalance_before,
        "imbalance_after": plan.imbalance_after,
        "bytes_moved": plan.bytes_moved(),
        "deferred_repairs": plan.deferred_repairs,
        "leader_changes": plan.leader_changes.iter().map(|c| json!({
            "topic": c.topic, "partition": c.partition, "from": c.from, "to": c.to, "reason": format!("{:?}", c.reason),
        })).collect::<Vec<_>>(),
        "moves": plan.moves.iter().map(|m| json!({
            "topic": m.topic, "partition": m.partition, "from": m.from_replicas, "to": m.to_replicas,
            "bytes": m.bytes, "reason": format!("{:?}", m.reason),
        })).collect::<Vec<_>>(),
    })
}

pub async fn run(req: Request) -> anyhow::Result<()> {
    let me = format!("cli-{}", std::process::id());
    let p = Placement::new(req.bootstrap, req.connect_timeout, req.upstream, req.settings, me);
    let drain = p.settings.drain.clone();
    match req.action {
        Action::Plan => {
            let snap = p.snapshot(&drain, None).await?;
            let plan = p.plan(&snap)?;
            println!("{}", plan_json(&snap, &plan));
        }
        Action::Status => println!("{}", status(&p, &drain).await?),
        Action::Cancel => {
            let (cancelled, recovery) = p.cancel().await?;
            println!("{}", json!({"cancelled_reassignments": cancelled, "recovery": recovery}));
        }
        Action::Apply => {
            let ttl = Duration::from_secs(120);
            if !take_lease(&p, ttl).await? {
                anyhow::bail!("a gateway's rebalancer holds the placement lease; try again later or disable it");
            }
            let result = apply(&p, &drain, ttl, |line| println!("{line}")).await;
            let _ = p.state.release_lease(&p.me).await;
            result?;
        }
    }
    Ok(())
}

/// Takes the placement lease for `p.me` (the state topic is created if missing).
pub async fn take_lease(p: &Placement, ttl: Duration) -> anyhow::Result<bool> {
    p.state.ensure().await?;
    // A state topic created just now (a fresh pool) answers errors until its leader is
    // elected and known to every broker.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match p.state.try_lease(&p.me, ttl).await {
            Ok(held) => return Ok(held),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "placement lease not available yet; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Imbalance, per-broker load and counts, the lease, the applier's state and the pool's
/// reassignments in flight.
pub async fn status(p: &Placement, drain: &[i32]) -> anyhow::Result<Value> {
    let snap = p.snapshot(drain, None).await?;
    let (lease, applier) = match p.state.latest().await {
        Ok((m, _)) => (
            m.get(KEY_LEASE).and_then(|v| serde_json::from_slice::<Lease>(v).ok()),
            m.get(KEY_APPLIER).and_then(|v| serde_json::from_slice::<ApplierState>(v).ok()),
        ),
        Err(_) => (None, None),
    };
    let ongoing: Vec<Value> = snap
        .ongoing
        .iter()
        .map(|((t, i), o)| json!({"topic": t, "partition": i, "replicas": o.replicas, "adding": o.adding, "removing": o.removing, "tenant_topic": tenant_of(t).is_some()}))
        .collect();
    let loads = sluice_placement::broker_loads(&snap.cluster);
    let mut brokers: Vec<Value> = snap
        .brokers
        .iter()
        .map(|b| {
            let (i, o) = loads.get(&b.id).copied().unwrap_or_default();
            let leaders = snap.cluster.partitions.iter().filter(|x| x.leader == b.id).count();
            let replicas = snap.cluster.partitions.iter().filter(|x| x.replicas.contains(&b.id)).count();
            json!({"id": b.id, "rack": b.rack, "bytes_in_per_sec": i, "bytes_out_per_sec": o, "leaders": leaders, "replicas": replicas})
        })
        .collect();
    brokers.sort_by_key(|b| b["id"].as_i64());
    Ok(json!({
        "imbalance": snap.imbalance(),
        "brokers": brokers,
        "lease": lease,
        "applying": applier,
        "reassignments": ongoing,
    }))
}

/// Plans and applies under the lease the caller holds, reporting the plan, progress and
/// the outcome as JSON documents to `report`.
pub async fn apply(p: &Placement, drain: &[i32], ttl: Duration, report: impl Fn(Value)) -> Result<(), PlacementFailure> {
    let snap = p.snapshot(drain, None).await?;
    let plan = p.plan(&snap)?;
    report(plan_json(&snap, &plan));
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let renew = {
        let (p, stop) = (p.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::signal::ctrl_c() => { stop.cancel(); return; }
                    _ = tokio::time::sleep(ttl / 3) => { let _ = p.state.try_lease(&p.me, ttl).await; }
                }
            }
        })
    };
    let started = std::time::Instant::now();
    let result = p
        .apply(&snap, &plan, &cancel, |pr| {
            let mut v = serde_json::to_value(pr).unwrap_or(Value::Null);
            v["elapsed_secs"] = json!(started.elapsed().as_secs_f64());
            report(json!({ "progress": v }));
        })
        .await;
    cancel.cancel();
    let _ = renew.await;
    let progress = result?;
    let after = p.snapshot(drain, None).await?;
    report(json!({"done": progress, "imbalance_before": plan.imbalance_before, "imbalance_predicted": plan.imbalance_after, "imbalance_now": after.imbalance()}));
    Ok(())
}
