//! Validation of the URL a runtime registers (SSRF guard). Hearth and its
//! peers call this URL, so it must not point at the control plane's own
//! network: link-local and cloud metadata addresses, loopback literals other
//! than `localhost`, documentation, multicast, unspecified and — unless
//! allowed — private (RFC 1918 / ULA) ranges are refused. Host names are not
//! resolved here (a later DNS answer could differ anyway).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The placeholder of poll-mode runtimes that expose no endpoint.
pub const NO_INBOUND: &str = "remote://no-inbound";

pub fn validate(raw: &str, allow_private: bool) -> Result<(), String> {
    if raw == NO_INBOUND {
        return Ok(());
    }
    // As written, not as a lenient parser would repair it: printable ASCII
    // (an international name in punycode), no spaces, no empty port.
    if let Some(bad) = raw.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("url {raw:?} must be printable ASCII without spaces, found {bad:?}"));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("url {raw:?} is not a valid URL: {e}"))?;
    let authority = raw.split_once("://").map_or("", |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
    if authority.ends_with(':') {
        return Err(format!("url {raw:?} has an empty port"));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url must be http(s):// or {NO_INBOUND}, got scheme {:?}", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url must not carry credentials".into());
    }
    let refuse = |why: &str| Err(format!("url host {} is refused: {why}", url.host_str().unwrap_or("")));
    match url.host() {
        None => Err("url has no host".into()),
        Some(url::Host::Domain(domain)) => {
            // A host name: letters, digits, hyphens and underscores between dots.
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
            if let Some(bad) = domain.chars().find(|c| !valid(*c)) {
                return Err(format!("url host {domain:?} is not a host name: {bad:?} is not allowed"));
            }
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            if domain == "metadata.google.internal" || domain == "metadata" {
                return refuse("cloud metadata endpoint");
            }
            Ok(())
        }
        Some(url::Host::Ipv4(ip)) => match classify(IpAddr::V4(ip)) {
            Class::Public => Ok(()),
            Class::Private if allow_private => Ok(()),
            class => refuse(class.reason()),
        },
        Some(url::Host::Ipv6(ip)) => match classify(IpAddr::V6(ip)) {
            Class::Public => Ok(()),
            Class::Private if allow_private => Ok(()),
            class => refuse(class.reason()),
        },
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Class {
    Public,
    Private,
    Loopback,
    LinkLocal,
    Documentation,
    Multicast,
    Unspecified,
}

impl Class {
    fn reason(&self) -> &'static str {
        match self {
            Class::Public => "public",
            Class::Private => "private address (use --allow-private-agent-urls on a private network)",
            Class::Loopback => "loopback literal (use localhost)",
            Class::LinkLocal => "link-local or metadata address",
            Class::Documentation => "documentation range",
            Class::Multicast => "multicast or broadcast address",
            Class::Unspecified => "unspecified address",
        }
    }
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(ip),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Class::Unspecified
    } else if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_link_local() {
        Class::LinkLocal
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Class::Multicast
    } else if (a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113) {
        Class::Documentation
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) || (a == 198 && (b == 18 || b == 19)) {
        Class::Private
    } else {
        Class::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Class::Unspecified
    } else if ip.is_loopback() {
        Class::Loopback
    } else if first & 0xffc0 == 0xfe80 {
        Class::LinkLocal
    } else if ip.is_multicast() {
        Class::Multicast
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Class::Documentation
    } else if first & 0xfe00 == 0xfc00 {
        // Unique local, which includes AWS's fd00:ec2::254 metadata address.
        if ip.segments() == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] {
            Class::LinkLocal
        } else {
            Class::Private
        }
    } else {
        Class::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_urls() {
        for url in [
            "http://localhost:8000",
            "https://agent.example.com/a2a",
            "http://93.184.216.34:80",
            "http://[2606:4700::1111]/",
            "HTTP://Agent_1.Example.com.:8080/a2a/v1?x=1#top",
            "http://xn--exmple-cua.com/",
            NO_INBOUND,
        ] {
            assert_eq!(validate(url, false), Ok(()), "{url}");
        }
    }

    #[test]
    fn refused_urls() {
        for url in [
            "ftp://example.com",
            "http://127.0.0.1:80",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://metadata.google.internal/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://192.0.2.10/",
            "http://224.0.0.1/",
            "http://0.0.0.0:80/",
            "http://10.0.0.5/",
            "http://172.16.3.4/",
            "http://192.168.1.1/",
            "http://[fd12::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://user:pw@example.com/",
            "remote://something-else",
            "not a url",
            "http://agent.example.ik*",
            "http://agent.example.com:/",
            "http://agent.example.com:",
            " http://agent.example.com/",
            "http://agent.example.com/a b",
            "http://agent.exämple.com/",
            "http://agent.example.com/\u{7f}",
        ] {
            assert!(validate(url, false).is_err(), "{url} must be refused");
        }
    }

    #[test]
    fn private_ranges_can_be_allowed_but_loopback_and_metadata_cannot() {
        assert_eq!(validate("http://10.0.0.5:9000", true), Ok(()));
        assert_eq!(validate("http://[fd12::1]/", true), Ok(()));
        assert!(validate("http://127.0.0.1/", true).is_err());
        assert!(validate("http://169.254.169.254/", true).is_err());
    }
}
