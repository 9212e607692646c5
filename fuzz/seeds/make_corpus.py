#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets.

* `corpus/beep_frame/`: raw frames — every exchange of the RFC 3080
  examples (rfc3080-examples.md, copied from the spec digest, Appendix A.1:
  `C:`/`S:`/`I:`/`L:` transcripts turned into octets with CRLF line ends; the
  sizes in them are exact and checked here), each side's stream and each
  frame alone, plus hand-written edge cases (SEQ, ANS/NUL, limits, frames
  cut mid-header, poorly-formed frames).
* `corpus/beep_session/`: two control octets (see `Plan` in
  beep/src/fuzzing.rs) then what the peer sends: the RFC exchanges as seen
  by a listener (the initiator's frames) and by an initiator (the
  listener's frames), and hand-built complete sessions with consistent
  seqnos (echo, ANS/NUL, close, release, SASL, TLS, SEQ).

Run from anywhere: `python3 fuzz/seeds/make_corpus.py`. Files are named
after their content; existing seeds with other names are left alone (so
entries found by the fuzzer stay).
"""

import hashlib
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
FUZZ = HERE.parent
FRAME_DIR = FUZZ / "corpus" / "beep_frame"
SESSION_DIR = FUZZ / "corpus" / "beep_session"

HEADER = re.compile(rb"^(MSG|RPY|ERR|ANS|NUL) (\d+) (\d+) ([.*]) (\d+) (\d+)( \d+)?$")
SPEAKER = re.compile(r"^([CSIL]):(?: (.*))?$")

# Control octets of the session target (beep/src/fuzzing.rs, `Plan`).
INITIATOR, TLS, SASL, SMALL_WINDOWS, SMALL_LIMITS, ACT, TLS_FAILS, REQUIRE_TLS = (
    1, 2, 4, 8, 16, 32, 64, 128)
BY_FRAME, WHOLE = 0x00, 0x3F
PING, CLOSE = 0x40, 0x80


# ===== the RFC transcripts =====

def examples():
    """Yields (title, [(speaker, line)], with TLS markers) per example."""
    text = (HERE / "rfc3080-examples.md").read_text()
    for block in re.finditer(r"#### (.*?)\n\n```\n(.*?)```", text, re.S):
        title, body = block.group(1), block.group(2)
        lines = []
        for raw in body.splitlines():
            match = SPEAKER.match(raw)
            if match:
                lines.append([match.group(1), match.group(2) or "", raw[2:]])
            elif raw.strip().startswith("..."):
                lines.append(["-", raw.strip(), raw])
            elif raw.strip() and lines:
                # A wrapped line (the SASL blobs): join it onto the previous.
                lines[-1][1] += raw.strip()
            # blank lines between phases are ignored
        yield title, lines


def frames_of(lines):
    """Turns transcript lines into (speaker, frame octets) and TLS markers."""
    out = []
    i = 0
    while i < len(lines):
        speaker, content, raw = lines[i]
        i += 1
        if speaker == "-":
            out.append(("-", content))
            continue
        header = content.encode()
        match = HEADER.match(header)
        if not match:
            assert content.startswith("<"), content  # <open connection> etc.
            continue
        size = int(match.group(6))
        body, alt = [], []
        while lines[i][1] != "END":
            body.append(lines[i][1])
            alt.append(lines[i][2] if lines[i][1].strip() == "..." else lines[i][1])
            i += 1
        i += 1
        payload = b"".join(l.encode() + b"\r\n" for l in body)
        if len(payload) != size:
            # The RFC's "..." placeholder lines: the sizes count 10 octets each.
            payload = b"".join(l.encode() + b"\r\n" for l in alt)
        assert len(payload) == size, (content, len(payload))
        out.append((speaker, header + b"\r\n" + payload + b"END\r\n"))
    return out


# ===== building frames =====

def beep_xml(body):
    return b"Content-Type: application/beep+xml\r\n\r\n" + body.encode() + b"\r\n"


class Peer:
    """The peer's side of a session: assigns seqnos per channel."""

    def __init__(self):
        self.seqnos = {}
        self.out = b""

    def restart(self):
        self.seqnos = {}

    def frame(self, keyword, channel, msgno, payload, more=False, ansno=None):
        seqno = self.seqnos.get(channel, 0)
        self.seqnos[channel] = seqno + len(payload)
        header = f"{keyword} {channel} {msgno} {'*' if more else '.'} {seqno} {len(payload)}"
        if ansno is not None:
            header += f" {ansno}"
        self.out += header.encode() + b"\r\n" + payload + b"END\r\n"
        return self

    def seq(self, channel, ackno, window):
        self.out += f"SEQ {channel} {ackno} {window}\r\n".encode()
        return self

    def greeting(self, *profiles):
        if profiles:
            body = "<greeting>\r\n" + "".join(
                f"   <profile uri='{p}' />\r\n" for p in profiles) + "</greeting>"
        else:
            body = "<greeting />"
        return self.frame("RPY", 0, 0, beep_xml(body))


APEX = "http://iana.org/beep/APEX"
ECHO = "http://example.com/beep/ECHO"
TLS_URI = "http://iana.org/beep/TLS"
ANON = "http://iana.org/beep/SASL/ANONYMOUS"
OTP = "http://iana.org/beep/SASL/OTP"
PLAIN = "http://iana.org/beep/SASL/PLAIN"

START_APEX = beep_xml(f"<start number='1'>\r\n   <profile uri='{APEX}' />\r\n</start>")
OK = beep_xml("<ok />")
TEXT = b"Content-Type: text/plain\r\n\r\nhello, world\r\n"


def start(number, *profiles, init=None, server_name=None):
    attrs = f" serverName='{server_name}'" if server_name else ""
    inner = ""
    for uri in profiles:
        if init is None:
            inner += f"   <profile uri='{uri}' />\r\n"
        else:
            inner += f"   <profile uri='{uri}'>\r\n       <![CDATA[{init}]]>\r\n   </profile>\r\n"
    return beep_xml(f"<start number='{number}'{attrs}>\r\n{inner}</start>")


def session_seeds():
    """Hand-built sessions, as (name, control octets, peer octets)."""
    seeds = []

    # Listener: echo on channel 1, a message in two frames, SEQ, close, release.
    p = Peer().greeting()
    p.frame("MSG", 0, 1, START_APEX)
    p.frame("MSG", 1, 0, TEXT[:10], more=True).frame("MSG", 1, 0, TEXT[10:])
    p.seq(1, 0, 8192).frame("MSG", 1, 1, b"")
    p.seq(0, 0, 4096)
    p.frame("MSG", 0, 2, beep_xml("<close number='1' code='200' />"))
    p.frame("MSG", 0, 3, beep_xml("<close code='200' />"))
    for chunk in (BY_FRAME, 1, 7):
        seeds.append((f"listener-echo-close-release-{chunk:02x}", [0, chunk], p.out))
    seeds.append(("listener-echo-small", [SMALL_WINDOWS, BY_FRAME], p.out))
    # The whole input at once: the peer uses channel 1 before our reply.
    seeds.append(("listener-echo-too-early", [0, WHOLE], p.out))

    # Listener: message over the limit (pre-emptive ERR), then interleaved channel.
    p = Peer().greeting()
    p.frame("MSG", 0, 1, START_APEX)
    p.frame("MSG", 1, 0, b"x" * 100, more=True).frame("MSG", 1, 0, b"y" * 100)
    p.frame("MSG", 0, 2, start(3, ECHO, server_name="relay.example"))
    p.frame("MSG", 3, 0, TEXT)
    seeds.append(("listener-too-large", [SMALL_LIMITS, BY_FRAME], p.out))

    # Initiator: start channel 1, ping, reply, close, release (all ours).
    p = Peer().greeting(APEX, ECHO)
    p.frame("RPY", 0, 1, beep_xml(f"<profile uri='{APEX}' />"))
    p.frame("RPY", 1, 0, b"ping")
    p.frame("RPY", 0, 2, OK)
    p.frame("RPY", 0, 3, OK)
    seeds.append(("initiator-ping-close-release", [INITIATOR | ACT, BY_FRAME | PING | CLOSE], p.out))

    # Initiator: ANS ANS NUL to our ping, and a peer-started channel 2.
    p = Peer().greeting(ECHO)
    p.frame("RPY", 0, 1, beep_xml(f"<profile uri='{ECHO}' />"))
    p.frame("ANS", 1, 0, b"po", more=True, ansno=0).frame("ANS", 1, 0, b"one", ansno=1)
    p.frame("ANS", 1, 0, b"ng", ansno=0).frame("NUL", 1, 0, b"")
    p.frame("MSG", 0, 1, beep_xml(f"<start number='2'>\r\n   <profile uri='{APEX}' />\r\n</start>"))
    p.frame("MSG", 2, 0, TEXT)
    seeds.append(("initiator-ans-nul", [INITIATOR | ACT, BY_FRAME | PING], p.out))

    # Initiator: the listener refuses the session (421).
    p = Peer().frame("ERR", 0, 0, beep_xml("<error code='421'>busy</error>"))
    seeds.append(("initiator-refused", [INITIATOR, WHOLE], p.out))

    # Listener with SASL: ANONYMOUS with an initial response; PLAIN refused.
    p = Peer().greeting()
    p.frame("MSG", 0, 1, start(1, ANON, init="<blob>ZnV6ekBleGFtcGxlLmNvbQ==</blob>"))
    p.frame("MSG", 0, 2, start(3, PLAIN))
    seeds.append(("listener-sasl-initial", [SASL, BY_FRAME], p.out))
    # ANONYMOUS without initial response: the blob comes in a MSG on channel 1.
    p = Peer().greeting()
    p.frame("MSG", 0, 1, start(1, ANON))
    p.frame("MSG", 1, 0, beep_xml("<blob>dHJhY2U=</blob>"))
    p.frame("MSG", 0, 2, start(3, APEX))
    seeds.append(("listener-sasl-steps", [SASL | TLS, BY_FRAME], p.out))

    # Initiator with SASL: the peer offers ANONYMOUS; it completes.
    p = Peer().greeting(ANON, APEX)
    p.frame("RPY", 0, 1, beep_xml(f"<profile uri='{ANON}'>\r\n   <![CDATA[<blob status='complete' />]]>\r\n</profile>"))
    p.frame("RPY", 0, 2, beep_xml(f"<profile uri='{APEX}' />"))
    seeds.append(("initiator-sasl", [INITIATOR | ACT, BY_FRAME], p.out))

    # Listener with TLS: ready, proceed, new greetings (handshake ok / failed).
    p = Peer().greeting()
    p.frame("MSG", 0, 1, start(1, TLS_URI, init="<ready />"))
    p.restart()
    p.greeting().frame("MSG", 0, 1, START_APEX)
    seeds.append(("listener-tls", [TLS | REQUIRE_TLS, BY_FRAME], p.out))
    seeds.append(("listener-tls-fails", [TLS | TLS_FAILS, BY_FRAME], p.out))

    # Initiator with TLS: our ready, the peer's proceed, new greetings.
    p = Peer().greeting(TLS_URI, APEX)
    p.frame("RPY", 0, 1, beep_xml(f"<profile uri='{TLS_URI}'>\r\n    <![CDATA[<proceed />]]>\r\n</profile>"))
    p.restart()
    p.greeting(ANON, OTP, APEX)
    seeds.append(("initiator-tls", [INITIATOR | ACT, BY_FRAME], p.out))
    return seeds


def frame_edge_cases():
    return {
        "seq-min": b"SEQ 0 0 4096\r\n",
        "seq-max": b"SEQ 2147483647 4294967295 2147483647\r\n",
        "seq-extra-field": b"SEQ 1 0 4096 7\r\n",
        "seq-then-data": b"SEQ 0 52 4096\r\nSEQ 1 0 8192\r\nMSG 1 0 . 0 5\r\nhelloEND\r\nSEQ 1 5 8192\r\n",
        "ans-nul": b"ANS 1 0 * 0 3 0\r\nabcEND\r\nANS 1 0 . 3 2 1\r\nxyEND\r\nANS 1 0 . 5 1 0\r\ndEND\r\nNUL 1 0 . 6 0\r\nEND\r\n",
        "nul-with-more": b"NUL 1 0 * 0 0\r\nEND\r\n",
        "nul-with-payload": b"NUL 1 0 . 0 1\r\nxEND\r\n",
        "ans-without-ansno": b"ANS 1 0 . 0 0\r\nEND\r\n",
        "rpy-with-ansno": b"RPY 1 0 . 0 0 3\r\nEND\r\n",
        "empty-payload": b"RPY 0 1 . 307 0\r\nEND\r\n",
        "binary-payload": b"MSG 3 7 . 0 12\r\n\r\nEND\r\n\x00\xff\r\nEND\r\n",
        "leading-zeros": b"MSG 00 0001 . 0000000000 05\r\nhelloEND\r\n",
        "max-fields": b"ANS 2147483647 2147483647 * 4294967295 0 2147483647\r\nEND\r\n",
        "channel-over-range": b"MSG 2147483648 0 . 0 0\r\nEND\r\n",
        "seqno-over-range": b"MSG 1 0 . 4294967296 0\r\nEND\r\n",
        "eleven-digits": b"MSG 1 0 . 00000000001 0\r\nEND\r\n",
        "too-large": b"MSG 1 0 . 0 65537\r\n",
        "at-limit-header": b"MSG 1 0 . 0 65536\r\n",
        "bad-trailer": b"MSG 1 0 . 0 2\r\nhiEDN\r\n",
        "bad-trailer-early": b"MSG 1 0 . 0 2\r\nhiX",
        "no-crlf-in-header": b"MSG 1 0 . 0 0" + b" " * 70,
        "header-lf-only": b"MSG 1 0 . 0 0\nEND\n",
        "double-space": b"MSG 1  0 . 0 0\r\nEND\r\n",
        "unknown-keyword": b"FOO 1 0 . 0 0\r\nEND\r\n",
        "lowercase-keyword": b"msg 1 0 . 0 0\r\nEND\r\n",
        "bad-more": b"MSG 1 0 + 0 0\r\nEND\r\n",
        "sign": b"MSG +1 0 . 0 0\r\nEND\r\n",
        "cut-mid-header": b"MSG 0 1 . 52 1",
        "cut-mid-header-cr": b"RPY 0 0 . 0 52\r",
        "cut-mid-payload": b"RPY 0 0 . 0 52\r\nContent-Type: applic",
        "cut-mid-trailer": b"MSG 1 0 . 0 5\r\nhelloEN",
        "two-frames-cut": b"MSG 1 0 * 0 5\r\nhelloEND\r\nMSG 1 0 . 5 5\r\nwor",
        "end-in-payload": b"MSG 1 0 . 0 10\r\nEND\r\nEND\r\nEND\r\n",
    }


def greeting_before(receiver, stream):
    """The greeting the examples imply before `stream` (RFC 3080 sizes:
    52 for the initiator's, 110/221/268 for the listener's)."""
    if receiver == "listener":
        greeting = Peer().greeting().out
        assert b" 52\r\n" in greeting
        return greeting
    seqno = int(HEADER.match(stream.split(b"\r\n", 1)[0]).group(5))
    for profiles in ((TLS_URI,), (ANON, OTP, APEX), (ANON, OTP, APEX, TLS_URI)):
        greeting = Peer().greeting(*profiles).out
        if greeting.startswith(f"RPY 0 0 . 0 {seqno}\r\n".encode()):
            return greeting
    return Peer().greeting(*PROFILES).out


PROFILES = (APEX, ECHO)


# ===== writing =====

def write(directory, name, data):
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:8]
    path = directory / f"{name}-{digest}"
    for existing in directory.glob(f"*-{digest}"):
        if existing.read_bytes() == data:
            return
    path.write_bytes(data)


