//! The body of the translation fuzz target (`crates/weft-xds/fuzz`), kept here so that CI
//! replays its seed corpus through exactly the same code on the stable toolchain.

use std::collections::BTreeSet;
use std::path::Path;

use weft_analyze::ConfigSet;
use weft_api::load::{LoadResult, Loader};
use weft_api::networking::Gateway;
use weft_api::{Loaded, Severity};

use crate::ads::Snapshot;
use crate::mesh::{Mesh, MeshOptions};
use crate::node::{Generator, ProxyKind, ProxyNode};
use crate::translate::translate;

/// Loads arbitrary bytes as Istio configuration, keeps what passes validation (as the control
/// plane does), and translates it for a spread of proxies: a sidecar per namespace and per
/// workload, a gateway per Gateway selector, and a proxyless gRPC client. Translation and
/// encoding must never panic, whatever reaches them.
pub fn translate_bytes(data: &[u8]) {
    let mut out = LoadResult::default();
    Loader::default().load_bytes(Path::new("fuzz.yaml"), data, &mut out);
    let valid: Vec<Loaded> = out
        .resources
        .into_iter()
        .filter(|l| {
            l.resource
                .validate()
                .iter()
                .all(|i| i.severity != Severity::Error)
        })
        .collect();
    let mesh = Mesh::new(ConfigSet::new(valid), MeshOptions::default());
    for node in nodes(&mesh) {
        let _ = Snapshot::new(translate(&mesh, &node));
    }
}

fn nodes(mesh: &Mesh) -> Vec<ProxyNode> {
    let mut namespaces: BTreeSet<String> = mesh
        .config
        .entries()
        .iter()
        .map(|e| e.resource.namespace().to_owned())
        .collect();
    namespaces.insert("default".to_owned());
    let base = |ns: &str, kind: ProxyKind, generator: Generator| ProxyNode {
        id: format!("sidecar~127.0.0.1~fuzz.{ns}~{ns}.svc.cluster.local"),
        kind,
        generator,
        ips: vec![std::net::IpAddr::from([127, 0, 0, 1])],
        namespace: ns.to_owned(),
        workload: "fuzz".to_owned(),
        labels: Default::default(),
        service_account: String::new(),
        cluster_id: String::new(),
        dns_domain: format!("{ns}.svc.cluster.local"),
        locality: Default::default(),
    };
    let mut out = Vec::new();
    for ns in &namespaces {
        out.push(base(ns, ProxyKind::Sidecar, Generator::Envoy));
        out.push(base(ns, ProxyKind::Sidecar, Generator::Grpc));
    }
    for w in mesh.registry.workloads() {
        let mut n = base(&w.namespace, ProxyKind::Sidecar, Generator::Envoy);
        n.workload = w.name.clone();
        n.labels = w.labels.clone();
        if let weft_registry::Address::Ip(ip) = w.address {
            n.ips = vec![ip];
        }
        n.locality = w.locality.clone();
        out.push(n);
    }
    for (entry, gw) in mesh.config.of::<Gateway>() {
        let mut n = base(
            entry.resource.namespace(),
            ProxyKind::Router,
            Generator::Envoy,
        );
        n.labels = gw.selector.clone();
        out.push(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::translate_bytes;

    /// Replays the fuzz target's seed corpus, so the target cannot rot between fuzzing runs.
    #[test]
    fn seed_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/translate");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("seed corpus directory") {
            let path = entry.expect("corpus entry").path();
            translate_bytes(&std::fs::read(&path).expect("corpus file"));
            n += 1;
        }
        assert!(n >= 10, "seed corpus has only {n} inputs");
    }
}
