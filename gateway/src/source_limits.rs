//! Connection limits per source IP address (SPEC 7): open connections and new connections
//! per second, counted for every listener before any byte is read, so one host cannot
//! exhaust the gateway (or a tenant's connection limits) for the others. Kafka brokers have
//! the same pair (`max.connections.per.ip`, KIP-612's per-IP connection rate).
//!
//! A refused connection is closed after a short delay (so a reconnect loop is slowed
//! down), with a log line and `sluice_connections_refused_total{limit="ip_count|ip_rate"}`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota};

/// The per-source limits and what each source holds now.
pub struct SourceLimits {
    max_connections: AtomicU64,
    /// The rate limiter and its rate; replaced whole when the config is reloaded.
    rate: RwLock<Option<(Arc<DefaultKeyedRateLimiter<IpAddr>>, u64)>>,
    open: DashMap<IpAddr, u64>,
}

fn rate_limiter(connection_rate: u64) -> Option<(Arc<DefaultKeyedRateLimiter<IpAddr>>, u64)> {
    let n = u32::try_from(connection_rate).ok().and_then(NonZeroU32::new)?;
    Some((Arc::new(DefaultKeyedRateLimiter::dashmap(Quota::per_second(n))), connection_rate))
}

/// Why a source may not open another connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceRefusal {
    #[error("source {ip} already has {max} connections (limits.max_connections_per_ip)")]
    Count { ip: IpAddr, max: u64 },
    #[error("source {ip} opens more than {rate} connections per second (limits.connection_rate_per_ip)")]
    Rate { ip: IpAddr, rate: u64 },
}

impl SourceRefusal {
    pub fn label(&self) -> &'static str {
        match self {
            SourceRefusal::Count { .. } => "ip_count",
            SourceRefusal::Rate { .. } => "ip_rate",
        }
    }
}

impl SourceLimits {
    /// `max_connections` open and `connection_rate` new per second per source; 0 turns a
    /// limit off.
    pub fn new(max_connections: u64, connection_rate: u64) -> Self {
        Self { max_connections: AtomicU64::new(max_connections), rate: RwLock::new(rate_limiter(connection_rate)), open: DashMap::new() }
    }

    /// New limits (config reload): open connections stay counted; a changed rate starts
    /// with a full budget.
    pub fn set(&self, max_connections: u64, connection_rate: u64) {
        self.max_connections.store(max_connections, Ordering::Relaxed);
        let unchanged = self.current_rate().map(|(_, r)| r) == Some(connection_rate).filter(|r| *r > 0);
        if !unchanged {
            if let Ok(mut rate) = self.rate.write() {
                *rate = rate_limiter(connection_rate);
            }
        }
    }

    fn current_rate(&self) -> Option<(Arc<DefaultKeyedRateLimiter<IpAddr>>, u64)> {
        self.rate.read().ok().and_then(|r| r.clone())
    }

    /// Admits one new connection from `ip`, or says which limit it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<SourceSlot, SourceRefusal> {
        if let Some((limiter, rate)) = self.current_rate() {
            if limiter.check_key(&ip).is_err() {
                return Err(SourceRefusal::Rate { ip, rate });
            }
        }
        let max = self.max_connections.load(Ordering::Relaxed);
        let mut n = self.open.entry(ip).or_insert(0);
        if max > 0 && *n >= max {
            return Err(SourceRefusal::Count { ip, max });
        }
        *n += 1;
        Ok(SourceSlot { limits: self.clone(), ip })
    }

    /// Forgets sources with nothing open and a full rate budget (keeps memory bounded).
    pub fn retain_recent(&self) {
        self.open.retain(|_, n| *n > 0);
        if let Some((limiter, _)) = self.current_rate() {
            limiter.retain_recent();
        }
    }
}

/// One open connection of a source; freed on drop.
pub struct SourceSlot {
    limits: Arc<SourceLimits>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Some(mut n) = self.limits.open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn counts_and_rates_are_per_source() {
        let limits = Arc::new(SourceLimits::new(2, 0));
        let a1 = limits.admit(ip(1)).unwrap();
        let _a2 = limits.admit(ip(1)).unwrap();
        assert_eq!(limits.admit(ip(1)).err(), Some(SourceRefusal::Count { ip: ip(1), max: 2 }));
        let _b = limits.admit(ip(2)).unwrap();
        drop(a1);
        assert!(limits.admit(ip(1)).is_ok());

        let rated = Arc::new(SourceLimits::new(0, 3));
        let slots: Vec<_> = (0..3).map(|_| rated.admit(ip(1)).unwrap()).collect();
        assert!(matches!(rated.admit(ip(1)), Err(SourceRefusal::Rate { .. })));
        assert!(rated.admit(ip(2)).is_ok());
        drop(slots);
        rated.retain_recent();
    }
}
