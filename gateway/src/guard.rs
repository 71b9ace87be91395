//! Brute-force protection for authentication: failures are counted per source IP and
//! per claimed principal until the source has been quiet for a whole window. Past a first threshold each further
//! failure is answered more slowly; past a second one the source or principal is
//! refused outright until the window passes. Successes do not reset a source's count,
//! so interleaving one good token with many guesses does not help.

use std::net::IpAddr;
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct GuardSettings {
    pub window: Duration,
    /// Failures in a window before answers to failures are delayed.
    pub delay_after: u32,
    /// Failures in a window before the source or principal is refused.
    pub refuse_after: u32,
    /// Cap of the growing delay.
    pub max_delay: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self { window: Duration::from_secs(60), delay_after: 5, refuse_after: 30, max_delay: Duration::from_secs(5) }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    /// The latest failure; the count starts over only after a quiet window, so a
    /// slowed-down attacker still reaches the refusal threshold.
    last: Instant,
    count: u32,
}

/// What to do with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Too many failures: refuse without checking the credentials.
    Refuse,
}

pub struct AuthGuard {
    settings: GuardSettings,
    by_ip: DashMap<IpAddr, Failures>,
    by_principal: DashMap<String, Failures>,
}

impl AuthGuard {
    pub fn new(settings: GuardSettings) -> Self {
        Self { settings, by_ip: DashMap::new(), by_principal: DashMap::new() }
    }

    fn current<K: std::hash::Hash + Eq>(&self, map: &DashMap<K, Failures>, key: &K, now: Instant) -> u32 {
        map.get(key).filter(|f| now.duration_since(f.last) < self.settings.window).map_or(0, |f| f.count)
    }

    /// Whether an attempt from `ip` (for `principal`, when known) may be checked.
    pub fn check(&self, ip: IpAddr, principal: Option<&str>) -> Verdict {
        let now = Instant::now();
        let limit = self.settings.refuse_after;
        let ip_over = self.current(&self.by_ip, &ip, now) >= limit;
        let principal_over = principal.is_some_and(|p| self.current(&self.by_principal, &p.to_owned(), now) >= limit);
        if ip_over || principal_over {
            Verdict::Refuse
        } else {
            Verdict::Allow
        }
    }

    /// Records a failure and returns how long to hold the answer.
    pub fn failed(&self, ip: IpAddr, principal: Option<&str>) -> Duration {
        let now = Instant::now();
        let window = self.settings.window;
        let bump = |f: &mut Failures| {
            if now.duration_since(f.last) >= window {
                f.count = 0;
            }
            f.last = now;
            f.count += 1;
            f.count
        };
        let mut worst = bump(&mut self.by_ip.entry(ip).or_insert(Failures { last: now, count: 0 }));
        if let Some(p) = principal {
            // Bound the map: claimed principals are attacker-chosen strings.
            if self.by_principal.len() < 100_000 || self.by_principal.contains_key(p) {
                let n = bump(&mut self.by_principal.entry(p.to_owned()).or_insert(Failures { last: now, count: 0 }));
                worst = worst.max(n);
            }
        }
        self.delay_for(worst)
    }

    fn delay_for(&self, failures: u32) -> Duration {
        let over = failures.saturating_sub(self.settings.delay_after);
        if over == 0 {
            return Duration::ZERO;
        }
        let delay = Duration::from_millis(100).saturating_mul(1u32 << over.min(16));
        delay.min(self.settings.max_delay)
    }

    /// Drops entries whose window has passed (called periodically).
    pub fn sweep(&self) {
        let now = Instant::now();
        let window = self.settings.window;
        self.by_ip.retain(|_, f| now.duration_since(f.last) < window);
        self.by_principal.retain(|_, f| now.duration_since(f.last) < window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn delays_grow_then_refuse_then_the_window_passes() {
        let guard = AuthGuard::new(GuardSettings { refuse_after: 8, ..Default::default() });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let delays: Vec<Duration> = (0..8).map(|_| guard.failed(ip, Some("alice"))).collect();
        assert_eq!(delays[..5], [Duration::ZERO; 5]);
        assert!(delays[5] > Duration::ZERO && delays[6] > delays[5]);
        assert_eq!(guard.check(ip, None), Verdict::Refuse);
        // The principal is locked for other sources too; other principals are not.
        assert_eq!(guard.check(other, Some("alice")), Verdict::Refuse);
        assert_eq!(guard.check(other, Some("bob")), Verdict::Allow);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(guard.check(ip, Some("alice")), Verdict::Allow);
        guard.sweep();
        assert!(guard.by_ip.is_empty());
    }
}
