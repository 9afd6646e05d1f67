//! `Telemetry`: per-workload tracing, metrics and access logging overrides, after Istio's
//! `telemetry/v1alpha1/telemetry.proto` (served as `v1` too).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::common::{Duration, PolicyTargetReference, WorkloadSelector};
use crate::validate::rules::{check_percent, check_workload_selector};
use crate::validate::{Checker, Validate};

/// Tracing, metrics and access logging for the selected workloads (or the namespace, or the
/// mesh when in the root namespace).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Telemetry {
    /// Workloads the policy applies to; all of the namespace when unset. At most one of
    /// `selector`, `targetRef` and `targetRefs` may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A single target (undocumented in Istio; superseded by `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways, GatewayClasses, Services or ServiceEntries the policy applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Tracing behaviour.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<Tracing>,
    /// Metrics behaviour.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metrics>,
    /// Access logging behaviour.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLogging>,
}

/// Tracing: providers, sampling and custom span tags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tracing {
    /// Traffic direction this configuration applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<TracingSelector>,
    /// Providers to report spans to (only one is supported); the mesh default when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Percentage of requests to trace when no upstream decision was made, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<f64>,
    /// If true, no spans are reported (context propagation and sampling are unaffected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    /// Tags added to every span, by tag name. Replaces, not merges with, inherited tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
    /// Whether Envoy samples by the request ID (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_request_id_for_trace_sampling: Option<bool>,
    /// Whether spans carry Istio's own tags (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_istio_tags: Option<bool>,
    /// If true, trace context headers are not forwarded (spans are still reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_context_propagation: Option<bool>,
}

/// `Tracing.TracingSelector`: which traffic direction a tracing configuration applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingSelector {
    /// Traffic direction (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// `Tracing.CustomTag`: where a span tag's value comes from. Exactly one source is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCustomTag", into = "RawCustomTag")]
pub enum CustomTag {
    /// A fixed value.
    Literal(LiteralTag),
    /// An environment variable of the proxy.
    Environment(EnvironmentTag),
    /// A request header.
    Header(RequestHeaderTag),
    /// An access-log format string such as `%REQUESTED_SERVER_NAME%`.
    Formatter(FormatterTag),
}

/// `Tracing.Literal`: the same value on every span.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LiteralTag {
    /// The value. Required.
    #[serde(default)]
    pub value: String,
}

/// `Tracing.Environment`: the value of an environment variable of the proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentTag {
    /// Variable name. Required.
    #[serde(default)]
    pub name: String,
    /// Used when the variable is not set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

/// `Tracing.RequestHeader`: the value of a request header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestHeaderTag {
    /// Header name. Required.
    #[serde(default)]
    pub name: String,
    /// Used when the header is absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

/// `Tracing.Formatter`: an access-log substitution format string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FormatterTag {
    /// The format string, such as `%REQUESTED_SERVER_NAME%`. Required.
    #[serde(default)]
    pub value: String,
}

/// A telemetry provider defined in MeshConfig's `extensionProviders`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderRef {
    /// Provider name. Required.
    #[serde(default)]
    pub name: String,
}

/// Metrics: providers, per-metric overrides and the reporting interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metrics {
    /// Providers this applies to; the mesh default when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Overrides, applied in order after inherited ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<MetricsOverrides>,
    /// Time between reports of long-lived (TCP) streams; default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<Duration>,
}

/// Traffic direction relative to the workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadMode {
    /// Both inbound and outbound traffic.
    #[default]
    #[serde(rename = "CLIENT_AND_SERVER")]
    ClientAndServer,
    /// Outbound traffic: the workload is the client.
    #[serde(rename = "CLIENT")]
    Client,
    /// Inbound traffic: the workload is the server.
    #[serde(rename = "SERVER")]
    Server,
}

/// `MetricSelector`: which metrics, in which direction, an override applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawMetricSelector", into = "RawMetricSelector")]
pub struct MetricSelector {
    /// The metric(s); all standard metrics when unset.
    pub metric: Option<MetricMatch>,
    /// Traffic direction (default both).
    pub mode: Option<WorkloadMode>,
}

