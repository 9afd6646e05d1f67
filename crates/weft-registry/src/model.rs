//! The registry's data model and lookups.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use weft_api::common::Labels;
use weft_api::networking::service_entry::{Protocol, Resolution};

/// All services and workloads of a mesh.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Registry {
    pub(crate) services: Vec<Service>,
    pub(crate) workloads: Vec<Workload>,
}

/// A service: a host name clients call, its ports, and how its endpoints are found.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Host name as declared (a wildcard such as `*.example.com` is possible for external
    /// services).
    pub hostname: String,
    /// Namespace the service was declared in.
    pub namespace: String,
    /// What declared it.
    pub source: ServiceSource,
    /// Virtual IPs or CIDRs clients may use instead of the host name.
    pub addresses: Vec<String>,
    /// Ports.
    pub ports: Vec<Port>,
    /// How endpoints are found.
    pub resolution: Resolution,
    /// Whether the service is outside the mesh (no sidecar, no mTLS by default).
    pub mesh_external: bool,
    /// Which namespaces may see the service.
    pub export_to: ExportTo,
    /// Identities the service's workloads may present.
    pub subject_alt_names: Vec<String>,
    /// Labels selecting the workloads (in the service's namespace) behind the service.
    /// `None` when endpoints are listed explicitly.
    pub selector: Option<Labels>,
}

impl Service {
    /// The port with this number.
    pub fn port(&self, number: u16) -> Option<&Port> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// Whether a client in `namespace` may use this service.
    pub fn visible_from(&self, namespace: &str) -> bool {
        match &self.export_to {
            ExportTo::All => true,
            ExportTo::Nothing => false,
            ExportTo::Namespaces(set) => set.contains(namespace),
        }
    }

    /// Whether `host` (an exact name, or a wildcard such as `*.example.com`) covers this
    /// service's host name.
    pub fn matches_host(&self, host: &str) -> bool {
        host_matches(host, &self.hostname) || host_matches(&self.hostname, host)
    }
}

/// Whether the pattern `pattern` (`*`, `*.example.com` or an exact name) covers `host`.
/// A wildcard host only matches hosts with at least one more label (`*.a.com` covers `b.a.com`,
/// not `a.com`), as in Istio.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Where a service was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceSource {
    /// An Istio ServiceEntry of this name (in the service's namespace).
    ServiceEntry {
        /// The ServiceEntry's name.
        name: String,
    },
}

impl fmt::Display for ServiceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceEntry { name } => write!(f, "ServiceEntry {name}"),
        }
    }
}

/// A service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Port name (unique within the service).
    pub name: String,
    /// Port number clients use.
    pub number: u16,
    /// Application protocol.
    pub protocol: Protocol,
    /// Port on the workload, when it differs from `number` and the workload does not say.
    pub target_port: Option<u16>,
}

/// Namespaces a service is exported to (`exportTo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTo {
    /// Every namespace (`*`, or nothing set).
    All,
    /// No namespace (`~`).
    Nothing,
    /// These namespaces (`.` has been replaced by the service's own).
    Namespaces(BTreeSet<String>),
}

/// A workload: one instance of an application (a VM, a process, later a pod).
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Name, unique per namespace and source.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Where it is reached.
    pub address: Address,
    /// Named ports (`http: 9080`), overriding the service's target ports.
    pub ports: std::collections::BTreeMap<String, u16>,
    /// Labels, which subsets and selectors match.
    pub labels: Labels,
    /// Service account, the basis of its SPIFFE identity.
    pub service_account: String,
    /// Where it runs, for locality-aware load balancing.
    pub locality: Locality,
    /// Network it is on (for multi-network meshes).
    pub network: String,
    /// Load-balancing weight (default 1).
    pub weight: u32,
    /// What declared it.
    pub source: WorkloadSource,
}

/// Where a workload was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadSource {
    /// A WorkloadEntry of this name.
    WorkloadEntry {
        /// The WorkloadEntry's name.
        name: String,
    },
    /// Entry `index` of the `endpoints` of a ServiceEntry; belongs to that service only.
    Inline {
        /// The ServiceEntry's name.
        service_entry: String,
        /// Index in its `endpoints`.
        index: usize,
    },
}

/// How a workload is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IP address.
    Ip(IpAddr),
    /// A DNS name, resolved by the proxy.
    Hostname(String),
    /// A Unix domain socket path.
    Unix(String),
    /// No address: reached through its network's gateway.
    None,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Hostname(h) => f.write_str(h),
            Self::Unix(p) => write!(f, "unix://{p}"),
            Self::None => f.write_str("<none>"),
        }
    }
}

/// `region/zone/subzone`, each part optional from the right.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    /// Region, such as `us-east`.
    pub region: String,
    /// Zone within the region.
    pub zone: String,
    /// Sub-zone within the zone.
    pub subzone: String,
}

