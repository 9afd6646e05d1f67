//! What weft supports of Envoy's API, as data: per message type, the fields the converters read
//! and the fields they accept without effect (each with the reason), plus the extensions an
//! `Any` may hold. [`check`] walks every *set* field of a bootstrap against these tables and
//! rejects the first one that is in neither list, so nothing is silently ignored; the typed
//! converters then only meet fields listed here. [`markdown`] renders the tables as
//! `docs/proxy-support.md`.

use prost_reflect::{DynamicMessage, FieldDescriptor, MapKey, ReflectMessage, Value};

use crate::{
    any::{PayloadKind, payload_of},
    error::{ConfigError, ErrorKind, join_path},
};

/// The rules for one message type, or for one field of one message type when the same type is
/// supported differently in different places (`Http2ProtocolOptions` toward clients versus
/// toward upstreams).
pub(crate) struct Rules {
    /// A message's full name, or `Parent.full.Name.field` for a per-field override.
    pub(crate) key: &'static str,
    /// Fields the converters read.
    pub(crate) supported: &'static [&'static str],
    /// Fields accepted without effect: (field, why that is safe).
    pub(crate) ignored: &'static [(&'static str, &'static str)],
}

const fn rules(
    key: &'static str,
    supported: &'static [&'static str],
    ignored: &'static [(&'static str, &'static str)],
) -> Rules {
    Rules {
        key,
        supported,
        ignored,
    }
}

// Reasons shared by several tables.
const METADATA: &str = "opaque metadata; only read by filters and matchers weft does not implement";
const NO_RUNTIME: &str = "weft has no runtime layer; the default value applies, as in Envoy when \
                          the runtime key is absent";
const STATS_ONLY: &str = "only names or shapes statistics";
const XDS_CLIENT: &str = "reported to or read by the control-plane client, not the data path";
const NO_TRACING: &str = "takes effect only with HCM `tracing`, which is unsupported";

