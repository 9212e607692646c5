//! How received datagrams are printed: a text block or a JSON line. A
//! report (a `statusResponse` from a relay's report service, RFC 3340
//! §5.1) is also shown decoded: its transID and one line per destination.

use base64::Engine as _;
use imxp_apex::StatusResponse;
use imxp_client::Received;

/// The statusResponse a datagram carries inline, if it is a report.
pub(crate) fn status_response(datagram: &Received) -> Option<StatusResponse> {
    StatusResponse::from_data_content(datagram.data.data_content.as_ref()?).ok()
}

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
    let mut value = serde_json::json!({
        "originator": datagram.originator.to_string(),
        "recipient": datagram.recipient.to_string(),
        "content_type": datagram.content_type,
        "content": content,
        "base64": base64,
    });
    if let Some(status) = status_response(datagram) {
        value["report"] = report_json(&status);
    }
    let mut line = value.to_string();
    line.push('\n');
    line
}

/// A report as JSON: transID and each destination's code and text.
pub(crate) fn report_json(status: &StatusResponse) -> serde_json::Value {
    serde_json::json!({
        "trans_id": status.trans_id,
        "destinations": status.destinations.iter().map(|d| serde_json::json!({
            "identity": d.identity.to_string(),
            "code": d.reply.code.0,
            "text": d.reply.text,
        })).collect::<Vec<_>>(),
    })
}

/// One `status: IDENTITY CODE TEXT` line per destination of a report (the
/// text on one line).
pub(crate) fn status_lines(status: &StatusResponse) -> String {
    let mut lines = String::new();
    for destination in &status.destinations {
        let text = destination
            .reply
            .text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!(
            "status: {} {} {}",
            destination.identity, destination.reply.code.0, text
        );
        lines.push_str(line.trim_end());
        lines.push('\n');
    }
    lines
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
    if let Some(status) = status_response(datagram) {
        block.push_str(&format!("report: transID={}\n", status.trans_id));
        block.push_str(&status_lines(&status));
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

    fn report() -> Received {
        let status = StatusResponse::parse(
            b"<statusResponse transID='86'><destination identity='barney@example.com'><reply code='550'>unknown endpoint\n   identity</reply></destination></statusResponse>",
        )
        .unwrap();
        let (data, content) = status.to_report(
            imxp_apex::Domain::parse("example.com").unwrap(),
            Endpoint::parse("fred@example.com").unwrap(),
        );
        let payload = bytes::Bytes::from(data.to_payload(&content));
        let Inbound::Deliver(delivery) =
            payload::classify(&payload, |_| true, &imxp_apex::Limits::default())
        else {
            panic!("not delivered")
        };
        Received::detached(*delivery)
    }

    #[test]
    fn reports_are_decoded() {
        let block = text_block(&report());
        assert!(
            block.starts_with("originator: apex=report@example.com\n"),
            "{block}"
        );
        assert!(
            block.contains(
                "report: transID=86\nstatus: barney@example.com 550 unknown endpoint identity\n\n"
            ),
            "{block}"
        );
        let value: serde_json::Value = serde_json::from_str(&json_line(&report())).unwrap();
        assert_eq!(value["report"]["trans_id"], 86);
        assert_eq!(
            value["report"]["destinations"][0]["identity"],
            "barney@example.com"
        );
        assert_eq!(value["report"]["destinations"][0]["code"], 550);
        // Not a report: no report field.
        let value: serde_json::Value =
            serde_json::from_str(&json_line(&received("text/plain", b"x"))).unwrap();
        assert!(value.get("report").is_none());
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
