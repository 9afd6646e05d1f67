//! Builds the TLS contexts a configuration asks for, with certificate-file watchers so rotated
//! certificates apply to new handshakes without a restart.

use std::sync::Arc;

use weft_proxy_config::model::{DownstreamTls, UpstreamTls};

use crate::tls::{ClientTlsHandle, ServerTlsHandle, TlsWatcher};

/// A server context for a filter chain, and the watcher that keeps it current.
pub(crate) fn server(
    tls: &DownstreamTls,
) -> Result<(Arc<ServerTlsHandle>, Option<TlsWatcher>), String> {
    let handle = Arc::new(ServerTlsHandle::new(tls.clone()).map_err(|e| e.to_string())?);
    let watcher = handle.watch().map_err(|e| e.to_string())?;
    Ok((handle, Some(watcher)))
}

/// A client context for a cluster, and the watcher that keeps it current.
pub(crate) fn client(
    tls: &UpstreamTls,
) -> Result<(Arc<ClientTlsHandle>, Option<TlsWatcher>), String> {
    let handle = Arc::new(ClientTlsHandle::new(tls.clone()).map_err(|e| e.to_string())?);
    let watcher = handle.watch().map_err(|e| e.to_string())?;
    Ok((handle, Some(watcher)))
}