def main():
    seen = set()
    for title, lines in examples():
        section = re.match(r"RFC 3080 §([\d.]+)", title).group(1).rstrip(".")
        lineno = re.search(r"lines (\d+)", title).group(1)
        tag = f"rfc3080-{section}-l{lineno}"
        frames = frames_of(lines)
        by_speaker = {}
        for speaker, octets in frames:
            if speaker == "-":
                continue
            by_speaker.setdefault(speaker, b"")
            by_speaker[speaker] += octets
            if octets not in seen:
                seen.add(octets)
                write(FRAME_DIR, f"{tag}-frame", octets)
        for speaker, octets in by_speaker.items():
            write(FRAME_DIR, f"{tag}-{speaker}", octets)
        # Session seeds: the exchange as one side receives it. A TLS marker
        # ("... transport security negotiation ...") restarts the session.
        for receiver, senders in (("listener", "CI"), ("initiator", "SL")):
            stream = b""
            for speaker, octets in frames:
                if speaker in senders:
                    stream += octets
            if not stream:
                continue
            if not stream.startswith(b"RPY 0 0 ") and not stream.startswith(b"ERR 0 0 "):
                stream = greeting_before(receiver, stream) + stream
            flags = 0 if receiver == "listener" else INITIATOR | ACT
            if "Transport Security" in title or "3.1.1" in section:
                flags |= TLS
            if "4.1.1" in section:
                flags |= SASL
            write(SESSION_DIR, f"{tag}-{receiver}", bytes([flags, BY_FRAME]) + stream)
    for name, octets in frame_edge_cases().items():
        write(FRAME_DIR, name, octets)
    for name, control, octets in session_seeds():
        write(SESSION_DIR, name, bytes(control) + octets)
        write(FRAME_DIR, f"session-{name}", octets)


if __name__ == "__main__":
    main()
