//! sluice quotas: byte rates per tenant and per partition (SPEC 7), enforced the way Kafka
//! brokers enforce theirs (KIP-219).
//!
//! - Every tenant has four GCRA limiters (`governor`): tenant write and read, and keyed
//!   limiters for the write and read of each of its partitions.
//! - Kafka semantics: the request that crosses a limit still succeeds. [`TenantQuota::charge`]
//!   consumes what is available now and returns a [`Charge`]: the throttle time to report in
//!   the response (the largest wait among the limiters) and the debts left over. The
//!   connection awaits [`Charge::settle`] before it reads the client's next request, which
//!   both mutes the client for the throttle time and consumes the rest of the bytes, since
//!   governor's limiters cannot go into debt.
//! - Cells are KiB, not bytes: governor's replenish interval is whole nanoseconds, which at
//!   400 MiB/s per byte would be off by 25%; per KiB it is exact to 0.02%.
//! - A request larger than a limiter's burst (one second of its rate) is charged in chunks,
//!   so no request is ever refused for its size here (size limits are a separate check).
//! - Quota changes replace the tenant's limiters ([`Quotas::tenant`]), so they apply to the
//!   next request of every live connection without restarting any; the burst refills once.
//! - Sub-quotas ([`Quotas::sub`], Kafka's client quotas on a tenant's users and client
//!   ids) are further limiters a connection is charged against besides its tenant's; they
//!   never exceed the tenant's own limit and are shared by everyone in the same group.
//!
//! This crate never depends on the gateway and owns no sockets.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

/// One cell of every limiter.
const CELL_BYTES: u64 = 1024;

/// Which way bytes flow, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Produce: bytes the client writes.
    Write,
    /// Fetch: bytes the client reads.
    Read,
}

/// A partition of the pool: its pool topic name and index.
pub type PartitionKey = (Bytes, i32);

/// Byte rates (bytes per second) of one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaConfig {
    /// All partitions of the tenant together, produce.
    pub tenant_write: u64,
    /// All partitions of the tenant together, fetch.
    pub tenant_read: u64,
    /// Each partition, produce.
    pub partition_write: u64,
    /// Each partition, fetch.
    pub partition_read: u64,
    /// Partitions created plus deleted per 5 minutes (KIP-599's controller mutations).
    pub partition_mutations_per_5min: u64,
    /// Requests per second of all the tenant's connections together.
    pub request_rate: u64,
    /// New connections per second.
    pub connection_rate: u64,
    /// Open connections at once.
    pub max_connections: u64,
    /// Largest record batch per partition in a produce request.
    pub max_message_bytes: u64,
    /// Largest request.
    pub max_request_bytes: u64,
    /// Partitions the tenant may hold.
    pub max_partitions: u64,
    /// Of which compacted.
    pub max_compacted_partitions: u64,
    /// Consumer (and share) groups the tenant may hold.
    pub max_groups: u64,
}

impl Default for QuotaConfig {
    /// MSK Serverless's: 200/400 MiB/s per tenant, 5/10 MiB/s per partition, 250
    /// partition mutations per 5 minutes, 15 000 requests/s, 100 new connections/s, 3000
    /// connections, 8 MiB messages, 100 MiB requests, 2400 partitions of which 120
    /// compacted, 500 consumer groups.
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        Self {
            tenant_write: 200 * MIB,
            tenant_read: 400 * MIB,
            partition_write: 5 * MIB,
            partition_read: 10 * MIB,
            partition_mutations_per_5min: 250,
            request_rate: 15_000,
            connection_rate: 100,
            max_connections: 3000,
            max_message_bytes: 8 * MIB,
            max_request_bytes: 100 * MIB,
            max_partitions: 2400,
            max_compacted_partitions: 120,
            max_groups: 500,
        }
    }
}

/// Per-tenant overrides; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaOverrides {
    /// Overrides [`QuotaConfig::tenant_write`].
    pub tenant_write: Option<u64>,
    /// Overrides [`QuotaConfig::tenant_read`].
    pub tenant_read: Option<u64>,
    /// Overrides [`QuotaConfig::partition_write`].
    pub partition_write: Option<u64>,
    /// Overrides [`QuotaConfig::partition_read`].
    pub partition_read: Option<u64>,
    /// Overrides [`QuotaConfig::partition_mutations_per_5min`].
    pub partition_mutations_per_5min: Option<u64>,
    /// Overrides [`QuotaConfig::request_rate`].
    pub request_rate: Option<u64>,
    /// Overrides [`QuotaConfig::connection_rate`].
    pub connection_rate: Option<u64>,
    /// Overrides [`QuotaConfig::max_connections`].
    pub max_connections: Option<u64>,
    /// Overrides [`QuotaConfig::max_message_bytes`].
    pub max_message_bytes: Option<u64>,
    /// Overrides [`QuotaConfig::max_request_bytes`].
    pub max_request_bytes: Option<u64>,
    /// Overrides [`QuotaConfig::max_partitions`].
    pub max_partitions: Option<u64>,
    /// Overrides [`QuotaConfig::max_compacted_partitions`].
    pub max_compacted_partitions: Option<u64>,
    /// Overrides [`QuotaConfig::max_groups`].
    pub max_groups: Option<u64>,
}

