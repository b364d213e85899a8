//! Who sent a request, and over what: the TCP peer and whether this server
//! terminated TLS itself — or, only when the peer is a proxy the operator
//! trusts (`--trusted-proxies`), what that proxy says in `X-Forwarded-For`
//! and `X-Forwarded-Proto`. From anyone else those headers are ignored: a
//! client could write anything there.
//!
//! The result is what the request log shows (`client`, `scheme`); nothing
//! else in Hearth depends on the client's address (limits are per token and
//! per workspace, and agent URLs are checked on their own).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address range such as `10.0.0.0/8`, `192.168.1.7` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of IPv4
/// clients) compare as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let invalid = || format!("{text:?} is not an address or a range such as 10.0.0.0/8 or fd00::/8");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = canonical(address.parse::<IpAddr>().map_err(|_| invalid())?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(invalid)?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose forwarding headers are believed (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }
}

/// The client of a request as far as this server can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client's address: the peer's, or the first address before the
    /// trusted proxies in `X-Forwarded-For`.
    pub client: Option<IpAddr>,
    /// `https` or `http`: TLS on this connection, or what a trusted proxy says.
    pub scheme: &'static str,
}

/// A client address in a log line: empty when unknown.
pub struct Client(pub Option<IpAddr>);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => Ok(()),
        }
    }
}

/// Resolves the origin of a request that arrived from `peer` (TLS
/// terminated here when `tls`).
pub fn origin(headers: &HeaderMap, peer: Option<SocketAddr>, tls: bool, trusted: &TrustedProxies) -> Origin {
    let direct = Origin { client: peer.map(|peer| canonical(peer.ip())), scheme: if tls { "https" } else { "http" } };
    let Some(peer) = direct.client else { return direct };
    if !trusted.trusts(peer) {
        return direct;
    }
    // Walk X-Forwarded-For from the right (the hop nearest to us): each
    // trusted hop vouches for the one before it; the first untrusted one is
    // the client. An entry that is not an address stops the walk.
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        if !trusted.trusts(client) {
            break;
        }
        match hop.parse::<IpAddr>() {
            Ok(ip) => client = canonical(ip),
            Err(_) => break,
        }
    }
    // The proxy nearest to us wrote (or appended) the last value.
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .map(|proto| proto.trim().to_ascii_lowercase());
    let scheme = match scheme.as_deref() {
        Some("https") => "https",
        Some("http") => "http",
        _ => direct.scheme,
    };
    Origin { client: Some(client), scheme }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn trusted(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies(ranges.iter().map(|r| r.parse().unwrap()).collect())
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn ranges_parse_and_match() {
        let cidr: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(cidr.contains("10.1.2.3".parse().unwrap()));
        assert!(cidr.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!cidr.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "192.168.1.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.168.1.7/32");
        assert!(one.contains("192.168.1.7".parse().unwrap()) && !one.contains("192.168.1.8".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()) && !v6.contains("fe80::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]);
        let origin = origin(&spoofed, peer("203.0.113.9"), false, &trusted(&["10.0.0.0/8"]));
        assert_eq!(origin, Origin { client: Some("203.0.113.9".parse().unwrap()), scheme: "http" });
        let nobody = super::origin(&spoofed, peer("10.0.0.2"), true, &TrustedProxies::default());
        assert_eq!(nobody, Origin { client: Some("10.0.0.2".parse().unwrap()), scheme: "https" });
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_the_scheme() {
        let forwarded = headers(&[("x-forwarded-for", "198.51.100.7"), ("x-forwarded-proto", "https")]);
        let origin = origin(&forwarded, peer("10.0.0.2"), false, &trusted(&["10.0.0.0/8"]));
        assert_eq!(origin, Origin { client: Some("198.51.100.7".parse().unwrap()), scheme: "https" });
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop() {
        // The client wrote "6.6.6.6" itself; the untrusted 198.51.100.7 was
        // what our proxies saw, so that is the client.
        let forwarded = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.9")]);
        let origin = origin(&forwarded, peer("10.0.0.2"), false, &trusted(&["10.0.0.0/8"]));
        assert_eq!(origin.client, Some("198.51.100.7".parse().unwrap()));
        let garbage = headers(&[("x-forwarded-for", "nonsense, 10.0.0.9")]);
        let origin = super::origin(&garbage, peer("10.0.0.2"), false, &trusted(&["10.0.0.0/8"]));
        assert_eq!(origin.client, Some("10.0.0.9".parse().unwrap()));
        let weird_proto = headers(&[("x-forwarded-proto", "gopher")]);
        assert_eq!(super::origin(&weird_proto, peer("10.0.0.2"), true, &trusted(&["10.0.0.0/8"])).scheme, "https");
    }
}
