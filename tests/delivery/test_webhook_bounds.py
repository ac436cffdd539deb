"""Webhooks never answer 500 to input: bounded bodies (read as a stream), bounded JSON depth, every field
checked before the database; a callback that is read but cannot be applied is stored and answered 200 (Devino
retries until it gets one), garbage is a 400. The fuzz test drives both webhooks (Devino, HTTP API) of the
real web app on SQLite and the real Postgres with hypothesis, bounded in examples and time."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from urllib.parse import quote_from_bytes

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from campaigns.demo.web import WebAppThread
from campaigns.models import Message, StatusEvent
from campaigns.settings import reset_settings
from tests.support.factories import make_campaign, make_messages
from tests.support.webhooks import CONFIG, SECRET

DEVINO = f"/hooks/devino/dv?token={SECRET}"
HTTPAPI = f"/hooks/httpapi/wa?token={SECRET}"
JSON = {"content-type": "application/json"}
SMALL_LIMIT = 64 * 1024  # BLAST_WEBHOOK_MAX_BYTES in the size tests
TWENTY_FOUR_MB = 24 * 1024 * 1024

# Delivery progress: a webhook may move a message along it, never back.
RANK = {"submitted": 0, "sent": 1, "delivered": 2, "read": 3}
# The other moves a webhook may make: a failure report, a Devino 2301 (accepted, then dropped for rate: send
# again, the designed resend), and an `unknown` message resolved by a callback echoing our id.
WEBHOOK_MOVES = {("submitted", "failed"), ("sent", "failed"), ("submitted", "pending"), ("sent", "pending"),
                 *{("unknown", to) for to in ("submitted", "sent", "delivered", "read", "failed")}}
SEEDED_STATES = ("submitted", "sent", "delivered", "read", "failed", "unknown", "pending", "cancelled")


def moved_backwards(before: str, after: str) -> bool:
    if before == after:
        return False
    if before in RANK and after in RANK:
        return RANK[after] < RANK[before]
    return (before, after) not in WEBHOOK_MOVES


@pytest.fixture
def accounts(blast_home, tmp_path, monkeypatch):
    """A Devino and an HTTP API account, both with a webhook secret."""
    (tmp_path / "hooks.toml").write_text(CONFIG)
    monkeypatch.setenv("BLAST_CONFIG", str(tmp_path / "hooks.toml"))
    reset_settings()


@pytest.fixture
def client(engine, accounts):
    """The real web app (create_app) on the test's database; server errors answered as 500s, not raised."""
    from campaigns.web.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def seed(engine, account: str, provider: str, prefix: str) -> dict[int, str]:
    """Given one message in each state, those a gateway has with provider ids `<prefix><id>`: message id ->
    provider id ('' for those without one)."""
    campaign = make_campaign(engine, account=account, provider=provider, status="running", name=account)
    seeded: dict[int, str] = {}
    for index, state in enumerate(SEEDED_STATES):
        (message_id,) = make_messages(engine, campaign.id, 1, state=state, start=index)
        provider_id = f"{prefix}{message_id}" if state not in ("unknown", "pending") else ""
        with engine.begin() as connection:
            connection.execute(update(Message).where(Message.id == message_id)
                               .values(provider_message_id=provider_id or None))
        seeded[message_id] = provider_id
    return seeded


def states_of(engine, ids) -> dict[int, str]:
    with engine.connect() as connection:
        return dict(connection.execute(select(Message.id, Message.state).where(Message.id.in_(list(ids)))).all())


def events(engine, **where) -> list:
    with engine.connect() as connection:
        query = select(StatusEvent.__table__)
        for column, value in where.items():
            query = query.where(getattr(StatusEvent, column) == value)
        return connection.execute(query).all()


# ---------------------------------------------------------------------- hostile values, for every field