impl Locality {
    /// Parses Istio's `region/zone/subzone` form.
    pub fn parse(s: &str) -> Locality {
        let mut parts = s.splitn(3, '/').map(str::to_owned);
        Locality {
            region: parts.next().unwrap_or_default(),
            zone: parts.next().unwrap_or_default(),
            subzone: parts.next().unwrap_or_default(),
        }
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.zone.is_empty(), self.subzone.is_empty()) {
            (true, true) => f.write_str(&self.region),
            (false, true) => write!(f, "{}/{}", self.region, self.zone),
            _ => write!(f, "{}/{}/{}", self.region, self.zone, self.subzone),
        }
    }
}

/// One place to send traffic for a service port: a workload and the port on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint<'a> {
    /// The workload (for DNS services without workloads, a synthesized one named after the host).
    pub workload: std::borrow::Cow<'a, Workload>,
    /// Port on the workload.
    pub port: u16,
}

impl Registry {
    /// Every service, in declaration order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Every workload (WorkloadEntries and inline ServiceEntry endpoints).
    pub fn workloads(&self) -> &[Workload] {
        &self.workloads
    }

    /// Services visible from `namespace` whose host name `host` covers (exactly, or by
    /// wildcard in either direction). A service in `namespace` itself comes first.
    pub fn lookup(&self, host: &str, namespace: &str) -> Vec<&Service> {
        let mut found: Vec<&Service> = self
            .services
            .iter()
            .filter(|s| s.visible_from(namespace) && s.matches_host(host))
            .collect();
        found.sort_by_key(|s| s.namespace != namespace);
        found
    }

    /// The service with exactly this host name visible from `namespace` (preferring one in that
    /// namespace), as a route destination resolves.
    pub fn service(&self, host: &str, namespace: &str) -> Option<&Service> {
        self.lookup(host, namespace)
            .into_iter()
            .find(|s| s.hostname.eq_ignore_ascii_case(host))
    }

    /// Workloads in `namespace` carrying every label of `selector`.
    pub fn select(&self, namespace: &str, selector: &Labels) -> Vec<&Workload> {
        self.workloads
            .iter()
            .filter(|w| w.namespace == namespace && labels_match(selector, &w.labels))
            .filter(|w| matches!(w.source, WorkloadSource::WorkloadEntry { .. }))
            .collect()
    }

    /// The endpoints of `service` on port `port` (a service port number).
    pub fn endpoints<'a>(&'a self, service: &Service, port: u16) -> Vec<Endpoint<'a>> {
        let Some(svc_port) = service.port(port) else {
            return Vec::new();
        };
        let mut out: Vec<Endpoint<'a>> = self
            .workloads
            .iter()
            .filter(|w| serves(w, service))
            .map(|w| Endpoint {
                port: w
                    .ports
                    .get(&svc_port.name)
                    .copied()
                    .or(svc_port.target_port)
                    .unwrap_or(svc_port.number),
                workload: std::borrow::Cow::Borrowed(w),
            })
            .collect();
        // A DNS service without endpoints resolves its own host name (Istio's behaviour).
        let dns = matches!(
            service.resolution,
            Resolution::Dns | Resolution::DnsRoundRobin
        );
        if out.is_empty() && dns && !service.hostname.starts_with('*') {
            out.push(Endpoint {
                port: svc_port.target_port.unwrap_or(svc_port.number),
                workload: std::borrow::Cow::Owned(Workload {
                    name: service.hostname.clone(),
                    namespace: service.namespace.clone(),
                    address: Address::Hostname(service.hostname.clone()),
                    ports: Default::default(),
                    labels: Labels::new(),
                    service_account: String::new(),
                    locality: Locality::default(),
                    network: String::new(),
                    weight: 1,
                    source: WorkloadSource::Inline {
                        service_entry: service.source.to_string(),
                        index: 0,
                    },
                }),
            });
        }
        out
    }

    /// The endpoints of `service` on `port` whose workloads carry every label of `subset`.
    pub fn subset_endpoints<'a>(
        &'a self,
        service: &Service,
        port: u16,
        subset: &Labels,
    ) -> Vec<Endpoint<'a>> {
        let mut eps = self.endpoints(service, port);
        eps.retain(|e| labels_match(subset, &e.workload.labels));
        eps
    }

    /// Every workload behind `service`, on any port.
    pub fn workloads_of<'a>(&'a self, service: &'a Service) -> impl Iterator<Item = &'a Workload> {
        self.workloads.iter().filter(move |w| serves(w, service))
    }
}

/// Whether `w` is behind `service`: an inline endpoint of its ServiceEntry, or a WorkloadEntry
/// its selector picks in its namespace.
fn serves(w: &Workload, service: &Service) -> bool {
    if w.namespace != service.namespace {
        return false;
    }
    match (&w.source, &service.selector, &service.source) {
        (
            WorkloadSource::Inline { service_entry, .. },
            None,
            ServiceSource::ServiceEntry { name },
        ) => name == service_entry,
        (WorkloadSource::WorkloadEntry { .. }, Some(selector), _) => {
            labels_match(selector, &w.labels)
        }
        _ => false,
    }
}

fn labels_match(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
