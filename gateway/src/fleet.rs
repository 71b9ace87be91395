//! Tenant quotas shared by a fleet of gateways (SPEC 7, issue 9): every `interval`
//! (250 ms by default) each instance publishes, per tenant and direction, the bytes/s it
//! admitted and whether it had to throttle the tenant, in the pool topic
//! `__sluice_quota_demand`; every instance reads the others' latest reports and sets its
//! own share of each tenant's rate ([`sluice_quota::FleetShare`]).
//!
//! The split ([`share`]) is max-min fair: an instance that did not throttle the tenant
//! asks for what it used plus 10% headroom, one that did asks for all it can get; asks
//! under the fair level are granted, the rest is split equally among the others. So a
//! hungry instance gains share within a round or two, an idle one gives its share back,
//! no instance holds more than an equal part while others throttle, and the fleet total
//! stays at the quota.
//! Reports older than three intervals are ignored: a dead instance stops holding share
//! within about 0.75 s. One instance alone always has the whole quota.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_quota::{Direction, Quotas};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::journal::{Appender, Reader};
use crate::kclient::PoolAccess;

/// An instance throttled a tenant if its tenant limiter held it this fraction of the time.
const SATURATED: f64 = 0.05;
/// Weight of the newest window in the smoothed demand (about half a second of memory at 250 ms).
const SMOOTHING: f64 = 0.5;
/// Headroom an unthrottled instance keeps over what it used.
const HEADROOM: f64 = 1.1;

/// `[fleet]` settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetSettings {
    /// Share tenant quotas with the other instances in front of the same pool.
    pub enabled: bool,
    pub topic: String,
    /// Milliseconds between two reports (and re-splits); at least 100.
    pub interval_ms: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self { enabled: true, topic: "__sluice_quota_demand".into(), interval_ms: 250 }
    }
}

/// One tenant's demand in one direction on one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    /// Bytes per second admitted.
    pub rate: f64,
    /// Whether the instance throttled the tenant.
    pub saturated: bool,
}

/// One instance's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    instance: String,
    at_ms: u64,
    /// Tenant → [write, read].
    tenants: HashMap<String, [Demand; 2]>,
}

