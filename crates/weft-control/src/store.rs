//! The configuration the control plane serves, with Istio's admission semantics applied to
//! files: a resource that fails validation is rejected and its last good version keeps
//! serving; a file that cannot be read or parsed keeps all of its last good resources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use weft_analyze::ConfigSet;
use weft_api::load::LoadResult;
use weft_api::{Finding, Loaded, Severity};

/// A resource's identity: kind, namespace, name.
type Key = (String, String, String);

/// Resources by identity, with what they were loaded from.
#[derive(Debug, Default)]
pub struct ConfigStore {
    good: BTreeMap<Key, Loaded>,
}

/// Why something on disk is not being served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// `Kind namespace/name`, when the problem is one resource.
    pub resource: Option<String>,
    /// File (and line) of the problem.
    pub location: Option<String>,
    /// What is wrong, as `weft analyze` says it.
    pub message: String,
    /// Whether an earlier good version keeps serving in its place.
    pub kept_last_good: bool,
}

/// The outcome of one reload.
#[derive(Debug)]
pub struct Reload {
    /// The resources to serve now.
    pub config: ConfigSet,
    /// What was rejected (empty when everything on disk is served).
    pub rejected: Vec<Rejection>,
    /// Whether the served set differs from before.
    pub changed: bool,
    /// Cross-resource analysis findings on the served set (warnings such as IST0101 do not
    /// block serving, as in Istio).
    pub analysis: Vec<Finding>,
}

impl ConfigStore {
    /// Applies a fresh load of the configuration directory.
    pub fn reload(&mut self, load: LoadResult) -> Reload {
        let LoadResult {
            resources,
            findings,
            ..
        } = load;
        let mut rejected = Vec::new();

        // Files that failed to load (syntax, unknown fields, unreadable): keep what they held.
        let mut broken_files: BTreeSet<PathBuf> = BTreeSet::new();
        for f in findings.iter().filter(|f| f.severity == Severity::Error) {
            let file = f.location.as_ref().map(|l| l.file.as_ref().clone());
            let kept = file
                .as_ref()
                .is_some_and(|file| self.good.values().any(|l| *l.source.file == *file));
            if let Some(file) = file {
                broken_files.insert(file);
            }
            rejected.push(rejection(f, kept));
        }

        let mut next: BTreeMap<Key, Loaded> = BTreeMap::new();
        for (key, loaded) in &self.good {
            if broken_files.contains(loaded.source.file.as_ref()) {
                next.insert(key.clone(), loaded.clone());
            }
        }
        for loaded in resources {
            let key = key_of(&loaded);
            let errors: Vec<_> = loaded
                .resource
                .validate()
                .into_iter()
                .filter(|i| i.severity == Severity::Error)
                .collect();
            if errors.is_empty() {
                next.insert(key, loaded);
                continue;
            }
            let previous = self.good.get(&key).cloned();
            for issue in &errors {
                let location = loaded.source.locate(Some(&issue.path));
                rejected.push(Rejection {
                    resource: Some(format!("{} {}/{}", key.0, key.1, key.2)),
                    location: Some(location.to_string()),
                    message: format!("{}: {}", issue.path, issue.message),
                    kept_last_good: previous.is_some(),
                });
            }
            if let Some(prev) = previous {
                next.insert(key, prev);
            }
        }
        let changed = !same(&self.good, &next);
        self.good = next;
        let config = ConfigSet::new(self.good.values().cloned().collect());
        let analysis = weft_analyze::analyze_config(&config)
            .into_iter()
            .filter(|f| f.message_type.code != "IST0106")
            .collect();
        Reload {
            config,
            rejected,
            changed,
            analysis,
        }
    }
}

fn key_of(l: &Loaded) -> Key {
    (
        l.resource.kind().name().to_owned(),
        l.resource.namespace().to_owned(),
        l.resource.name().to_owned(),
    )
}

fn same(a: &BTreeMap<Key, Loaded>, b: &BTreeMap<Key, Loaded>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, la), (kb, lb))| ka == kb && la.resource == lb.resource)
}

fn rejection(f: &Finding, kept: bool) -> Rejection {
    Rejection {
        resource: f.resource.as_ref().map(|r| r.to_string()),
        location: f.location.as_ref().map(|l| l.to_string()),
        message: format!("[{}] {}", f.message_type.code, f.message),
        kept_last_good: kept,
    }
}

/// Shared, read-mostly status of the configuration, for `/debug/config_status` and metrics.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ConfigStatus {
    /// Mesh generation being served.
    pub generation: u64,
    /// Resources served.
    pub resources: usize,
    /// Reloads attempted.
    pub reloads: u64,
    /// Reloads that rejected something.
    pub reloads_with_rejections: u64,
    /// What the last reload rejected.
    pub rejected: Vec<Rejection>,
    /// Analysis findings on the served configuration (`weft analyze` format).
    pub analysis: Vec<String>,
    /// Seconds since the Unix epoch of the last reload.
    pub last_reload_unix: u64,
}

/// The status handle.
pub type SharedStatus = Arc<parking_lot::RwLock<ConfigStatus>>;

#[cfg(test)]
mod tests {
    use std::fs;

    use weft_api::load::Loader;

    use super::*;

    const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: SUBSET}
";

    fn load(dir: &std::path::Path) -> LoadResult {
        Loader::default().load_paths(&[dir])
    }

    fn subset_served(r: &Reload) -> String {
        let (_, vs) = r
            .config
            .of::<weft_api::networking::VirtualService>()
            .next()
            .unwrap();
        format!("{:?}", vs.http[0].route[0].destination.subset)
    }

    #[test]
    fn invalid_resource_keeps_its_last_good_version() {
        let dir = std::env::temp_dir().join(format!("weft-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut store = ConfigStore::default();

        fs::write(dir.join("vs.yaml"), VS.replace("SUBSET", "v1")).unwrap();
        let r = store.reload(load(&dir));
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        assert!(r.changed);
        assert!(subset_served(&r).contains("v1"));

        // Invalid subset name (not a DNS label): rejected, v1 keeps serving.
        fs::write(dir.join("vs.yaml"), VS.replace("SUBSET", "Bad_Subset!")).unwrap();
        let r = store.reload(load(&dir));
        assert_eq!(r.rejected.len(), 1, "{:?}", r.rejected);
        assert!(r.rejected[0].kept_last_good);
        assert!(
            r.rejected[0]
                .resource
                .as_deref()
                .unwrap()
                .contains("bookinfo/reviews")
        );
        assert!(
            r.rejected[0]
                .location
                .as_deref()
                .unwrap()
                .contains("vs.yaml:")
        );
        assert!(!r.changed);
        assert!(subset_served(&r).contains("v1"));

        // A syntax error: the file's last good resources keep serving.
        fs::write(dir.join("vs.yaml"), "kind: [unclosed").unwrap();
        let r = store.reload(load(&dir));
        assert_eq!(r.rejected.len(), 1, "{:?}", r.rejected);
        assert!(r.rejected[0].kept_last_good);
        assert!(subset_served(&r).contains("v1"));

        // Fixed: the new version serves.
        fs::write(dir.join("vs.yaml"), VS.replace("SUBSET", "v2")).unwrap();
        let r = store.reload(load(&dir));
        assert!(r.rejected.is_empty());
        assert!(r.changed);
        assert!(subset_served(&r).contains("v2"));

        // Deleted: no longer served.
        fs::remove_file(dir.join("vs.yaml")).unwrap();
        let r = store.reload(load(&dir));
        assert!(r.changed);
        assert_eq!(r.config.entries().len(), 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
