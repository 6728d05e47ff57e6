//! Where a request came from: for sessions, rate limits and the audit log; and which proxies
//! may say where it came from.

use std::net::IpAddr;

use depot_store::repo::idempotency::Claim;

/// The caller's address, user agent and request id, as the HTTP layer saw them; the
/// request's `Idempotency-Key` claim, which its units of work mark committed; and the trace
/// its request span is in, which the events it causes continue.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub idempotency: Option<Claim>,
    pub traceparent: Option<String>,
}

impl ClientInfo {
    /// The key rate limits count this client under.
    pub fn ip_key(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }

    /// A command run on this machine (the CLI): no address, no request.
    pub fn local() -> Self {
        Self::default()
    }
}

/// The header a trusted proxy names the client in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The proxies whose word on the client's address is believed (`trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<ipnet::IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// From CIDRs or single addresses; every entry that is neither, by itself.
    pub fn parse(entries: &[String], header: ForwardedHeader) -> Result<Self, Vec<String>> {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            match entry.parse::<ipnet::IpNet>() {
                Ok(net) => nets.push(canonical(net.trunc())),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => nets.push(ipnet::IpNet::from(ip)),
                    Err(_) => bad.push(entry.to_owned()),
                },
            }
        }
        if bad.is_empty() {
            Ok(Self { nets, header })
        } else {
            Err(bad)
        }
    }

    /// The header the proxies write.
    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the TCP `peer` unless it is a trusted proxy; then the hops the
    /// proxies recorded (`values`: every instance of the header, in order) are walked from the
    /// nearest: the first hop that is not a trusted proxy is the client. A hop that is not an
    /// address (`unknown`, an obfuscated name, garbage) ends the walk at the hop before it — a
    /// client can prepend anything, so nothing left of a hop we do not trust is believed.
    /// The values are read only when the peer is trusted (nothing is allocated otherwise).
    pub fn client_ip<S: AsRef<str>>(
        &self,
        peer: IpAddr,
        values: impl IntoIterator<Item = S>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let values: Vec<S> = values.into_iter().collect();
        let hops: Vec<&str> = values.iter().flat_map(|v| v.as_ref().split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let parsed = match self.header {
                ForwardedHeader::XForwardedFor => parse_hop(hop.trim()),
                ForwardedHeader::Forwarded => forwarded_for(hop),
            };
            let Some(ip) = parsed else {
                break;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it is: peers and
/// hops are compared in their canonical form.
fn canonical(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(ipnet::IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

/// An address as a hop names it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// The `for=` of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            parse_hop(value.trim())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        TrustedProxies::parse(&entries, header).expect("valid")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let none = TrustedProxies::default();
        let lb = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        for p in [&none, &lb] {
            assert_eq!(
                p.client_ip(ip("203.0.113.9"), ["1.1.1.1"].into_iter()),
                ip("203.0.113.9")
            );
        }
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let p = proxies(
            &["10.0.0.0/8", "192.168.1.7"],
            ForwardedHeader::XForwardedFor,
        );
        let peer = ip("10.1.2.3");
        // The client prepended a lie; the proxies appended what they saw.
        let chain = ["6.6.6.6, 198.51.100.4", "192.168.1.7"];
        assert_eq!(p.client_ip(peer, chain.into_iter()), ip("198.51.100.4"));
        // Only proxies: the leftmost.
        assert_eq!(
            p.client_ip(peer, ["10.9.9.9, 192.168.1.7"].into_iter()),
            ip("10.9.9.9")
        );
        // No header: the proxy itself.
        assert_eq!(p.client_ip(peer, std::iter::empty::<&str>()), peer);
        // Garbage ends the walk at the hop before it.
        assert_eq!(
            p.client_ip(peer, ["198.51.100.4, nonsense, 10.2.2.2"].into_iter()),
            ip("10.2.2.2")
        );
        // Ports and IPv6 forms.
        assert_eq!(
            p.client_ip(peer, ["[2001:db8::5]:443"].into_iter()),
            ip("2001:db8::5")
        );
        assert_eq!(
            p.client_ip(peer, ["198.51.100.4:5000"].into_iter()),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn the_forwarded_header_is_read_by_its_for_parameters() {
        let p = proxies(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let peer = ip("10.0.0.1");
        let header =
            r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2;by=10.0.0.1"#;
        assert_eq!(
            p.client_ip(peer, [header].into_iter()),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            p.client_ip(peer, ["for=unknown"].into_iter()),
            peer,
            "an unknown hop is not believed"
        );
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_an_ipv4_network_and_the_other_way_round() {
        let p = proxies(&["127.0.0.1"], ForwardedHeader::XForwardedFor);
        assert_eq!(
            p.client_ip(ip("::ffff:127.0.0.1"), ["198.51.100.4"].into_iter()),
            ip("198.51.100.4")
        );
        let mapped = proxies(&["::ffff:10.0.0.0/104"], ForwardedHeader::XForwardedFor);
        assert_eq!(
            mapped.client_ip(ip("10.1.1.1"), ["198.51.100.4"].into_iter()),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn entries_that_are_not_networks_are_named() {
        let entries = vec![
            "10.0.0.0/8".to_owned(),
            "proxy.local".into(),
            "10.0.0.0/99".into(),
        ];
        let bad = TrustedProxies::parse(&entries, ForwardedHeader::XForwardedFor).unwrap_err();
        assert_eq!(bad, vec!["proxy.local".to_owned(), "10.0.0.0/99".into()]);
    }
}