impl QuotaConfig {
    /// This config with `o`'s values where set.
    pub fn with(self, o: &QuotaOverrides) -> Self {
        Self {
            tenant_write: o.tenant_write.unwrap_or(self.tenant_write),
            tenant_read: o.tenant_read.unwrap_or(self.tenant_read),
            partition_write: o.partition_write.unwrap_or(self.partition_write),
            partition_read: o.partition_read.unwrap_or(self.partition_read),
            partition_mutations_per_5min: o.partition_mutations_per_5min.unwrap_or(self.partition_mutations_per_5min),
            request_rate: o.request_rate.unwrap_or(self.request_rate),
            connection_rate: o.connection_rate.unwrap_or(self.connection_rate),
            max_connections: o.max_connections.unwrap_or(self.max_connections),
            max_message_bytes: o.max_message_bytes.unwrap_or(self.max_message_bytes),
            max_request_bytes: o.max_request_bytes.unwrap_or(self.max_request_bytes),
            max_partitions: o.max_partitions.unwrap_or(self.max_partitions),
            max_compacted_partitions: o.max_compacted_partitions.unwrap_or(self.max_compacted_partitions),
            max_groups: o.max_groups.unwrap_or(self.max_groups),
        }
    }

    /// Fails for a rate below 1 KiB/s or above 4 TiB/s, naming it.
    pub fn validate(&self) -> Result<(), QuotaError> {
        for (name, rate) in [
            ("tenant_write", self.tenant_write),
            ("tenant_read", self.tenant_read),
            ("partition_write", self.partition_write),
            ("partition_read", self.partition_read),
        ] {
            if cells_per_sec(rate).is_none() {
                return Err(QuotaError::Rate { name, rate });
            }
        }
        for (name, count) in [
            ("partition_mutations_per_5min", self.partition_mutations_per_5min),
            ("request_rate", self.request_rate),
            ("connection_rate", self.connection_rate),
            ("max_connections", self.max_connections),
            ("max_message_bytes", self.max_message_bytes),
            ("max_request_bytes", self.max_request_bytes),
            ("max_partitions", self.max_partitions),
            ("max_compacted_partitions", self.max_compacted_partitions),
            ("max_groups", self.max_groups),
        ] {
            if count == 0 || u32::try_from(count).is_err() {
                return Err(QuotaError::Count { name, value: count });
            }
        }
        Ok(())
    }
}

/// A quota that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// Rates are counted in KiB per second with a 32-bit burst.
    #[error("{name} = {rate} bytes/s: byte rates must be between 1 KiB/s and 4 TiB/s")]
    Rate {
        /// Which rate.
        name: &'static str,
        /// The bad value.
        rate: u64,
    },
    /// Counts are between 1 and 2^32 - 1.
    #[error("{name} = {value}: must be between 1 and 4294967295")]
    Count {
        /// Which limit.
        name: &'static str,
        /// The bad value.
        value: u64,
    },
}

fn cells_per_sec(rate: u64) -> Option<NonZeroU32> {
    u32::try_from(rate / CELL_BYTES).ok().and_then(NonZeroU32::new)
}

/// `bytes` in cells, the remainder rounded up with probability remainder / cell size, so
/// charges are exact on average: always rounding up charged a 15 570-byte batch 16 KiB,
/// which held clients at 95% of their quota.
fn cells(bytes: u64) -> u64 {
    let (whole, rest) = (bytes / CELL_BYTES, bytes % CELL_BYTES);
    if rest == 0 {
        return whole;
    }
    whole + u64::from(random_below(CELL_BYTES) < rest)
}

/// A uniform number below `n` from a per-thread xorshift generator (statistical use only).
fn random_below(n: u64) -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
            let addr = &seed as *const u64 as u64;
            (seed ^ addr.rotate_left(32)) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x % n
    })
}

/// The limiter quota for `rate` bytes/s: one cell per 1/rate, burst of one second.
fn quota(rate: u64) -> Result<(Quota, NonZeroU32), QuotaError> {
    let per_sec = cells_per_sec(rate).ok_or(QuotaError::Rate { name: "rate", rate })?;
    let period = Duration::from_nanos((1_000_000_000 / u64::from(per_sec.get())).max(1));
    let q = Quota::with_period(period).ok_or(QuotaError::Rate { name: "rate", rate })?.allow_burst(per_sec);
    Ok((q, per_sec))
}

/// Fixed-point 1.0 for [`FleetShare`] shares.
const SHARE_ONE: u64 = 1 << 16;

/// This instance's part of a tenant's byte rates when several gateways serve it (SPEC 7:
/// instances exchange demand through the pool and re-split the quota every second). The
/// tenant limiters keep the whole rate and their state; a share below 1 charges each byte
/// as `1 / share` bytes, so the instance admits `share` of the quota and a new share
/// applies at once without resetting any limiter. Also counts what this instance admitted
/// and how long it throttled the tenant, which is the demand it publishes.
#[derive(Debug)]
pub struct FleetShare {
    /// Per direction (write, read): share × 2^16.
    share: [std::sync::atomic::AtomicU64; 2],
    /// Per direction: bytes charged since the last [`FleetShare::take_demand`].
    bytes: [std::sync::atomic::AtomicU64; 2],
    /// Per direction: milliseconds of tenant-limiter throttle reported since then.
    throttled_ms: [std::sync::atomic::AtomicU64; 2],
}

