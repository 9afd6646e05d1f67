//! Load balancer configuration: the subset of Envoy's `Cluster` that shapes host selection, with
//! Envoy's defaults and proto bounds, checked once by [`LbConfig::validate`].

use crate::error::Error;

/// Envoy's default `overprovisioning_factor` (`ClusterLoadAssignment.Policy`): 140, i.e. 1.4.
pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;
/// Envoy's default `CommonLbConfig.healthy_panic_threshold`: 50%.
pub const DEFAULT_HEALTHY_PANIC_THRESHOLD: f64 = 50.0;
/// Envoy's default `RingHashLbConfig.minimum_ring_size`.
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
/// Envoy's default `RingHashLbConfig.maximum_ring_size` (8M).
pub const DEFAULT_MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
/// Upper bound of both ring sizes in `cluster.proto` (`lte: 8388608`).
pub const MAX_RING_SIZE_LIMIT: u64 = 8_388_608;
/// Envoy's default `MaglevLbConfig.table_size` (the paper's recommendation, a prime).
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;
/// Upper bound of `MaglevLbConfig.table_size` in `cluster.proto` (`lte: 5000011`).
pub const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;
/// Envoy's default `LeastRequestLbConfig.choice_count`.
pub const DEFAULT_CHOICE_COUNT: u32 = 2;

/// Cluster-level load balancing configuration (`Cluster.lb_policy`, the policy's own config,
/// `CommonLbConfig` and the load assignment's `Policy`).
#[derive(Debug, Clone, PartialEq)]
pub struct LbConfig {
    /// `Cluster.lb_policy` and its policy-specific configuration.
    pub policy: LbPolicy,
    /// `CommonLbConfig.healthy_panic_threshold`, a percentage in `[0, 100]`; Envoy rounds it to
    /// an integer percent. `0` disables panic mode.
    pub healthy_panic_threshold: f64,
    /// `ClusterLoadAssignment.Policy.overprovisioning_factor`, in percent (140 = 1.4). Must be > 0.
    pub overprovisioning_factor: u32,
    /// `ClusterLoadAssignment.Policy.weighted_priority_health`: compute priority health from host
    /// weights instead of host counts.
    pub weighted_priority_health: bool,
    /// `CommonLbConfig.locality_weighted_lb_config` is set: pick a locality by its effective
    /// weight before picking a host inside it.
    pub locality_weighted: bool,
}

impl Default for LbConfig {
    fn default() -> Self {
        Self {
            policy: LbPolicy::RoundRobin,
            healthy_panic_threshold: DEFAULT_HEALTHY_PANIC_THRESHOLD,
            overprovisioning_factor: DEFAULT_OVERPROVISIONING_FACTOR,
            weighted_priority_health: false,
            locality_weighted: false,
        }
    }
}

impl LbConfig {
    /// A configuration with Envoy's defaults and the given policy.
    pub fn new(policy: LbPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Checks every field against Envoy's proto constraints and constructor checks, once, so that
    /// building and picking never meet an invalid value.
    pub fn validate(self) -> Result<ValidLbConfig, Error> {
        let threshold = self.healthy_panic_threshold;
        if !(0.0..=100.0).contains(&threshold) {
            return Err(Error::PanicThresholdOutOfRange(threshold));
        }
        if self.overprovisioning_factor == 0 {
            return Err(Error::ZeroOverprovisioningFactor);
        }
        match &self.policy {
            LbPolicy::RingHash(ring) => ring.validate()?,
            LbPolicy::Maglev(maglev) => maglev.validate()?,
            LbPolicy::LeastRequest(lr) => lr.validate()?,
            LbPolicy::RoundRobin | LbPolicy::Random => {}
        }
        // PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT(common, healthy_panic_threshold, 100, 50).
        let panic_threshold_percent = threshold.round() as u32;
        Ok(ValidLbConfig {
            config: self,
            panic_threshold_percent,
        })
    }
}

/// A configuration that passed [`LbConfig::validate`]; the only kind a load balancer is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidLbConfig {
    config: LbConfig,
    panic_threshold_percent: u32,
}

impl ValidLbConfig {
    /// The validated configuration.
    pub fn config(&self) -> &LbConfig {
        &self.config
    }

