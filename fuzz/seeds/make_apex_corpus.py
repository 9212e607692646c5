#!/usr/bin/env python3
"""Writes the named seeds of the APEX fuzz targets.

* `corpus/apex_xml/`: every bare element of the RFC 3340-3343 examples
  (apex/tests/vectors/, copied from the spec digest, Appendices A.2-A.5),
  the inline content of each `data-content` (report, access and presence
  elements), the access entries of RFC 3341 §2.3 and §3.1
  (apex/tests/access-vectors/), and hand-written edge cases.
* `corpus/apex_mime/`: MSG payloads: each RFC `MSG` frame's payload with
  CRLF line ends, each bare element behind `application/beep+xml`
  headers, and hand-built `multipart/related` payloads (folded headers,
  preamble and epilogue, quoted boundary, binary part, missing start).
* `corpus/access_match/`: the input format of `imxp_apex::fuzzing::
  access_match` (owner line, address line, `actor actions…` lines,
  `+actor` for a site default): the §3.1 example queried for every row of
  its decision table, the §2.3 example, escapes and wildcards.

Run from anywhere: `python3 fuzz/seeds/make_apex_corpus.py`. Files are
named `seed-<sha1 prefix>`; existing files are left alone.
"""

import hashlib
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
FUZZ = HERE.parent
REPO = FUZZ.parent
VECTORS = REPO / "apex" / "tests" / "vectors"
ACCESS = REPO / "apex" / "tests" / "access-vectors"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    out = FUZZ / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("seed-" + hashlib.sha1(data).hexdigest()[:16])
    if not path.exists():
        path.write_bytes(data)


def chunks(text):
    """The C:/S: chunks of a vector file: (is_frame, lines)."""
    result = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if line[:2] in ("C:", "S:"):
            rest = line[2:]
            rest = rest[1:] if rest.startswith(" ") else rest
            side = line[:2]
            if result and result[-1][0] == side and result[-1][1][0].startswith("MSG ") \
                    and result[-1][1][-1] != "END":
                result[-1][1].append(rest)
            else:
                result.append((side, [rest]))
        elif result and line.strip():
            result[-1][1].append(line)
    return result


def beep_xml(xml):
    return "Content-Type: application/beep+xml\r\n\r\n" + xml + "\r\n"


for path in sorted(VECTORS.iterdir()):
    for _, lines in chunks(path.read_text()):
        if lines[0].startswith("MSG "):
            payload = "\r\n".join(lines[1:-1]) + "\r\n"
            write("apex_mime", payload)
            continue
        xml = "\n".join(lines)
        write("apex_xml", xml)
        write("apex_mime", beep_xml(xml))
        for inner in re.findall(r"<data-content Name='[^']*'>(.*?)</data-content>", xml, re.S):
            write("apex_xml", inner.strip())

for path in sorted(ACCESS.glob("*.txt")):
    for entry in re.findall(r"<access .*?/>", path.read_text(), re.S):
        write("apex_xml", entry)
        write("apex_xml", "<set transID='7'>" + entry + "</set>")

for xml in [
    "<query owner='fred@example.com' actor='a\\b*c@example.com' actions='core:data' transID='2147483647' />",
    "<get owner='fred@example.com' actor='a\\\\b\\*c@example.com' transID='1' />",
    "<get owner='fred@example.com' actor='fred/*@*.example.com' transID='1' />",
    "<set transID='3'><access owner='fred/appl=wb@example.com' actor='apex=*@*' actions='all:none' /></set>",
    "<set transID='3'><access owner='fred@example.com' actor='*@*' lastUpdate='2000-05-14T13:02:00.5-00:00' /></set>",
    "<reply code='551' transID='9'>no such access entry</reply>",
    "<reply code='555' />",
    "<deny transID='0' />",
    "<statusResponse transID='1'><destination identity='a@b.c'><reply code='250' /></destination></statusResponse>",
    "<ok />",
    "<error code='550'>nope</error>",
]:
    write("apex_xml", xml)
    write("apex_mime", beep_xml(xml))

RELATED = (
    "Content-Type: multipart/related; boundary={b};\r\n"
    "  start=\"<1@example.com>\"; type=\"application/beep+xml\"\r\n\r\n"
    "{pre}--{bb}\r\nContent-Type: application/beep+xml\r\nContent-ID: <1@example.com>\r\n\r\n"
    "<data content='cid:2@example.com'><originator identity='fred@example.com' />"
    "<recipient identity='{to}' /></data>\r\n"
    "--{bb}\r\nContent-Type: {ct}\r\nContent-ID: <2@example.com>\r\n\r\n{body}\r\n--{bb}--\r\n{post}"
)
for b, bb, pre, post, to, ct, body in [
    ("\"b\"", "b", "", "", "barney@example.com", "text/plain", "hi"),
    ("x", "x", "preamble\r\n", "epilogue", "apex=access@example.com", "application/beep+xml",
     "<query owner='fred@example.com' transID='1' actor='barney@example.com' actions='core:data' />"),
    ("\"a b\"", "a b", "", "", "barney@example.com", "application/octet-stream", "\x00\x01--a b\r\n"),
    ("q", "q", "", "", "barney@example.com", "text/plain;\r\n charset=utf-8", ""),
]:
    write("apex_mime", RELATED.format(b=b, bb=bb, pre=pre, post=post, to=to, ct=ct, body=body))
write("apex_mime", "Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\n\r\n<ok />\r\n--b--\r\n")

SECTION_3_1 = """fred@example.com
{addr}
wilma@example.com all:all
mr.slate@example.com core:data
*@example.com core:data presence:subscribe presence:watch
*@* core:data
"""
table = (ACCESS / "rfc3341-3.1-decisions.md").read_text()
for row in table.splitlines():
    if not row.startswith("| ") or row.startswith("| owner"):
        continue
    cells = [c.strip() for c in row.split("|")]
    owner = cells[1].split()[0]
    if owner == "fred@example.com":
        write("access_match", SECTION_3_1.format(addr=cells[2]))
    else:
        write("access_match", f"{owner}\n{cells[2]}\nbarney/appl=wb@example.com core:data\n")
for text in [
    "fred@example.com\nbarney@example.com\nbarney@example.com core:data presence:subscribe presence:watch\n*@example.com core:data\n",
    "fred@example.com\nbarney@example.com\nbarney@example.com all:none\n*@example.com core:data\n",
    "fred@example.com\nbarney@example.com\n+*@*\n",
    "fred@example.com\nx@bar.foo.example.com\n*@*.foo.example.com core:data\n*@*.example.com all:all\n*@* all:none\n",
    "fred@example.com\na\\b*c@example.com\na\\\\b\\*c@example.com core:data\n*@example.com all:none\n",
    "fred@example.com\napex=pubsub/topic@example.com\napex=pubsub/*@example.com core:data\napex=*@* all:none\n",
    "fred@Example.COM\nfred/appl=wb@EXAMPLE.com\nfred/*@example.com core:data\nfred@example.com all:none\n",
    "fred@example.com\nb@[10.0.0.1]\n*@[10.0.0.1] core:data\n*@* all:none\n2000-05-14T13:02:00-08:00\n",
]:
    write("access_match", text)