/// This instance's share of a rate `quota` (bytes/s), given its demand and the others'.
///
/// Max-min fair (water-filling): an instance that did not throttle the tenant asks for
/// what it used plus [`HEADROOM`]; one that throttled asks for "as much as it can get".
/// Asks below the fair level are granted whole, the rest of the quota is split equally
/// among the instances asking more than that level. So a light instance is never starved,
/// an instance whose unthrottled use is large cannot hold more than an equal part while
/// others are throttled, and the shares always sum to the quota. When nobody throttles,
/// what is left after the asks is spread over everyone, so each can grow.
pub fn share(mine: Demand, others: &[Demand], quota: f64) -> f64 {
    if others.iter().all(|d| d.rate <= 0.0 && !d.saturated) {
        return 1.0;
    }
    let quota = quota.max(1.0);
    let ask = |d: &Demand| if d.saturated { f64::INFINITY } else { (d.rate * HEADROOM / quota).min(1.0) };
    let mut asks: Vec<f64> = std::iter::once(&mine).chain(others.iter()).map(ask).collect();
    asks.sort_by(f64::total_cmp);
    let mut left = 1.0f64;
    let mut waiting = asks.len();
    let mut level = left / waiting as f64;
    for a in &asks {
        if *a > level {
            break;
        }
        left -= a;
        waiting -= 1;
        level = if waiting > 0 { left / waiting as f64 } else { 0.0 };
    }
    let mine_ask = ask(&mine);
    let granted = if waiting > 0 && mine_ask > level { level } else { mine_ask };
    // Nobody asked beyond the fair level: the unasked part is spread over everyone.
    let spread = if waiting == 0 { left.max(0.0) / asks.len() as f64 } else { 0.0 };
    (granted + spread).clamp(1.0 / 64.0, 1.0)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Publishes this instance's demand and applies the shares until cancelled.
pub async fn run(quotas: Arc<Quotas>, access: PoolAccess, settings: FleetSettings, instance: String, cancel: CancellationToken) {
    let interval = Duration::from_millis(settings.interval_ms.max(100));
    let configs = [("cleanup.policy", "delete"), ("retention.ms", "600000"), ("segment.ms", "60000")];
    if let Err(e) = crate::journal::ensure_topic(&access, &settings.topic, &configs).await {
        warn!(topic = %settings.topic, error = %e, "creating the quota demand topic failed; retrying as it goes");
    }
    let mut appender = Appender::new(access.clone(), settings.topic.clone());
    let mut reader = Reader::from_end(access, settings.topic.clone());
    let mut latest: HashMap<String, Report> = HashMap::new();
    // (tenant, direction) → smoothed (bytes/s, fraction of the time its clients were
    // held), and the throttle milliseconds not yet spread over windows.
    let mut smoothed: HashMap<(String, usize), (f64, f64, f64)> = HashMap::new();
    let mut failures = 0u32;
    info!(%instance, topic = %settings.topic, interval_ms = interval.as_millis() as u64, "fleet quota sharing started");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let secs = interval.as_secs_f64();
        let view = quotas.fleet_view();
        let mut mine = Report { instance: instance.clone(), at_ms: now_ms(), tenants: HashMap::new() };
        for (tenant, _, fleet) in &view {
            let mut pair = [Demand::default(); 2];
            for (i, d) in [Direction::Write, Direction::Read].into_iter().enumerate() {
                let (bytes, throttled_ms) = fleet.take_demand(d);
                // A throttle is reported whole when the request is charged, but the client
                // is held for that long afterwards: spread it over the windows it covers,
                // so an instance whose clients wait stays saturated while they wait.
                // Smoothed over a few windows, demand and saturation do not flicker.
                let e = smoothed.entry((tenant.clone(), i)).or_insert((0.0, 0.0, 0.0));
                e.2 += throttled_ms as f64;
                let window_ms = secs * 1000.0;
                let held = e.2.min(window_ms);
                e.2 -= held;
                e.0 += SMOOTHING * (bytes as f64 / secs - e.0);
                e.1 += SMOOTHING * (held / window_ms - e.1);
                pair[i] = Demand { rate: e.0, saturated: e.1 >= SATURATED };
            }
            if pair.iter().any(|d| d.rate > 0.0 || d.saturated) {
                mine.tenants.insert(tenant.clone(), pair);
            }
        }
        if !mine.tenants.is_empty() {
            if let Ok(value) = serde_json::to_vec(&mine) {
                if let Err(e) = appender.append(&[(Bytes::from(instance.clone()), Bytes::from(value))]).await {
                    debug!(error = %e, "publishing quota demand failed");
                }
            }
        }
        match reader.poll(Duration::ZERO).await {
            Ok((records, _)) => {
                failures = 0;
                for rec in records {
                    if let Some(r) = rec.value.as_ref().and_then(|v| serde_json::from_slice::<Report>(v).ok()) {
                        if r.instance != instance {
                            latest.insert(r.instance.clone(), r);
                        }
                    }
                }
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(40) {
                    warn!(error = %e, failures, "reading the quota demand topic failed; tenants keep their shares");
                }
            }
        }
        let fresh_after = now_ms().saturating_sub(3 * interval.as_millis() as u64);
        latest.retain(|_, r| r.at_ms >= fresh_after);
        for (tenant, config, fleet) in &view {
            let own = mine.tenants.get(tenant).copied().unwrap_or_default();
            for (i, (d, quota)) in [(Direction::Write, config.tenant_write), (Direction::Read, config.tenant_read)]
                .into_iter()
                .enumerate()
            {
                let others: Vec<Demand> = latest.values().filter_map(|r| r.tenants.get(tenant).map(|p| p[i])).collect();
                // Admitting (almost) nothing of the tenant, this instance asks like a
                // throttled one: the share is unused until a client arrives, and a client
                // that arrives (new, or failing over from a dead instance) must find a fair
                // part, not the 1/64 floor that charges its first batches 64 times over and
                // holds it for seconds. The others split by the demand reported, not this.
                let mut asking = own[i];
                asking.saturated |= asking.rate < quota as f64 / 64.0;
                let s = share(asking, &others, quota as f64);
                if (s - fleet.get(d)).abs() > 0.01 {
                    debug!(tenant, direction = ?d, share = s, others = others.len(), "fleet share changed");
                }
                fleet.set(d, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: f64 = 1_000_000.0;

    fn d(rate: f64, saturated: bool) -> Demand {
        Demand { rate, saturated }
    }

    #[test]
    fn alone_an_instance_has_the_whole_quota() {
        assert_eq!(share(d(0.0, false), &[], Q), 1.0);
        assert_eq!(share(d(Q, true), &[], Q), 1.0);
        assert_eq!(share(d(Q, true), &[d(0.0, false)], Q), 1.0);
    }

    #[test]
    fn saturated_instances_split_what_the_others_leave() {
        // Three flooding instances: a third each, summing to the quota.
        let s = share(d(Q / 3.0, true), &[d(Q / 3.0, true), d(Q / 3.0, true)], Q);
        assert!((s - 1.0 / 3.0).abs() < 1e-9, "{s}");
        // A light, unthrottled one keeps its use plus headroom; the hungry one gets the rest.
        let light = share(d(0.1 * Q, false), &[d(0.9 * Q, true)], Q);
        let hungry = share(d(0.9 * Q, true), &[d(0.1 * Q, false)], Q);
        assert!((light - 0.11).abs() < 1e-9 && (hungry - 0.89).abs() < 1e-9, "{light} {hungry}");
        assert!((light + hungry - 1.0).abs() < 1e-9);
    }

    #[test]
    fn an_unthrottled_instance_using_the_whole_quota_yields_to_throttled_ones() {
        // It came first and uses all of it without being held; two newcomers are held.
        let first = share(d(Q, false), &[d(Q / 64.0, true), d(Q / 64.0, true)], Q);
        let newcomer = share(d(Q / 64.0, true), &[d(Q, false), d(Q / 64.0, true)], Q);
        assert!((first - 1.0 / 3.0).abs() < 1e-9 && (newcomer - 1.0 / 3.0).abs() < 1e-9, "{first} {newcomer}");
    }

    #[test]
    fn with_nobody_throttled_the_unasked_part_is_spread() {
        let a = share(d(0.2 * Q, false), &[d(0.3 * Q, false)], Q);
        let b = share(d(0.3 * Q, false), &[d(0.2 * Q, false)], Q);
        assert!((a + b - 1.0).abs() < 1e-9 && a > 0.22 && b > 0.33, "{a} {b}");
    }

    #[test]
    fn a_starved_instance_that_throttles_gains_an_equal_part() {
        // B was given little and is now throttled: it becomes a claimant like A.
        let b = share(d(0.05 * Q, true), &[d(0.95 * Q, true)], Q);
        let a = share(d(0.95 * Q, true), &[d(0.05 * Q, true)], Q);
        assert!((a - 0.5).abs() < 1e-9 && (b - 0.5).abs() < 1e-9, "{a} {b}");
    }

    #[test]
    fn shares_never_fall_to_zero_nor_exceed_one() {
        let s = share(d(0.0, false), &[d(Q, true), d(Q, true)], Q);
        assert!((s - 1.0 / 64.0).abs() < 1e-9, "{s}");
        let s = share(d(0.0, false), &[d(0.1 * Q, false)], Q);
        assert!(s > 0.4 && s <= 1.0, "{s}");
    }
}
