//! What the RFC-vector tests share: where the vector files are, and the
//! client's MSG payload in one of them.

use std::path::PathBuf;

/// The directory `tests/<name>` of this crate.
pub(crate) fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// The first client chunk of a vector file as a MSG payload: a `MSG` frame's
/// payload with CRLF line ends, or a bare element behind
/// `application/beep+xml` headers.
pub(crate) fn client_payload(text: &str) -> Vec<u8> {
    let mut lines = Vec::new();
    let mut started = false;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("C:") {
            started = true;
            lines.push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
        } else if line.starts_with("S:") {
            if started {
                break;
            }
        } else if started {
            lines.push(line.to_owned());
        }
    }
    if lines[0].starts_with("MSG ") {
        assert_eq!(lines.last().map(String::as_str), Some("END"));
        let mut payload = lines[1..lines.len() - 1].join("\r\n").into_bytes();
        payload.extend_from_slice(b"\r\n");
        payload
    } else {
        format!(
            "Content-Type: application/beep+xml\r\n\r\n{}\r\n",
            lines.join("\n")
        )
        .into_bytes()
    }
}