impl Default for FleetShare {
    fn default() -> Self {
        use std::sync::atomic::AtomicU64;
        Self {
            share: [AtomicU64::new(SHARE_ONE), AtomicU64::new(SHARE_ONE)],
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
            throttled_ms: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Write => 0,
        Direction::Read => 1,
    }
}

impl FleetShare {
    /// Sets this instance's share of the tenant's `direction` rate (clamped to 1/64..=1).
    pub fn set(&self, direction: Direction, share: f64) {
        let fixed = (share.clamp(1.0 / 64.0, 1.0) * SHARE_ONE as f64).round() as u64;
        self.share[dir_index(direction)].store(fixed.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The current share.
    pub fn get(&self, direction: Direction) -> f64 {
        self.share[dir_index(direction)].load(std::sync::atomic::Ordering::Relaxed) as f64 / SHARE_ONE as f64
    }

    /// Bytes admitted and throttle milliseconds since the last call, and resets them.
    pub fn take_demand(&self, direction: Direction) -> (u64, u64) {
        let i = dir_index(direction);
        let o = std::sync::atomic::Ordering::Relaxed;
        (self.bytes[i].swap(0, o), self.throttled_ms[i].swap(0, o))
    }

    /// `cells` scaled by 1 / share.
    fn scale(&self, direction: Direction, cells: u64) -> u64 {
        let share = self.share[dir_index(direction)].load(std::sync::atomic::Ordering::Relaxed).max(1);
        if share >= SHARE_ONE {
            return cells;
        }
        (u128::from(cells) * u128::from(SHARE_ONE)).div_ceil(u128::from(share)).min(u128::from(u64::MAX)) as u64
    }

    fn record(&self, direction: Direction, bytes: u64, throttle: Duration) {
        let i = dir_index(direction);
        let o = std::sync::atomic::Ordering::Relaxed;
        self.bytes[i].fetch_add(bytes, o);
        if !throttle.is_zero() {
            self.throttled_ms[i].fetch_add(throttle.as_millis() as u64, o);
        }
    }
}

/// The limiters of one tenant.
pub struct TenantQuota {
    config: QuotaConfig,
    write: Arc<DefaultDirectRateLimiter>,
    read: Arc<DefaultDirectRateLimiter>,
    partition_write: Arc<DefaultKeyedRateLimiter<PartitionKey>>,
    partition_read: Arc<DefaultKeyedRateLimiter<PartitionKey>>,
    /// Largest chunk each limiter can take at once (its burst).
    bursts: [NonZeroU32; 4],
    mutations: DefaultDirectRateLimiter,
    requests: DefaultDirectRateLimiter,
    connections: DefaultDirectRateLimiter,
    /// This instance's share of the tenant rates (kept across limiter rebuilds).
    fleet: Arc<FleetShare>,
}

/// A limiter of `count` events per `window`, with the whole window as its burst.
fn count_limiter(count: u64, window: Duration) -> Result<DefaultDirectRateLimiter, QuotaError> {
    let n = u32::try_from(count).ok().and_then(NonZeroU32::new).ok_or(QuotaError::Count { name: "count", value: count })?;
    let period = (window / n.get()).max(Duration::from_nanos(1));
    let q = Quota::with_period(period).ok_or(QuotaError::Count { name: "count", value: count })?.allow_burst(n);
    Ok(DefaultDirectRateLimiter::direct(q))
}

/// The process's clock for computing waits. `DefaultClock::default()` builds a new quanta
/// clock, which calibrates (CPUID traps to the hypervisor on VMs): 17 µs per call, which
/// made every throttled charge cost ~58 µs.
fn clock() -> &'static DefaultClock {
    static CLOCK: std::sync::OnceLock<DefaultClock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(DefaultClock::default)
}

/// Turns a limiter check into Ok or the wait until it would pass.
fn admit(outcome: Result<Result<(), governor::NotUntil<governor::clock::QuantaInstant>>, governor::InsufficientCapacity>) -> Result<(), Duration> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(not_until.wait_time_from(clock().now())),
        // More than the whole window at once: never admissible; report a window.
        Err(_) => Err(Duration::from_secs(1)),
    }
}

impl std::fmt::Debug for TenantQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantQuota").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Which of a tenant's limiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Tenant(Direction),
    Partition(Direction),
}

impl Which {
    fn index(self) -> usize {
        match self {
            Which::Tenant(Direction::Write) => 0,
            Which::Tenant(Direction::Read) => 1,
            Which::Partition(Direction::Write) => 2,
            Which::Partition(Direction::Read) => 3,
        }
    }
}

impl TenantQuota {
    /// Limiters for `config`. Fails for rates [`QuotaConfig::validate`] refuses.
    pub fn new(config: QuotaConfig) -> Result<Self, QuotaError> {
        config.validate()?;
        let (tw, tw_b) = quota(config.tenant_write)?;
        let (tr, tr_b) = quota(config.tenant_read)?;
        let (pw, pw_b) = quota(config.partition_write)?;
        let (pr, pr_b) = quota(config.partition_read)?;
        Ok(Self {
            config,
            write: Arc::new(DefaultDirectRateLimiter::direct(tw)),
            read: Arc::new(DefaultDirectRateLimiter::direct(tr)),
            partition_write: Arc::new(DefaultKeyedRateLimiter::dashmap(pw)),
            partition_read: Arc::new(DefaultKeyedRateLimiter::dashmap(pr)),
            bursts: [tw_b, tr_b, pw_b, pr_b],
            mutations: count_limiter(config.partition_mutations_per_5min, Duration::from_secs(300))?,
            requests: count_limiter(config.request_rate, Duration::from_secs(1))?,
            connections: count_limiter(config.connection_rate, Duration::from_secs(1))?,
            fleet: Arc::default(),
        })
    }

    /// This tenant's fleet share on this instance.
    pub fn fleet(&self) -> &Arc<FleetShare> {
        &self.fleet
    }

    /// KIP-599: `partitions` created or deleted. Admitted (Ok) while the budget lasts;
    /// otherwise the wait before it would be, for THROTTLING_QUOTA_EXCEEDED. A request for
    /// more than the whole budget is admitted when the budget is full.
    pub fn mutate(&self, partitions: u64) -> Result<(), Duration> {
        let n = partitions.clamp(1, self.config.partition_mutations_per_5min);
        let Some(n) = u32::try_from(n).ok().and_then(NonZeroU32::new) else { return Ok(()) };
        admit(self.mutations.check_n(n))
    }

