//! APEX, the Application Exchange (RFC 3340, the published form of IMXP):
//! its protocol elements as plain data, parsed from and written to BEEP
//! message payloads, with no I/O. The relay binds them to BEEP channels.
//!
//! # Layout
//!
//! * [`address`] — [`Endpoint`] (`address[/subaddress]@domain`) and
//!   [`Domain`] (FQDN or `[literal]`), RFC 3340 §2.2: subaddresses, the
//!   reserved `apex=` services, comparison rules (§2.2.1), the `apex:` URL
//!   form with %-encoding.
//! * [`code`] — [`ReplyCode`] (from `imxp-wire`, shared with BEEP), RFC 3340
//!   §10 plus 350, 503, 551, 556; success is [`ReplyCode::APEX_OK`] (250).
//! * One module per element (mini-redis `cmd/` style):
//!   [`attach`] (§4.4.1), [`bind`] (§4.4.2), [`terminate`] (§4.4.3),
//!   [`data`] (§4.4.4, with `originator`, `recipient`, `data-content` and
//!   [`Content`]), [`option`] (§5, kept generic with its content verbatim),
//!   [`reply`] (`ok` and the BEEP `error`), [`status`] (`statusResponse`,
//!   `destination`, `reply`; §5.1, §6).
//! * [`party`] — the RFC 3342 options a relay acts on, typed:
//!   [`DataTiming`] and [`DataHopping`] with their per-hop arithmetic.
//! * [`processing`] — the option rules of RFC 3340 §5 as pure functions:
//!   `targetHop` applicability ([`Hop`]), `mustUnderstand`, what is removed
//!   before transmitting, where a `data`'s typed options are, and whether a
//!   `data` is a report (reports never cause reports).
//! * [`message`] — [`Operation`] and [`ParsedMessage`]: a whole MSG payload
//!   (`application/beep+xml`, or `multipart/related` with the content part
//!   kept octet for octet) and the `<start>` init forms.
//! * [`mime`] — [`MimePart`] and the payload framing (RFC 2046, RFC 2387).
//! * [`limits`] — [`Limits`]: payload size, XML size and depth.
//! * [`error`] — [`ApexError`], [`XmlError`], [`MimeError`], each with the
//!   reply code to answer with.
//! * `xml` (private) — the glue to the bounded `application/beep+xml`
//!   reader of `imxp-wire` (no DOCTYPE, no entities but the predefined five,
//!   size and depth bounds), the DTD checks, and the escaping writers.
//!
//! # Decisions where the RFCs are silent or inconsistent
//!
//! * Endpoints (see [`address`]): SP is accepted inside a token but not at
//!   either end (erratum 24); C0/C1 controls and DEL are refused; `%` is an
//!   ordinary character in XML attributes, and %-decoding applies to the
//!   `apex:` URL form only ([`Endpoint::parse_uri`]); domains compare
//!   case-insensitively, IP literals by address.
//! * `transID`: optional on `option` (erratum 8) and on `reply` (erratum 7);
//!   `terminate` without one is 0 (the DTD default: terminate all).
//! * `data-content`'s `Name` attribute per erratum 6; its content, and any
//!   `option`'s content, is kept verbatim, so unknown options and service
//!   documents pass through untouched.
//! * Attributes the DTD does not declare (including `xmlns`) are refused
//!   with 501, as are child elements out of the DTD's order.
//! * A `multipart/related` carries the XML and at most one content part,
//!   which the `data` must reference; a part nobody references is refused
//!   (553) rather than dropped, since dropping would modify the message.
//! * The XML part must not use a transformative transfer encoding; content
//!   parts are never decoded.
//! * Init content (`<start>`): a bare `attach` or `bind` in, a bare `<ok />`
//!   or `<error>` back (erratum 3).
//! * Options ([`processing`]): an applicable, not-understood mustUnderstand
//!   option is answered 504 (erratum 10); `targetHop='this'` is removed
//!   before every transmission, the one to the recipient included; a
//!   `data` from a report service or carrying a `statusResponse` is a
//!   report and asks for none, whatever options it has. RFC 3342 counters
//!   ([`party`]): 0 means unset; a counter reaching 0 has run out (so a
//!   relay receiving `noMoreThan='1'` may not forward).
//!
//! # Receiving and forwarding a datagram
//!
//! ```
//! use imxp_apex::{Content, Operation, ParsedMessage, Response};
//!
//! let payload = b"Content-Type: multipart/related; boundary=\"b\";\r\n  start=\"<1@example.com>\"; type=\"application/beep+xml\"\r\n\r\n\
//! --b\r\nContent-Type: application/beep+xml\r\nContent-ID: <1@example.com>\r\n\r\n\
//! <data content='cid:2@example.com'><originator identity='fred@example.com' />\
//! <recipient identity='barney@example.com' /></data>\r\n\
//! --b\r\nContent-Type: text/plain\r\nContent-ID: <2@example.com>\r\n\r\nhi\r\n--b--\r\n";
//! let (data, content) = Operation::parse(payload)?.into_data().unwrap();
//! assert_eq!(data.originator.identity.to_string(), "fred@example.com");
//! let Content::Part(part) = &content else { unreachable!() };
//! assert_eq!(&part.raw()[..], b"Content-Type: text/plain\r\nContent-ID: <2@example.com>\r\n\r\nhi");
//!
//! // Forward it: same content, octet for octet.
//! let forwarded = data.to_payload(&content);
//! let again = Operation::parse(&forwarded)?;
//! assert_eq!(again, ParsedMessage { operation: data.into(), content: Some(content) });
//! assert_eq!(Response::Ok.to_payload(), b"Content-Type: application/beep+xml\r\n\r\n<ok />\r\n");
//! # Ok::<(), imxp_apex::ApexError>(())
//! ```