ODD_CHARACTERS = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
    st.sampled_from(["\x00", "\u202e", "\u200b", "\ufeff", "\x7f", "\n", "\u00b2", "\u0661",
                     "\U0001d7d9", "\uff12", "\u0301", "\U0001f600", "\u2028", "\\", '"']),
)
ODD_TEXT = st.text(ODD_CHARACTERS, max_size=24)
# Lone surrogates: escaped (\ud800) they are JSON Python reads but no database stores; raw, invalid UTF-8.
SURROGATE_TEXT = st.builds("{}{}{}".format, ODD_TEXT, st.sampled_from(["\ud800", "\udfff", "\udc00x"]), ODD_TEXT)
NUMBERS = st.one_of(st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
                    st.sampled_from([0, -1, 2**63, 2**64, 10**20, 12345678901234567890123, 10**400, -(10**400)]),
                    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e308, -0.0, 5e-324]))
NUMBERS_AS_TEXT = st.one_of(NUMBERS.map(str), st.sampled_from(["\u00b2", "\uff11\uff12", " 12 ", "1e400", "0x1F",
                                                               "NaN", "-0", "12" * 15, "\u0661\u0662"]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, NUMBERS_AS_TEXT, ODD_TEXT, SURROGATE_TEXT)
ANY_JSON = st.recursive(SCALARS,
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
                        max_leaves=8)


def nested(depth: int, kind: str) -> object:
    """An array or object `depth` levels deep (built without recursion)."""
    value: object = 1
    for _ in range(depth - 1):
        value = [value] if kind == "array" else {"a": value}
    return value


DEEP = st.builds(nested, st.integers(min_value=2, max_value=200), st.sampled_from(["array", "object"]))
SOMEWHAT_DEEP = st.builds(nested, st.integers(min_value=2, max_value=40), st.sampled_from(["array", "object"]))


def field(known) -> st.SearchStrategy:
    """A field's value: mostly one Blast knows (a seeded id, a documented word), else anything."""
    others = [SCALARS, ANY_JSON, SOMEWHAT_DEEP]
    return st.integers(min_value=0, max_value=6).flatmap(lambda pick: known if pick < 4 else others[pick - 4])


def encoded(document: object, ascii_only: bool) -> bytes:
    """JSON text; NaN, lone surrogates and all (surrogates escaped, or written raw as invalid UTF-8)."""
    if ascii_only:
        return json.dumps(document, ensure_ascii=True).encode("ascii")
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


def raw_bodies(items: st.SearchStrategy) -> st.SearchStrategy:
    """Bodies built from gateway-shaped items, plus garbage: any JSON, deep nesting, bytes, cut JSON."""
    shapes = [st.lists(items, min_size=1, max_size=4), items, ANY_JSON, DEEP, st.lists(st.one_of(items, ANY_JSON),
                                                                                    max_size=3)]
    documents = st.integers(min_value=0, max_value=7).flatmap(lambda pick: shapes[max(0, pick - 3)])
    text = st.builds(encoded, documents, st.booleans())
    deep_text = st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n)
    cut = st.builds(lambda body, cut: body[:cut], text, st.integers(min_value=0, max_value=40))
    garbage = [deep_text, cut, st.binary(max_size=64)]
    # seven in ten from the gateway's shape (hypothesis draws one_of's branches alike, duplicates or not)
    return st.integers(min_value=0, max_value=9).flatmap(lambda pick: text if pick < 7 else garbage[pick - 7])


# ---------------------------------------------------------------------- the fuzz test


def devino_bodies(seeded: dict[int, str]):
    ids = [provider_id for provider_id in seeded.values() if provider_id]
    known_ids = st.one_of(st.sampled_from(ids + [int(i) for i in ids] + ["999999"]),
                          st.builds(str.__add__, st.sampled_from(ids), ODD_TEXT))  # "70001\x00", "70001" + 99 more
    ours = st.sampled_from([*seeded, *(str(m) for m in seeded)])
    status = {
        "messageId": field(known_ids),
        "status": field(st.sampled_from(["sent", "delivered", "read", "failed", "undelivered", "enqueued",
                                         "DELIVERED", "visited", "vp_expired", "bounced", "not delivered"])),
        "errorCode": field(st.sampled_from([0, "0", 2301, "2301", 2305, "2305", 2005, "1000", None])),
        "ts": field(st.integers(min_value=0, max_value=2**40)),
        "options": field(ours),
        "callbackData": field(ours),
    }
    required = st.sampled_from(list(status)).flatmap(lambda key: st.fixed_dictionaries({key: status[key]}))
    item = st.one_of(
        st.fixed_dictionaries({"messageId": status["messageId"], "status": status["status"]},
                              optional={k: v for k, v in status.items() if k not in ("messageId", "status")}),
        st.fixed_dictionaries({"from": field(st.sampled_from(["+256701234567", "256701234567@c.us"])),
                               "text": field(st.sampled_from(["STOP", "stop\x00", "Hello"]))},
                              optional={"ts": status["ts"], "incomingMessageId": status["messageId"]}),
        required,
    )
    return raw_bodies(item).map(lambda body: (body, "application/json"))


