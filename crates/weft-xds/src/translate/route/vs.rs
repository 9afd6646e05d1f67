//! Which VirtualServices a proxy applies, with short names resolved and delegates merged the way
//! istiod prepares them before building routes.

use std::collections::BTreeMap;

use weft_api::common::StringMatch;
use weft_api::networking::VirtualService;
use weft_api::networking::virtual_service::{HttpMatchRequest, HttpRoute};
use weft_registry::resolve_short_name;

use crate::translate::Scope;
use crate::translate::scope::exported_to;

/// The gateway name sidecars answer for.
pub(crate) const MESH_GATEWAY: &str = "mesh";

/// A VirtualService as route building reads it: hosts and destination hosts fully qualified,
/// gateway names in `namespace/name` form, delegated routes merged in.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedVs {
    /// Name of the VirtualService.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Hosts, short names resolved in the VirtualService's namespace, lower case.
    pub hosts: Vec<String>,
    /// Gateways (`mesh` or `namespace/name`); `mesh` when none are listed.
    pub gateways: Vec<String>,
    /// HTTP routes with delegates merged.
    pub http: Vec<HttpRoute>,
}

/// Every VirtualService visible from the proxy's namespace that is bound to one of `gateways`
/// (`mesh` for sidecars), in load order. Delegate VirtualServices (no hosts) are not returned
/// themselves; their routes are merged into the routes delegating to them.
pub(crate) fn applicable(scope: &Scope<'_>, gateways: &[String]) -> Vec<ResolvedVs> {
    let proxy_ns = scope.node.namespace.as_str();
    let mut out = Vec::new();
    for (entry, vs) in scope.mesh.config.of::<VirtualService>() {
        let ns = entry.resource.namespace();
        if vs.hosts.is_empty() || !exported_to(&vs.export_to, ns, proxy_ns) {
            continue;
        }
        let resolved = resolve(scope, entry.resource.name(), ns, vs);
        if resolved.gateways.iter().any(|g| gateways.contains(g)) {
            out.push(resolved);
        }
    }
    out
}

/// `gateways` entries as `namespace/name` (Istio's `resolveGatewayName`): `mesh` stays,
/// `name` and `./name` are in `namespace`, and the legacy `name.namespace.svc...` form names
/// `namespace/name`.
pub(crate) fn resolve_gateway(gateway: &str, namespace: &str) -> String {
    if gateway == MESH_GATEWAY {
        return gateway.to_owned();
    }
    if let Some((ns, name)) = gateway.split_once('/') {
        return if ns == "." {
            format!("{namespace}/{name}")
        } else {
            gateway.to_owned()
        };
    }
    let mut parts = gateway.split('.');
    match (parts.next(), parts.next()) {
        (Some(name), Some(ns)) => format!("{ns}/{name}"),
        _ => format!("{namespace}/{gateway}"),
    }
}

/// The gateways `vs` (in namespace `ns`) is bound to, as `namespace/name`, `mesh` when it
/// names none.
pub(crate) fn bound_gateways(vs: &VirtualService, ns: &str) -> Vec<String> {
    if vs.gateways.is_empty() {
        vec![MESH_GATEWAY.to_owned()]
    } else {
        vs.gateways.iter().map(|g| resolve_gateway(g, ns)).collect()
    }
}

fn resolve(scope: &Scope<'_>, name: &str, ns: &str, vs: &VirtualService) -> ResolvedVs {
    let gateways = bound_gateways(vs, ns);
    let mut http = Vec::with_capacity(vs.http.len());
    for route in &vs.http {
        match &route.delegate {
            None => http.push(resolve_route(route, ns)),
            Some(delegate) => {
                let root = resolve_route(route, ns);
                let d_ns = delegate.namespace.as_deref().unwrap_or(ns);
                let Some(d_name) = delegate.name.as_deref() else {
                    continue;
                };
                if let Some(routes) = delegate_routes(scope, d_name, d_ns, ns) {
                    http.extend(merge_routes(&root, routes));
                }
            }
        }
    }
    ResolvedVs {
        name: name.to_owned(),
        namespace: ns.to_owned(),
        hosts: vs
            .hosts
            .iter()
            .map(|h| resolve_short_name(h, ns).to_ascii_lowercase())
            .collect(),
        gateways,
        http,
    }
}

/// The HTTP routes of delegate `namespace/name`, resolved in its namespace, when it exists, is
/// a delegate (no hosts) and is exported to `root_ns`. A delegate does not delegate further.
fn delegate_routes(
    scope: &Scope<'_>,
    name: &str,
    namespace: &str,
    root_ns: &str,
) -> Option<Vec<HttpRoute>> {
    let (_, vs) = scope
        .mesh
        .config
        .of::<VirtualService>()
        .find(|(e, _)| e.resource.name() == name && e.resource.namespace() == namespace)?;
    if !vs.hosts.is_empty() || !exported_to(&vs.export_to, namespace, root_ns) {
        return None;
    }
    Some(
        vs.http
            .iter()
            .filter(|r| r.delegate.is_none())
            .map(|r| resolve_route(r, namespace))
            .collect(),
    )
}

