//! A real, authoritative DNS server on loopback, for routing tests.
//!
//! The project rule is "a real DNS server on loopback for SRV routing", not a
//! mocked resolver: [`DnsServer`] answers real DNS messages (encoded and
//! decoded with `hickory-proto`) over UDP and TCP on `127.0.0.1`, on the same
//! ephemeral port for both, from a [`Zone`] given in code.
//!
//! Behaviour, per query:
//! - a name with records of the asked type: those records (authoritative);
//! - a CNAME: the CNAME, followed within the zone;
//! - a name that exists (it, or a name below it, has records) without records
//!   of the asked type: NOERROR with an empty answer (NODATA);
//! - any other name: NXDOMAIN;
//! - names marked [`Zone::servfail`]: SERVFAIL; names marked
//!   [`Zone::unresponsive`]: no answer at all, so the client times out;
//! - with [`Zone::srv_glue`], the addresses of SRV targets go in the
//!   additional section, as a well-behaved authoritative server does;
//! - an answer longer than 512 octets over UDP is sent truncated (TC), so the
//!   client retries over TCP, where it is sent whole.
//!
//! Every query is logged ([`DnsServer::queries`]), so a test can check what
//! the client asked. The server stops when the [`DnsServer`] is dropped.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use imxp_tests::dns::{DnsServer, Zone};
//! let server = DnsServer::start(
//!     Zone::new()
//!         .srv("_apex-mesh._tcp.example.test", 10, 0, 912, "relay.example.test")
//!         .a("relay.example.test", [127, 0, 0, 2].into()),
//! )
//! .await?;
//! let nameserver = server.addr();
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

pub use hickory_proto::rr::RecordType;

/// TTL of every record served.
const TTL: u32 = 60;
/// Largest UDP answer; the server does not do EDNS, so RFC 1035's limit.
const UDP_MAX: usize = 512;
/// How long a TCP connection may sit idle before the server closes it.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How many CNAMEs the server follows within the zone.
const MAX_CNAME_CHAIN: usize = 8;

/// The records a [`DnsServer`] serves, and how it misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: Vec<Record>,
    servfail: HashSet<String>,
    unresponsive: HashSet<String>,
    srv_glue: bool,
}

/// How a query reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A UDP datagram.
    Udp,
    /// A TCP connection.
    Tcp,
}

/// One query the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedQuery {
    /// The name asked, lower case, without the trailing dot.
    pub name: String,
    /// The type asked.
    pub record_type: RecordType,
    /// How the query arrived.
    pub transport: Transport,
}

impl Zone {
    /// An empty zone: every name is NXDOMAIN.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A zone of the given records.
    #[must_use]
    pub fn with_records(records: Vec<Record>) -> Self {
        Self {
            records,
            ..Self::default()
        }
    }

    /// Adds a record.
    #[must_use]
    pub fn record(mut self, record: Record) -> Self {
        self.records.push(record);
        self
    }

    /// Adds an SRV record at `name` (e.g. `_apex-mesh._tcp.example.test`);
    /// `target` `"."` is the root ("service not available").
    ///
    /// # Panics
    ///
    /// If a name is not a valid domain name.
    #[must_use]
    pub fn srv(self, name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Self {
        self.record(srv(name, priority, weight, port, target))
    }

    /// Adds an A record.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid domain name.
    #[must_use]
    pub fn a(self, name: &str, ip: Ipv4Addr) -> Self {
        self.record(a(name, ip))
    }

    /// Adds an AAAA record.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid domain name.
    #[must_use]
    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Self {
        self.record(aaaa(name, ip))
    }

    /// Adds a CNAME record.
    ///
    /// # Panics
    ///
    /// If a name is not a valid domain name.
    #[must_use]
    pub fn cname(self, name: &str, target: &str) -> Self {
        self.record(cname(name, target))
    }

    /// Answers every query for `name` (any type) with SERVFAIL.
    #[must_use]
    pub fn servfail(mut self, name: &str) -> Self {
        self.servfail.insert(key(name));
        self
    }

    /// Never answers queries for `name` (any type): the client times out.
    #[must_use]
    pub fn unresponsive(mut self, name: &str) -> Self {
        self.unresponsive.insert(key(name));
        self
    }

    /// Whether SRV answers carry their targets' A/AAAA records in the
    /// additional section (default: no, the client must look them up).
    #[must_use]
    pub fn srv_glue(mut self, on: bool) -> Self {
        self.srv_glue = on;
        self
    }

    /// The response to `request`, or `None` to stay silent.
    fn answer(&self, request: &Message) -> Option<Message> {
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.metadata.authoritative = true;
        response.add_queries(request.queries.iter().cloned());

        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        if request.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
            return Some(response);
        }
        let [query] = request.queries.as_slice() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return Some(response);
        };
        let qtype = query.query_type();
        let mut name = key(&query.name().to_ascii());
        if self.unresponsive.contains(&name) {
            return None;
        }
        if self.servfail.contains(&name) {
            response.metadata.response_code = ResponseCode::ServFail;
            return Some(response);
        }
        if query.query_class() != DNSClass::IN {
            response.metadata.response_code = ResponseCode::Refused;
            return Some(response);
        }

        for _ in 0..MAX_CNAME_CHAIN {
            let here: Vec<&Record> = self.records_at(&name).collect();
            let alias = here.iter().find_map(|r| match &r.data {
                RData::CNAME(CNAME(target)) if qtype != RecordType::CNAME => Some(target),
                _ => None,
            });
            if let Some(target) = alias {
                response.add_answers(
                    here.iter()
                        .filter(|r| r.record_type() == RecordType::CNAME)
                        .map(|r| (*r).clone()),
                );
                name = key(&target.to_ascii());
                continue;
            }
            let found: Vec<Record> = here
                .into_iter()
                .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
                .cloned()
                .collect();
            if found.is_empty() && !self.exists(&name) {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            if self.srv_glue {
                let glue = self.glue_for(&found);
                response.add_additionals(glue);
            }
            response.add_answers(found);
            break;
        }
        Some(response)
    }