/// The `metric_match` oneof of a [`MetricSelector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricMatch {
    /// `metric`: one of Istio's standard metrics.
    Metric(IstioMetric),
    /// `customMetric`: any metric by name, unchecked.
    CustomMetric(String),
}

/// `MetricSelector.IstioMetric`: Istio's standard metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IstioMetric {
    /// `ALL_METRICS`: every standard metric.
    #[default]
    AllMetrics,
    /// `REQUEST_COUNT`: `istio_requests_total`.
    RequestCount,
    /// `REQUEST_DURATION`: `istio_request_duration_milliseconds`.
    RequestDuration,
    /// `REQUEST_SIZE`: `istio_request_bytes`.
    RequestSize,
    /// `RESPONSE_SIZE`: `istio_response_bytes`.
    ResponseSize,
    /// `TCP_OPENED_CONNECTIONS`: `istio_tcp_connections_opened_total`.
    TcpOpenedConnections,
    /// `TCP_CLOSED_CONNECTIONS`: `istio_tcp_connections_closed_total`.
    TcpClosedConnections,
    /// `TCP_SENT_BYTES`: `istio_tcp_sent_bytes_total`.
    TcpSentBytes,
    /// `TCP_RECEIVED_BYTES`: `istio_tcp_received_bytes_total`.
    TcpReceivedBytes,
    /// `GRPC_REQUEST_MESSAGES`: `istio_request_messages_total`.
    GrpcRequestMessages,
    /// `GRPC_RESPONSE_MESSAGES`: `istio_response_messages_total`.
    GrpcResponseMessages,
}

/// `MetricsOverrides`: how to change the selected metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsOverrides {
    /// Which metrics; all metrics in both directions when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<MetricSelector>,
    /// `true` turns the metrics off; `false` turns them back on below a disabling parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Dimension (tag) name → what to do with it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// `MetricsOverrides.TagOverride`: add, replace or remove a metric dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagOverride {
    /// `UPSERT` (default) or `REMOVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<TagOperation>,
    /// CEL expression giving the value, such as `request.host`. Required for `UPSERT`,
    /// forbidden for `REMOVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `TagOverride.Operation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TagOperation {
    /// Insert or update the tag with `value`.
    #[default]
    #[serde(rename = "UPSERT")]
    Upsert,
    /// Leave the tag out of the metric.
    #[serde(rename = "REMOVE")]
    Remove,
}

/// Access logging: providers, on/off and a filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessLogging {
    /// Traffic direction this configuration applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<LogSelector>,
    /// Providers this applies to; the mesh default when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// `true` turns access logs off for these providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Which requests or connections to log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<AccessLogFilter>,
}

/// `AccessLogging.LogSelector`: which traffic direction an access log configuration applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogSelector {
    /// Traffic direction (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// `AccessLogging.Filter`: a CEL condition for logging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessLogFilter {
    /// CEL expression such as `response.code >= 400`.
    #[serde(default)]
    pub expression: String,
}

/// Istio's `ValidateTelemetry`, plus the CRD schema rules Kubernetes enforces before it.
impl Validate for Telemetry {
    fn validate(&self, cx: &mut Checker) {
        let set = usize::from(self.selector.is_some())
            + usize::from(self.target_ref.is_some())
            + usize::from(!self.target_refs.is_empty());
        if set > 1 {
            cx.error("only one of selector, targetRef or targetRefs may be set");
        }
        if let Some(selector) = &self.selector {
            cx.field("selector", |cx| check_selector(cx, selector));
        }
        if let Some(target) = &self.target_ref {
            cx.field("targetRef", |cx| {
                cx.warning("targetRef is undocumented in Istio; use targetRefs");
                check_target_ref(cx, target);
            });
        }
        cx.each("targetRefs", &self.target_refs, check_target_ref);
        if self.tracing.len() > 1 {
            cx.warning_at(
                "tracing",
                "only the first tracing configuration is used; merge them into one",
            );
        }
        cx.each("tracing", &self.tracing, check_tracing);
        cx.each("metrics", &self.metrics, check_metrics);
        cx.each("accessLogging", &self.access_logging, |cx, l| {
            check_providers(cx, &l.providers);
            if let Some(filter) = &l.filter {
                cx.field("filter", |cx| {
                    cx.field("expression", |cx| check_cel(cx, &filter.expression));
                });
            }
        });
    }
}

