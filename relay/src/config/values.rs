//! Checks of values that several sections share: domains (RFC 3340 §2.2),
//! `host:port` targets, and durations (`30s`, `5m`, `2h`, `1d`).

use std::net::SocketAddr;
use std::time::Duration;

/// A domain as RFC 3340 §2.2 allows it: an FQDN or a `[literal]`.
pub(super) fn check_domain(domain: &str) -> Result<(), String> {
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return ip
            .parse::<std::net::IpAddr>()
            .map(drop)
            .map_err(|_| format!("{domain:?} is not a valid domain-literal"));
    }
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!("{domain:?} is not a valid domain name"))
    }
}

pub(super) fn check_host_port(target: &str) -> Result<(), String> {
    if target.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("{target:?} is not host:port"))?;
    port.parse::<u16>()
        .map_err(|_| format!("{target:?} has an invalid port"))?;
    check_domain(host)
}

/// Parses `30s`, `5m`, `2h`, `1d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 5m, 2h or 1d"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => return Ok(Duration::from_millis(number)),
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => return Err(format!("{text:?} has an unknown unit (ms, s, m, h, d)")),
    };
    Ok(Duration::from_secs(seconds))
}
