//! Addresses to listen on as a command line gives them: `IP:PORT`, or `HOST:PORT` with a name
//! the machine resolves (`localhost:4433`).

use std::net::{SocketAddr, ToSocketAddrs as _};

/// `IP:PORT`, or `HOST:PORT` resolved to the first IPv4 address the name has (else its first):
/// a name such as `localhost` often resolves to both families, and clients dialling it by name
/// mostly reach IPv4.
pub fn parse(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    // Digits and dots only before the port are an IPv4 address mistyped (300.1.1.1), not a
    // host name to look up.
    if let Some((host, port)) = text.rsplit_once(':') {
        // A port of digits out of range, whatever the host (`localhost:99999`).
        if !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u16>().is_err()
        {
            return Err(format!(
                "{text:?} is not an address: {port:?} is no port (0 to 65535)"
            ));
        }
        if !host.is_empty() && host.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(match host.parse::<std::net::Ipv4Addr>() {
                Err(_) => format!(
                    "{text:?} is not an address: {host} is no IPv4 address (four numbers of 0 to 255)"
                ),
                Ok(_) => format!("{text:?} is not an address: {port:?} is no port (0 to 65535)"),
            });
        }
    }
    let named: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| {
            format!("{text:?} is not an address: give HOST:PORT (such as 127.0.0.1:4433) ({e})")
        })?
        .collect();
    named
        .iter()
        .find(|a| a.is_ipv4())
        .or(named.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_ip_or_a_name_with_a_port_is_an_address_and_anything_else_is_refused() {
        assert_eq!(
            super::parse(" 127.0.0.1:4433 ").unwrap(),
            "127.0.0.1:4433".parse().unwrap()
        );
        assert_eq!(
            super::parse("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            super::parse("localhost:4433").unwrap(),
            "127.0.0.1:4433".parse().unwrap()
        );
        for bad in [
            "localhost",
            "127.0.0.1",
            "no such host.invalid:1",
            "localhost:99999",
        ] {
            assert!(super::parse(bad).is_err(), "{bad}");
        }
        // A mistyped IPv4 address is said as such, not looked up as a host name.
        let e = super::parse("300.1.1.1:4433").unwrap_err();
        assert!(e.contains("300.1.1.1 is no IPv4 address"), "{e}");
        for text in ["127.0.0.1:99999", "localhost:99999", "[::1]:99999"] {
            let e = super::parse(text).unwrap_err();
            assert!(e.contains("\"99999\" is no port"), "{text}: {e}");
        }
    }
}