    /// One request: `Ok` or how long the connection should be held (request rate).
    pub fn request(&self) -> Result<(), Duration> {
        admit(Ok(self.requests.check()))
    }

    /// One new connection: `Ok` or the wait before another would be allowed.
    pub fn connect(&self) -> Result<(), Duration> {
        admit(Ok(self.connections.check()))
    }

    /// The rates these limiters enforce.
    pub fn config(&self) -> &QuotaConfig {
        &self.config
    }

    fn limiter(&self, which: Which, key: Option<&PartitionKey>) -> Option<Owed> {
        Some(match which {
            Which::Tenant(Direction::Write) => Owed::Direct(self.write.clone()),
            Which::Tenant(Direction::Read) => Owed::Direct(self.read.clone()),
            Which::Partition(Direction::Write) => Owed::Keyed(self.partition_write.clone(), key?.clone()),
            Which::Partition(Direction::Read) => Owed::Keyed(self.partition_read.clone(), key?.clone()),
        })
    }

    /// Charges `parts` (partition, bytes) in `direction` against the partitions' and the
    /// tenant's limiters. Never refuses: the returned [`Charge`] says how long the client
    /// is throttled and holds what is still owed.
    pub fn charge(self: &Arc<Self>, direction: Direction, parts: impl IntoIterator<Item = (PartitionKey, u64)>) -> Charge {
        let mut charge = Charge::default();
        let mut total = 0u64;
        for (key, bytes) in parts {
            if bytes == 0 {
                continue;
            }
            total += bytes;
            let which = Which::Partition(direction);
            if let Some(to) = self.limiter(which, Some(&key)) {
                charge.take(to, self.bursts[which.index()], cells(bytes));
            }
        }
        if total > 0 {
            let which = Which::Tenant(direction);
            if let Some(to) = self.limiter(which, None) {
                let mut tenant = Charge::default();
                tenant.take(to, self.bursts[which.index()], self.fleet.scale(direction, cells(total)));
                self.fleet.record(direction, total, tenant.throttle);
                charge.merge(tenant);
            }
        }
        charge
    }

    /// How long the tenant must wait before it may read (or write) again; zero when it
    /// owes nothing. A fetch arriving while this is non-zero gets an empty, throttled
    /// answer (SPEC 7). Takes one cell when available.
    pub fn owed(&self, direction: Direction) -> Duration {
        let one = NonZeroU32::MIN;
        let outcome = match direction {
            Direction::Write => self.write.check_n(one),
            Direction::Read => self.read.check_n(one),
        };
        match outcome {
            Ok(Err(not_until)) => not_until.wait_time_from(clock().now()),
            _ => Duration::ZERO,
        }
    }

    /// Forgets partitions idle for long enough to be full again (keeps memory bounded).
    pub fn retain_recent(&self) {
        self.partition_write.retain_recent();
        self.partition_read.retain_recent();
    }
}

/// A limiter cells can be owed to.
enum Owed {
    Direct(Arc<DefaultDirectRateLimiter>),
    Keyed(Arc<DefaultKeyedRateLimiter<PartitionKey>>, PartitionKey),
}

impl Owed {
    fn check_n(&self, n: NonZeroU32) -> Result<Result<(), governor::NotUntil<governor::clock::QuantaInstant>>, governor::InsufficientCapacity> {
        match self {
            Owed::Direct(l) => l.check_n(n),
            Owed::Keyed(l, k) => l.check_key_n(k, n),
        }
    }

    async fn until_n_ready(&self, n: NonZeroU32) {
        // `n` never exceeds the burst, so InsufficientCapacity cannot happen.
        let _ = match self {
            Owed::Direct(l) => l.until_n_ready(n).await,
            Owed::Keyed(l, k) => l.until_key_n_ready(k, n).await,
        };
    }
}

/// Debts are paid in this many steps per burst.
const SETTLE_STEPS: u64 = 64;

/// Cells still owed to one limiter.
struct Debt {
    to: Owed,
    burst: NonZeroU32,
}

/// The outcome of a charge: the throttle time to report and what is still owed.
#[derive(Default)]
pub struct Charge {
    throttle: Duration,
    debts: Vec<(Debt, u64)>,
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Charge").field("throttle", &self.throttle).field("debts", &self.debts.len()).finish()
    }
}

impl Charge {
    /// A charge that only mutes the connection for `wait` (a throttled fetch answered
    /// empty): nothing is owed, but the client must not be read from before `wait`.
    pub fn mute(wait: Duration) -> Self {
        Self { throttle: wait, debts: Vec::new() }
    }

    /// Takes up to `n` cells from `to` now; what is left is owed, and the wait before the
    /// first owed cell could be taken (plus the rest at the limiter's rate) is the throttle.
    fn take(&mut self, to: Owed, burst: NonZeroU32, n: u64) {
        let burst_cells = u64::from(burst.get());
        let first = n.min(burst_cells);
        let Some(first_nz) = u32::try_from(first).ok().and_then(NonZeroU32::new) else { return };
        let rest = n - first;
        // The burst is one second of the rate, so it is also the rate in cells per second.
        let rest_time = Duration::from_nanos(rest.saturating_mul(1_000_000_000) / burst_cells.max(1));
        let (owed, wait) = match to.check_n(first_nz) {
            Ok(Ok(_)) => (rest, if rest > 0 { rest_time } else { Duration::ZERO }),
            Ok(Err(not_until)) => (n, not_until.wait_time_from(clock().now()) + rest_time),
            // Cannot happen (first <= burst); owe it all rather than fail the client.
            Err(_) => (n, rest_time),
        };
        self.throttle = self.throttle.max(wait);
        if owed > 0 {
            self.debts.push((Debt { to, burst }, owed));
        }
    }

