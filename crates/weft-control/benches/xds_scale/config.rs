//! The generated mesh: `services` services spread over `namespaces` namespaces, one file per
//! service holding its ServiceEntry (selecting two WorkloadEntries), DestinationRule (two
//! subsets) and VirtualService (a header match, then a 90/10 weighted split).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// Ports the services listen on, round-robin: three route configurations, so a change to one
/// service touches one of them (which is what delta xDS can exploit).
const PORTS: [u16; 3] = [80, 8080, 9080];

/// Shape of the generated mesh.
#[derive(Debug, Clone, Copy)]
pub struct MeshShape {
    /// Services.
    pub services: usize,
    /// Namespaces (`ns-0`...).
    pub namespaces: usize,
}

impl MeshShape {
    /// The namespace of service `i`.
    pub fn namespace_of(&self, i: usize) -> String {
        format!("ns-{}", i % self.namespaces.max(1))
    }

    /// The file holding service `i`.
    pub fn file_of(&self, dir: &Path, i: usize) -> PathBuf {
        dir.join(self.namespace_of(i)).join(format!("svc-{i}.yaml"))
    }

    /// Writes every service into `dir` (created), with change marker `generation`.
    pub fn write(&self, dir: &Path, generation: u64) -> io::Result<()> {
        for n in 0..self.namespaces.max(1) {
            std::fs::create_dir_all(dir.join(format!("ns-{n}")))?;
        }
        for i in 0..self.services {
            std::fs::write(self.file_of(dir, i), self.service(i, generation))?;
        }
        Ok(())
    }

    /// Rewrites service `i`'s file with change marker `generation` (atomically: write, then
    /// rename, as `kubectl apply`-like tools and editors do).
    pub fn change(&self, dir: &Path, i: usize, generation: u64) -> io::Result<()> {
        let path = self.file_of(dir, i);
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, self.service(i, generation))?;
        std::fs::rename(&tmp, &path)
    }

    /// The header value the VirtualService matches on: changes with `generation`, so a client
    /// can tell a route configuration carrying the change by its bytes.
    pub fn marker(generation: u64) -> String {
        format!("marker-g{generation}-end")
    }

    /// The YAML of service `i`.
    pub fn service(&self, i: usize, generation: u64) -> String {
        let ns = self.namespace_of(i);
        let host = format!("svc-{i}.{ns}.svc.cluster.local");
        let port = PORTS[i % PORTS.len()];
        // 127.<hi>.<lo>.<1|2>: two distinct loopback addresses per service.
        let (hi, lo) = ((i / 250) % 250 + 1, i % 250 + 1);
        let marker = Self::marker(generation);
        let mut y = String::new();
        let _ = write!(
            y,
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc-{i}, namespace: {ns}}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: {port}, name: http, protocol: HTTP, targetPort: 8080}}
  workloadSelector:
    labels: {{app: svc-{i}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: svc-{i}-v1, namespace: {ns}}}
spec:
  address: 127.{hi}.{lo}.1
  labels: {{app: svc-{i}, version: v1}}
  serviceAccount: svc-{i}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: svc-{i}-v2, namespace: {ns}}}
spec:
  address: 127.{hi}.{lo}.2
  labels: {{app: svc-{i}, version: v2}}
  serviceAccount: svc-{i}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc-{i}, namespace: {ns}}}
spec:
  host: {host}
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{i}, namespace: {ns}}}
spec:
  hosts: [{host}]
  http:
  - match:
    - headers:
        x-canary: {{exact: \"{marker}\"}}
    route:
    - destination: {{host: {host}, subset: v2}}
  - route:
    - destination: {{host: {host}, subset: v1}}
      weight: 90
    - destination: {{host: {host}, subset: v2}}
      weight: 10
"
        );
        y
    }
}
