"""redact_url: passwords, tokens and secret parameters never survive; the rest stays."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from omniq.models import redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("rediss://default:pw@h:6380/1", "rediss://default:***@h:6380/1"),
        ("redis://:pw@h1,h2", "redis://:***@h1,h2"),
        (
            "postgresql://u:pw@h1:5432,h2:5432/db",
            "postgresql://u:***@h1:5432,h2:5432/db",
        ),
        ("postgresql://u:p@ss/w?rd@db:5432/app", "postgresql://u:***@db:5432/app"),
        ("postgresql://u:p%40ss%3A@db/app", "postgresql://u:***@db/app"),
        ("postgresql://alice@db/app", "postgresql://alice@db/app"),
        ("nats://user:pw@n1:4222", "nats://user:***@n1:4222"),
        ("nats://s3cr3tToken@n1:4222", "nats://***@n1:4222"),
        ("tls://tok@n1:4222", "tls://***@n1:4222"),
        ("nats://a:pw1@n1,nats://b:pw2@n2", "nats://a:***@n1,nats://b:***@n2"),
        ("redis://h/0?password=pw&db=1", "redis://h/0?password=***&db=1"),
        (
            "postgresql://db/app?sslmode=require&sslpassword=pw",
            "postgresql://db/app?sslmode=require&sslpassword=***",
        ),
        ("https://h/x?token=abc#frag", "https://h/x?token=***#frag"),
        ("host=db port=5432 password=pw dbname=app", "host=db port=5432 password=*** dbname=app"),
        ("host=db password='p w \\' x' user=u", "host=db password=*** user=u"),
        ("memory://", "memory://"),
        ("sqlite:///var/lib/omniq.db", "sqlite:///var/lib/omniq.db"),
        ("file:///srv/queue", "file:///srv/queue"),
        ("", ""),
    ],
)
def test_redact_known_shapes(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_leaves_host_port_and_path_visible() -> None:
    out = redact_url("postgresql://omniq:hunter2@db.internal:6543/jobs?application_name=w1")
    assert out == "postgresql://omniq:***@db.internal:6543/jobs?application_name=w1"


# Passwords are wrapped in markers no other part of the URL can contain, so a leak of any
# piece that holds a marker is seen; "://" after a separator would start a new URL.
_MARK_A, _MARK_B = "QXa9", "ZYb8"
_password = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters=" "),
    max_size=20,
).map(lambda s: f"{_MARK_A}{s}{_MARK_B}")
_word = st.text(alphabet="bdfghjlmnqvxz", min_size=1, max_size=8)
_host = st.builds(
    lambda name, port: f"{name}:{port}" if port else name,
    _word,
    st.one_of(st.none(), st.integers(1, 65535)),
)
_scheme = st.sampled_from(["redis", "rediss", "postgresql", "postgres", "nats", "tls", "https"])


def _leaks(out: str, password: str) -> bool:
    return any(p in out for p in (password, quote(password, safe=""), _MARK_A, _MARK_B))


@given(
    scheme=_scheme,
    user=st.one_of(st.just(""), _word),
    password=_password,
    hosts=st.lists(_host, min_size=1, max_size=3),
    path=st.one_of(st.just(""), _word.map(lambda w: "/" + w)),
    query=st.one_of(st.just(""), st.builds(lambda k, v: f"?{k}={v}", _word, _word)),
    encode=st.booleans(),
)
def test_userinfo_password_never_printed(
    scheme: str,
    user: str,
    password: str,
    hosts: list[str],
    path: str,
    query: str,
    encode: bool,
) -> None:
    assume("://" not in password)
    secret = quote(password, safe="") if encode else password
    url = f"{scheme}://{user}:{secret}@{','.join(hosts)}{path}{query}"
    out = redact_url(url)
    assert not _leaks(out, password), out
    assert hosts[-1] in out  # where it points stays readable


@given(scheme=_scheme, token=_password, host=_host)
def test_bare_token_never_printed_for_token_schemes(scheme: str, token: str, host: str) -> None:
    assume("://" not in token)
    if scheme.startswith(("redis", "postgres")):
        scheme = "nats"
    out = redact_url(f"{scheme}://{quote(token, safe='')}@{host}")
    assert not _leaks(out, token), out


@given(
    name=st.sampled_from(["password", "PASSWORD", "sslpassword", "token", "auth_token", "secret"]),
    password=_password,
    before=st.lists(st.builds(lambda k, v: f"{k}={v}", _word, _word), max_size=2),
    after=st.lists(st.builds(lambda k, v: f"{k}={v}", _word, _word), max_size=2),
)
def test_query_parameter_never_printed(
    name: str, password: str, before: list[str], after: list[str]
) -> None:
    params = "&".join([*before, f"{name}={quote(password, safe='')}", *after])
    out = redact_url(f"redis://h:6379/0?{params}")
    assert not _leaks(out, password), out


@given(
    password=st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20
    ).map(lambda s: f"{_MARK_A}{s}{_MARK_B}"),
    before=st.lists(st.builds(lambda k, v: f"{k}={v}", _word, _word), max_size=2),
    after=st.lists(st.builds(lambda k, v: f"{k}={v}", _word, _word), max_size=2),
)
def test_dsn_password_never_printed(password: str, before: list[str], after: list[str]) -> None:
    quoted = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    dsn = " ".join([*before, f"password={quoted}", *after])
    out = redact_url(dsn)
    assert not _leaks(out, password), out
    for part in (*before, *after):
        assert part in out


# -- redact_text: the same rules for URLs and DSN parameters anywhere in free text ---------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "redis unreachable at redis://:pw@h:6379/0: Connection refused",
            "redis unreachable at redis://:***@h:6379/0: Connection refused",
        ),
        (
            "OmniQ(task_queue='postgresql://u:pw@db/app')",
            "OmniQ(task_queue='postgresql://u:***@db/app')",
        ),
        ('url="nats://tok@n1:4222"', 'url="nats://***@n1:4222"'),
        ("[nats://a:pw1@n1, nats://b:pw2@n2]", "[nats://a:***@n1, nats://b:***@n2]"),
        ("connect to host=db password=pw failed", "connect to host=db password=*** failed"),
        ("see https://h/x?token=abc for details", "see https://h/x?token=*** for details"),
        ("no url here", "no url here"),
    ],
)
def test_redact_text_known_shapes(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_redact_text_hides_urls_in_a_traceback() -> None:
    try:
        raise RuntimeError("cannot reach 'redis://:hunter2@cache:6379/0'")
    except RuntimeError as exc:
        import traceback

        text = "".join(traceback.format_exception(exc))
    out = redact_text(text)
    assert "hunter2" not in out and "redis://:***@cache:6379/0" in out


@given(
    scheme=_scheme,
    user=st.one_of(st.just(""), _word),
    password=_password,
    host=_host,
    before=st.sampled_from(["", "at ", "url='", '("', "[", "x="]),
    after=st.sampled_from(["", ": refused", "'", '")', "]", " and more"]),
)
def test_redact_text_never_prints_a_url_password(
    scheme: str, user: str, password: str, host: str, before: str, after: str
) -> None:
    # in free text a URL ends at whitespace or a quote
    assume("://" not in password and not any(c.isspace() or c in "'\"" for c in password))
    out = redact_text(f"{before}{scheme}://{user}:{password}@{host}{after}")
    assert not _leaks(out, password), out
    assert host in out


@given(text=st.text(max_size=60))
def test_redact_text_matches_redact_url_on_a_lone_url(text: str) -> None:
    url = f"redis://:{text}@h:1/0"
    assume(not any(c.isspace() or c in "'\"" for c in text) and "://" not in text)
    assert redact_text(url) == redact_url(url)
