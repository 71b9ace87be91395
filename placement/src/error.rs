//! The crate's one error type: why a cluster description or a placement request was refused.

/// Why [`plan`](crate::plan) or [`place_new`](crate::place_new) refused its input.
///
/// The planner never guesses around inconsistent input: a duplicate broker id or a partition
/// whose leader is not one of its replicas means the caller's view of the pool is wrong, and a
/// plan computed from it could move data for nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    /// Two brokers in [`ClusterState::brokers`](crate::ClusterState::brokers) share an id.
    #[error("broker {0} is listed twice")]
    DuplicateBroker(i32),
    /// A broker capacity is zero, negative or NaN.
    #[error(
        "broker {broker} has an invalid capacity (must be > 0; use f64::INFINITY for unknown)"
    )]
    InvalidCapacity {
        /// The broker at fault.
        broker: i32,
    },
    /// A partition is malformed (empty or duplicated replicas, unknown leader, bad byte rates,
    /// or listed twice).
    #[error("partition {topic}-{partition}: {reason}")]
    InvalidPartition {
        /// Pool topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// What is wrong, for the operator.
        reason: &'static str,
    },
    /// `partitions` or `replication_factor` of a placement request is below 1.
    #[error("invalid placement request: {0}")]
    InvalidRequest(&'static str),
    /// Fewer live, non-draining brokers than the replication factor.
    #[error("replication factor {replication_factor} needs as many live, non-draining brokers, but only {eligible} are available")]
    NotEnoughBrokers {
        /// Live brokers not being drained.
        eligible: usize,
        /// The requested replication factor.
        replication_factor: i32,
    },
}