fn check_selector(cx: &mut Checker, selector: &WorkloadSelector) {
    if selector.match_labels.is_empty() {
        cx.warning("selector has no labels, so it selects every workload in the namespace");
    }
    check_workload_selector(cx, selector);
    for k in selector.match_labels.keys().filter(|k| k.contains('*')) {
        cx.error_at(
            "matchLabels",
            format!("wildcards are not supported in workload selector keys: {k:?}"),
        );
    }
}

/// Kinds a Telemetry may target, as (canonical group, kind).
const TARGET_KINDS: [(&str, &str); 4] = [
    ("core", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// Istio's `validatePolicyTargetReference`.
fn check_target_ref(cx: &mut Checker, target: &PolicyTargetReference) {
    if target.name.is_empty() {
        cx.error_at("name", "targetRef name must be set");
    }
    if !target.namespace.is_empty() {
        cx.error_at(
            "namespace",
            "targetRef namespace must not be set; cross-namespace references are not supported",
        );
    }
    let group = if target.group.is_empty() {
        "core"
    } else {
        target.group.as_str()
    };
    if !TARGET_KINDS.contains(&(group, target.kind.as_str())) {
        cx.error_at(
            "kind",
            format!(
                "cannot target {}/{}; expected Service (group \"\"), ServiceEntry (networking.istio.io), or Gateway or GatewayClass (gateway.networking.k8s.io)",
                target.group, target.kind
            ),
        );
    }
}

fn check_providers(cx: &mut Checker, providers: &[ProviderRef]) {
    cx.each("providers", providers, |cx, p| {
        if p.name.is_empty() {
            cx.error_at(
                "name",
                "provider name must not be empty; name an extensionProvider from MeshConfig",
            );
        }
    });
}

fn check_tracing(cx: &mut Checker, t: &Tracing) {
    if t.providers.len() > 1 {
        cx.warning_at(
            "providers",
            "only one tracing provider per tracing configuration is supported",
        );
    }
    check_providers(cx, &t.providers);
    if let Some(pct) = t.random_sampling_percentage {
        cx.field("randomSamplingPercentage", |cx| check_percent(cx, pct));
    }
    cx.field("customTags", |cx| {
        for (name, tag) in &t.custom_tags {
            if name.is_empty() {
                cx.error("custom tag name must not be empty");
            }
            cx.field(name, |cx| match tag {
                CustomTag::Literal(l) if l.value.is_empty() => {
                    cx.error_at("literal.value", "literal tag value must not be empty");
                }
                CustomTag::Environment(e) if e.name.is_empty() => {
                    cx.error_at(
                        "environment.name",
                        "environment tag needs the variable's name",
                    );
                }
                CustomTag::Header(h) if h.name.is_empty() => {
                    cx.error_at("header.name", "header tag needs the header's name");
                }
                CustomTag::Formatter(f) if f.value.is_empty() => {
                    cx.error_at("formatter.value", "formatter tag value must not be empty");
                }
                _ => {}
            });
        }
    });
}

fn check_metrics(cx: &mut Checker, m: &Metrics) {
    check_providers(cx, &m.providers);
    cx.each("overrides", &m.overrides, |cx, o| {
        cx.field("tagOverrides", |cx| {
            for (name, to) in &o.tag_overrides {
                if name.is_empty() {
                    cx.warning("tag name must not be empty");
                }
                cx.field(name, |cx| check_tag_override(cx, to));
            }
        });
        if let Some(MetricSelector {
            metric: Some(MetricMatch::CustomMetric(name)),
            ..
        }) = &o.r#match
            && name.is_empty()
        {
            cx.error_at(
                "match.customMetric",
                "customMetric must not be empty; name the metric, or use metric for a standard one",
            );
        }
    });
    if let Some(interval) = m.reporting_interval
        && interval.get() < std::time::Duration::from_millis(1)
    {
        cx.error_at(
            "reportingInterval",
            format!("reportingInterval {interval} must be at least 1ms"),
        );
    }
}

fn check_tag_override(cx: &mut Checker, to: &TagOverride) {
    match (to.operation.unwrap_or_default(), to.value.as_deref()) {
        (TagOperation::Upsert, None | Some("")) => cx.error_at(
            "value",
            "value is required when operation is UPSERT: a CEL expression such as request.host",
        ),
        // The CRD forbids the field itself, even empty; Istio's webhook only a non-empty one.
        (TagOperation::Remove, Some(_)) => cx.error_at(
            "value",
            "value must not be set when operation is REMOVE; remove it or use UPSERT",
        ),
        _ => {}
    }
}

/// weft has no CEL parser; this catches what a parse would reject most often: empty
/// expressions and unbalanced brackets or quotes.
fn check_cel(cx: &mut Checker, expr: &str) {
    if expr.trim().is_empty() {
        cx.error("filter expression must not be empty; write a CEL expression such as response.code >= 400");
        return;
    }
    let mut stack = Vec::new();
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    cx.error(format!("invalid CEL expression {expr:?}: unmatched {c:?}"));
                    return;
                }
            }
            _ => {}
        }
    }
    if quote.is_some() {
        cx.error(format!(
            "invalid CEL expression {expr:?}: unterminated string"
        ));
    } else if let Some(open) = stack.last() {
        cx.error(format!(
            "invalid CEL expression {expr:?}: unclosed {open:?}"
        ));
    }
}

