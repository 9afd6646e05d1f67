//! The crate's one error type. Every error comes from configuration or endpoint data handed to
//! the balancer at build time (never from a pick), so none of them is retryable: the control
//! plane must send a corrected resource (a NACK in xDS terms).

/// Why a configuration or an endpoint set was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// `healthy_panic_threshold` is not a percentage.
    #[error("healthy_panic_threshold {0} is outside [0, 100]; use 0 to disable panic mode")]
    PanicThresholdOutOfRange(f64),
    /// `overprovisioning_factor` is zero.
    #[error("overprovisioning_factor must be greater than 0 (140 means 1.4, Envoy's default)")]
    ZeroOverprovisioningFactor,
    /// A ring size exceeds the proto bound.
    #[error("ring hash {field} {value} exceeds the limit of 8388608")]
    RingSizeTooLarge {
        /// `minimum_ring_size` or `maximum_ring_size`.
        field: &'static str,
        /// The rejected value.
        value: u64,
    },
    /// `minimum_ring_size > maximum_ring_size` (Envoy's constructor check).
    #[error("ring hash: minimum_ring_size ({minimum}) > maximum_ring_size ({maximum})")]
    RingSizeInverted {
        /// The configured minimum.
        minimum: u64,
        /// The configured maximum.
        maximum: u64,
    },
    /// The Maglev table size is not prime.
    #[error("the table size of maglev must be prime number, got {0} (65537 is Envoy's default)")]
    MaglevTableNotPrime(u64),
    /// The Maglev table size exceeds the proto bound.
    #[error("maglev table_size {0} exceeds the limit of 5000011")]
    MaglevTableTooLarge(u64),
    /// `choice_count` below 2.
    #[error("least request choice_count {0} must be at least 2")]
    ChoiceCountTooSmall(u32),
    /// A host has `load_balancing_weight` 0 (EDS requires at least 1).
    #[error(
        "host {address} at priority {priority} has load_balancing_weight 0; weights start at 1"
    )]
    ZeroHostWeight {
        /// The host's address.
        address: String,
        /// Its priority.
        priority: u32,
    },
    /// The host weights of one priority sum past `u32::MAX` (Envoy's `validateEndpoints`).
    #[error("the host weights of priority {0} sum to more than 4294967295")]
    PriorityWeightOverflow(u32),
    /// The locality weights of one priority sum past `u32::MAX`.
    #[error("the locality weights of priority {0} sum to more than 4294967295")]
    LocalityWeightOverflow(u32),
    /// More hosts than a `u32` index can address.
    #[error("too many hosts: {0} (at most 4294967295)")]
    TooManyHosts(usize),
}