def httpapi_bodies(seeded: dict[int, str]):
    ids = [provider_id for provider_id in seeded.values() if provider_id]
    known_ids = st.one_of(st.sampled_from([*ids, "wamid-999999"]),
                          st.builds(str.__add__, st.sampled_from(ids), ODD_TEXT))
    times = field(st.sampled_from(["2025-03-01T10:00:00Z", "2025-03-01 10:00:00 +0530", "9999-12-31T23:59:59-05:00",
                                   "0001-01-01T00:00:00Z", "2025-13-45", ""]))
    item = st.fixed_dictionaries(
        {"reportType": field(st.sampled_from(["delivery", "delivery", "inbox", "DELIVERY", " Delivery "])),
         "messageID": field(known_ids),
         "statusInfo": field(st.sampled_from(["pending", "sent", "delivered", "read", "failed", "Undelivered"]))},
        optional={
            "messageId": field(known_ids), "status": field(st.sampled_from([0, 1, 2, 3, 4, 5, "3", 7])),
            "phone": field(st.sampled_from(["+256701234567", "256701234567"])),
            "text": field(st.sampled_from(["STOP", "Hello"])), "value": field(st.just({"caption": "STOP"})),
            "createdAt": times, "updatedAt": times, "deliveredAt": times, "readAt": times,
        },
    )
    bodies = raw_bodies(item)
    boundary = "blast-fuzz-boundary"

    def wrapped(body: bytes, how: str) -> tuple[bytes, str]:
        if how == "form":
            return b"json=" + quote_from_bytes(body).encode("ascii"), "application/x-www-form-urlencoded"
        if how == "multipart":
            return (f'--{boundary}\r\nContent-Disposition: form-data; name="json"\r\n\r\n'.encode() + body
                    + f"\r\n--{boundary}--\r\n".encode()), f"multipart/form-data; boundary={boundary}"
        return body, how

    return st.builds(wrapped, bodies, st.sampled_from(["application/json", "application/json", "form", "multipart",
                                                      "text/plain", ""]))


def devino_known_hostile(seeded: dict[int, str]) -> list[tuple[bytes, str]]:
    """What broke the webhooks before (issue 11), always tried first."""
    some = next(provider_id for provider_id in seeded.values() if provider_id)
    unknown = next(message_id for message_id, provider_id in seeded.items() if not provider_id)
    return [(body.replace(b"@ID@", some.encode()).replace(b"@OURS@", str(unknown).encode()), "application/json")
            for body in (b'[{"messageId": "@ID@\\u0000", "status": "read", "errorCode": "\\u0000"}]',
                         b'[{"messageId": "\\ud800", "status": "read"}]',
                         b'[{"messageId": "@ID@", "status": "delivered", "ts": 1' + b"0" * 400 + b"}]",
                         b'[{"messageId": "@ID@", "status": "read", "options": "\xc2\xb2"}]',
                         b'[{"messageId": "@ID@", "status": "read", "options": "' + b"1" * 30 + b'"}]',
                         b'[{"messageId": "p-new", "status": "read", "options": "@OURS@"}]',
                         b'{"from": "+256701234567\\u0000", "text": "STOP\\u0000"}',
                         b"[" * 50_000 + b"]" * 50_000)]


