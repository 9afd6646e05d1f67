//! Listeners, filter chains, listener filters and the TCP proxy.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as pb;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager as PbHcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::google::protobuf::Any;

use super::{
    Ctx, any_type, at, constraint, duration_or, hcm, invalid, port, socket_address, timeout, tls,
    unsupported,
};
use crate::{
    ConfigError,
    model::{
        CidrRange, FilterChain, FilterChainMatch, Listener, ListenerFilter, NetworkFilter,
        SourceType, TcpCluster, TcpProxy,
    },
};

/// Envoy's `listener_filters_timeout` default.
const LISTENER_FILTERS_TIMEOUT: Duration = Duration::from_secs(15);
/// Envoy's `per_connection_buffer_limit_bytes` default (listeners and clusters).
pub(crate) const BUFFER_LIMIT: u32 = 1024 * 1024;
/// Envoy's `tcp_proxy` `idle_timeout` default.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy on Linux passes no backlog of its own (`net.core.somaxconn` applies); a larger
/// backlog than somaxconn is silently lowered to it by the kernel, so this is the same.
const TCP_BACKLOG_SIZE: u32 = i32::MAX as u32;

pub(crate) const HCM_TYPE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
pub(crate) const TCP_PROXY_TYPE: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const DOWNSTREAM_TLS_TYPE: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
pub(crate) const RAW_BUFFER_TYPE: &str =
    "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

