//! The proxy's shared run-time state: the current clusters (and, with the HTTP layer, route
//! tables), swapped atomically on configuration changes.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::upstream::ClusterRuntime;

/// Clusters by name.
#[derive(Debug, Default)]
pub struct Clusters {
    by_name: HashMap<String, Arc<ClusterRuntime>>,
}

impl Clusters {
    /// Builds the map.
    pub fn new(list: impl IntoIterator<Item = Arc<ClusterRuntime>>) -> Self {
        Self {
            by_name: list.into_iter().map(|c| (c.name().to_owned(), c)).collect(),
        }
    }

    /// All clusters.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ClusterRuntime>> {
        self.by_name.values()
    }

    /// The cluster named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<ClusterRuntime>> {
        self.by_name.get(name)
    }
}

/// State shared by every connection.
#[derive(Debug, Default)]
pub struct ProxyState {
    clusters: ArcSwap<Clusters>,
}

impl ProxyState {
    /// The cluster named `name`, as of now.
    pub fn cluster(&self, name: &str) -> Option<Arc<ClusterRuntime>> {
        self.clusters.load().get(name).cloned()
    }

    /// The current clusters.
    pub fn clusters(&self) -> Arc<Clusters> {
        self.clusters.load_full()
    }

    /// Installs a new set of clusters.
    pub fn set_clusters(&self, clusters: Clusters) {
        self.clusters.store(Arc::new(clusters));
    }
}