def httpapi_known_hostile(seeded: dict[int, str]) -> list[tuple[bytes, str]]:
    some = next(provider_id for provider_id in seeded.values() if provider_id)
    return [(body.replace(b"@ID@", some.encode()), content_type) for body, content_type in (
        (b'[{"reportType": "delivery", "messageID": "@ID@", "statusInfo": "read",'
         b' "updatedAt": "9999-12-31T23:59:59-05:00"}]', "application/json"),
        (b'[{"reportType": "delivery", "messageID": "@ID@\\udfff", "statusInfo": "read"}]', "application/json"),
        (b'{"reportType": "inbox", "phone": "+256701234567", "text": "STOP\\u0000"}', "application/json"),
        (b"json=" + b"%5B" * 50_000, "application/x-www-form-urlencoded"),
    )]


FUZZ_EXAMPLES = 120  # per webhook and database (plus the known hostile ones): about 500 requests, 20 s


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("path", "account", "provider", "prefix", "bodies", "known_hostile"), [
    (DEVINO, "dv", "devino", "7000", devino_bodies, devino_known_hostile),
    (HTTPAPI, "wa", "httpapi", "wamid-", httpapi_bodies, httpapi_known_hostile),
], ids=["devino", "httpapi"])
def test_fuzzed_webhooks_never_answer_500_and_never_move_a_message_backwards(engine, client, path, account,
                                                                           provider, prefix, bodies, known_hostile):
    # given one message in each state (those the gateway has carry provider ids the fuzz uses)
    seeded = seed(engine, account, provider, prefix)
    before = states_of(engine, seeded)
    assert set(before.values()) == set(SEEDED_STATES)
    answers: dict[int, int] = {}
    moves: list[tuple[str, str]] = []
    started = time.monotonic()

    @settings(max_examples=FUZZ_EXAMPLES, deadline=5000, database=None, suppress_health_check=list(HealthCheck))
    @given(request=bodies(seeded))
    def callback(request):
        nonlocal before
        body, content_type = request
        # when the gateway's webhook gets it with a valid token
        answer = client.post(path, content=body, headers={"content-type": content_type} if content_type else {})
        # then it is stored or refused, never a server error
        answers[answer.status_code] = answers.get(answer.status_code, 0) + 1
        assert answer.status_code in (200, 400), (answer.status_code, answer.text, body[:300])
        # and no seeded message moved backwards
        after = states_of(engine, seeded)
        backwards = {i: (before[i], after[i]) for i in seeded if moved_backwards(before[i], after[i])}
        assert not backwards, (backwards, body[:300])
        moves.extend((before[i], after[i]) for i in seeded if before[i] != after[i])
        before = after

    for hostile in known_hostile(seeded):
        callback = example(request=hostile)(callback)
    callback()
    elapsed = time.monotonic() - started
    print(f"\n{provider}: {sum(answers.values())} fuzzed requests in {elapsed:.1f} s, answers {answers},"
          f" moves {moves}")
    # and every request got an answer, some of them stored (200) and some refused (400)
    assert sum(answers.values()) >= FUZZ_EXAMPLES // 2 and answers.get(200) and answers.get(400), answers
    # and every stored event is readable: raw JSON, rejected ones never applied nor naming a message
    for row in events(engine):
        json.loads(row.raw)
        if row.kind == "rejected":
            assert not row.applied and row.provider_message_id is None and row.message_id is None


# ---------------------------------------------------------------------- what is stored, what is refused