pub(crate) fn convert(
    l: &pb::Listener,
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Listener, ConfigError> {
    let resource = format!("listener {:?}", l.name);
    let address = socket_address(l.address.as_ref(), &at(path, "address"), &resource)?;
    let mut filter_chains = Vec::with_capacity(l.filter_chains.len());
    for (i, fc) in l.filter_chains.iter().enumerate() {
        let fc_path = at(path, &format!("filter_chains[{i}]"));
        let chain = filter_chain(fc, &fc_path, &resource, ctx)?;
        // Envoy: "multiple filter chains with the same matching rules are defined".
        if let Some(j) = filter_chains
            .iter()
            .position(|c: &Arc<FilterChain>| c.matcher == chain.matcher)
        {
            return Err(constraint(
                at(&fc_path, "filter_chain_match"),
                format!(
                    "{resource}: filter chains {j} and {i} have the same filter_chain_match; \
                     every chain must match different connections"
                ),
            ));
        }
        filter_chains.push(Arc::new(chain));
    }
    let default_filter_chain = l
        .default_filter_chain
        .as_ref()
        .map(|fc| filter_chain(fc, &at(path, "default_filter_chain"), &resource, ctx))
        .transpose()?
        .map(Arc::new);
    if filter_chains.is_empty() && default_filter_chain.is_none() {
        return Err(invalid(
            at(path, "filter_chains"),
            format!("{resource} has no filter chains (Envoy rejects such a listener)"),
        ));
    }
    let mut listener_filters = Vec::with_capacity(l.listener_filters.len());
    for (i, f) in l.listener_filters.iter().enumerate() {
        let f_path = at(path, &format!("listener_filters[{i}]"));
        listener_filters.push(listener_filter(f, &f_path, &resource)?);
    }
    Ok(Listener {
        name: l.name.clone(),
        address,
        filter_chains,
        default_filter_chain,
        listener_filters,
        listener_filters_timeout: duration_or(
            l.listener_filters_timeout.as_ref(),
            &at(path, "listener_filters_timeout"),
            LISTENER_FILTERS_TIMEOUT,
        )?,
        continue_on_listener_filters_timeout: l.continue_on_listener_filters_timeout,
        revision: None,
        use_original_dst: l.use_original_dst.as_ref().is_some_and(|b| b.value),
        bind_to_port: l.bind_to_port.as_ref().is_none_or(|b| b.value),
        per_connection_buffer_limit_bytes: l
            .per_connection_buffer_limit_bytes
            .as_ref()
            .map_or(BUFFER_LIMIT, |v| v.value),
        stat_prefix: if l.stat_prefix.is_empty() {
            // Envoy's stat name for an unnamed prefix: the address with ':' sanitized.
            address.to_string().replace(':', "_")
        } else {
            l.stat_prefix.clone()
        },
        tcp_backlog_size: l
            .tcp_backlog_size
            .as_ref()
            .map_or(TCP_BACKLOG_SIZE, |v| v.value),
    })
}

fn filter_chain(
    fc: &pb::FilterChain,
    path: &str,
    resource: &str,
    ctx: &Ctx<'_>,
) -> Result<FilterChain, ConfigError> {
    let matcher = fc
        .filter_chain_match
        .as_ref()
        .map(|m| chain_match(m, &at(path, "filter_chain_match")))
        .transpose()?
        .unwrap_or_default();
    let tls = fc
        .transport_socket
        .as_ref()
        .map(|ts| downstream_transport(ts, &at(path, "transport_socket"), resource, ctx))
        .transpose()?
        .flatten();
    let [filter] = fc.filters.as_slice() else {
        let message = if fc.filters.is_empty() {
            format!(
                "unsupported: {resource} filter chain without filters (weft needs a terminal \
                 http_connection_manager or tcp_proxy)"
            )
        } else {
            format!(
                "unsupported: {resource} filter chain with {} filters; weft supports exactly one, \
                 the terminal http_connection_manager or tcp_proxy",
                fc.filters.len()
            )
        };
        return Err(unsupported(at(path, "filters"), message));
    };
    let f_path = at(path, "filters[0]");
    let Some(pb::filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        return Err(invalid(
            at(&f_path, "typed_config"),
            format!("{resource} filter {:?} needs a typed_config", filter.name),
        ));
    };
    let tc_path = at(&f_path, "typed_config");
    let filter = match any_type(any, &tc_path)?.as_str() {
        HCM_TYPE => {
            let config: PbHcm = unpack(any, &tc_path)?;
            NetworkFilter::Http(Arc::new(hcm::convert(&config, &tc_path, resource, ctx)?))
        }
        TCP_PROXY_TYPE => {
            let config: tcp::TcpProxy = unpack(any, &tc_path)?;
            NetworkFilter::Tcp(Arc::new(tcp_proxy(&config, &tc_path)?))
        }
        other => {
            return Err(unsupported(
                tc_path,
                format!(
                    "unsupported: {resource} filter {:?} (type {other})",
                    filter.name
                ),
            ));
        }
    };
    Ok(FilterChain {
        name: fc.name.clone(),
        matcher,
        tls,
        filter,
    })
}

pub(crate) fn unpack<T: prost::Message + prost::Name + Default>(
    any: &Any,
    path: &str,
) -> Result<T, ConfigError> {
    crate::unpack::<T>(any).map_err(|e| e.under(path))
}

/// A listener's transport socket: TLS, or `None` for plaintext (`raw_buffer`).
fn downstream_transport(
    ts: &core::TransportSocket,
    path: &str,
    resource: &str,
    ctx: &Ctx<'_>,
) -> Result<Option<Arc<crate::model::DownstreamTls>>, ConfigError> {
    let Some(core::transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        return match ts.name.as_str() {
            "envoy.transport_sockets.raw_buffer" | "raw_buffer" => Ok(None),
            _ => Err(invalid(
                at(path, "typed_config"),
                format!(
                    "{resource} transport socket {:?} needs a typed_config",
                    ts.name
                ),
            )),
        };
    };
    let tc_path = at(path, "typed_config");
    match any_type(any, &tc_path)?.as_str() {
        DOWNSTREAM_TLS_TYPE => {
            let config: DownstreamTlsContext = unpack(any, &tc_path)?;
            Ok(Some(Arc::new(tls::downstream(
                &config, &tc_path, resource, ctx,
            )?)))
        }
        RAW_BUFFER_TYPE => Ok(None),
        other => Err(unsupported(
            tc_path,
            format!(
                "unsupported: {resource} transport socket {:?} (type {other})",
                ts.name
            ),
        )),
    }
}

fn listener_filter(
    f: &pb::ListenerFilter,
    path: &str,
    resource: &str,
) -> Result<ListenerFilter, ConfigError> {
    let Some(pb::listener_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return Err(invalid(
            at(path, "typed_config"),
            format!(
                "{resource} listener filter {:?} needs a typed_config",
                f.name
            ),
        ));
    };
    let tc_path = at(path, "typed_config");
    Ok(match any_type(any, &tc_path)?.as_str() {
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" => {
            ListenerFilter::TlsInspector
        }
        "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector" => {
            ListenerFilter::HttpInspector
        }
        "envoy.extensions.filters.listener.original_dst.v3.OriginalDst" => {
            ListenerFilter::OriginalDst
        }
        other => {
            return Err(unsupported(
                tc_path,
                format!(
                    "unsupported: {resource} listener filter {:?} (type {other})",
                    f.name
                ),
            ));
        }
    })
}