/// Every message weft reads, with its fields. Messages not listed here support no field at all
/// (an empty one is accepted wherever its parent's field is supported).
pub(crate) static RULES: &[Rules] = &[
    // ---- bootstrap --------------------------------------------------------------------------
    rules(
        "envoy.config.bootstrap.v3.Bootstrap",
        &["node", "static_resources", "admin", "dynamic_resources"],
        &[
            (
                "stats_flush_interval",
                "paces stats sinks, which are unsupported",
            ),
            ("stats_config", STATS_ONLY),
            ("enable_dispatcher_stats", STATS_ONLY),
            ("stats_server_version_override", STATS_ONLY),
            (
                "stats_flush_on_admin",
                "paces stats sinks, which are unsupported",
            ),
        ],
    ),
    rules(
        "envoy.config.bootstrap.v3.Bootstrap.StaticResources",
        &["listeners", "clusters", "secrets"],
        &[],
    ),
    rules(
        "envoy.config.bootstrap.v3.Bootstrap.DynamicResources",
        &["ads_config", "cds_config", "lds_config"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.ApiConfigSource",
        &["api_type", "transport_api_version", "grpc_services"],
        &[(
            "set_node_on_first_message_only",
            "weft sends the node on the first request of every stream and never after, which \
             is what this asks for and what every control plane accepts",
        )],
    ),
    rules(
        "envoy.config.core.v3.GrpcService",
        &["envoy_grpc"],
        &[(
            "timeout",
            "bounds unary calls; the ADS stream is long-lived and reconnects on its own",
        )],
    ),
    rules(
        "envoy.config.core.v3.GrpcService.EnvoyGrpc",
        &["cluster_name"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.ConfigSource",
        &["ads", "resource_api_version", "initial_fetch_timeout"],
        &[],
    ),
    rules("envoy.config.core.v3.AggregatedConfigSource", &[], &[]),
    rules(
        "envoy.config.bootstrap.v3.Admin",
        &["address"],
        &[
            (
                "access_log_path",
                "admin access logs are not written; no effect on traffic",
            ),
            (
                "access_log",
                "admin access logs are not written; no effect on traffic",
            ),
            ("profile_path", "weft has no CPU profiler endpoint"),
            (
                "ignore_global_conn_limit",
                "weft has no global connection limit",
            ),
        ],
    ),
    rules(
        "envoy.config.core.v3.Node",
        &["id", "cluster", "locality", "metadata"],
        &[
            (
                "user_agent_name",
                "weft reports itself as `weft`, as Envoy always reports `envoy`",
            ),
            (
                "user_agent_version",
                "weft reports its own version, as Envoy does",
            ),
            (
                "user_agent_build_version",
                "weft reports its own version, as Envoy does",
            ),
            ("extensions", XDS_CLIENT),
            ("client_features", XDS_CLIENT),
            ("listening_addresses", XDS_CLIENT),
            ("dynamic_parameters", XDS_CLIENT),
        ],
    ),
    rules(
        "envoy.config.core.v3.Locality",
        &["region", "zone", "sub_zone"],
        &[],
    ),
    rules("envoy.config.core.v3.Address", &["socket_address"], &[]),
    rules(
        "envoy.config.core.v3.SocketAddress",
        &["address", "port_value", "protocol"],
        &[],
    ),
    // ---- listeners --------------------------------------------------------------------------
    rules(
        "envoy.config.listener.v3.Listener",
        &[
            "name",
            "address",
            "filter_chains",
            "default_filter_chain",
            "listener_filters",
            "listener_filters_timeout",
            "continue_on_listener_filters_timeout",
            "use_original_dst",
            "per_connection_buffer_limit_bytes",
            "bind_to_port",
            "stat_prefix",
            "tcp_backlog_size",
        ],
        &[
            ("metadata", METADATA),
            (
                "traffic_direction",
                "only shapes stats and tracing in Envoy",
            ),
            (
                "enable_reuse_port",
                "how the kernel spreads connections over Envoy's per-worker sockets; weft's \
                 workers share one accept loop",
            ),
            (
                "reuse_port",
                "deprecated form of enable_reuse_port (see there)",
            ),
            (
                "ignore_global_conn_limit",
                "weft has no global connection limit",
            ),
        ],
    ),
    rules(
        "envoy.config.listener.v3.FilterChain",
        &["filter_chain_match", "filters", "transport_socket", "name"],
        &[("metadata", METADATA)],
    ),
    rules(
        "envoy.config.listener.v3.FilterChainMatch",
        &[
            "destination_port",
            "prefix_ranges",
            "server_names",
            "transport_protocol",
            "application_protocols",
            "direct_source_prefix_ranges",
            "source_type",
            "source_prefix_ranges",
            "source_ports",
        ],
        &[],
    ),
    rules(
        "envoy.config.core.v3.CidrRange",
        &["address_prefix", "prefix_len"],
        &[],
    ),
    rules(
        "envoy.config.listener.v3.Filter",
        &["name", "typed_config"],
        &[],
    ),
    rules(
        "envoy.config.listener.v3.ListenerFilter",
        &["name", "typed_config"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.TransportSocket",
        &["name", "typed_config"],
        &[],
    ),
    // ---- network filters --------------------------------------------------------------------
    rules(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        &[
            "codec_type",
            "stat_prefix",
            "route_config",
            "rds",
            "http_filters",
            "http_protocol_options",
            "http2_protocol_options",
            "server_name",
            "drain_timeout",
            "use_remote_address",
            "generate_request_id",
            "xff_num_trusted_hops",
            "skip_xff_append",
            "via",
            "upgrade_configs",
            "stream_idle_timeout",
            "request_timeout",
            "request_headers_timeout",
            "max_request_headers_kb",
            "normalize_path",
            "preserve_external_request_id",
            "merge_slashes",
            "server_header_transformation",
            "common_http_protocol_options",
            "always_set_request_id_in_response",
            "strip_matching_host_port",
            "strip_any_host_port",
            "path_with_escaped_slashes_action",
        ],
        &[],
    ),
    rules(
        "envoy.extensions.filters.network.http_connection_manager.v3.Rds",
        &["config_source", "route_config_name"],
        &[],
    ),
    rules(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
        &["name", "typed_config"],
        &[(
            "is_optional",
            "only lets Envoy skip filters it does not know; every filter weft accepts is known",
        )],
    ),
    rules(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig",
        &["upgrade_type", "enabled"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.HttpProtocolOptions",
        &[
            "idle_timeout",
            "max_headers_count",
            "headers_with_underscores_action",
            "max_stream_duration",
        ],
        &[],
    ),
    rules(
        "envoy.config.core.v3.Http2ProtocolOptions",
        &[
            "max_concurrent_streams",
            "initial_stream_window_size",
            "initial_connection_window_size",
        ],
        &[],
    ),
    rules(
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        &[
            "stat_prefix",
            "cluster",
            "weighted_clusters",
            "idle_timeout",
            "max_connect_attempts",
        ],
        &[],
    ),
    rules(
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster",
        &["clusters"],
        &[],
    ),
    rules(
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight",
        &["name", "weight"],
        &[],
    ),
    // ---- HTTP filters -----------------------------------------------------------------------
    rules(
        "envoy.extensions.filters.http.router.v3.Router",
        &["suppress_envoy_headers", "respect_expected_rq_timeout"],
        &[
            ("dynamic_stats", STATS_ONLY),
            ("start_child_span", NO_TRACING),
            ("suppress_grpc_request_failure_code_stats", STATS_ONLY),
        ],
    ),
    rules(
        "envoy.extensions.filters.http.fault.v3.HTTPFault",
        &[
            "delay",
            "abort",
            "upstream_cluster",
            "headers",
            "max_active_faults",
        ],
        &[
            ("delay_percent_runtime", NO_RUNTIME),
            ("abort_percent_runtime", NO_RUNTIME),
            ("delay_duration_runtime", NO_RUNTIME),
            ("abort_http_status_runtime", NO_RUNTIME),
            ("max_active_faults_runtime", NO_RUNTIME),
            ("response_rate_limit_percent_runtime", NO_RUNTIME),
            ("abort_grpc_status_runtime", NO_RUNTIME),
            ("disable_downstream_cluster_stats", STATS_ONLY),
            (
                "filter_metadata",
                "emitted as dynamic metadata, which nothing in weft reads",
            ),
        ],
    ),
    rules(
        "envoy.extensions.filters.common.fault.v3.FaultDelay",
        &["fixed_delay", "header_delay", "percentage"],
        &[],
    ),
    rules(
        "envoy.extensions.filters.http.fault.v3.FaultAbort",
        &["http_status", "grpc_status", "header_abort", "percentage"],
        &[],
    ),
    rules(
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        &[
            "allow_origin_string_match",
            "allow_methods",
            "allow_headers",
            "expose_headers",
            "max_age",
            "allow_credentials",
            "filter_enabled",
            "shadow_enabled",
            "allow_private_network_access",
            "forward_not_matching_preflights",
        ],
        &[],
    ),
    rules(
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        &[
            "stat_prefix",
            "status",
            "token_bucket",
            "filter_enabled",
            "filter_enforced",
            "response_headers_to_add",
        ],
        &[],
    ),
    rules(
        "envoy.type.v3.TokenBucket",
        &["max_tokens", "tokens_per_fill", "fill_interval"],
        &[],
    ),
    rules("envoy.type.v3.HttpStatus", &["code"], &[]),
    // ---- routes -----------------------------------------------------------------------------
    rules(
        "envoy.config.route.v3.RouteConfiguration",
        &[
            "name",
            "virtual_hosts",
            "internal_only_headers",
            "response_headers_to_add",
            "response_headers_to_remove",
            "request_headers_to_add",
            "request_headers_to_remove",
            "validate_clusters",
            "most_specific_header_mutations_wins",
            "max_direct_response_body_size_bytes",
            "request_mirror_policies",
            "ignore_port_in_host_matching",
            "typed_per_filter_config",
            "vhost_header",
        ],
        &[("metadata", METADATA)],
    ),
    rules(
        "envoy.config.route.v3.VirtualHost",
        &[
            "name",
            "domains",
            "routes",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "include_request_attempt_count",
            "include_attempt_count_in_response",
            "typed_per_filter_config",
            "retry_policy",
            "request_mirror_policies",
            "require_tls",
        ],
        &[("metadata", METADATA)],
    ),
    rules(
        "envoy.config.route.v3.Route",
        &[
            "name",
            "match",
            "route",
            "redirect",
            "direct_response",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "typed_per_filter_config",
        ],
        &[
            ("metadata", METADATA),
            ("decorator", NO_TRACING),
            ("tracing", NO_TRACING),
            ("stat_prefix", STATS_ONLY),
        ],
    ),
    rules(
        "envoy.config.route.v3.RouteMatch",
        &[
            "prefix",
            "path",
            "safe_regex",
            "path_separated_prefix",
            "connect_matcher",
            "case_sensitive",
            "headers",
            "query_parameters",
            "grpc",
            "runtime_fraction",
        ],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction",
        &[
            "cluster",
            "cluster_header",
            "weighted_clusters",
            "cluster_not_found_response_code",
            "prefix_rewrite",
            "regex_rewrite",
            "host_rewrite_literal",
            "auto_host_rewrite",
            "host_rewrite_header",
            "host_rewrite_path_regex",
            "append_x_forwarded_host",
            "timeout",
            "idle_timeout",
            "retry_policy",
            "request_mirror_policies",
            "hash_policy",
            "max_stream_duration",
            "upgrade_configs",
        ],
        &[],
    ),
    rules(
        "envoy.config.route.v3.WeightedCluster",
        &["clusters", "header_name"],
        &[
            (
                "total_weight",
                "deprecated; Envoy 1.40 uses the sum of the weights",
            ),
            ("runtime_key_prefix", NO_RUNTIME),
        ],
    ),
    rules(
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        &[
            "name",
            "cluster_header",
            "weight",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "host_rewrite_literal",
        ],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RetryPolicy",
        &[
            "retry_on",
            "num_retries",
            "per_try_timeout",
            "per_try_idle_timeout",
            "retry_back_off",
            "retriable_status_codes",
            "retry_host_predicate",
            "retry_priority",
            "host_selection_retry_max_attempts",
            "retriable_headers",
            "retriable_request_headers",
        ],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RetryPolicy.RetryBackOff",
        &["base_interval", "max_interval"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RetryPolicy.RetryHostPredicate",
        &["name", "typed_config"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RetryPolicy.RetryPriority",
        &["name", "typed_config"],
        &[],
    ),
    rules(
        "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
        &["update_frequency"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.HeaderMatcher",
        &[
            "name",
            "exact_match",
            "safe_regex_match",
            "range_match",
            "present_match",
            "prefix_match",
            "suffix_match",
            "contains_match",
            "string_match",
            "invert_match",
            "treat_missing_header_as_empty",
        ],
        &[],
    ),
    rules("envoy.type.v3.Int64Range", &["start", "end"], &[]),
    rules(
        "envoy.config.route.v3.QueryParameterMatcher",
        &["name", "string_match", "present_match"],
        &[],
    ),
    rules(
        "envoy.type.matcher.v3.StringMatcher",
        &[
            "exact",
            "prefix",
            "suffix",
            "safe_regex",
            "contains",
            "ignore_case",
        ],
        &[],
    ),
    rules(
        "envoy.type.matcher.v3.RegexMatcher",
        &["regex"],
        &[(
            "google_re2",
            "selects RE2, Envoy's only engine; weft's regex limits apply instead (an explicit \
             max_program_size is rejected)",
        )],
    ),
    rules(
        "envoy.type.matcher.v3.RegexMatchAndSubstitute",
        &["pattern", "substitution"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.RuntimeFractionalPercent",
        &["default_value"],
        &[("runtime_key", NO_RUNTIME)],
    ),
    rules(
        "envoy.type.v3.FractionalPercent",
        &["numerator", "denominator"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction.RequestMirrorPolicy",
        &[
            "cluster",
            "cluster_header",
            "runtime_fraction",
            "trace_sampled",
        ],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction.HashPolicy",
        &[
            "header",
            "cookie",
            "connection_properties",
            "query_parameter",
            "filter_state",
            "terminal",
        ],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction.HashPolicy.Header",
        &["header_name"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction.HashPolicy.Cookie",
        &["name", "ttl", "path"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties",
        &["source_ip"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter",
        &["name"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction.HashPolicy.FilterState",
        &["key"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction.MaxStreamDuration",
        &[
            "max_stream_duration",
            "grpc_timeout_header_max",
            "grpc_timeout_header_offset",
        ],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RouteAction.UpgradeConfig",
        &["upgrade_type", "enabled"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.RedirectAction",
        &[
            "https_redirect",
            "scheme_redirect",
            "host_redirect",
            "port_redirect",
            "path_redirect",
            "prefix_rewrite",
            "regex_rewrite",
            "response_code",
            "strip_query",
        ],
        &[],
    ),
    rules(
        "envoy.config.route.v3.DirectResponseAction",
        &["status", "body"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.HeaderValueOption",
        &["header", "append", "append_action", "keep_empty_value"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.HeaderValue",
        &["key", "value", "raw_value"],
        &[],
    ),
    rules(
        "envoy.config.route.v3.FilterConfig",
        &["config", "disabled"],
        &[(
            "is_optional",
            "only lets Envoy skip filters it does not know; every filter weft accepts is known",
        )],
    ),
    rules(
        "envoy.config.core.v3.DataSource",
        &[
            "filename",
            "inline_bytes",
            "inline_string",
            "environment_variable",
        ],
        &[],
    ),
    // ---- clusters ---------------------------------------------------------------------------
    rules(
        "envoy.config.cluster.v3.Cluster",
        &[
            "name",
            "type",
            "eds_cluster_config",
            "connect_timeout",
            "per_connection_buffer_limit_bytes",
            "lb_policy",
            "ring_hash_lb_config",
            "maglev_lb_config",
            "least_request_lb_config",
            "original_dst_lb_config",
            "common_lb_config",
            "load_assignment",
            "health_checks",
            "circuit_breakers",
            "outlier_detection",
            "transport_socket",
            "typed_extension_protocol_options",
            "http_protocol_options",
            "http2_protocol_options",
            "common_http_protocol_options",
            "max_requests_per_connection",
            "dns_refresh_rate",
            "dns_lookup_family",
        ],
        &[
            ("metadata", METADATA),
            ("alt_stat_name", STATS_ONLY),
            ("track_cluster_stats", STATS_ONLY),
        ],
    ),
    rules(
        "envoy.config.cluster.v3.Cluster.EdsClusterConfig",
        &["eds_config", "service_name"],
        &[],
    ),
    rules(
        "envoy.config.cluster.v3.Cluster.CommonLbConfig",
        &["healthy_panic_threshold", "locality_weighted_lb_config"],
        &[],
    ),
    rules("envoy.type.v3.Percent", &["value"], &[]),
    rules(
        "envoy.config.cluster.v3.Cluster.RingHashLbConfig",
        &["minimum_ring_size", "maximum_ring_size", "hash_function"],
        &[],
    ),
    rules(
        "envoy.config.cluster.v3.Cluster.MaglevLbConfig",
        &["table_size"],
        &[],
    ),
    rules(
        "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig",
        &["choice_count", "active_request_bias"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.RuntimeDouble",
        &["default_value"],
        &[("runtime_key", NO_RUNTIME)],
    ),
    rules(
        "envoy.config.cluster.v3.Cluster.OriginalDstLbConfig",
        &["use_http_header", "http_header_name"],
        &[],
    ),
    rules(
        "envoy.config.cluster.v3.CircuitBreakers",
        &["thresholds"],
        &[],
    ),
    rules(
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds",
        &[
            "priority",
            "max_connections",
            "max_pending_requests",
            "max_requests",
            "max_retries",
        ],
        &[("track_remaining", STATS_ONLY)],
    ),
    rules(
        "envoy.config.cluster.v3.OutlierDetection",
        &[
            "consecutive_5xx",
            "consecutive_gateway_failure",
            "consecutive_local_origin_failure",
            "split_external_local_origin_errors",
            "interval",
            "base_ejection_time",
            "max_ejection_time",
            "max_ejection_percent",
            "enforcing_consecutive_5xx",
            "enforcing_consecutive_gateway_failure",
            "enforcing_consecutive_local_origin_failure",
            "success_rate_minimum_hosts",
            "success_rate_request_volume",
            "success_rate_stdev_factor",
            "enforcing_success_rate",
        ],
        &[],
    ),
    rules(
        "envoy.config.endpoint.v3.ClusterLoadAssignment",
        &["cluster_name", "endpoints", "policy"],
        &[],
    ),
    rules(
        "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy",
        &["overprovisioning_factor", "weighted_priority_health"],
        &[],
    ),
    rules(
        "envoy.config.endpoint.v3.LocalityLbEndpoints",
        &[
            "locality",
            "lb_endpoints",
            "load_balancing_weight",
            "priority",
        ],
        &[("metadata", METADATA)],
    ),
    rules(
        "envoy.config.endpoint.v3.LbEndpoint",
        &["endpoint", "health_status", "load_balancing_weight"],
        &[("metadata", METADATA)],
    ),
    rules(
        "envoy.config.endpoint.v3.Endpoint",
        &["address", "health_check_config", "hostname"],
        &[],
    ),
    rules(
        "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig",
        &["port_value"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.HealthCheck",
        &[
            "timeout",
            "interval",
            "unhealthy_threshold",
            "healthy_threshold",
            "http_health_check",
            "tcp_health_check",
        ],
        &[],
    ),
    rules(
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        &["host", "path", "expected_statuses"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.HealthCheck.TcpHealthCheck",
        &["send", "receive"],
        &[],
    ),
    rules(
        "envoy.config.core.v3.HealthCheck.Payload",
        &["text", "binary"],
        &[],
    ),
    rules(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        &[
            "common_http_protocol_options",
            "explicit_http_config",
            "use_downstream_protocol_config",
        ],
        &[],
    ),
    rules(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
        &["http_protocol_options", "http2_protocol_options"],
        &[],
    ),
    rules(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig",
        &["http_protocol_options", "http2_protocol_options"],
        &[],
    ),
    // Toward upstreams weft has no HTTP/2 or connection-lifetime knobs beyond these.
    rules(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.common_http_protocol_options",
        &["idle_timeout", "max_requests_per_connection"],
        &[],
    ),
    rules(
        "envoy.config.cluster.v3.Cluster.common_http_protocol_options",
        &["idle_timeout", "max_requests_per_connection"],
        &[],
    ),
    rules(
        "envoy.config.cluster.v3.Cluster.http2_protocol_options",
        &[],
        &[],
    ),
    rules(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig.http2_protocol_options",
        &[],
        &[],
    ),
    rules(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig.http2_protocol_options",
        &[],
        &[],
    ),
    // ---- TLS --------------------------------------------------------------------------------
    rules(
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        &["common_tls_context", "require_client_certificate"],
        &[],
    ),
    rules(
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        &["common_tls_context", "sni"],
        &[],
    ),
    rules(
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        &[
            "tls_params",
            "tls_certificates",
            "tls_certificate_sds_secret_configs",
            "validation_context",
            "validation_context_sds_secret_config",
            "alpn_protocols",
        ],
        &[],
    ),
    rules(
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters",
        &[
            "tls_minimum_protocol_version",
            "tls_maximum_protocol_version",
        ],
        &[],
    ),
    rules(
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        &["certificate_chain", "private_key"],
        &[],
    ),
    rules(
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        &[
            "trusted_ca",
            "match_typed_subject_alt_names",
            "match_subject_alt_names",
        ],
        &[],
    ),
    rules(
        "envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher",
        &["san_type", "matcher"],
        &[],
    ),
    rules(
        "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig",
        &["name"],
        &[],
    ),
    rules(
        "envoy.extensions.transport_sockets.tls.v3.Secret",
        &["name", "tls_certificate", "validation_context"],
        &[],
    ),
];

/// Extensions an `Any` may hold, with where they go.
pub(crate) static EXTENSIONS: &[(&str, &str)] = &[
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "network filter `envoy.filters.network.http_connection_manager`",
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "network filter `envoy.filters.network.tcp_proxy`",
    ),
    (
        "envoy.extensions.filters.http.router.v3.Router",
        "HTTP filter `envoy.filters.http.router`",
    ),
    (
        "envoy.extensions.filters.http.fault.v3.HTTPFault",
        "HTTP filter `envoy.filters.http.fault`, and per route",
    ),
    (
        "envoy.extensions.filters.http.cors.v3.Cors",
        "HTTP filter `envoy.filters.http.cors`",
    ),
    (
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "`typed_per_filter_config` of the CORS filter",
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "HTTP filter `envoy.filters.http.local_ratelimit`, and per route",
    ),
    (
        "envoy.config.route.v3.FilterConfig",
        "`typed_per_filter_config` wrapper (`disabled`, or a config)",
    ),
    (
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        "listener filter `envoy.filters.listener.tls_inspector`",
    ),
    (
        "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
        "listener filter `envoy.filters.listener.http_inspector`",
    ),
    (
        "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
        "listener filter `envoy.filters.listener.original_dst`",
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "listener transport socket `envoy.transport_sockets.tls`",
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "cluster transport socket `envoy.transport_sockets.tls`",
    ),
    (
        "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
        "transport socket `envoy.transport_sockets.raw_buffer` (plaintext)",
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "cluster `typed_extension_protocol_options`",
    ),
    (
        "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
        "retry host predicate `envoy.retry_host_predicates.previous_hosts`",
    ),
    (
        "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
        "retry priority `envoy.retry_priorities.previous_priorities`",
    ),
];

/// Message types that are plain values: accepted whole wherever their field is supported.
const VALUE_TYPES: &[&str] = &[
    "google.protobuf.Duration",
    "google.protobuf.BoolValue",
    "google.protobuf.UInt32Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.Int64Value",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
    "google.protobuf.Empty",
    // Node metadata: opaque to the proxy, passed to the control plane as written.
    "google.protobuf.Struct",
];

fn rules_for(key: &str) -> Option<&'static Rules> {
    RULES.iter().find(|r| r.key == key)
}

/// Walks every set field of `msg` (a whole bootstrap, or one resource) against [`RULES`] and
/// [`EXTENSIONS`]; the first field that is neither supported nor knowingly ignored is an
/// [`ErrorKind::Unsupported`] error naming the resource and the field, with its path.
pub(crate) fn check(msg: &DynamicMessage, path: &str, resource: &str) -> Result<(), ConfigError> {
    let key = msg.descriptor().full_name().to_owned();
    walk(msg, &key, path, resource)
}

fn walk(msg: &DynamicMessage, key: &str, path: &str, resource: &str) -> Result<(), ConfigError> {
    let type_name = msg.descriptor().full_name().to_owned();
    if VALUE_TYPES.contains(&type_name.as_str()) {
        return Ok(());
    }
    let rules = rules_for(key).or_else(|| rules_for(&type_name));
    // A resource names itself; everything under it is reported against it.
    let resource = resource_label(msg).unwrap_or_else(|| resource.to_owned());
    for (field, value) in msg.fields() {
        let name = field.name();
        let field_path = join_path(path, name);
        let supported = rules.is_some_and(|r| r.supported.contains(&name));
        if !supported {
            if rules.is_some_and(|r| r.ignored.iter().any(|(f, _)| *f == name)) {
                continue;
            }
            return Err(unsupported_field(&resource, &field_path, name));
        }
        let child_key = format!("{type_name}.{name}");
        walk_value(msg, &field, value, &child_key, &field_path, &resource)?;
    }
    Ok(())
}

fn walk_value(
    parent: &DynamicMessage,
    field: &FieldDescriptor,
    value: &Value,
    child_key: &str,
    path: &str,
    resource: &str,
) -> Result<(), ConfigError> {
    match value {
        Value::Message(m) => walk_message(parent, None, m, child_key, path, resource),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::Message(m) = item {
                    walk_message(
                        parent,
                        None,
                        m,
                        child_key,
                        &format!("{path}[{i}]"),
                        resource,
                    )?;
                }
            }
            Ok(())
        }
        Value::Map(entries) if field.is_map() => {
            let mut sorted: Vec<_> = entries.iter().collect();
            sorted.sort_by_key(|(k, _)| map_key(k));
            for (k, v) in sorted {
                if let Value::Message(m) = v {
                    let key = map_key(k);
                    let entry_path = format!("{path}[{key:?}]");
                    walk_message(parent, Some(&key), m, child_key, &entry_path, resource)?;
                }
            }
            Ok(())
        }
        // Scalars and enums: supported as a whole; the converters check their values.
        _ => Ok(()),
    }
}

fn walk_message(
    parent: &DynamicMessage,
    map_key: Option<&str>,
    msg: &DynamicMessage,
    child_key: &str,
    path: &str,
    resource: &str,
) -> Result<(), ConfigError> {
    if msg.descriptor().full_name() != "google.protobuf.Any" {
        return walk(msg, child_key, path, resource);
    }
    let payload = payload_of(msg).map_err(|e| e.under(path))?;
    let (inner, inner_path) = match payload {
        None => return Ok(()),
        Some(PayloadKind::Plain(m)) => (m, path.to_owned()),
        Some(PayloadKind::TypedStruct(m)) => (m, join_path(path, "value")),
    };
    let type_name = inner.descriptor().full_name().to_owned();
    if !EXTENSIONS.iter().any(|(t, _)| *t == type_name) {
        let name = map_key
            .map(str::to_owned)
            .or_else(|| string_field(parent, "name"))
            .unwrap_or_default();
        let what = extension_kind(parent.descriptor().full_name());
        let message = if name.is_empty() {
            format!("unsupported: {resource} {what} of type {type_name}")
        } else {
            format!("unsupported: {resource} {what} {name:?} (type {type_name})")
        };
        return Err(ConfigError::new(ErrorKind::Unsupported, path, message));
    }
    walk(&inner, &type_name, &inner_path, resource)
}

/// `listener "x"` for a Listener, and so on; `None` for messages that are not resources.
fn resource_label(msg: &DynamicMessage) -> Option<String> {
    let kind = match msg.descriptor().full_name() {
        "envoy.config.listener.v3.Listener" => "listener",
        "envoy.config.cluster.v3.Cluster" => "cluster",
        "envoy.extensions.transport_sockets.tls.v3.Secret" => "secret",
        "envoy.config.bootstrap.v3.Admin" => return Some("admin".to_owned()),
        "envoy.config.core.v3.Node" => return Some("node".to_owned()),
        _ => return None,
    };
    Some(format!(
        "{kind} {:?}",
        string_field(msg, "name").unwrap_or_default()
    ))
}

fn extension_kind(parent: &str) -> &'static str {
    match parent {
        "envoy.config.listener.v3.Filter" => "filter",
        "envoy.config.listener.v3.ListenerFilter" => "listener filter",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter" => "HTTP filter",
        "envoy.config.core.v3.TransportSocket" => "transport socket",
        "envoy.config.cluster.v3.Cluster" => "protocol options",
        "envoy.config.route.v3.RetryPolicy.RetryHostPredicate" => "retry host predicate",
        "envoy.config.route.v3.RetryPolicy.RetryPriority" => "retry priority",
        _ => "per-filter config",
    }
}

fn string_field(msg: &DynamicMessage, name: &str) -> Option<String> {
    msg.descriptor().get_field_by_name(name)?;
    msg.get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn map_key(k: &MapKey) -> String {
    match k {
        MapKey::String(s) => s.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

/// `unsupported: listener "ingress" field "tcp_fast_open_queue_length"`.
pub(crate) fn unsupported_field(resource: &str, path: &str, field: &str) -> ConfigError {
    ConfigError::new(
        ErrorKind::Unsupported,
        path,
        format!("unsupported: {resource} field {field:?}"),
    )
}

/// The support tables as Markdown: `docs/proxy-support.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# What weft's proxy supports of Envoy's configuration\n\n\
         Generated from `crates/weft-proxy-config/src/convert/support.rs` by\n\
         `cargo test -p weft-proxy-config --test convert_corpus`; do not edit by hand.\n\n\
         A bootstrap that sets any field not listed here (to a non-default value) is rejected \
         with an `unsupported` error naming the resource and the field. Fields under\n\
         *accepted, no effect* are read and deliberately left without effect, for the reason \
         given. A message type whose row lists no fields is accepted only empty.\n\n\
         ## Extensions (`typed_config` and other `Any` fields)\n\n\
         | type | where |\n|---|---|\n",
    );
    for (ty, place) in EXTENSIONS {
        out.push_str(&format!("| `{ty}` | {place} |\n"));
    }
    out.push_str(
        "\n## Fields by message\n\n\
         Rows named `Message.field` apply to that message type only inside that field.\n\n\
         | message | supported fields | accepted, no effect |\n|---|---|---|\n",
    );
    for r in RULES {
        let supported = if r.supported.is_empty() {
            "(none)".to_owned()
        } else {
            r.supported
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ignored = r
            .ignored
            .iter()
            .map(|(f, why)| format!("`{f}`: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        out.push_str(&format!("| `{}` | {supported} | {ignored} |\n", r.key));
    }
    out
}