/// A copy of `route` with destination and mirror hosts resolved in `ns` and match gateways in
/// `namespace/name` form.
fn resolve_route(route: &HttpRoute, ns: &str) -> HttpRoute {
    let mut r = route.clone();
    for m in &mut r.matches {
        for g in &mut m.gateways {
            *g = resolve_gateway(g, ns);
        }
    }
    for d in &mut r.route {
        d.destination.host = resolve_short_name(&d.destination.host, ns);
    }
    if let Some(m) = &mut r.mirror {
        m.host = resolve_short_name(&m.host, ns);
    }
    for m in &mut r.mirrors {
        m.destination.host = resolve_short_name(&m.destination.host, ns);
    }
    r
}

/// Istio's `MergeHTTPRoutes`: each delegate route whose matches fit inside the root's becomes
/// one route, inheriting what it leaves unset from the root; conflicting delegate routes are
/// dropped.
fn merge_routes(root: &HttpRoute, delegate: Vec<HttpRoute>) -> Vec<HttpRoute> {
    delegate
        .into_iter()
        .filter_map(|d| merge_route(root, d))
        .collect()
}

fn merge_route(root: &HttpRoute, mut d: HttpRoute) -> Option<HttpRoute> {
    d.matches = merge_matches(&root.matches, &d.matches)?;
    d.name = match (&root.name, d.name.take()) {
        (r, None) => r.clone(),
        (Some(r), Some(n)) => Some(format!("{r}-{n}")),
        (None, Some(n)) => Some(n),
    };
    macro_rules! inherit {
        ($($f:ident),*) => {$(
            if d.$f.is_none() {
                d.$f = root.$f.clone();
            }
        )*};
    }
    inherit!(
        rewrite,
        direct_response,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percent,
        mirror_percentage,
        cors_policy,
        headers
    );
    if d.mirrors.is_empty() {
        d.mirrors = root.mirrors.clone();
    }
    d.delegate = None;
    Some(d)
}

/// Every delegate match must fit inside at least one root match; the result has one match per
/// compatible (delegate, root) pair. `None` on conflict.
fn merge_matches(
    root: &[HttpMatchRequest],
    delegate: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(delegate.to_vec());
    }
    if delegate.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for sub in delegate {
        let before = out.len();
        for r in root {
            if !conflicts(r, sub) {
                out.push(merge_match(r, sub));
            }
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_match(root: &HttpMatchRequest, d: &HttpMatchRequest) -> HttpMatchRequest {
    let mut out = d.clone();
    out.name = match (&root.name, &d.name) {
        (r, None) => r.clone(),
        (Some(r), Some(n)) => Some(format!("{r}-{n}")),
        (None, Some(n)) => Some(n.clone()),
    };
    for (mine, theirs) in [
        (&mut out.uri, &root.uri),
        (&mut out.scheme, &root.scheme),
        (&mut out.method, &root.method),
        (&mut out.authority, &root.authority),
    ] {
        if mine.is_none() {
            mine.clone_from(theirs);
        }
    }
    out.headers = merged(&root.headers, &d.headers);
    out.without_headers = merged(&root.without_headers, &d.without_headers);
    out.query_params = merged(&root.query_params, &d.query_params);
    out.source_labels = merged(&root.source_labels, &d.source_labels);
    if out.port.is_none() {
        out.port = root.port;
    }
    if out.source_namespace.is_none() {
        out.source_namespace.clone_from(&root.source_namespace);
    }
    if out.gateways.is_empty() {
        out.gateways.clone_from(&root.gateways);
    }
    if out.stat_prefix.is_none() {
        out.stat_prefix.clone_from(&root.stat_prefix);
    }
    out
}

/// `root` entries overridden by `delegate` entries.
fn merged<V: Clone>(
    root: &BTreeMap<String, V>,
    delegate: &BTreeMap<String, V>,
) -> BTreeMap<String, V> {
    let mut out = root.clone();
    out.extend(delegate.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Istio's `hasConflict`: whether delegate match `leaf` cannot be narrowed from `root`.
fn conflicts(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .iter()
        .any(|(r, l)| string_match_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    let map_conflict = |r: &BTreeMap<String, StringMatch>, l: &BTreeMap<String, StringMatch>| {
        l.iter()
            .any(|(k, lv)| string_match_conflict(r.get(k), Some(lv)))
    };
    if map_conflict(&root.headers, &leaf.headers)
        || map_conflict(&root.without_headers, &leaf.without_headers)
        || map_conflict(&root.query_params, &leaf.query_params)
    {
        return true;
    }
    if root.ignore_uri_case != leaf.ignore_uri_case {
        return true;
    }
    if let (Some(r), Some(l)) = (root.port, leaf.port)
        && r != l
    {
        return true;
    }
    if let Some(ns) = &root.source_namespace
        && leaf.source_namespace.as_ref() != Some(ns)
    {
        return true;
    }
    if leaf
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|rv| rv != v))
    {
        return true;
    }
    if !root.gateways.is_empty() && !leaf.gateways.is_empty() {
        return leaf.gateways.iter().any(|g| !root.gateways.contains(g));
    }
    false
}

fn string_match_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    match (root, leaf) {
        (StringMatch::Regex(_), _) | (_, StringMatch::Regex(_)) => true,
        (StringMatch::Exact(r), StringMatch::Exact(l)) => r != l,
        (StringMatch::Exact(_), _) => true,
        (StringMatch::Prefix(p), StringMatch::Prefix(l) | StringMatch::Exact(l)) => {
            !l.starts_with(p.as_str())
        }
        _ => true,
    }
}