/// The wire shape of [`CustomTag`], so that an empty or doubled oneof gets a clear message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCustomTag {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    literal: Option<LiteralTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<EnvironmentTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<RequestHeaderTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    formatter: Option<FormatterTag>,
}

impl TryFrom<RawCustomTag> for CustomTag {
    type Error = String;

    fn try_from(raw: RawCustomTag) -> Result<Self, Self::Error> {
        let mut set = [
            raw.literal.map(Self::Literal),
            raw.environment.map(Self::Environment),
            raw.header.map(Self::Header),
            raw.formatter.map(Self::Formatter),
        ]
        .into_iter()
        .flatten();
        match (set.next(), set.next()) {
            (Some(tag), None) => Ok(tag),
            _ => Err(
                "a custom tag needs exactly one of literal, environment, header or formatter"
                    .to_owned(),
            ),
        }
    }
}

impl From<CustomTag> for RawCustomTag {
    fn from(tag: CustomTag) -> Self {
        let mut raw = Self::default();
        match tag {
            CustomTag::Literal(l) => raw.literal = Some(l),
            CustomTag::Environment(e) => raw.environment = Some(e),
            CustomTag::Header(h) => raw.header = Some(h),
            CustomTag::Formatter(f) => raw.formatter = Some(f),
        }
        raw
    }
}

/// The wire shape of [`MetricSelector`]: the oneof members sit next to `mode`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMetricSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metric: Option<IstioMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    custom_metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<WorkloadMode>,
}

impl TryFrom<RawMetricSelector> for MetricSelector {
    type Error = String;

    fn try_from(raw: RawMetricSelector) -> Result<Self, Self::Error> {
        let metric = match (raw.metric, raw.custom_metric) {
            (Some(_), Some(_)) => {
                return Err("only one of metric or customMetric may be set".into());
            }
            (Some(m), None) => Some(MetricMatch::Metric(m)),
            (None, Some(c)) => Some(MetricMatch::CustomMetric(c)),
            (None, None) => None,
        };
        Ok(Self {
            metric,
            mode: raw.mode,
        })
    }
}

impl From<MetricSelector> for RawMetricSelector {
    fn from(s: MetricSelector) -> Self {
        let (metric, custom_metric) = match s.metric {
            Some(MetricMatch::Metric(m)) => (Some(m), None),
            Some(MetricMatch::CustomMetric(c)) => (None, Some(c)),
            None => (None, None),
        };
        Self {
            metric,
            custom_metric,
            mode: s.mode,
        }
    }
}

#[cfg(test)]
mod tests;
