//! Watching the configuration and reloading it, debounced: an editor's save or a `cp -r` is
//! a burst of events, and one reload after the burst is what should happen.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use weft_api::load::Loader;
use weft_xds::Mesh;
use weft_xds::ads::AdsServer;

use crate::Options;
use crate::store::{ConfigStore, SharedStatus};

/// Starts watching `paths`; events arrive on the returned channel.
pub fn watch(
    paths: &[PathBuf],
) -> Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>), crate::StartError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !ev.kind.is_access()
        {
            let _ = tx.send(());
        }
    })
    .map_err(|source| crate::StartError::Watch {
        path: PathBuf::new(),
        source,
    })?;
    for p in paths {
        watcher
            .watch(p, RecursiveMode::Recursive)
            .map_err(|source| crate::StartError::Watch {
                path: p.clone(),
                source,
            })?;
    }
    Ok((watcher, rx))
}

/// Reloads after each burst of events: once no event arrived for `debounce`, or `debounce_max`
/// after the burst's first event.
pub async fn run(
    opts: Options,
    mut store: ConfigStore,
    ads: AdsServer,
    status: SharedStatus,
    mut events: mpsc::UnboundedReceiver<()>,
) {
    while events.recv().await.is_some() {
        let started = Instant::now();
        loop {
            let deadline = (Instant::now() + opts.debounce).min(started + opts.debounce_max);
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(())) if Instant::now() < started + opts.debounce_max => continue,
                Ok(None) => return,
                _ => break,
            }
        }
        reload(&opts, &mut store, &ads, &status).await;
    }
}

/// Loads the configuration once and, if what is served changed, pushes a new mesh.
pub async fn reload(
    opts: &Options,
    store: &mut ConfigStore,
    ads: &AdsServer,
    status: &SharedStatus,
) {
    let paths = opts.config.clone();
    let load = tokio::task::spawn_blocking(move || Loader::default().load_paths(&paths)).await;
    let Ok(load) = load else {
        tracing::error!("configuration load task failed");
        return;
    };
    let reload = store.reload(load);
    for r in &reload.rejected {
        tracing::warn!(
            resource = r.resource.as_deref().unwrap_or("-"),
            location = r.location.as_deref().unwrap_or("-"),
            kept_last_good = r.kept_last_good,
            "configuration rejected: {}",
            r.message
        );
    }
    let resources = reload.config.entries().len();
    let generation = if reload.changed {
        let generation = ads.set_mesh(Mesh::new(reload.config, opts.mesh.clone()));
        tracing::info!(generation, resources, "configuration pushed");
        generation
    } else {
        ads.generation()
    };
    let mut s = status.write();
    s.generation = generation;
    s.resources = resources;
    s.reloads += 1;
    if !reload.rejected.is_empty() {
        s.reloads_with_rejections += 1;
    }
    s.rejected = reload.rejected;
    s.analysis = reload.analysis.iter().map(ToString::to_string).collect();
    s.last_reload_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
}
