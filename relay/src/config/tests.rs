//! Tests of `imxpd.toml` parsing: defaults, every section, and errors that
//! name their key.

use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/imxp/imxpd.toml"))
}

const MINIMAL: &str = r#"
    [relay]
    domains = ["Example.COM"]
    state_dir = "/var/lib/imxp"
    [tls]
    cert = "cert.pem"
    key = "key.pem"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.domains, vec!["example.com"]);
    assert_eq!(config.edge, vec!["0.0.0.0:913".parse().unwrap()]);
    assert_eq!(config.mesh, vec!["0.0.0.0:912".parse().unwrap()]);
    assert!(config.tls.required);
    assert_eq!(config.tls.cert, Some(PathBuf::from("/etc/imxp/cert.pem")));
    assert_eq!(config.users, PathBuf::from("/var/lib/imxp/users.toml"));
    assert_eq!(config.spool_engine, SpoolEngine::Redb);
    assert_eq!(config.queue.max_lifetime, Duration::from_secs(86_400));
    assert_eq!(config.hold.max_per_endpoint, 1000);
    assert_eq!(config.hold.default_ttl, Duration::from_secs(86_400));
    assert!(config.serves("EXAMPLE.com"));
    assert_eq!(config.options.default_hops, 0);
    assert!(config.options.ingress.is_empty());
    assert_eq!(config.reports.max_per_originator_per_minute, 60);
}

#[test]
fn options_and_reports() {
    let config = parse(&format!(
        "{MINIMAL}[options]\ndefault_hops = 8\ningress = [\"<option internal='hold4Endpoint' />\"]\n[reports]\nmax_per_originator_per_minute = 5\n"
    ))
    .unwrap();
    assert_eq!(config.options.default_hops, 8);
    assert!(config.options.ingress[0].is_internal("hold4Endpoint"));
    assert_eq!(config.reports.max_per_originator_per_minute, 5);
}

#[test]
fn full_config() {
    let config = parse(
        r#"
        [relay]
        domains = ["a.test", "[10.0.0.1]"]
        state_dir = "state"
        [listen]
        edge = ["127.0.0.1:9913", "::1"]
        mesh = []
        [tls]
        required = false
        [routes]
        "b.test" = "127.0.0.1:9912"
        "c.test" = "relay.c.test:912"
        [dns]
        nameservers = ["127.0.0.1:5353", "10.0.0.53"]
        implicit_fallback = false
        [spool]
        engine = "sled"
        [queue]
        max_lifetime = "2h"
        min_backoff = "1s"
        max_backoff = "10m"
        [hold]
        max_per_endpoint = 5
        max_bytes_per_endpoint = 4096
        default_ttl = "10m"
    "#,
    )
    .unwrap();
    assert_eq!(config.state_dir, PathBuf::from("/etc/imxp/state"));
    assert_eq!(config.edge[1], "[::1]:913".parse().unwrap());
    assert!(config.mesh.is_empty());
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.nameservers[1], "10.0.0.53:53".parse().unwrap());
    assert_eq!(config.spool_engine, SpoolEngine::Sled);
    assert_eq!(config.queue.max_backoff, Duration::from_secs(600));
    assert!(!config.implicit_fallback);
    assert_eq!(config.hold.max_per_endpoint, 5);
    assert_eq!(config.hold.max_bytes_per_endpoint, 4096);
    assert_eq!(config.hold.default_ttl, Duration::from_secs(600));
}

fn error_key(text: &str) -> String {
    match parse(text).unwrap_err() {
        ConfigError::Invalid { key, .. } => key,
        ConfigError::Syntax { message, .. } => message,
        other => other.to_string(),
    }
}