    /// Adds another charge of the same request or connection.
    pub fn merge(&mut self, other: Charge) {
        self.throttle = self.throttle.max(other.throttle);
        self.debts.extend(other.debts);
    }

    /// The wait to report to the client.
    pub fn throttle(&self) -> Duration {
        self.throttle
    }

    /// The wait as Kafka's `throttle_time_ms` (rounded up, so a throttled client always
    /// sees a non-zero value).
    pub fn throttle_ms(&self) -> i32 {
        let ms = self.throttle.as_nanos().div_ceil(1_000_000);
        i32::try_from(ms).unwrap_or(i32::MAX)
    }

    /// Whether nothing is owed and nobody needs muting.
    pub fn is_free(&self) -> bool {
        self.throttle.is_zero() && self.debts.is_empty()
    }

    /// Waits until everything owed has been taken from the limiters (and at least the
    /// throttle time has passed): the connection must not read before this resolves.
    pub async fn settle(self) {
        let started = tokio::time::Instant::now();
        for (debt, mut owed) in self.debts {
            // Paid in steps of 1/64 of the burst (about 16 ms of the rate): a waiter for a
            // whole burst would need the bucket full, which never happens while other
            // connections of the tenant take small requests, so it starved (one connection
            // of a producer waited 17 s while the others kept the tenant at its quota).
            let step = (u64::from(debt.burst.get()) / SETTLE_STEPS).max(1);
            while owed > 0 {
                let n = owed.min(step);
                let Some(nz) = u32::try_from(n).ok().and_then(NonZeroU32::new) else { break };
                debt.to.until_n_ready(nz).await;
                owed -= n;
            }
        }
        let elapsed = started.elapsed();
        if elapsed < self.throttle {
            tokio::time::sleep(self.throttle - elapsed).await;
        }
    }
}

/// What a sub-quota limits (Kafka's client-quota keys, SPEC 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubKind {
    /// `producer_byte_rate`, bytes/s.
    Write,
    /// `consumer_byte_rate`, bytes/s.
    Read,
    /// `request_percentage`: percent of the tenant's request rate.
    Requests,
    /// `controller_mutation_rate`: partitions created or deleted per second.
    Mutations,
    /// `connection_creation_rate`: new connections per second.
    Connections,
}

/// One sub-quota limiter, shared by every connection of the same user and/or client id
/// (as Kafka shares a client quota). Its rate never exceeds the tenant's own limit: the
/// tenant's limiters apply as well, this one only narrows.
pub struct SubQuota {
    kind: SubKind,
    /// Events (or KiB cells) per `window`, after capping at the tenant's limit.
    count: u64,
    limiter: Arc<DefaultDirectRateLimiter>,
    burst: NonZeroU32,
}

impl std::fmt::Debug for SubQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubQuota").field("kind", &self.kind).field("count", &self.count).finish_non_exhaustive()
    }
}

impl SubQuota {
    /// The limiter for Kafka's `value` of `kind`, capped by the tenant's `ceiling`.
    fn new(kind: SubKind, value: f64, ceiling: &QuotaConfig) -> Result<Self, QuotaError> {
        let bad = || QuotaError::Rate { name: "client quota", rate: value.max(0.0) as u64 };
        if !(value.is_finite() && value > 0.0) {
            return Err(bad());
        }
        // (events per window, window) or KiB cells per second for byte rates.
        let (count, window) = match kind {
            SubKind::Write => ((value as u64).min(ceiling.tenant_write).max(CELL_BYTES) / CELL_BYTES, Duration::from_secs(1)),
            SubKind::Read => ((value as u64).min(ceiling.tenant_read).max(CELL_BYTES) / CELL_BYTES, Duration::from_secs(1)),
            SubKind::Requests => {
                let share = value.min(100.0) / 100.0;
                (((ceiling.request_rate as f64) * share).round().max(1.0) as u64, Duration::from_secs(1))
            }
            SubKind::Mutations => {
                let per_5min = (value * 300.0).ceil().max(1.0) as u64;
                (per_5min.min(ceiling.partition_mutations_per_5min), Duration::from_secs(300))
            }
            SubKind::Connections => ((value.ceil().max(1.0) as u64).min(ceiling.connection_rate), Duration::from_secs(1)),
        };
        let burst = u32::try_from(count).ok().and_then(NonZeroU32::new).ok_or_else(bad)?;
        let limiter = count_limiter(count, window)?;
        Ok(Self { kind, count, limiter: Arc::new(limiter), burst })
    }

    /// What this limits.
    pub fn kind(&self) -> SubKind {
        self.kind
    }

    /// Charges `bytes` (for [`SubKind::Write`] and [`SubKind::Read`]) like the tenant's
    /// limiters: never refused, the rest owed and the wait reported.
    pub fn charge(&self, bytes: u64) -> Charge {
        let mut charge = Charge::default();
        if bytes > 0 {
            charge.take(Owed::Direct(self.limiter.clone()), self.burst, cells(bytes));
        }
        charge
    }

    /// `n` events (requests, partition mutations, connections): `Ok` or the wait before
    /// they would be admitted. More than the whole budget is admitted when it is full.
    pub fn check(&self, n: u64) -> Result<(), Duration> {
        let n = n.clamp(1, self.count);
        let Some(n) = u32::try_from(n).ok().and_then(NonZeroU32::new) else { return Ok(()) };
        admit(self.limiter.check_n(n))
    }
}