def test_a_callback_with_a_field_out_of_range_is_stored_raw_for_a_human_and_answered_200(engine, client):
    # given a message the gateway accepted as 70001
    campaign = make_campaign(engine, account="dv", provider="devino", status="running")
    (message_id,) = make_messages(engine, campaign.id, 1, state="submitted")
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == message_id).values(provider_message_id="70001"))
    # when callbacks name it with a NUL, with 100 characters more, as a float, and with a control character in
    # the error code
    body = json.dumps([
        {"messageId": "70001\u0000", "status": "READ"},
        {"messageId": "70001" + "9" * 100, "status": "READ"},
        {"messageId": 70001.0, "status": "READ"},
        {"messageId": "70001", "status": "FAILED", "errorCode": "2305\u0007"},
    ]).encode()
    answer = client.post(DEVINO, content=body, headers=JSON)
    # then Devino gets the 200 that ends its retries, with an empty body
    assert (answer.status_code, answer.content) == (200, b"")
    # and the message is untouched: none of them applies (not even by a truncated or rounded id)
    assert states_of(engine, [message_id]) == {message_id: "submitted"}
    # and each is kept raw, kind "rejected", with its problem, for a human
    rejected = events(engine, kind="rejected")
    assert len(rejected) == 4
    assert {row.applied for row in rejected} == {False}
    assert {json.loads(row.raw)["messageId"] for row in rejected} == {"70001\u0000", "70001" + "9" * 100, 70001.0,
                                                                       "70001"}
    assert sorted(row.error_code for row in rejected) == sorted([
        "messageId holds a control or unprintable character", "messageId longer than 100 characters",
        "messageId is a float, not a string or an integer", "error code holds a control or unprintable character"])


def test_an_unknown_id_and_a_late_status_are_stored_and_answered_200(engine, client):
    # given a message already read
    campaign = make_campaign(engine, account="wa", provider="httpapi", status="running")
    (message_id,) = make_messages(engine, campaign.id, 1, state="read")
    with engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == message_id).values(provider_message_id="wamid-1"))
    # when the HTTP API reports it sent, and reports a message nobody knows
    body = json.dumps([{"reportType": "delivery", "messageID": "wamid-1", "statusInfo": "sent"},
                       {"reportType": "delivery", "messageID": "wamid-unknown", "statusInfo": "delivered"}]).encode()
    answer = client.post(HTTPAPI, content=body, headers=JSON)
    # then both are stored (200), the read message stays read, the unknown one waits for its message
    assert answer.status_code == 200 and answer.json()["stored"] == 2, answer.text
    assert states_of(engine, [message_id]) == {message_id: "read"}
    waiting = events(engine, provider_message_id="wamid-unknown")
    assert len(waiting) == 1 and not waiting[0].applied


@pytest.mark.parametrize(("path", "body", "content_type"), [
    (DEVINO, b"not json", "application/json"),
    (DEVINO, b'"a string"', "application/json"),
    (DEVINO, b'[{"status": "READ"}]', "application/json"),  # no messageId
    (DEVINO, b'[{"messageId": {"a": 1}, "status": "READ"}]', "application/json"),
    (DEVINO, b'[{"messageId": "1", "status": NaN}]', "application/json"),
    (DEVINO, b'[{"messageId": "\\ud800", "status": "READ"}]', "application/json"),  # a lone surrogate
    (DEVINO, b'[{"messageId": "\xff\xfe", "status": "READ"}]', "application/json"),  # not UTF-8
    (HTTPAPI, b"[1, 2]", "application/json"),
    (HTTPAPI, b'[{"reportType": "delivery", "statusInfo": "read"}]', "application/json"),  # no messageID
    (HTTPAPI, b"json=%7B", "application/x-www-form-urlencoded"),
    (HTTPAPI, b"--x\r\nbroken", "multipart/form-data; boundary=x"),
], ids=["not-json", "a-string", "no-id", "id-object", "nan", "lone-surrogate", "not-utf8", "numbers",
        "httpapi-no-id", "cut-form", "cut-multipart"])
def test_garbage_is_a_400_and_stores_nothing(engine, client, path, body, content_type):
    # when a body that is not the gateway's arrives with a valid token
    answer = client.post(path, content=body, headers={"content-type": content_type})
    # then it is refused as such, and nothing is stored
    assert answer.status_code == 400, answer.text
    assert events(engine) == []


# ---------------------------------------------------------------------- depth


