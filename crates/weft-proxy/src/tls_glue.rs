//! Builds the rustls contexts a configuration asks for. Until the TLS layer lands, TLS in a
//! configuration is refused with a clear error rather than ignored.

use std::sync::Arc;

use arc_swap::ArcSwap;
use weft_proxy_config::model::{DownstreamTls, UpstreamTls};

use crate::upstream::cluster::UpstreamTlsRuntime;

/// A server context for a filter chain.
pub(crate) fn server(_tls: &DownstreamTls) -> Result<Arc<ArcSwap<rustls::ServerConfig>>, String> {
    Err("TLS termination is not available in this build".to_owned())
}

/// A client context for a cluster.
pub(crate) fn client(_tls: &UpstreamTls) -> Result<UpstreamTlsRuntime, String> {
    Err("TLS origination is not available in this build".to_owned())
}