/// Every tenant's limiters, built on first use and rebuilt when its rates change.
pub struct Quotas {
    /// Replaced by [`Quotas::set_defaults`] (config reload).
    defaults: std::sync::RwLock<QuotaConfig>,
    /// Bumped by every change of the defaults, so holders of limiters know to look again.
    generation: std::sync::atomic::AtomicU64,
    tenants: DashMap<String, Arc<TenantQuota>>,
    /// Fleet shares per tenant, kept when a tenant's limiters are rebuilt.
    fleet: DashMap<String, Arc<FleetShare>>,
    /// Sub-quota limiters by (tenant, kind, group); dropped once no connection holds them.
    subs: DashMap<(String, SubKind, String), Arc<SubQuota>>,
}

impl Quotas {
    /// Quotas with these defaults. Fails for defaults [`QuotaConfig::validate`] refuses.
    pub fn new(defaults: QuotaConfig) -> Result<Self, QuotaError> {
        defaults.validate()?;
        Ok(Self {
            defaults: std::sync::RwLock::new(defaults),
            generation: Default::default(),
            tenants: DashMap::new(),
            fleet: DashMap::new(),
            subs: DashMap::new(),
        })
    }

    /// The defaults.
    pub fn defaults(&self) -> QuotaConfig {
        self.defaults.read().map(|d| *d).unwrap_or_else(|poisoned| *poisoned.into_inner())
    }