#[test]
fn errors_name_the_key() {
    let base = "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\"\n[tls]\nrequired = false\n";
    assert_eq!(
        error_key("[relay]\ndomains = []\nstate_dir = \"s\""),
        "relay.domains"
    );
    assert_eq!(
        error_key("[relay]\ndomains = [\"a..b\"]\nstate_dir = \"s\""),
        "relay.domains[0]"
    );
    assert_eq!(
        error_key("[relay]\ndomains = [\"a.test\"]"),
        "relay.state_dir"
    );
    assert_eq!(
        error_key("[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\""),
        "tls.cert"
    );
    assert_eq!(
        error_key(&format!("{base}[listen]\nedge = [\"nowhere\"]")),
        "listen.edge[0]"
    );
    assert_eq!(
        error_key(&format!("{base}[routes]\n\"b.test\" = \"b.test\"")),
        "routes.\"b.test\""
    );
    assert_eq!(
        error_key(&format!("{base}[spool]\nengine = \"sqlite\"")),
        "spool.engine"
    );
    assert_eq!(
        error_key(&format!("{base}[queue]\nmax_lifetime = \"forever\"")),
        "queue.max_lifetime"
    );
    assert_eq!(
        error_key(&format!("{base}[dns]\nnameservers = [\"dns.google\"]")),
        "dns.nameservers[0]"
    );
    assert_eq!(
        error_key(&format!("{base}[hold]\nmax_per_endpoint = 0")),
        "hold.max_per_endpoint"
    );
    assert_eq!(
        error_key(&format!("{base}[hold]\ndefault_ttl = \"soon\"")),
        "hold.default_ttl"
    );
    assert_eq!(
        error_key(&format!("{base}[options]\ndefault_hops = 256")),
        "options.default_hops"
    );
    assert_eq!(
        error_key(&format!(
            "{base}[options]\ningress = [\"<option internal='a' />\", \"<option />\"]"
        )),
        "options.ingress[1]"
    );
    let typo = error_key(&format!("{base}[queue]\nmax_lifetme = \"1d\""));
    assert!(typo.contains("max_lifetme"), "{typo}");
}

#[test]
fn limits_have_defaults_and_name_their_keys() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.max_sessions, 10_000);
    assert_eq!(config.limits.max_channels, 32);
    assert_eq!(config.limits.window, 256 * 1024);
    assert_eq!(config.limits.idle_timeout, Some(Duration::from_secs(600)));
    let config = parse(&format!(
        "{MINIMAL}[limits]\nmax_channels = 8\nwindow = 8192\nidle_timeout = \"0\"\n\
         greeting_timeout = \"2s\"\nhandshake_timeout = \"500ms\"\n\
         max_sessions_per_address = 3\nmax_attachments_per_session = 2\n\
         max_outstanding_per_channel = 5\n"
    ))
    .unwrap();
    assert_eq!(config.limits.max_channels, 8);
    assert_eq!(config.limits.window, 8192);
    assert_eq!(config.limits.idle_timeout, None);
    assert_eq!(config.limits.greeting_timeout, Duration::from_secs(2));
    assert_eq!(config.limits.handshake_timeout, Duration::from_millis(500));
    assert_eq!(config.limits.max_sessions_per_address, 3);
    assert_eq!(config.limits.max_attachments_per_session, 2);
    assert_eq!(config.limits.max_outstanding_per_channel, 5);
    for (line, key) in [
        ("window = 100", "limits.window"),
        ("max_channels = 1", "limits.max_channels"),
        ("max_sessions = 0", "limits.max_sessions"),
        (
            "max_sessions_per_address = 0",
            "limits.max_sessions_per_address",
        ),
        (
            "max_attachments_per_session = 0",
            "limits.max_attachments_per_session",
        ),
        (
            "max_outstanding_per_channel = 0",
            "limits.max_outstanding_per_channel",
        ),
        ("greeting_timeout = \"0\"", "limits.greeting_timeout"),
        ("handshake_timeout = \"soon\"", "limits.handshake_timeout"),
        ("idle_timeout = \"1w\"", "limits.idle_timeout"),
    ] {
        assert_eq!(
            error_key(&format!("{MINIMAL}[limits]\n{line}\n")),
            key,
            "{line}"
        );
    }
}

#[test]
fn access_settings() {
    let base = "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"s\"\n[tls]\nrequired = false\n";
    let config = parse(base).unwrap();
    let keys: Vec<String> = config.access.default_data.iter().map(|a| a.key()).collect();
    assert_eq!(keys, ["*@*"], "everyone may write unless blocked");
    assert!(config.access.admins.is_empty());
    let config = parse(&format!(
        "{base}[access]\ndefault_data = []\nadmins = [\"postmaster@a.test\"]\n"
    ))
    .unwrap();
    assert!(config.access.default_data.is_empty());
    assert_eq!(config.access.admins[0].to_string(), "postmaster@a.test");
    let config = parse(&format!(
        "{base}[access]\ndefault_data = [\"*@*.A.test\", \"fred/*@b.test\"]\n"
    ))
    .unwrap();
    let keys: Vec<String> = config.access.default_data.iter().map(|a| a.key()).collect();
    assert_eq!(keys, ["*@*.a.test", "fred/*@b.test"]);
    assert_eq!(
        error_key(&format!(
            "{base}[access]\ndefault_data = [\"*@*\", \"fr*d@a.test\"]\n"
        )),
        "access.default_data[1]"
    );
    assert_eq!(
        error_key(&format!("{base}[access]\nadmins = [\"postmaster\"]\n")),
        "access.admins[0]"
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
    assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert!(parse_duration("1w").is_err());
    assert!(parse_duration("").is_err());
}
