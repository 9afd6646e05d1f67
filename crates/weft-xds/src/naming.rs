//! Resource names as Istio gives them, so `istioctl`-trained eyes and tools read weft's output.

use std::fmt::Write as _;

/// Traffic direction of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// To a service (from this proxy's application).
    Outbound,
    /// To this proxy's own application.
    Inbound,
}

/// `outbound|9080|v1|reviews.bookinfo.svc.cluster.local` (subset empty when none).
pub fn cluster_name(direction: Direction, port: u16, subset: &str, host: &str) -> String {
    let dir = match direction {
        Direction::Outbound => "outbound",
        Direction::Inbound => "inbound",
    };
    let mut s = String::with_capacity(dir.len() + subset.len() + host.len() + 10);
    let _ = write!(s, "{dir}|{port}|{subset}|{host}");
    s
}

/// `outbound|9080|v1|reviews.bookinfo.svc.cluster.local` for a service port and subset.
pub fn outbound_cluster(port: u16, subset: &str, host: &str) -> String {
    cluster_name(Direction::Outbound, port, subset, host)
}

/// `inbound|9080||`: the cluster to this proxy's application on `port` (Istio ≥ 1.10 form).
pub fn inbound_cluster(port: u16) -> String {
    cluster_name(Direction::Inbound, port, "", "")
}

/// The parts of an Istio cluster name, or `None` for other names.
pub fn parse_cluster_name(name: &str) -> Option<(Direction, u16, &str, &str)> {
    let mut parts = name.splitn(4, '|');
    let direction = match parts.next()? {
        "outbound" => Direction::Outbound,
        "inbound" => Direction::Inbound,
        _ => return None,
    };
    let port = parts.next()?.parse().ok()?;
    Some((direction, port, parts.next()?, parts.next()?))
}

/// Drops everything (`BlackHoleCluster`).
pub const BLACK_HOLE_CLUSTER: &str = "BlackHoleCluster";
/// Forwards to the original destination (`PassthroughCluster`).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// The sidecar's virtual outbound listener (port 15001).
pub const VIRTUAL_OUTBOUND_LISTENER: &str = "virtualOutbound";
/// The sidecar's virtual inbound listener (port 15006).
pub const VIRTUAL_INBOUND_LISTENER: &str = "virtualInbound";
/// Outbound capture port.
pub const VIRTUAL_OUTBOUND_PORT: u16 = 15001;
/// Inbound capture port.
pub const VIRTUAL_INBOUND_PORT: u16 = 15006;

/// The RDS name of an outbound HTTP listener: the port (`"9080"`), or `"<bind>:<port>"` for a
/// listener bound to a specific address (a Sidecar egress listener with `bind`), so two such
/// listeners on one port keep separate route tables.
pub fn outbound_route_name(bind: Option<&str>, port: u16) -> String {
    match bind {
        Some(b) if !b.is_empty() && b != "0.0.0.0" && b != "::" => format!("{b}:{port}"),
        _ => port.to_string(),
    }
}

/// `http.8080` / `https.443.https-server.gw.ns`: a gateway server's RDS name, as Istio names it
/// (`<protocol>.<port>` for plain HTTP; HTTPS servers get their own table per server).
pub fn gateway_route_name(protocol: &str, port: u16, server: Option<(&str, &str, &str)>) -> String {
    match server {
        None => format!("{protocol}.{port}"),
        Some((port_name, gateway, namespace)) => {
            format!("{protocol}.{port}.{port_name}.{gateway}.{namespace}")
        }
    }
}

/// `reviews.bookinfo.svc.cluster.local:9080`: an outbound virtual host's name.
pub fn virtual_host_name(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_round_trip() {
        let n = outbound_cluster(9080, "v1", "reviews.bookinfo.svc.cluster.local");
        assert_eq!(n, "outbound|9080|v1|reviews.bookinfo.svc.cluster.local");
        assert_eq!(
            parse_cluster_name(&n),
            Some((
                Direction::Outbound,
                9080,
                "v1",
                "reviews.bookinfo.svc.cluster.local"
            ))
        );
        assert_eq!(inbound_cluster(8080), "inbound|8080||");
        assert_eq!(
            parse_cluster_name("inbound|8080||"),
            Some((Direction::Inbound, 8080, "", ""))
        );
        assert_eq!(parse_cluster_name("PassthroughCluster"), None);
        assert_eq!(parse_cluster_name("outbound|x||h"), None);
    }

    #[test]
    fn route_names() {
        assert_eq!(outbound_route_name(None, 9080), "9080");
        assert_eq!(outbound_route_name(Some("0.0.0.0"), 9080), "9080");
        assert_eq!(
            outbound_route_name(Some("127.0.1.2"), 9080),
            "127.0.1.2:9080"
        );
        assert_eq!(gateway_route_name("http", 80, None), "http.80");
        assert_eq!(
            gateway_route_name("https", 443, Some(("https", "gw", "ns"))),
            "https.443.https.gw.ns"
        );
    }
}
