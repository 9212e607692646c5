//! End-to-end protection through two relays (issue 7): alice@a.test sends a
//! signed and encrypted Message/CPIM to bob@b.test through relay a.test and
//! relay b.test, with OpenPGP and with S/MIME. The mesh link between the
//! relays runs without TLS through a recording TCP proxy on loopback, so
//! the capture holds exactly the bytes the relays exchanged.
//!
//! Checked: the message arrives and verifies (signer, CPIM From); a unique
//! marker in its plaintext appears neither in the capture nor in any file
//! under either relay's state directory (while a plain control message's
//! marker does appear in the capture, so the capture is real); and when the
//! proxy flips one byte inside the protected content, Bob's reader reports
//! a failed decryption, never a valid message.

use imxp_apex::Endpoint;
use imxp_e2e::keyring::Keys;
use imxp_e2e::protect::{self, Protection};
use imxp_e2e::{ImUri, Scheme, Verdict, mime, pgp, smime};
use imxp_tests::relays::{RelaySpec, TestCa, TestRelay, loopback_listener};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Guards against a hang (not a timing assertion).
const TIMEOUT: Duration = Duration::from_secs(60);

fn ep(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap()
}

fn uri(address: &str) -> ImUri {
    ImUri::from_address(address).unwrap()
}

/// What the proxy saw from A to B, and the byte it is asked to flip.
#[derive(Default)]
struct Capture {
    /// Every byte A sent to B, as forwarded.
    a_to_b: Vec<u8>,
    /// Every byte B sent to A.
    b_to_a: Vec<u8>,
    /// Flip the first byte (CR and LF aside) of the next occurrence of
    /// these bytes.
    flip_after: Option<Vec<u8>>,
    /// The stream offset of the byte to flip, once the needle was seen.
    flip_at: Option<usize>,
    /// How many bytes were flipped.
    flipped: usize,
}

/// A recording TCP proxy: accepts on loopback, connects each connection to
/// `target`, copies both ways, and records everything.
async fn start_proxy(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Capture>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let capture = Arc::new(Mutex::new(Capture::default()));
    let shared = capture.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            let (mut in_read, mut in_write) = inbound.into_split();
            let (mut out_read, mut out_write) = outbound.into_split();
            let forward = shared.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                while let Ok(n) = in_read.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    let chunk = forward_chunk(&forward, &mut buffer[..n]);
                    if out_write.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                let _ = out_write.shutdown().await;
            });
            let backward = shared.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                while let Ok(n) = out_read.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    backward
                        .lock()
                        .unwrap()
                        .b_to_a
                        .extend_from_slice(&buffer[..n]);
                    if in_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = in_write.shutdown().await;
            });
        }
    });
    (address, capture)
}

