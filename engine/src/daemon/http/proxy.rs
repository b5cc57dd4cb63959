//! Which address a request came from, behind a reverse proxy (`[server] trusted_proxies`).
//!
//! A request's client address is its peer's, unless the peer is a trusted proxy: then it is
//! the right-most address of `X-Forwarded-For` that is not itself a trusted proxy (the one the
//! nearest trusted proxy saw). From any other peer the header is ignored, so a client cannot
//! choose the `source_ip` of its audit events or dodge the per-address rate limits.

use std::net::IpAddr;

use ipnet::IpNet;

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`127.0.0.1`, `::1`) and ranges (`10.0.0.0/8`); the error names the bad
    /// entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "`{entry}` is not an address or CIDR range such as 127.0.0.1 or 10.0.0.0/8"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from `peer` carrying these `X-Forwarded-For` values.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // An entry that is not an address ends the chain: the last trusted hop is all we know.
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_peer() {
        let proxies = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let forged = ["203.0.113.9"];
        assert_eq!(
            proxies.client(ip("198.51.100.1"), forged.into_iter()),
            ip("198.51.100.1")
        );
        assert_eq!(
            proxies.client(ip("127.0.0.1"), forged.into_iter()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let proxies = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let chain = ["6.6.6.6, 203.0.113.9", "10.1.2.3"];
        assert_eq!(
            proxies.client(ip("127.0.0.1"), chain.into_iter()),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies.client(ip("127.0.0.1"), ["10.1.2.3"].into_iter()),
            ip("10.1.2.3")
        );
        assert_eq!(
            proxies.client(ip("127.0.0.1"), [].into_iter()),
            ip("127.0.0.1")
        );
        let garbled = ["203.0.113.9, unknown, 10.1.2.3"];
        assert_eq!(
            proxies.client(ip("127.0.0.1"), garbled.into_iter()),
            ip("10.1.2.3")
        );
        let mapped = ip("::ffff:127.0.0.1");
        assert_eq!(
            proxies.client(mapped, ["203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_bad_entry_is_named() {
        let e = TrustedProxies::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(e.contains("`10.0.0.0/33`"), "{e}");
        assert!(TrustedProxies::parse(&["proxy.example"]).is_err());
        assert!(TrustedProxies::parse(&["::1", "fd00::/8"]).is_ok());
    }
}