    /// The panic threshold as Envoy uses it: an integer percent in `[0, 100]`.
    pub fn panic_threshold_percent(&self) -> u32 {
        self.panic_threshold_percent
    }
}

/// `Cluster.LbPolicy`, with each policy's configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum LbPolicy {
    /// `ROUND_ROBIN`: plain round robin when the weights are equal, EDF-weighted otherwise.
    RoundRobin,
    /// `LEAST_REQUEST`: power of N choices, or EDF with load-scaled weights.
    LeastRequest(LeastRequestConfig),
    /// `RANDOM`: uniform among the available hosts (host weights are ignored, as in Envoy).
    Random,
    /// `RING_HASH`: Ketama-style consistent hashing.
    RingHash(RingHashConfig),
    /// `MAGLEV`: Maglev consistent hashing.
    Maglev(MaglevConfig),
}

/// `LeastRequestLbConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct LeastRequestConfig {
    /// Hosts sampled per pick when weights are equal (`choice_count`, default 2, at least 2).
    pub choice_count: u32,
    /// `active_request_bias`. `None` means unset (Envoy then uses 1.0 and picks unweighted P2C when
    /// all weights are equal); `Some` forces weighted EDF selection even for equal weights, as
    /// Envoy 1.40 does with `least_request_lb_active_request_bias_forces_weighted`. Negative or NaN
    /// values fall back to 1.0, as Envoy does (it only logs a warning).
    pub active_request_bias: Option<f64>,
    /// `selection_method` (default `N_CHOICES`).
    pub selection_method: SelectionMethod,
}

impl Default for LeastRequestConfig {
    fn default() -> Self {
        Self {
            choice_count: DEFAULT_CHOICE_COUNT,
            active_request_bias: None,
            selection_method: SelectionMethod::NChoices,
        }
    }
}

impl LeastRequestConfig {
    fn validate(&self) -> Result<(), Error> {
        if self.choice_count < 2 {
            return Err(Error::ChoiceCountTooSmall(self.choice_count));
        }
        Ok(())
    }

    /// The bias Envoy applies: the configured value, or 1.0 when unset, negative or NaN.
    pub(crate) fn effective_bias(&self) -> f64 {
        match self.active_request_bias {
            Some(b) if b >= 0.0 => b,
            _ => 1.0,
        }
    }
}

/// `LeastRequest.SelectionMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectionMethod {
    /// Sample `choice_count` random hosts and keep the least loaded (P2C by default).
    #[default]
    NChoices,
    /// Scan every host and keep the least loaded; ties broken uniformly (O(n) per pick).
    FullScan,
}

/// `RingHashLbConfig`. Only `XX_HASH` is supported (see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingHashConfig {
    /// `minimum_ring_size` (default 1024, at most 8M).
    pub minimum_ring_size: u64,
    /// `maximum_ring_size` (default 8M, at most 8M).
    pub maximum_ring_size: u64,
}

impl Default for RingHashConfig {
    fn default() -> Self {
        Self {
            minimum_ring_size: DEFAULT_MIN_RING_SIZE,
            maximum_ring_size: DEFAULT_MAX_RING_SIZE,
        }
    }
}

impl RingHashConfig {
    fn validate(&self) -> Result<(), Error> {
        for (field, value) in [
            ("minimum_ring_size", self.minimum_ring_size),
            ("maximum_ring_size", self.maximum_ring_size),
        ] {
            if value > MAX_RING_SIZE_LIMIT {
                return Err(Error::RingSizeTooLarge { field, value });
            }
        }
        if self.minimum_ring_size > self.maximum_ring_size {
            return Err(Error::RingSizeInverted {
                minimum: self.minimum_ring_size,
                maximum: self.maximum_ring_size,
            });
        }
        Ok(())
    }
}

/// `MaglevLbConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevConfig {
    /// `table_size`: a prime, at most 5000011 (default 65537).
    pub table_size: u64,
}

impl Default for MaglevConfig {
    fn default() -> Self {
        Self {
            table_size: DEFAULT_MAGLEV_TABLE_SIZE,
        }
    }
}

