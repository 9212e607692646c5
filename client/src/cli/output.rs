//! How received datagrams are printed: a text block or a JSON line.

use base64::Engine as _;
use imxp_client::Received;

/// The content as text if it is UTF-8, else base64 (and `true`).
pub(crate) fn content_text(datagram: &Received) -> (String, bool) {
    match datagram.text() {
        Some(text) => (text.to_owned(), false),
        None => (
            base64::engine::general_purpose::STANDARD.encode(&datagram.content),
            true,
        ),
    }
}

pub(crate) fn json_line(datagram: &Received) -> String {
    let (content, base64) = content_text(datagram);
    let mut line = serde_json::json!({
        "originator": datagram.originator.to_string(),
        "recipient": datagram.recipient.to_string(),
        "content_type": datagram.content_type,
        "content": content,
        "base64": base64,
    })
    .to_string();
    line.push('\n');
    line
}

pub(crate) fn text_block(datagram: &Received) -> String {
    let (content, base64) = content_text(datagram);
    let mut block = format!(
        "originator: {}\nrecipient: {}\ncontent-type: {}\ncontent-length: {}\n",
        datagram.originator,
        datagram.recipient,
        datagram.content_type,
        datagram.content.len()
    );
    if base64 {
        block.push_str("content-transfer-encoding: base64\n");
    }
    block.push('\n');
    block.push_str(&content);
    if !content.ends_with('\n') {
        block.push('\n');
    }
    block.push('\n');
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use imxp_apex::Endpoint;
    use imxp_client::payload::{self, Inbound};

    fn received(content_type: &str, body: &[u8]) -> Received {
        let (data, content) = payload::build_data(
            &Endpoint::parse("barney@example.org").unwrap(),
            &[Endpoint::parse("fred@example.com").unwrap()],
            content_type,
            body,
        )
        .unwrap();
        let payload = bytes::Bytes::from(data.to_payload(&content));
        let Inbound::Deliver(delivery) =
            payload::classify(&payload, |_| true, &imxp_apex::Limits::default())
        else {
            panic!("not delivered")
        };
        Received::detached(*delivery)
    }

    #[test]
    fn json_lines() {
        let line = json_line(&received(
            "text/plain; charset=utf-8",
            "hi \"fred\"\n".as_bytes(),
        ));
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line}"
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["originator"], "barney@example.org");
        assert_eq!(value["recipient"], "fred@example.com");
        assert_eq!(value["content_type"], "text/plain; charset=utf-8");
        assert_eq!(value["content"], "hi \"fred\"\n");
        assert_eq!(value["base64"], false);
        let value: serde_json::Value =
            serde_json::from_str(&json_line(&received("image/png", &[0xff, 0, 1]))).unwrap();
        assert_eq!(value["content"], "/wAB");
        assert_eq!(value["base64"], true);
    }

    #[test]
    fn text_blocks() {
        assert_eq!(
            text_block(&received("text/plain; charset=utf-8", b"hello")),
            "originator: barney@example.org\nrecipient: fred@example.com\n\
             content-type: text/plain; charset=utf-8\ncontent-length: 5\n\nhello\n\n"
        );
        assert_eq!(
            text_block(&received("image/png", &[0xff, 0, 1])),
            "originator: barney@example.org\nrecipient: fred@example.com\n\
             content-type: image/png\ncontent-length: 3\ncontent-transfer-encoding: base64\n\n/wAB\n\n"
        );
    }
}
