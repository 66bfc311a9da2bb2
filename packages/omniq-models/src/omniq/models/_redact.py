"""Hiding credentials in connection URLs and DSNs before they are printed or logged."""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_text", "redact_url"]

REDACTED = "***"
"""What a hidden password, token or secret parameter is replaced with."""

# A URL starts at a scheme followed by "//", at the start of the text or after a comma,
# semicolon or whitespace (lists of URLs, as NATS server lists are written).
_URL_START = re.compile(r"(?:^|(?<=[\s,;]))[A-Za-z][A-Za-z0-9+.-]*://")
# A URL anywhere in free text (an error message, a traceback): from its scheme to the next
# whitespace or quote, so "at redis://:pw@host: refused" and "url='nats://u:pw@h'" are found.
_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")
# Parameter names that carry a credential: password, passwd, pwd, secret, token,
# auth/authorization, api_key, sslkey, credentials, ...
_SECRET_NAME = r"[\w.-]*(?:pass|pwd|secret|token|auth|key|credential)[\w.-]*"
_QUERY_PARAM = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)([^&;#]*)")
_DSN_PARAM = re.compile(
    rf"(?i)((?:^|(?<=\s)){_SECRET_NAME}\s*=\s*)('(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|\S*)"
)
# Schemes whose URLs commonly name a user without a password (user@host); for any other
# scheme a user part without ":" is taken to be a token (nats://TOKEN@host) and hidden.
_USERNAME_SCHEMES = ("postgres", "redis", "valkey", "mysql", "mariadb", "amqp", "file", "sqlite")


def redact_url(url: str) -> str:
    """``url`` with its passwords, tokens and secret parameters replaced by ``***``.

    Handles ``scheme://user:password@host`` (also with several hosts, ``@`` or other
    reserved characters left unencoded in the password, or percent-encoded ones), a
    bare token before ``@`` (``nats://TOKEN@host``), secret query parameters
    (``?password=``, ``?token=``, ``?sslkey=``...), comma- or space-separated lists of
    URLs, and libpq-style DSNs (``host=db password='s e c r e t'``). The host, port,
    path and user name stay visible so the message still says where. When a URL is
    ambiguous it hides more rather than less.
    """
    starts = [m.start() for m in _URL_START.finditer(url)]
    if not starts:
        return _DSN_PARAM.sub(lambda m: m.group(1) + REDACTED, url)
    out = [_DSN_PARAM.sub(lambda m: m.group(1) + REDACTED, url[: starts[0]])]
    for begin, end in zip(starts, [*starts[1:], len(url)], strict=True):
        out.append(_redact_one(url[begin:end]))
    return "".join(out)


def redact_text(text: str) -> str:
    """``text`` (a message, a log line, a traceback) with the credentials of every URL or
    DSN parameter in it replaced by ``***``.

    The same rules as ``redact_url``, applied to each URL wherever it appears (also inside
    quotes or after ``at``), and to ``password=...``-style parameters (DSN syntax) in the
    rest of the text. A URL ends at whitespace or a quote.
    """
    out: list[str] = []
    pos = 0
    for m in _URL_IN_TEXT.finditer(text):
        out.append(_DSN_PARAM.sub(lambda d: d.group(1) + REDACTED, text[pos : m.start()]))
        out.append(_redact_one(m.group(0)))
        pos = m.end()
    out.append(_DSN_PARAM.sub(lambda d: d.group(1) + REDACTED, text[pos:]))
    return "".join(out)


def _redact_one(url: str) -> str:
    scheme, _, rest = url.partition("://")
    # The user part ends at the "@" before the host. A password may hold "@", "/", "?"
    # or "#" unencoded, so the last "@" of the URL is taken as that one: an "@" in a
    # query parameter then hides more than needed, never less.
    at = rest.rfind("@")
    if at >= 0:
        userinfo, hosts = rest[:at], rest[at + 1 :]
        user, colon, _password = userinfo.partition(":")
        if colon:
            userinfo = f"{user}:{REDACTED}"
        elif userinfo and not scheme.lower().startswith(_USERNAME_SCHEMES):
            userinfo = REDACTED
        rest = f"{userinfo}@{hosts}"
        query_from = len(userinfo) + 1
    else:
        query_from = 0
    head, tail = rest[:query_from], rest[query_from:]
    return f"{scheme}://{head}{_QUERY_PARAM.sub(lambda m: m.group(1) + REDACTED, tail)}"