impl MaglevConfig {
    fn validate(&self) -> Result<(), Error> {
        if self.table_size > MAX_MAGLEV_TABLE_SIZE {
            return Err(Error::MaglevTableTooLarge(self.table_size));
        }
        if !is_prime(self.table_size) {
            return Err(Error::MaglevTableNotPrime(self.table_size));
        }
        Ok(())
    }
}

/// Trial division; table sizes are at most 5000011, so at most ~1100 divisions.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_envoys() {
        let c = LbConfig::default();
        assert_eq!(c.overprovisioning_factor, 140);
        assert_eq!(c.healthy_panic_threshold, 50.0);
        assert_eq!(RingHashConfig::default().minimum_ring_size, 1024);
        assert_eq!(RingHashConfig::default().maximum_ring_size, 8_388_608);
        assert_eq!(MaglevConfig::default().table_size, 65537);
        assert_eq!(LeastRequestConfig::default().choice_count, 2);
        let valid = c.validate();
        assert!(matches!(valid, Ok(ref v) if v.panic_threshold_percent() == 50));
    }

    #[test]
    fn ring_sizes_are_checked() {
        let ring = |minimum_ring_size, maximum_ring_size| {
            LbConfig::new(LbPolicy::RingHash(RingHashConfig {
                minimum_ring_size,
                maximum_ring_size,
            }))
            .validate()
        };
        assert_eq!(
            ring(2048, 1024),
            Err(Error::RingSizeInverted {
                minimum: 2048,
                maximum: 1024
            })
        );
        assert_eq!(
            ring(1024, MAX_RING_SIZE_LIMIT + 1),
            Err(Error::RingSizeTooLarge {
                field: "maximum_ring_size",
                value: MAX_RING_SIZE_LIMIT + 1
            })
        );
        assert!(ring(1024, 1024).is_ok());
        assert!(ring(MAX_RING_SIZE_LIMIT, MAX_RING_SIZE_LIMIT).is_ok());
    }

    #[test]
    fn maglev_table_must_be_a_prime_within_bounds() {
        let maglev =
            |table_size| LbConfig::new(LbPolicy::Maglev(MaglevConfig { table_size })).validate();
        assert_eq!(maglev(65536), Err(Error::MaglevTableNotPrime(65536)));
        assert_eq!(maglev(1), Err(Error::MaglevTableNotPrime(1)));
        assert_eq!(maglev(0), Err(Error::MaglevTableNotPrime(0)));
        assert_eq!(
            maglev(5_000_012),
            Err(Error::MaglevTableTooLarge(5_000_012))
        );
        assert!(maglev(65537).is_ok());
        assert!(maglev(5_000_011).is_ok());
        assert!(maglev(2).is_ok());
        assert!(maglev(251).is_ok());
    }

    #[test]
    fn common_fields_are_checked() {
        let mut c = LbConfig {
            healthy_panic_threshold: 100.5,
            ..LbConfig::default()
        };
        assert_eq!(
            c.clone().validate(),
            Err(Error::PanicThresholdOutOfRange(100.5))
        );
        c.healthy_panic_threshold = f64::NAN;
        assert!(matches!(
            c.clone().validate(),
            Err(Error::PanicThresholdOutOfRange(_))
        ));
        c.healthy_panic_threshold = 33.5;
        assert!(matches!(c.clone().validate(), Ok(v) if v.panic_threshold_percent() == 34));
        c.overprovisioning_factor = 0;
        assert_eq!(c.validate(), Err(Error::ZeroOverprovisioningFactor));
        let lr = LbConfig::new(LbPolicy::LeastRequest(LeastRequestConfig {
            choice_count: 1,
            ..LeastRequestConfig::default()
        }));
        assert_eq!(lr.validate(), Err(Error::ChoiceCountTooSmall(1)));
    }

    #[test]
    fn invalid_bias_falls_back_to_one_like_envoy() {
        let with = |b| LeastRequestConfig {
            active_request_bias: b,
            ..LeastRequestConfig::default()
        };
        assert_eq!(with(None).effective_bias(), 1.0);
        assert_eq!(with(Some(-1.0)).effective_bias(), 1.0);
        assert_eq!(with(Some(f64::NAN)).effective_bias(), 1.0);
        assert_eq!(with(Some(0.5)).effective_bias(), 0.5);
    }
}
