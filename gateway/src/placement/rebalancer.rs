//! The background task of every gateway: samples the load registry, publishes this
//! gateway's rates to the state topic, and, with `[placement] enabled = true`, runs the
//! rebalancer when it holds the lease.
//!
//! One round: take or renew the lease (`interval` × 3; renewed while a plan runs, and the plan
//! is cancelled if the lease is lost); finish an interrupted plan ([`Placement::recover`]);
//! skip while any tenant partition is being reassigned by someone else; read the pool and the
//! summed load of every gateway; plan; apply within the budgets. The planner's threshold and
//! band are the hysteresis, so a balanced pool gives empty plans and nothing moves.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::applier::Recovery;
use super::state::{now_ms, LoadReport, LOAD_PREFIX};
use super::{tenant_of, Placement, PlacementFailure};

/// How often the load registry is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// An id for this gateway process in leases and load reports.
pub fn gateway_id() -> String {
    format!("gw-{}-{}", std::process::id(), now_ms())
}

/// Runs until `cancel`: sampling, load reports, and (when enabled) rebalancing rounds.
pub async fn run(placement: Placement, cancel: CancellationToken) {
    let interval = placement.settings.interval();
    let mut next_round = Instant::now() + interval;
    let mut topic_ready = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
        crate::load::registry().sample(Instant::now());
        if placement.settings.place_new_partitions {
            match super::new_partitions::refresh(&placement.admin).await {
                Ok(()) => super::new_partitions::set_draining(&placement.settings.drain),
                Err(e) => debug!(error = %e, "refreshing the pool view for new partitions failed"),
            }
        }
        if Instant::now() < next_round {
            continue;
        }
        next_round = Instant::now() + interval;
        if let Err(e) = publish_load(&placement, &mut topic_ready).await {
            debug!(error = %e, "publishing the placement load report failed");
        }
        if placement.settings.enabled {
            if let Err(e) = round(&placement, &cancel).await {
                warn!(error = %e, "placement round failed");
            }
        }
    }
    if placement.settings.enabled {
        let _ = placement.state.release_lease(&placement.me).await;
    }
}

async fn publish_load(p: &Placement, topic_ready: &mut bool) -> Result<(), PlacementFailure> {
    let rates = crate::load::registry().rates();
    if rates.is_empty() {
        return Ok(());
    }
    if !*topic_ready {
        p.state.ensure().await?;
        *topic_ready = true;
    }
    let report = LoadReport {
        at_ms: now_ms(),
        partitions: rates.into_iter().map(|((t, i), r)| (t, i, r.bytes_in_per_sec, r.bytes_out_per_sec)).collect(),
    };
    p.state.put(&format!("{LOAD_PREFIX}{}", p.me), Some(&report)).await?;
    Ok(())
}

/// One rebalancing round; returns whether a plan was applied.
pub async fn round(p: &Placement, cancel: &CancellationToken) -> Result<bool, PlacementFailure> {
    let ttl = p.settings.interval() * 3;
    p.state.ensure().await?;
    if !p.state.try_lease(&p.me, ttl).await? {
        debug!("another gateway holds the placement lease");
        return Ok(false);
    }
    if let Recovery::StillMoving { owner, moves } = p.recover().await? {
        info!(%owner, moves, "placement: a plan's reassignments are still running");
        return Ok(false);
    }
    let local = crate::load::registry().rates();
    let snap = p.snapshot(&p.settings.drain, Some(&local)).await?;
    metrics::gauge!("sluice_placement_imbalance").set(snap.imbalance());
    if snap.ongoing.keys().any(|(t, _)| tenant_of(t).is_some()) {
        info!(ongoing = snap.ongoing.len(), "placement: reassignments not started by sluice are running; waiting");
        return Ok(false);
    }
    let plan = p.plan(&snap)?;
    if plan.is_empty() {
        debug!(imbalance = snap.imbalance(), "placement: nothing to do");
        return Ok(false);
    }
    info!(
        imbalance_before = plan.imbalance_before,
        imbalance_after = plan.imbalance_after,
        leader_changes = plan.leader_changes.len(),
        moves = plan.moves.len(),
        bytes = plan.bytes_moved(),
        "placement: applying a plan"
    );
    // Keep the lease while the plan runs; losing it cancels the plan.
    let stop = cancel.child_token();
    let renew = {
        let (p, stop) = (p.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ttl / 3) => {}
                }
                match p.state.try_lease(&p.me, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!("placement lease lost while applying; cancelling the plan");
                        stop.cancel();
                        return;
                    }
                    Err(e) => warn!(error = %e, "renewing the placement lease failed"),
                }
            }
        })
    };
    let result = p
        .apply(&snap, &plan, &stop, |pr| {
            debug!(moves_done = pr.moves_done, moves_running = pr.moves_running, "placement progress")
        })
        .await;
    stop.cancel();
    let _ = renew.await;
    let progress = result?;
    metrics::counter!("sluice_placement_moves_total").increment(progress.moves_done as u64);
    metrics::counter!("sluice_placement_leader_changes_total").increment(progress.leader_changes_done as u64);
    metrics::counter!("sluice_placement_bytes_moved_total").increment(progress.bytes_done);
    Ok(true)
}