    /// New defaults (config reload). Tenants get limiters with the new rates the next time
    /// they are looked up ([`Quotas::generation`] says when to); their fleet shares stay.
    /// Refuses defaults [`QuotaConfig::validate`] refuses, keeping the old ones.
    pub fn set_defaults(&self, defaults: QuotaConfig) -> Result<(), QuotaError> {
        defaults.validate()?;
        match self.defaults.write() {
            Ok(mut d) => *d = defaults,
            Err(poisoned) => *poisoned.into_inner() = defaults,
        }
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Changes with every [`Quotas::set_defaults`].
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The limiters of `tenant` with `overrides` applied. The same limiters are returned
    /// while the rates stay the same; changed rates (or invalid overrides, which fall back
    /// to the defaults) get new limiters.
    pub fn tenant(&self, tenant: &str, overrides: &QuotaOverrides) -> Arc<TenantQuota> {
        let defaults = self.defaults();
        let mut wanted = defaults.with(overrides);
        if wanted.validate().is_err() {
            wanted = defaults;
        }
        if let Some(q) = self.tenants.get(tenant) {
            if q.config == wanted {
                return q.clone();
            }
        }
        // Validated above; the defaults were validated in `new`.
        let fleet = self.fleet.entry(tenant.to_owned()).or_default().clone();
        let fresh = match TenantQuota::new(wanted) {
            Ok(q) => Arc::new(TenantQuota { fleet, ..q }),
            Err(_) => return self.tenants.get(tenant).map(|q| q.clone()).unwrap_or_else(|| self.fallback()),
        };
        self.tenants.insert(tenant.to_owned(), fresh.clone());
        fresh
    }

    /// Every tenant this instance has limiters for: its config and fleet share.
    pub fn fleet_view(&self) -> Vec<(String, QuotaConfig, Arc<FleetShare>)> {
        self.tenants.iter().map(|e| (e.key().clone(), e.value().config, e.value().fleet.clone())).collect()
    }

    fn fallback(&self) -> Arc<TenantQuota> {
        // Only reachable if validated defaults fail to build, which `new` rules out.
        Arc::new(TenantQuota::new(QuotaConfig::default()).unwrap_or_else(|_| unreachable!("default quotas are valid")))
    }

    /// The sub-quota limiter `group` of `tenant` shares for Kafka's `value` of `kind`,
    /// capped by the tenant's limits (`ceiling`). The same limiter is returned while the
    /// value and ceiling stay the same. `None` for a value that cannot be a rate (the
    /// store refuses those).
    pub fn sub(&self, tenant: &str, kind: SubKind, group: &str, value: f64, ceiling: &QuotaConfig) -> Option<Arc<SubQuota>> {
        let fresh = SubQuota::new(kind, value, ceiling).ok()?;
        let key = (tenant.to_owned(), kind, group.to_owned());
        if let Some(q) = self.subs.get(&key) {
            if q.count == fresh.count {
                return Some(q.clone());
            }
        }
        let fresh = Arc::new(fresh);
        self.subs.insert(key, fresh.clone());
        Some(fresh)
    }

    /// Forgets idle partitions of every tenant and sub-quotas no connection holds; call
    /// periodically.
    pub fn retain_recent(&self) {
        for q in self.tenants.iter() {
            q.retain_recent();
        }
        self.subs.retain(|_, q| Arc::strong_count(q) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;

    fn small() -> QuotaConfig {
        QuotaConfig {
            tenant_write: 8 * MIB,
            tenant_read: 8 * MIB,
            partition_write: MIB,
            partition_read: 2 * MIB,
            partition_mutations_per_5min: 10,
            request_rate: 5,
            connection_rate: 2,
            ..QuotaConfig::default()
        }
    }

    #[test]
    fn mutations_requests_and_connections_are_counted() {
        let q = TenantQuota::new(small()).unwrap();
        assert!(q.mutate(6).is_ok());
        assert!(q.mutate(4).is_ok());
        let wait = q.mutate(1).unwrap_err();
        // One mutation per 30 s comes back.
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30), "{wait:?}");
        // Asking for more than the whole budget is admitted only with a full budget.
        let fresh = TenantQuota::new(small()).unwrap();
        assert!(fresh.mutate(100).is_ok());
        assert!(fresh.mutate(1).is_err());
        for _ in 0..5 {
            assert!(q.request().is_ok());
        }
        assert!(q.request().is_err());
        assert!(q.connect().is_ok() && q.connect().is_ok());
        assert!(q.connect().is_err());
    }

    fn key(t: &str, p: i32) -> PartitionKey {
        (Bytes::copy_from_slice(t.as_bytes()), p)
    }

    #[test]
    fn within_the_burst_nothing_is_throttled() {
        let q = Arc::new(TenantQuota::new(small()).unwrap());
        let c = q.charge(Direction::Write, [(key("t", 0), 512 * KIB)]);
        assert!(c.is_free(), "{c:?}");
        assert_eq!(c.throttle_ms(), 0);
    }

    #[test]
    fn crossing_the_partition_quota_throttles_by_the_excess() {
        let q = Arc::new(TenantQuota::new(small()).unwrap());
        // The burst (1 s = 1 MiB) is used up, then another 512 KiB is owed: ~0.5 s.
        assert!(q.charge(Direction::Write, [(key("t", 0), MIB)]).is_free());
        let c = q.charge(Direction::Write, [(key("t", 0), 512 * KIB)]);
        let ms = c.throttle_ms();
        assert!((450..=560).contains(&ms), "throttle {ms} ms");
        // Another partition is not affected.
        assert!(q.charge(Direction::Write, [(key("t", 1), 512 * KIB)]).is_free());
    }

    #[test]
    fn a_request_larger_than_the_burst_is_charged_in_chunks() {
        let q = Arc::new(TenantQuota::new(small()).unwrap());
        // 3 MiB to one partition of 1 MiB/s: 1 MiB now, 2 MiB owed = ~2 s.
        let c = q.charge(Direction::Write, [(key("t", 0), 3 * MIB)]);
        let ms = c.throttle_ms();
        assert!((1900..=2100).contains(&ms), "throttle {ms} ms");
    }

    #[test]
    fn the_tenant_quota_covers_all_partitions() {
        let q = Arc::new(TenantQuota::new(small()).unwrap());
        // 16 partitions × 768 KiB = 12 MiB against a tenant burst of 8 MiB: ~0.5 s.
        let parts: Vec<_> = (0..16).map(|p| (key("t", p), 768 * KIB)).collect();
        let c = q.charge(Direction::Write, parts);
        let ms = c.throttle_ms();
        assert!((450..=560).contains(&ms), "throttle {ms} ms");
    }

    #[test]
    fn reads_and_writes_are_separate() {
        let q = Arc::new(TenantQuota::new(small()).unwrap());
        assert!(q.charge(Direction::Write, [(key("t", 0), MIB)]).is_free());
        assert!(q.charge(Direction::Read, [(key("t", 0), MIB)]).is_free());
        assert_eq!(q.owed(Direction::Read), Duration::ZERO);
    }

    #[tokio::test]
    async fn settling_waits_for_the_debt_and_then_the_rate_holds() {
        let q = Arc::new(TenantQuota::new(small()).unwrap());
        let started = std::time::Instant::now();
        let mut sent = 0u64;
        // Push 2x the partition quota for ~1.5 s of owed time; settle each time, as the
        // connection does before reading the next request.
        while sent < 3 * MIB {
            let c = q.charge(Direction::Write, [(key("t", 0), 256 * KIB)]);
            sent += 256 * KIB;
            c.settle().await;
        }
        let secs = started.elapsed().as_secs_f64();
        // 3 MiB at 1 MiB/s with a 1 MiB burst: about 2 s.
        assert!((1.8..2.4).contains(&secs), "{secs} s");
    }

    #[tokio::test]
    async fn a_large_debt_is_not_starved_by_small_requests_of_the_same_tenant() {
        // The tenant limit binds (4 MiB/s), partitions do not. One connection owes 1 MiB
        // beyond the burst; three others keep sending 64 KiB requests for 3 s. Sharing the
        // rate four ways, the debt is paid in about 1 s; waiting for a whole burst to be
        // free, it waited until the others stopped.
        let config = QuotaConfig { tenant_write: 4 * MIB, partition_write: 64 * MIB, ..small() };
        let q = Arc::new(TenantQuota::new(config).unwrap());
        let started = std::time::Instant::now();
        let big = q.charge(Direction::Write, [(key("t", 0), 5 * MIB)]);
        let mut others = tokio::task::JoinSet::new();
        for p in 1..4 {
            let q = q.clone();
            others.spawn(async move {
                while started.elapsed() < Duration::from_secs(3) {
                    q.charge(Direction::Write, [(key("t", p), 64 * KIB)]).settle().await;
                }
            });
        }
        big.settle().await;
        let paid_after = started.elapsed();
        others.join_all().await;
        assert!(paid_after < Duration::from_millis(2500), "the debt was paid after {paid_after:?}");
    }

    #[test]
    fn quota_changes_rebuild_the_limiters() {
        let quotas = Quotas::new(small()).unwrap();
        let a = quotas.tenant("acme", &QuotaOverrides::default());
        let same = quotas.tenant("acme", &QuotaOverrides::default());
        assert!(Arc::ptr_eq(&a, &same));
        let faster = quotas.tenant("acme", &QuotaOverrides { partition_write: Some(4 * MIB), ..Default::default() });
        assert!(!Arc::ptr_eq(&a, &faster));
        assert_eq!(faster.config().partition_write, 4 * MIB);
        // Invalid overrides fall back to the defaults rather than failing a connection.
        let bad = quotas.tenant("acme", &QuotaOverrides { tenant_write: Some(1), ..Default::default() });
        assert_eq!(bad.config(), &small());
    }

    #[test]
    fn new_defaults_reach_tenants_without_an_override_and_keep_fleet_shares() {
        let quotas = Quotas::new(small()).unwrap();
        let before = quotas.tenant("acme", &QuotaOverrides::default());
        before.fleet().set(Direction::Write, 0.5);
        let pinned = quotas.tenant("pinned", &QuotaOverrides { tenant_write: Some(4 * MIB), ..Default::default() });
        let generation = quotas.generation();
        let lower = QuotaConfig { tenant_write: 2 * MIB, ..small() };
        quotas.set_defaults(lower).unwrap();
        assert_ne!(quotas.generation(), generation);
        let after = quotas.tenant("acme", &QuotaOverrides::default());
        assert_eq!(after.config().tenant_write, 2 * MIB);
        assert_eq!(after.fleet().get(Direction::Write), 0.5);
        // A tenant's own override still wins over the new default.
        let still = quotas.tenant("pinned", &QuotaOverrides { tenant_write: Some(4 * MIB), ..Default::default() });
        assert_eq!((still.config().tenant_write, pinned.config().tenant_write), (4 * MIB, 4 * MIB));
        // Invalid defaults are refused and change nothing.
        let generation = quotas.generation();
        assert!(quotas.set_defaults(QuotaConfig { tenant_write: 1, ..small() }).is_err());
        assert_eq!((quotas.generation(), quotas.defaults()), (generation, lower));
    }

    #[test]
    fn sub_quotas_narrow_within_the_tenant_ceiling() {
        let quotas = Quotas::new(small()).unwrap();
        let ceiling = small();
        // 256 KiB/s for one client: the burst passes, the next 256 KiB owes ~1 s.
        let w = quotas.sub("acme", SubKind::Write, "c=app", 256.0 * KIB as f64, &ceiling).unwrap();
        assert!(w.charge(256 * KIB).is_free());
        let ms = w.charge(256 * KIB).throttle_ms();
        assert!((900..=1100).contains(&ms), "throttle {ms} ms");
        // The same group gets the same limiter; another group its own.
        let same = quotas.sub("acme", SubKind::Write, "c=app", 256.0 * KIB as f64, &ceiling).unwrap();
        assert!(Arc::ptr_eq(&w, &same));
        let other = quotas.sub("acme", SubKind::Write, "c=other", 256.0 * KIB as f64, &ceiling).unwrap();
        assert!(other.charge(256 * KIB).is_free());
        // Above the tenant's ceiling it is capped at the ceiling (8 MiB/s here).
        let big = quotas.sub("acme", SubKind::Write, "c=big", 1e12, &ceiling).unwrap();
        assert_eq!(big.count, 8 * 1024);
        // 40% of 5 requests/s = 2/s.
        let r = quotas.sub("acme", SubKind::Requests, "u=alice", 40.0, &ceiling).unwrap();
        assert!(r.check(1).is_ok() && r.check(1).is_ok());
        assert!(r.check(1).is_err());
        // 0.01 mutations/s = 3 per 5 min.
        let m = quotas.sub("acme", SubKind::Mutations, "u=alice", 0.01, &ceiling).unwrap();
        assert!(m.check(3).is_ok());
        assert!(m.check(1).is_err());
        assert!(quotas.sub("acme", SubKind::Connections, "u=alice", f64::NAN, &ceiling).is_none());
        // Limiters nobody holds are forgotten.
        drop((w, same, other, big, r, m));
        quotas.retain_recent();
        assert!(quotas.subs.is_empty());
    }

    #[test]
    fn a_fleet_share_scales_the_tenant_rate_and_survives_rebuilds() {
        let quotas = Quotas::new(small()).unwrap();
        let q = quotas.tenant("acme", &QuotaOverrides::default());
        q.fleet().set(Direction::Write, 0.25);
        // 8 MiB/s tenant burst at a quarter share: 2 MiB pass free, the next 2 MiB owe
        // 2 MiB × 4 = 8 MiB of tenant time, about 1 s.
        let parts: Vec<_> = (0..2).map(|p| (key("t", p), MIB)).collect();
        assert!(q.charge(Direction::Write, parts).is_free());
        let parts: Vec<_> = (2..4).map(|p| (key("t", p), MIB)).collect();
        let ms = q.charge(Direction::Write, parts).throttle_ms();
        assert!((900..=1100).contains(&ms), "throttle {ms} ms");
        assert_eq!(q.fleet().take_demand(Direction::Write).0, 4 * MIB);
        assert_eq!(q.fleet().take_demand(Direction::Write), (0, 0));
        // Reads are untouched; a rebuilt tenant keeps its share.
        assert_eq!(q.fleet().get(Direction::Read), 1.0);
        let rebuilt = quotas.tenant("acme", &QuotaOverrides { partition_write: Some(4 * MIB), ..Default::default() });
        assert!(!Arc::ptr_eq(&q, &rebuilt));
        assert_eq!(rebuilt.fleet().get(Direction::Write), 0.25);
    }

    #[test]
    fn charges_are_exact_on_average() {
        // 10 000 batches of 15 570 bytes: about 152 051 KiB, not 160 000.
        let total: u64 = (0..10_000).map(|_| cells(15_570)).sum();
        let exact = 10_000.0 * 15_570.0 / 1024.0;
        assert!((total as f64 / exact - 1.0).abs() < 0.002, "{total} cells vs {exact}");
        assert_eq!(cells(2048), 2);
        assert!((0..1000).map(|_| cells(1)).sum::<u64>() < 20);
    }

    #[test]
    fn invalid_rates_are_named() {
        let err = QuotaConfig { partition_read: 10, ..small() }.validate().unwrap_err();
        assert!(err.to_string().contains("partition_read"), "{err}");
        assert!(TenantQuota::new(QuotaConfig { tenant_write: u64::MAX, ..small() }).is_err());
    }
}
