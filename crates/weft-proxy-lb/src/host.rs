//! The input model: hosts grouped by priority and locality, as EDS `ClusterLoadAssignment`
//! delivers them, in weft's own types.

/// A host's health as the load balancer sees it (Envoy's coarse health).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Receives traffic first.
    #[default]
    Healthy,
    /// Receives traffic only when healthy hosts do not suffice (active health check
    /// `x-envoy-degraded`, or EDS `DEGRADED`).
    Degraded,
    /// Receives traffic only in panic mode. Envoy marks outlier-ejected hosts this way
    /// (`FAILED_OUTLIER_CHECK`).
    Unhealthy,
}

/// One upstream endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Host<H> {
    /// The caller's handle for the host (an address, a pool index, an `Arc` to a connection pool...).
    pub id: H,
    /// The address as Envoy prints it (`10.0.0.1:8080`, `[::1]:80`), or the hostname when
    /// `use_hostname_for_hashing` is wanted. RING_HASH and MAGLEV hash this string, so it must
    /// match Envoy's for picks to agree.
    pub address: String,
    /// `load_balancing_weight`, at least 1 (default 1).
    pub weight: u32,
    /// Health.
    pub health: Health,
    /// Excluded from load balancing calculations (Envoy's "excluded" hosts, e.g.
    /// `PENDING_ACTIVE_HC` or `EXCLUDED_VIA_IMMEDIATE_HC_FAIL`): never picked outside panic,
    /// and left out of the denominators of priority and locality health. In panic mode they are
    /// eligible again, as Envoy documents.
    pub excluded: bool,
}

impl<H> Host<H> {
    /// A healthy host of weight 1.
    pub fn new(id: H, address: impl Into<String>) -> Self {
        Self {
            id,
            address: address.into(),
            weight: 1,
            health: Health::Healthy,
            excluded: false,
        }
    }

    /// Sets `load_balancing_weight`.
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the health.
    #[must_use]
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Marks the host excluded.
    #[must_use]
    pub fn excluded(mut self) -> Self {
        self.excluded = true;
        self
    }

    pub(crate) fn is_healthy(&self) -> bool {
        !self.excluded && self.health == Health::Healthy
    }

    pub(crate) fn is_degraded(&self) -> bool {
        !self.excluded && self.health == Health::Degraded
    }
}

/// Envoy's `core.v3.Locality`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Sub-zone.
    pub sub_zone: String,
}

/// One `LocalityLbEndpoints`: the hosts of one locality at one priority.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalityEndpoints<H> {
    /// Where the hosts are.
    pub locality: Locality,
    /// `load_balancing_weight` of the locality. Envoy reads an unset weight as 0, and a locality of
    /// weight 0 receives no traffic when locality weighting is on. Ignored otherwise.
    pub weight: u32,
    /// The hosts.
    pub hosts: Vec<Host<H>>,
}

impl<H> LocalityEndpoints<H> {
    /// A locality of weight 1 with the given hosts.
    pub fn new(locality: Locality, hosts: Vec<Host<H>>) -> Self {
        Self {
            locality,
            weight: 1,
            hosts,
        }
    }

    /// Sets the locality's `load_balancing_weight`.
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
}

/// A cluster's endpoints by priority: index 0 is the highest priority.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints<H> {
    /// `priorities[p]` holds the localities of priority `p`. An empty level is allowed and gets
    /// no traffic.
    pub priorities: Vec<Vec<LocalityEndpoints<H>>>,
}

impl<H> Default for Endpoints<H> {
    fn default() -> Self {
        Self {
            priorities: Vec::new(),
        }
    }
}

impl<H> Endpoints<H> {
    /// No endpoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a locality at `priority`, creating the levels up to it.
    #[must_use]
    pub fn with_locality(mut self, priority: u32, locality: LocalityEndpoints<H>) -> Self {
        let p = priority as usize;
        if self.priorities.len() <= p {
            self.priorities.resize_with(p + 1, Vec::new);
        }
        self.priorities[p].push(locality);
        self
    }

    /// Adds hosts at `priority` in a default (empty) locality.
    #[must_use]
    pub fn with_hosts(self, priority: u32, hosts: Vec<Host<H>>) -> Self {
        self.with_locality(priority, LocalityEndpoints::new(Locality::default(), hosts))
    }
}

/// A host's index in the balancer that was built from an [`Endpoints`]: hosts are numbered in
/// input order (priority, then locality, then host). Stable for the life of one balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub u32);

impl HostId {
    /// The index as a `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