@pytest.mark.parametrize(("path", "wrap", "content_type"), [
    (DEVINO, lambda inner: b"[" + inner + b"]", "application/json"),
    (HTTPAPI, lambda inner: b"[" + inner + b"]", "application/json"),
    (HTTPAPI, lambda inner: b"json=" + quote_from_bytes(b"[" + inner + b"]").encode(),
     "application/x-www-form-urlencoded"),
], ids=["devino", "httpapi-json", "httpapi-form"])
def test_nesting_10000_deep_is_a_400_and_32_levels_are_read(engine, client, path, wrap, content_type):
    headers = {"content-type": content_type}
    item = (b'{"messageId": "1", "messageID": "1", "reportType": "delivery", "status": "READ", "extra": '
            b"%s}")
    # when an item nests 10,000 levels deep (arrays), and 10,000 levels of objects
    for deep in (b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        answer = client.post(path, content=wrap(item % deep), headers=headers)
        # then it is a 400 naming the bound, before any reader walks it
        assert answer.status_code == 400 and "nested" in answer.text, answer.text[:300]
    # and one level past the bound (32: the body's array, the item, 31 more) is a 400 too
    answer = client.post(path, content=wrap(item % (b"[" * 31 + b"]" * 31)), headers=headers)
    assert answer.status_code == 400, answer.text
    # while 32 levels in all are read and stored
    answer = client.post(path, content=wrap(item % (b"[" * 30 + b"]" * 30)), headers=headers)
    assert answer.status_code == 200, answer.text
    assert len(events(engine)) == 1


# ---------------------------------------------------------------------- size


@pytest.fixture
def small_limit(accounts, monkeypatch):
    monkeypatch.setenv("BLAST_WEBHOOK_MAX_BYTES", str(SMALL_LIMIT))
    reset_settings()


def test_a_chunked_body_over_the_limit_is_a_413_as_soon_as_it_passes_it(small_limit):
    from campaigns.web.app import create_app

    # given a 24 MB chunked body (no Content-Length) offered 16 KB at a time, counting what is taken
    app = create_app()
    chunk = b" " * 16 * 1024
    taken = 0
    sent: list[dict] = []

    async def receive():
        nonlocal taken
        taken += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": taken < TWENTY_FOUR_MB}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/hooks/devino/dv", "raw_path": b"/hooks/devino/dv", "root_path": "",
             "query_string": f"token={SECRET}".encode(), "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
             "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]}
    # when the webhook reads it
    asyncio.run(app(scope, receive, send))
    # then the answer is 413, and no more than the limit and one chunk were taken from the 24 MB
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413, sent[:1]
    assert taken <= SMALL_LIMIT + len(chunk), taken


def _answer(connection: socket.socket) -> bytes:
    """What the server says before it closes (or up to its headers and some body)."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = connection.recv(65536)
        if not data:
            break
        received += data
    return received


def test_a_declared_24_mb_body_is_a_413_before_any_of_it_is_sent(small_limit):
    # given the web app served by uvicorn on a loopback port
    with WebAppThread(port=0) as web, socket.create_connection((web.host, web.port), timeout=10) as connection:
        # when a client declares 24 MB and sends none of it
        connection.sendall(f"POST /hooks/devino/dv?token={SECRET} HTTP/1.1\r\nHost: x\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {TWENTY_FOUR_MB}\r\n\r\n".encode())
        # then the answer is a 413 at once (a server waiting for the body would time the socket out: 10 s)
        assert _answer(connection).startswith(b"HTTP/1.1 413"), "no 413 before the body"


def test_a_chunked_body_over_the_limit_is_a_413_while_the_rest_is_still_unsent(small_limit):
    # given the web app served by uvicorn on a loopback port
    with WebAppThread(port=0) as web, socket.create_connection((web.host, web.port), timeout=10) as connection:
        # when a client sends a chunked body a little past the limit, and never ends it
        connection.sendall(f"POST /hooks/devino/dv?token={SECRET} HTTP/1.1\r\nHost: x\r\n"
                           f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        piece = b" " * 8192
        for _ in range(SMALL_LIMIT // len(piece) + 2):
            connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        # then the answer is a 413 without the rest (a server waiting for the end would time the socket out)
        assert _answer(connection).startswith(b"HTTP/1.1 413"), "no 413 before the body's end"