fn chain_match(m: &pb::FilterChainMatch, path: &str) -> Result<FilterChainMatch, ConfigError> {
    use pb::filter_chain_match::ConnectionSourceType as Src;
    let ranges = |list: &[core::CidrRange], field: &str| -> Result<Vec<CidrRange>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, r)| cidr(r, &at(path, &format!("{field}[{i}]"))))
            .collect()
    };
    let source_type = match Src::try_from(m.source_type) {
        Ok(Src::Any) => SourceType::Any,
        Ok(Src::SameIpOrLoopback) => SourceType::SameIpOrLoopback,
        Ok(Src::External) => SourceType::External,
        Err(_) => {
            return Err(invalid(
                at(path, "source_type"),
                format!("unknown source_type {}", m.source_type),
            ));
        }
    };
    Ok(FilterChainMatch {
        destination_port: m
            .destination_port
            .as_ref()
            .map(|p| port(p.value, &at(path, "destination_port")))
            .transpose()?,
        prefix_ranges: ranges(&m.prefix_ranges, "prefix_ranges")?,
        server_names: m.server_names.clone(),
        transport_protocol: (!m.transport_protocol.is_empty())
            .then(|| m.transport_protocol.clone()),
        application_protocols: m.application_protocols.clone(),
        direct_source_prefix_ranges: ranges(
            &m.direct_source_prefix_ranges,
            "direct_source_prefix_ranges",
        )?,
        source_type,
        source_prefix_ranges: ranges(&m.source_prefix_ranges, "source_prefix_ranges")?,
        source_ports: m
            .source_ports
            .iter()
            .enumerate()
            .map(|(i, p)| port(*p, &at(path, &format!("source_ports[{i}]"))))
            .collect::<Result<_, _>>()?,
    })
}

pub(crate) fn cidr(r: &core::CidrRange, path: &str) -> Result<CidrRange, ConfigError> {
    let address: IpAddr = r.address_prefix.parse().map_err(|_| {
        invalid(
            at(path, "address_prefix"),
            format!("{:?} is not an IP address", r.address_prefix),
        )
    })?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let len = r.prefix_len.as_ref().map_or(0, |v| v.value);
    let prefix_len = u8::try_from(len)
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| {
            invalid(
                at(path, "prefix_len"),
                format!("prefix_len {len} is above {max}"),
            )
        })?;
    Ok(CidrRange {
        address,
        prefix_len,
    })
}

fn tcp_proxy(t: &tcp::TcpProxy, path: &str) -> Result<TcpProxy, ConfigError> {
    use tcp::tcp_proxy::ClusterSpecifier;
    let cluster = match &t.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => TcpCluster::Single(c.clone()),
        Some(ClusterSpecifier::WeightedClusters(w)) => TcpCluster::Weighted(
            w.clusters
                .iter()
                .map(|c| (c.name.clone(), c.weight))
                .collect(),
        ),
        None => {
            return Err(invalid(
                path,
                "tcp_proxy needs a cluster or weighted_clusters",
            ));
        }
    };
    Ok(TcpProxy {
        stat_prefix: t.stat_prefix.clone(),
        cluster,
        idle_timeout: timeout(
            t.idle_timeout.as_ref(),
            &at(path, "idle_timeout"),
            Some(TCP_IDLE_TIMEOUT),
        )?,
        max_connect_attempts: t.max_connect_attempts.as_ref().map_or(1, |v| v.value),
    })
}