pub mod access;
pub mod address;
pub mod attach;
pub mod bind;
pub mod code;
pub mod data;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod hop_id;
pub mod limits;
pub mod message;
pub mod mime;
pub mod option;
pub mod party;
pub mod presence;
pub mod processing;
pub mod reply;
pub mod status;
pub mod terminate;
pub mod trans_id;
mod xml;

use xml::DtdChecks as _;

pub use address::{AddressError, Domain, Endpoint};
pub use attach::Attach;
pub use bind::Bind;
pub use code::ReplyCode;
pub use data::{Content, Data, DataContent, Originator, Recipient};
pub use error::{ApexError, MimeError, XmlError};
pub use limits::Limits;
pub use message::{Operation, ParsedMessage};
pub use mime::MimePart;
pub use option::{ApexOption, OptionKind, TargetHop};
pub use party::{DataHopping, DataTiming, TimingStep};
pub use processing::Hop;
pub use reply::{ErrorReply, Response};
pub use status::{Destination, Reply, StatusResponse};
pub use terminate::Terminate;
pub use trans_id::MAX_TRANS_ID;

/// The BEEP profile URI of APEX (RFC 3340 §4.2, §8.1).
pub const PROFILE_URI: &str = "http://iana.org/beep/APEX";

// ===== helpers shared by the element modules =====

/// Parses `true` / `false`.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parses an `%ENDPOINT;` attribute, mapping failures to 553.
pub(crate) fn parse_endpoint(
    element: &'static str,
    attribute: &'static str,
    value: &str,
) -> Result<Endpoint, ApexError> {
    Endpoint::parse(value).map_err(|source| ApexError::Address {
        element,
        attribute,
        value: value.to_owned(),
        source,
    })
}

/// Reads an `(option*)` content model.
pub(crate) fn read_options(
    doc: &xml::Document<'_>,
    element: &xml::Element,
    name: &'static str,
) -> Result<Vec<ApexOption>, ApexError> {
    element.check_no_text(name)?;
    element
        .elements()
        .map(|child| {
            if child.name == "option" {
                ApexOption::from_element(doc, child)
            } else {
                Err(ApexError::UnexpectedElement {
                    expected: "option",
                    found: child.name.clone(),
                })
            }
        })
        .collect()
}

/// Closes a start tag whose content is `option*`: ` />` if there are none.
pub(crate) fn write_options_and_close(out: &mut String, name: &str, options: &[ApexOption]) {
    if options.is_empty() {
        out.push_str(" />");
        return;
    }
    out.push('>');
    for option in options {
        option.write(out);
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}
