//! Free ports and distinct loopback addresses.
//!
//! Linux routes all of `127.0.0.0/8` to `lo`, so a test can bind `127.0.5.7:8080` without any
//! setup. Giving each upstream its own address makes "which endpoint answered" visible in peer
//! addresses and lets several servers share a well-known port. (macOS only configures
//! `127.0.0.1`; these helpers target Linux.)

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// Returns a loopback address with a port that was free a moment ago.
///
/// The port is found by binding `127.0.0.1:0` and releasing it, so there is a race: another
/// process (or test) may take the port before the caller binds it. Prefer binding `:0` in the
/// server itself and reading back the address (all servers in this crate do that when given
/// port 0); use this only when a port must be known before the process that listens on it starts
/// (a config file for a child process).
pub fn free_addr() -> SocketAddr {
    free_addr_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Like [`free_addr`], on a given loopback IP (`127.x.y.z` or `::1`); the same race applies.
pub fn free_addr_on(ip: IpAddr) -> SocketAddr {
    assert!(
        ip.is_loopback(),
        "tests only use loopback addresses, got {ip}"
    );
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))
        .unwrap_or_else(|e| panic!("bind {ip}:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr of {ip}:0: {e}"))
}

/// The port of [`free_addr`] (same race).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// `127.0.x.y`.
pub fn loopback_ip(x: u8, y: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, x, y))
}

/// A loopback IP (`127.a.b.c`) not returned before by this process.
///
/// The second octet is derived from the process id so that test binaries running in parallel are
/// unlikely to pick the same addresses; `127.0.0.0/16` is left to hand-picked addresses
/// ([`loopback_ip`]). Combine with port 0 (or [`free_addr_on`]) when the port doesn't matter.
pub fn unique_loopback_ip() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // 1..=254 for the second octet; the low 16 bits count addresses, skipping .0 and .255.
    let second = 1 + (std::process::id() % 254) as u8;
    let host = n % (254 * 254);
    let third = (host / 254) as u8;
    let fourth = 1 + (host % 254) as u8;
    IpAddr::V4(Ipv4Addr::new(127, second, third, fourth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ips_are_distinct_and_bindable() {
        let a = unique_loopback_ip();
        let b = unique_loopback_ip();
        assert_ne!(a, b);
        assert!(a.is_loopback());
        let addr = free_addr_on(a);
        assert_eq!(addr.ip(), a);
        assert_ne!(addr.port(), 0);
    }
}