/// Records an A→B chunk, flipping the chosen byte if it is in the chunk.
fn forward_chunk(capture: &Mutex<Capture>, chunk: &mut [u8]) -> Vec<u8> {
    let mut capture = capture.lock().unwrap();
    let base = capture.a_to_b.len();
    capture.a_to_b.extend_from_slice(chunk);
    if capture.flip_at.is_none()
        && let Some(needle) = capture.flip_after.clone()
        && let Some(found) = find(&capture.a_to_b, &needle)
    {
        capture.flip_at = Some(found);
        capture.flip_after = None;
    }
    if let Some(at) = capture.flip_at {
        // The needle may have started in an earlier chunk: flip the first
        // byte of it still to be forwarded.
        let mut at = at.max(base);
        while at < base + chunk.len() {
            let byte = chunk[at - base];
            if byte == b'\r' || byte == b'\n' {
                at += 1;
                continue;
            }
            chunk[at - base] ^= 0x01;
            capture.a_to_b[at] ^= 0x01;
            capture.flipped += 1;
            capture.flip_at = None;
            return chunk.to_vec();
        }
        capture.flip_at = Some(at);
    }
    chunk.to_vec()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Every file under `dir`, read whole.
fn files_contain(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                // The admin socket and the like are not regular files.
                if let Ok(bytes) = std::fs::read(&path)
                    && find(&bytes, needle).is_some()
                {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    hits
}

/// Alice's keys (her secrets, Bob's certificates) and Bob's (his secrets,
/// Alice's certificates, trusted), for both schemes.
fn key_sets() -> (Keys, Keys) {
    let (mut alice, mut bob) = (Keys::default(), Keys::default());
    let alice_pgp = pgp::generate(&uri("alice@a.test")).unwrap();
    let bob_pgp = pgp::generate(&uri("bob@b.test")).unwrap();
    alice.pgp.secrets.push(alice_pgp.clone());
    alice
        .pgp
        .certs
        .push(bob_pgp.clone().strip_secret_key_material());
    bob.pgp.secrets.push(bob_pgp);
    bob.pgp.trusted.insert(alice_pgp.fingerprint());
    bob.pgp.certs.push(alice_pgp.strip_secret_key_material());

    let (ca, ca_key) = smime::generate_ca("e2e test CA").unwrap();
    let (alice_cert, alice_key) =
        smime::generate_cert(&uri("alice@a.test"), Some((&ca, &ca_key))).unwrap();
    let (bob_cert, bob_key) =
        smime::generate_cert(&uri("bob@b.test"), Some((&ca, &ca_key))).unwrap();
    alice.smime.keys.push((alice_cert.clone(), alice_key));
    alice.smime.certs.push(bob_cert.clone());
    bob.smime.keys.push((bob_cert, bob_key));
    bob.smime.certs.push(alice_cert);
    bob.smime.anchors.push(ca);
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_encrypted_through_two_relays() {
    tokio::time::timeout(TIMEOUT * 3, scenario())
        .await
        .expect("the scenario hung");
}

async fn scenario() {
    let base = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    // B's mesh listener, and the proxy in front of it that A routes to.
    let b_mesh = loopback_listener().await;
    let (proxy, capture) = start_proxy(b_mesh.local_addr().unwrap()).await;
    // Plaintext relays (no certificate, `[tls] required = false`): the mesh
    // `bind` is then unauthenticated, which a relay must explicitly allow
    // where the configuration has a switch for it.
    let mut a_spec = RelaySpec::new("a.test", &["alice"]);
    a_spec.tls = false;
    a_spec.routes.push(("b.test".into(), proxy.to_string()));
    let mut b_spec = RelaySpec::new("b.test", &["bob"]);
    b_spec.tls = false;
    let a = TestRelay::start(&a_spec, &ca, &base.path().join("a"), None, None).await;
    let b = TestRelay::start(&b_spec, &ca, &base.path().join("b"), None, Some(b_mesh)).await;

    let alice = a
        .attach(&ca, "alice@a.test", "secret-alice", "alice@a.test")
        .await
        .expect("alice attaches at A");
    let mut bob = b
        .attach(&ca, "bob@b.test", "secret-bob", "bob@b.test")
        .await
        .expect("bob attaches at B");
    bob.set_auto_ack(true);
    let (alice_keys, bob_keys) = key_sets();

    // A plain control message: its marker must show in the capture.
    let control = format!("CONTROL-{:016x}", rand::random::<u64>());
    alice
        .send(
            vec![ep("bob@b.test")],
            "text/plain; charset=utf-8",
            control.as_bytes(),
        )
        .await
        .expect("A accepts the control message");
    let received = tokio::time::timeout(TIMEOUT, bob.next())
        .await
        .expect("control delivered in time")
        .expect("a datagram");
    assert_eq!(&received.content[..], control.as_bytes());
    assert!(
        find(&capture.lock().unwrap().a_to_b, control.as_bytes()).is_some(),
        "the proxy sees the mesh bytes in clear"
    );

    for scheme in [Scheme::OpenPgp, Scheme::Smime] {
        let marker = format!("MARKER-{:016x}", rand::random::<u64>());
        let send = |text: String| {
            let message = protect::compose(
                &uri("alice@a.test"),
                &[uri("bob@b.test")],
                Some("through two relays"),
                &mime::text_entity(&text),
            )
            .unwrap();
            protect::protect(
                &message.to_entity(),
                &Protection::new(scheme, true, true),
                &uri("alice@a.test"),
                &[uri("bob@b.test")],
                &alice_keys,
            )
            .unwrap()
        };

        // 1. Clean path: arrives and verifies.
        let protected = send(format!("the plaintext holds {marker}"));
        alice
            .send(
                vec![ep("bob@b.test")],
                &protected.content_type,
                &protected.body,
            )
            .await
            .expect("A accepts");
        let received = tokio::time::timeout(TIMEOUT, bob.next())
            .await
            .expect("delivered in time")
            .expect("a datagram");
        assert_eq!(received.originator, ep("alice@a.test"));
        let part = received.part.as_ref().expect("a MIME content part");
        let opened = protect::open(part.raw(), &bob_keys);
        assert_eq!(opened.verdict(), Verdict::Verified, "{scheme}: {opened:?}");
        assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
        assert_eq!(
            opened.signer().unwrap().identities,
            vec![uri("alice@a.test")]
        );
        let cpim = opened.cpim.as_ref().unwrap();
        assert_eq!(cpim.from().unwrap().unwrap().uri, "im:alice@a.test");
        let text = mime::readable(opened.content.as_ref().unwrap())
            .unwrap()
            .text
            .unwrap();
        assert_eq!(text, format!("the plaintext holds {marker}"));

        // The marker crossed the mesh and sat in both spools only as
        // ciphertext.
        {
            let capture = capture.lock().unwrap();
            assert!(
                find(&capture.a_to_b, marker.as_bytes()).is_none(),
                "{scheme}"
            );
            assert!(
                find(&capture.b_to_a, marker.as_bytes()).is_none(),
                "{scheme}"
            );
            assert!(
                find(&capture.a_to_b, &protected.body[..64]).is_some(),
                "{scheme}: the protected content crossed the proxy"
            );
        }
        for relay in [&a, &b] {
            let hits = files_contain(&relay.dir, marker.as_bytes());
            assert!(hits.is_empty(), "{scheme}: marker in {hits:?}");
        }

        // 2. The proxy flips one byte inside the ciphertext of the next
        // protected object: where 16 octets from three quarters into it
        // cross the mesh (armored OpenPGP data; the AES-GCM encrypted
        // content of the CMS object, which ends with the 16-octet tag).
        let protected = send(format!("tampered copy of {marker}"));
        let at = protected.body.len() * 3 / 4;
        let needle = protected.body[at..at + 16].to_vec();
        {
            // Only what crosses from now on counts.
            let mut capture = capture.lock().unwrap();
            capture.flip_after = Some(needle);
            capture.flip_at = None;
            capture.a_to_b.clear();
            capture.flipped = 0;
        }
        alice
            .send(
                vec![ep("bob@b.test")],
                &protected.content_type,
                &protected.body,
            )
            .await
            .expect("A accepts");
        let received = tokio::time::timeout(TIMEOUT, bob.next())
            .await
            .expect("delivered in time")
            .expect("a datagram");
        assert_eq!(
            capture.lock().unwrap().flipped,
            1,
            "{scheme}: one byte flipped"
        );
        let part = received.part.as_ref().expect("a MIME content part");
        assert_ne!(
            &received.content[..],
            &protected.body[..],
            "{scheme}: changed on the way"
        );
        let opened = protect::open(part.raw(), &bob_keys);
        assert_eq!(opened.verdict(), Verdict::Invalid, "{scheme}: {opened:?}");
        assert!(opened.content.is_none(), "{scheme}: nothing to show");
        assert!(
            opened.decryptions.iter().any(|d| d.result.is_err()) || opened.error.is_some(),
            "{scheme}: reported as a failed decryption: {opened:?}"
        );
    }

    drop(alice);
    drop(bob);
    a.stop().await;
    b.stop().await;
}