    /// The records owned by `name` (a [`key`]).
    fn records_at<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.records
            .iter()
            .filter(move |r| key(&r.name.to_ascii()) == name)
    }

    /// Whether `name` (a [`key`]) or a name below it owns records.
    fn exists(&self, name: &str) -> bool {
        let suffix = format!(".{name}");
        self.records.iter().any(|r| {
            let owner = key(&r.name.to_ascii());
            owner == name || owner.ends_with(&suffix)
        })
    }

    /// The A and AAAA records of the targets of the SRV records in `answers`.
    fn glue_for(&self, answers: &[Record]) -> Vec<Record> {
        let targets: Vec<String> = answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(key(&srv.target.to_ascii())),
                _ => None,
            })
            .collect();
        self.records
            .iter()
            .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
            .filter(|r| targets.contains(&key(&r.name.to_ascii())))
            .cloned()
            .collect()
    }
}

/// An SRV record at `name`.
///
/// # Panics
///
/// If a name is not a valid domain name.
#[must_use]
pub fn srv(name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        dns_name(name),
        TTL,
        RData::SRV(SRV::new(priority, weight, port, dns_name(target))),
    )
}

/// An A record.
///
/// # Panics
///
/// If `name` is not a valid domain name.
#[must_use]
pub fn a(name: &str, ip: Ipv4Addr) -> Record {
    Record::from_rdata(dns_name(name), TTL, RData::A(A(ip)))
}

/// An AAAA record.
///
/// # Panics
///
/// If `name` is not a valid domain name.
#[must_use]
pub fn aaaa(name: &str, ip: Ipv6Addr) -> Record {
    Record::from_rdata(dns_name(name), TTL, RData::AAAA(AAAA(ip)))
}

/// A CNAME record.
///
/// # Panics
///
/// If a name is not a valid domain name.
#[must_use]
pub fn cname(name: &str, target: &str) -> Record {
    Record::from_rdata(dns_name(name), TTL, RData::CNAME(CNAME(dns_name(target))))
}

/// A fully qualified [`Name`] (`"."` is the root).
fn dns_name(name: &str) -> Name {
    let mut parsed =
        Name::from_ascii(name).unwrap_or_else(|e| panic!("invalid DNS name {name:?}: {e}"));
    parsed.set_fqdn(true);
    parsed
}

/// The comparison form of a name: lower case, no trailing dot.
fn key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A running DNS server on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts a server for `zone` on an ephemeral loopback port, UDP and TCP
    /// on the same port. Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// If no port could be bound for both UDP and TCP.
    pub async fn start(zone: Zone) -> io::Result<Self> {
        let (udp, tcp) = bind_pair().await?;
        let addr = udp.local_addr()?;
        let zone = Arc::new(zone);
        let log = Arc::new(Mutex::new(Vec::new()));
        let tasks = vec![
            tokio::spawn(serve_udp(udp, Arc::clone(&zone), Arc::clone(&log))),
            tokio::spawn(serve_tcp(tcp, zone, Arc::clone(&log))),
        ];
        Ok(Self { addr, log, tasks })
    }

    /// The address to use as a name server (UDP and TCP).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The queries received so far, in arrival order.
    #[must_use]
    pub fn queries(&self) -> Vec<LoggedQuery> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a query for `name` (any case, trailing dot optional) of
    /// `record_type` was received.
    #[must_use]
    pub fn was_asked(&self, name: &str, record_type: RecordType) -> bool {
        let name = key(name);
        self.queries()
            .iter()
            .any(|q| q.name == name && q.record_type == record_type)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A UDP socket and a TCP listener on the same ephemeral loopback port.
async fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no port for UDP and TCP")))
}

/// Decodes a request, logs its question and answers it.
fn handle(
    zone: &Zone,
    log: &Mutex<Vec<LoggedQuery>>,
    bytes: &[u8],
    transport: Transport,
) -> Option<Vec<u8>> {
    let request = Message::from_vec(bytes).ok()?;
    {
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        log.extend(request.queries.iter().map(|q| LoggedQuery {
            name: key(&q.name().to_ascii()),
            record_type: q.query_type(),
            transport,
        }));
    }
    let response = zone.answer(&request)?;
    let encoded = response.to_vec().ok()?;
    if transport == Transport::Udp && encoded.len() > UDP_MAX {
        return response.truncate().to_vec().ok();
    }
    Some(encoded)
}

/// Answers UDP queries until aborted.
async fn serve_udp(socket: UdpSocket, zone: Arc<Zone>, log: Arc<Mutex<Vec<LoggedQuery>>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = handle(&zone, &log, &buf[..len], Transport::Udp) {
            // A lost reply is the client's timeout to handle, as on a network.
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// Accepts TCP connections until aborted; aborting drops (and so aborts)
/// the connection tasks too.
async fn serve_tcp(listener: TcpListener, zone: Arc<Zone>, log: Arc<Mutex<Vec<LoggedQuery>>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_connection(stream, Arc::clone(&zone), Arc::clone(&log)));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers length-prefixed queries on one TCP connection (RFC 1035 §4.2.2)
/// until the client closes it or stays idle for [`TCP_IDLE`].
async fn serve_connection(
    mut stream: TcpStream,
    zone: Arc<Zone>,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
) {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        let mut request = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        let Some(reply) = handle(&zone, &log, &request, Transport::Tcp) else {
            continue;
        };
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_u16(reply_len).await.is_err() || stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}
