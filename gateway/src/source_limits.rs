//! Connection limits per source IP address (SPEC 7): open connections and new connections
//! per second, counted for every listener before any byte is read, so one host cannot
//! exhaust the gateway (or a tenant's connection limits) for the others. Kafka brokers have
//! the same pair (`max.connections.per.ip`, KIP-612's per-IP connection rate).
//!
//! A refused connection is closed after a short delay (so a reconnect loop is slowed
//! down), with a log line and `sluice_connections_refused_total{limit="ip_count|ip_rate"}`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota};

/// The per-source limits and what each source holds now.
pub struct SourceLimits {
    max_connections: u64,
    rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
    connection_rate: u64,
    open: DashMap<IpAddr, u64>,
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
        let rate = u32::try_from(connection_rate)
            .ok()
            .and_then(NonZeroU32::new)
            .map(|n| DefaultKeyedRateLimiter::dashmap(Quota::per_second(n)));
        Self { max_connections, rate, connection_rate, open: DashMap::new() }
    }

    /// Admits one new connection from `ip`, or says which limit it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<SourceSlot, SourceRefusal> {
        if let Some(rate) = &self.rate {
            if rate.check_key(&ip).is_err() {
                return Err(SourceRefusal::Rate { ip, rate: self.connection_rate });
            }
        }
        let mut n = self.open.entry(ip).or_insert(0);
        if self.max_connections > 0 && *n >= self.max_connections {
            return Err(SourceRefusal::Count { ip, max: self.max_connections });
        }
        *n += 1;
        Ok(SourceSlot { limits: self.clone(), ip })
    }

    /// Forgets sources with nothing open and a full rate budget (keeps memory bounded).
    pub fn retain_recent(&self) {
        self.open.retain(|_, n| *n > 0);
        if let Some(rate) = &self.rate {
            rate.retain_recent();
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
