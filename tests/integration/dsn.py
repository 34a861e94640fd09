"""Parse a delivery report (RFC 3464 in an RFC 6522 multipart/report) with
Python's email package, checking its structure on the way.

parse_report(data) -> dict with:
  headers      the top header: {lower-case name: value} (last one wins)
  boundary     the multipart boundary
  message      the per-message fields of the delivery-status part
               ({lower-case name: value}, e.g. 'reporting-mta')
  recipients   a list of per-recipient dicts, in order
               ('final-recipient', 'action', 'status', 'diagnostic-code', ...)
  text         the human-readable part, decoded to str
  text_type    its Content-Type (with charset), text_cte its encoding
  returned_type  'message/rfc822' or 'text/rfc822-headers'
  returned     the returned part's content, bytes as they are in the report
  returned_cte its Content-Transfer-Encoding
  parts        the three email.message.Message parts

Raises ReportError on anything that is not a well-formed report.
"""
import email
import email.policy
import re


class ReportError(Exception):
    """The bytes are not a well-formed delivery report."""


def _fields(block):
    """{lower-case name: unfolded value} of one delivery-status block."""
    out = {}
    for name, value in block.items():
        value = re.sub(r"\r?\n[ \t]", " ", str(value)).strip()
        out[name.lower()] = value
    return out


def _ds_blocks(raw):
    """The delivery-status part's content split into field blocks."""
    text = raw.decode("ascii")  # message/delivery-status is US-ASCII
    blocks = []
    for chunk in re.split(r"\n\s*\n", text.strip("\n")):
        msg = email.message_from_string(chunk + "\n",
                                        policy=email.policy.compat32)
        if msg.defects or msg.get_payload():
            raise ReportError("bad delivery-status block: %r" % chunk)
        blocks.append(_fields(msg))
    return blocks


def _raw_parts(data, boundary):
    """The raw (header, content) of each body part, split at the boundary."""
    delim = b"\n--" + boundary.encode("ascii")
    if data.count(delim + b"--\n") != 1 or not data.endswith(delim + b"--\n"):
        raise ReportError("no closing boundary at the end")
    body = data[:-len(delim + b"--\n")]
    pieces = body.split(delim + b"\n")
    if len(pieces) != 4:
        raise ReportError("expected 3 parts, got %d" % (len(pieces) - 1))
    out = []
    for p in pieces[1:]:
        head, sep, content = p.partition(b"\n\n")
        if not sep:
            raise ReportError("a part without an empty line after its header")
        out.append((head, content))
    return out


def parse_report(data):
    """Parse and check the report data (bytes, LF or CRLF line ends)."""
    if isinstance(data, str):
        data = data.encode()
    data = data.replace(b"\r\n", b"\n")
    if b"\0" in data or b"\r" in data:
        raise ReportError("NUL or bare CR in the report")
    for line in data.split(b"\n"):
        if len(line) > 998:
            raise ReportError("a line over 998 octets")
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    if msg.defects:
        raise ReportError("top-level defects: %r" % msg.defects)
    if msg.get_content_type() != "multipart/report":
        raise ReportError("not multipart/report: " + msg.get_content_type())
    if msg.get_param("report-type") != "delivery-status":
        raise ReportError("report-type is not delivery-status")
    boundary = msg.get_boundary()
    parts = msg.get_payload()
    if not isinstance(parts, list) or len(parts) != 3:
        raise ReportError("expected 3 parts")
    for p in parts:
        if p.defects:
            raise ReportError("part defects: %r" % p.defects)
    text_part, ds_part, ret_part = parts
    if text_part.get_content_type() != "text/plain":
        raise ReportError("part 1 is " + text_part.get_content_type())
    if ds_part.get_content_type() != "message/delivery-status":
        raise ReportError("part 2 is " + ds_part.get_content_type())
    returned_type = ret_part.get_content_type()
    if returned_type not in ("message/rfc822", "text/rfc822-headers"):
        raise ReportError("part 3 is " + returned_type)
    raw = _raw_parts(data, boundary)
    blocks = _ds_blocks(raw[1][1])
    if len(blocks) < 2:
        raise ReportError("no per-recipient block")
    charset = text_part.get_content_charset() or "us-ascii"
    text = text_part.get_payload(decode=True).decode(charset)
    headers = {k.lower(): re.sub(r"\n[ \t]", " ", str(v))
               for k, v in msg.items()}
    return {
        "headers": headers,
        "boundary": boundary,
        "message": blocks[0],
        "recipients": blocks[1:],
        "text": text,
        "text_type": text_part.get("Content-Type"),
        "text_cte": text_part.get("Content-Transfer-Encoding", "7bit"),
        "returned_type": returned_type,
        "returned": raw[2][1],
        "returned_cte": ret_part.get("Content-Transfer-Encoding", "7bit"),
        "parts": parts,
    }
