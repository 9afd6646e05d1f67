//! Protocol selection for listeners, as Istio does it (see
//! `docs/control-plane/protocol-selection.md`): an explicit protocol wins, then the port name's
//! prefix (`http-web`, `grpc`, `tcp-db`...), and a port with neither is detected from the
//! traffic — except on well-known server-first ports (25, 53, 3306, 27017), which are TCP.

use std::time::Duration;

use weft_api::networking::service_entry::Protocol;

/// How long an auto-detected listener waits for the client's first bytes before treating the
/// connection as opaque TCP. Server-first protocols (MySQL, SMTP...) on an undeclared port
/// pay this delay once per connection; HTTP clients always speak first, so their bytes are
/// there as soon as they send the request.
pub const PROTOCOL_DETECTION_TIMEOUT: Duration = Duration::from_millis(100);

/// The plaintext ALPN values the HTTP inspector reports for HTTP/1.0, HTTP/1.1 and HTTP/2
/// (prior knowledge), which an HTTP filter chain matches on when sniffing.
pub const PLAINTEXT_HTTP_ALPNS: [&str; 3] = ["http/1.0", "http/1.1", "h2c"];

/// What kind of filter chain serves a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerProtocol {
    /// An HTTP connection manager.
    Http,
    /// A TCP proxy (TLS is routed by SNI without termination).
    Tcp,
    /// Detected per connection: HTTP when the HTTP inspector recognizes it, TCP otherwise.
    Auto,
}

/// The protocol of a port with declared protocol `declared` (maybe empty), name `name` and
/// number `number`: the declared protocol if Istio knows it, else the name's prefix, else
/// [`Protocol::Unsupported`] (detected) — or TCP on the well-known server-first ports.
pub fn port_protocol(declared: &str, name: &str, number: u16) -> Protocol {
    match Protocol::parse(declared) {
        Protocol::Unsupported => Protocol::from_port_name(name, u32::from(number)),
        p => p,
    }
}

/// [`port_protocol`] for a registry service port.
pub fn service_port_protocol(p: &weft_registry::Port) -> Protocol {
    match p.protocol {
        Protocol::Unsupported => Protocol::from_port_name(&p.name, u32::from(p.number)),
        p => p,
    }
}

/// The listener protocol for a port protocol (Istio's `ModelProtocolToListenerProtocol`);
/// `None` for UDP, which sidecars do not proxy.
pub fn listener_protocol(p: Protocol) -> Option<ListenerProtocol> {
    match p {
        Protocol::Udp => None,
        Protocol::Unsupported => Some(ListenerProtocol::Auto),
        p if p.is_http() => Some(ListenerProtocol::Http),
        _ => Some(ListenerProtocol::Tcp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_protocol_wins_over_the_name() {
        assert_eq!(port_protocol("TCP", "http-web", 80), Protocol::Tcp);
        assert_eq!(port_protocol("grpc", "tcp", 80), Protocol::Grpc);
    }

    #[test]
    fn name_prefix_when_undeclared() {
        assert_eq!(port_protocol("", "http-web", 80), Protocol::Http);
        assert_eq!(port_protocol("", "http2", 80), Protocol::Http2);
        assert_eq!(port_protocol("", "grpc-web-x", 80), Protocol::GrpcWeb);
        assert_eq!(port_protocol("", "grpc", 80), Protocol::Grpc);
        assert_eq!(port_protocol("", "tcp-db", 80), Protocol::Tcp);
        assert_eq!(port_protocol("", "tls", 443), Protocol::Tls);
        assert_eq!(port_protocol("", "mongo", 1234), Protocol::Mongo);
        assert_eq!(port_protocol("", "mysql-x", 1234), Protocol::Mysql);
        assert_eq!(port_protocol("", "redis", 1234), Protocol::Redis);
        assert_eq!(port_protocol("", "web", 80), Protocol::Unsupported);
        assert_eq!(port_protocol("bogus", "", 80), Protocol::Unsupported);
    }

    #[test]
    fn well_known_server_first_ports_are_tcp() {
        for port in [25, 53, 3306, 27017] {
            assert_eq!(port_protocol("", "", port), Protocol::Tcp, "{port}");
        }
        assert_eq!(port_protocol("", "http", 3306), Protocol::Http);
    }

    #[test]
    fn listener_protocols() {
        use ListenerProtocol::*;
        for (p, want) in [
            (Protocol::Http, Some(Http)),
            (Protocol::Http2, Some(Http)),
            (Protocol::Grpc, Some(Http)),
            (Protocol::GrpcWeb, Some(Http)),
            (Protocol::HttpProxy, Some(Http)),
            (Protocol::Tcp, Some(Tcp)),
            (Protocol::Tls, Some(Tcp)),
            (Protocol::Https, Some(Tcp)),
            (Protocol::Mongo, Some(Tcp)),
            (Protocol::Mysql, Some(Tcp)),
            (Protocol::Redis, Some(Tcp)),
            (Protocol::Unsupported, Some(Auto)),
            (Protocol::Udp, None),
        ] {
            assert_eq!(listener_protocol(p), want, "{p}");
        }
    }
}
