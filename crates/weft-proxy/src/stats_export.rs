//! Rendering stats the way Envoy's admin does: `/stats` text and `/stats/prometheus`, with
//! Envoy's names and tag extraction (`cluster.<name>.upstream_rq_total` becomes
//! `envoy_cluster_upstream_rq_total{envoy_cluster_name="<name>"}`; `upstream_rq_2xx` becomes
//! `envoy_cluster_upstream_rq_xx{envoy_response_code_class="2"}`).
//!
//! The stats are plain atomics read at scrape time, so the exposition is written directly
//! rather than through a metrics registry.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::Proxy;

/// One stat: Envoy name, tags extracted from it, value, and whether it is a counter.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// Full Envoy name, e.g. `cluster.backend.upstream_rq_total`.
    pub name: String,
    /// Prometheus metric name, e.g. `envoy_cluster_upstream_rq_total`.
    pub metric: String,
    /// Extracted tags.
    pub tags: Vec<(&'static str, String)>,
    /// Value.
    pub value: i64,
    /// Counter (else gauge).
    pub counter: bool,
}

/// Every stat of the proxy, sorted by name.
pub fn collect(proxy: &Proxy) -> Vec<Stat> {
    let mut out = Vec::new();
    for c in proxy.state().clusters().iter() {
        let name = c.name().to_owned();
        let stats = &c.shared.stats;
        for (stat, v) in stats.counters() {
            out.push(cluster_stat(
                &name,
                stat,
                i64::try_from(v).unwrap_or(i64::MAX),
                true,
            ));
        }
        for (stat, v) in stats.gauges() {
            out.push(cluster_stat(&name, stat, v, false));
        }
    }
    for (prefix, stats) in proxy.http_stats() {
        for (stat, v) in stats.counters() {
            out.push(http_stat(
                &prefix,
                stat,
                i64::try_from(v).unwrap_or(i64::MAX),
                true,
            ));
        }
        for (stat, v) in stats.gauges() {
            out.push(http_stat(&prefix, stat, v, false));
        }
    }
    for (name, v) in crate::http::filters::counters() {
        out.push(named_stat(
            &name,
            i64::try_from(v).unwrap_or(i64::MAX),
            true,
        ));
    }
    for (name, v) in crate::http::filters::gauges() {
        out.push(named_stat(&name, v, false));
    }
    for (name, v, counter) in proxy.external_stats() {
        out.push(named_stat(&name, v, counter));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A stat known by its full Envoy name; `http.<prefix>.<rest>` gets the connection manager tag.
fn named_stat(name: &str, value: i64, counter: bool) -> Stat {
    let (metric, tags) = match name.strip_prefix("http.").and_then(|r| r.split_once('.')) {
        Some((prefix, rest)) => (
            format!("envoy_http_{}", rest.replace('.', "_")),
            vec![("envoy_http_conn_manager_prefix", prefix.to_owned())],
        ),
        None => (format!("envoy_{}", name.replace('.', "_")), Vec::new()),
    };
    Stat {
        name: name.to_owned(),
        metric,
        tags,
        value,
        counter,
    }
}

fn class_of(stat: &str) -> Option<(&str, char)> {
    // `upstream_rq_2xx` → (`upstream_rq_xx`, '2')
    let (base, class) = stat.rsplit_once('_')?;
    let mut chars = class.chars();
    let digit = chars.next()?;
    (digit.is_ascii_digit() && chars.as_str() == "xx").then_some((base, digit))
}

fn cluster_stat(cluster: &str, stat: &str, value: i64, counter: bool) -> Stat {
    let mut tags = vec![("envoy_cluster_name", cluster.to_owned())];
    let metric = match class_of(stat) {
        Some((base, digit)) => {
            tags.push(("envoy_response_code_class", digit.to_string()));
            format!("envoy_cluster_{base}_xx")
        }
        None => format!("envoy_cluster_{stat}"),
    };
    Stat {
        name: format!("cluster.{cluster}.{stat}"),
        metric,
        tags,
        value,
        counter,
    }
}

fn http_stat(prefix: &str, stat: &str, value: i64, counter: bool) -> Stat {
    let mut tags = vec![("envoy_http_conn_manager_prefix", prefix.to_owned())];
    let metric = match class_of(stat) {
        Some((base, digit)) => {
            tags.push(("envoy_response_code_class", digit.to_string()));
            format!("envoy_http_{base}_xx")
        }
        None => format!("envoy_http_{stat}"),
    };
    Stat {
        name: format!("http.{prefix}.{stat}"),
        metric,
        tags,
        value,
        counter,
    }
}

/// Envoy's `/stats` text format: `name: value` per line.
pub fn render_text(stats: &[Stat]) -> String {
    let mut out = String::new();
    for s in stats {
        let _ = writeln!(out, "{}: {}", s.name, s.value);
    }
    out
}

/// Prometheus text exposition (version 0.0.4), one `# TYPE` line per metric family.
pub fn render_prometheus(stats: &[Stat]) -> String {
    let mut families: BTreeMap<&str, Vec<&Stat>> = BTreeMap::new();
    for s in stats {
        families.entry(s.metric.as_str()).or_default().push(s);
    }
    let mut out = String::new();
    for (metric, list) in families {
        let kind = if list.first().is_some_and(|s| s.counter) {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        for s in list {
            let labels: Vec<String> = s
                .tags
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{metric}{{{}}} {}", labels.join(","), s.value);
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_tag_extraction() {
        let s = cluster_stat("backend", "upstream_rq_2xx", 3, true);
        assert_eq!(s.name, "cluster.backend.upstream_rq_2xx");
        assert_eq!(s.metric, "envoy_cluster_upstream_rq_xx");
        assert_eq!(s.tags[1], ("envoy_response_code_class", "2".to_owned()));
        let t = cluster_stat("backend", "upstream_rq_total", 3, true);
        assert_eq!(t.metric, "envoy_cluster_upstream_rq_total");
        let h = http_stat("ingress_http", "downstream_rq_5xx", 1, true);
        assert_eq!(h.metric, "envoy_http_downstream_rq_xx");
    }

    #[test]
    fn prometheus_exposition() {
        let stats = vec![
            cluster_stat("a", "upstream_rq_total", 2, true),
            cluster_stat("b\"x", "upstream_rq_total", 5, true),
            cluster_stat("a", "upstream_cx_active", 1, false),
        ];
        let text = render_prometheus(&stats);
        assert!(text.contains("# TYPE envoy_cluster_upstream_rq_total counter\n"));
        assert!(text.contains("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"a\"} 2\n"));
        assert!(text.contains("envoy_cluster_name=\"b\\\"x\""));
        assert!(text.contains("# TYPE envoy_cluster_upstream_cx_active gauge\n"));
    }
}
