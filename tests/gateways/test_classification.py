"""Every row of every gateway's classification table, tested with the gateway document's own sample body
(or, where the document gives none, the document's general response format with that code).

Each case names the table key it exercises; the last tests check that no row goes untested.
"""

from __future__ import annotations

import json

import pytest

from campaigns.states import EventKind, Outcome
from tests.support.gateway_doubles import answer
from tests.support.sandbox import account
from workers.providers import devino, httpapi, smsglobal, socnet
from workers.providers.base import Outbound
from workers.providers.devino import parse_callback as parse_devino_callback

A = Outcome
TOKEN = "62b32c76758e0afb0d390793"

# (table key, HTTP status, body as the document prints it, outcome, code)
SOCNET_CASES = [
    ("0", 200, '{"message": "[Resource name] submitted successfully.", "status": 0}', A.ACCEPTED, None),
    ("true", 200, '{"sent": "true", "from": "256701234567@c.us", "message_type": "chat", '
                  '"messageId": "3EB002BAE9545124A5B7B2", "cost": "90"}', A.ACCEPTED, None),
    ("channel 2", 200, '{"messaging_product": "whatsapp", "contacts": [{"input": "256701234567", '
                       '"wa_id": "256701234567"}], "messages": [{"id": "message_id", "message_status": '
                       '"accepted"}], "cost": 0}', A.ACCEPTED, None),
    ("1", 200, '{"message": "response_message", "status": 1}', A.CONTENT, "1"),
    ("400", 400, '{"data": null, "message": "The [parameter] field is required.", "status": 400}', A.CONTENT,
     "400"),
    ("401", 401, '{"message": "Invalid user credentials", "status": 401}', A.AUTH, "401"),
    ("403", 403, '{"message": "Insufficient credit (0) for transaction charge of xxx", "status": 403}',
     A.QUOTA, "403"),
    ("404", 404, '{"data": null, "message": "[Resource] not found", "status": 404}', A.CONTENT, "404"),
    ("405", 405, '{"message": "Method is not allowed for the requested route", "status": 405}', A.AUTH,
     "405"),
    ("422", 422, '{"message": "The [parameter] field must be [format].", "status": 422}', A.CONTENT, "422"),
    ("500", 500, '{"message": "[Failure reason]", "status": 500}', A.AMBIGUOUS, "500"),
    ("503", 503, '{"message": "response_message", "status": 503}', A.TRANSIENT, "503"),
    ("invalid", 200, '{"status": "invalid"}', A.RECIPIENT, "invalid"),
]

SMSGLOBAL_MESSAGE = ('{{"messages": [{{"id": 6746514019161950, "recipient": "61400000000", '
                     '"status": "{status}", "state": "{state}", "message": "Hello", '
                     '"createdDate": "2024-07-02 10:00:00"}}]}}')
SMSGLOBAL_CASES = [
    *[(status, 200, SMSGLOBAL_MESSAGE.format(status=status, state="pending"), A.ACCEPTED, None)
      for status in ("queued", "scheduled", "sent", "delivered", "read")],
    ("undelivered", 200, SMSGLOBAL_MESSAGE.format(status="undelivered", state="final"), A.RECIPIENT,
     "undelivered"),
    ("rejected", 200, SMSGLOBAL_MESSAGE.format(status="rejected", state="final"), A.CONTENT, "rejected"),
    ("nocredits", 200, SMSGLOBAL_MESSAGE.format(status="noCredits", state="final"), A.QUOTA, "noCredits"),
    ("invalidnumber", 200, SMSGLOBAL_MESSAGE.format(status="invalidNumber", state="final"), A.RECIPIENT,
     "invalidNumber"),
    ("HTTP 400", 400, '{"errors": {"to": "This value is not valid."}}', A.CONTENT, "HTTP 400"),
    ("HTTP 401", 401, '{"error": "Authentication failed"}', A.AUTH, "HTTP 401"),
    ("HTTP 402", 402, '{"error": "Payment required"}', A.QUOTA, "HTTP 402"),
    ("HTTP 403", 403, '{"error": "Forbidden"}', A.AUTH, "HTTP 403"),
    ("HTTP 404", 404, '{"error": "Not Found"}', A.AUTH, "HTTP 404"),
    ("HTTP 405", 405, '{"error": "Method Not Allowed"}', A.AUTH, "HTTP 405"),
    ("HTTP 406", 406, '{"error": "Not Acceptable"}', A.CONTENT, "HTTP 406"),
    ("HTTP 415", 415, '{"error": "Unsupported Media Type"}', A.CONTENT, "HTTP 415"),
    ("HTTP 429", 429, '{"error": "Too Many Requests"}', A.THROTTLED, "HTTP 429"),
    ("HTTP 500", 500, "<html>Internal Server Error</html>", A.AMBIGUOUS, "HTTP 500"),
    ("HTTP 502", 502, "<html>Bad Gateway</html>", A.TRANSIENT, "HTTP 502"),
    ("HTTP 503", 503, "<html>Service Unavailable</html>", A.TRANSIENT, "HTTP 503"),
    ("HTTP 5xx", 504, "<html>Gateway Timeout</html>", A.AMBIGUOUS, "HTTP 504"),
]

DEVINO_REJECTED = ('{{"result": [{{"code": "REJECTED", "reasons": [{reasons}], '
                   '"description": "{description}"}}]}}')


def _reason(key: str, ref: str | None) -> str:
    return json.dumps({"key": key, **({"ref": ref.replace("[i]", "[0]")} if ref else {})})


DEVINO_SEND_CASES = [
    ("OK", 200, '{"result": [{"code": "OK", "messageId": "3482512350952730368"}]}', A.ACCEPTED, None),
    *[
        (key, 200, DEVINO_REJECTED.format(reasons=_reason(*[*key.split(" ", 1), None][:2]),
                                          description=rule.reason), rule.outcome, key)
        for key, rule in devino.OUTCOMES.items()
        if not key[0].isdigit() and not key.startswith("HTTP") and key != "OK"
    ],
    ("HTTP 401", 401, '{"error": "Unauthorized"}', A.AUTH, "HTTP 401"),
    ("HTTP 403", 403, '{"error": "Forbidden"}', A.AUTH, "HTTP 403"),
    ("HTTP 429", 429, "Too Many Requests", A.THROTTLED, "HTTP 429"),
    ("HTTP 500", 500, "<html>Internal Server Error</html>", A.AMBIGUOUS, "HTTP 500"),
    ("HTTP 502", 502, "<html>Bad Gateway</html>", A.TRANSIENT, "HTTP 502"),
    ("HTTP 503", 503, "<html>Service Unavailable</html>", A.TRANSIENT, "HTTP 503"),
    ("HTTP 5xx", 504, "<html>Gateway Timeout</html>", A.AMBIGUOUS, "HTTP 504"),
]
DEVINO_ERROR_CODES = [key for key in devino.OUTCOMES if key[0].isdigit()]


def _httpapi_error(message: str, status: int = 400) -> tuple[int, str]:
    return status, json.dumps({"status": "error", "message": message, "responsetime": 0.00049408})


HTTPAPI_CASES = [
    ("00", 200, '{"status":"success","message":"00-Success","data":{"connStatus":true,"messageIDs":'
                '["62b32db5758e0afb0d3907e1"]},"responsetime":0.001561498}', A.ACCEPTED, None),
    ("05", 400, '{"status":"error","message":"05-Quota expiry","request":{"message":["hello"],"phone":'
                '["9193*****1"],"token":["62b32c76758e0afb0d390793"]},"responsetime":0.00049408}', A.QUOTA,
     "05-Quota expiry"),
    ("invalid object id", 401, '{"status":"error","message":"invalid object id","responsetime":0.00002883}',
     A.AUTH, "invalid object id"),
    ("10", 400, '{"status":"error","message":"10-Download file failed","responsetime":0.941790251}',
     A.CONTENT, "10-Download file failed"),
    ("09", 400, '{"status":"error","message":"09-Link not valid","responsetime":0.00001772}', A.CONTENT,
     "09-Link not valid"),
    ("08", 400, '{"status":"error","message":"08-Save file / document failed","responsetime":0.941790251}',
     A.TRANSIENT, "08-Save file / document failed"),
    (httpapi.LIST_PARAMETER_MISSING, 400,
     '{"status":"error","message":"please check request required header/message/buttonText/ at least one '
     'row",'
     '"request":{"phone":["9***1"],"token":["5f21868ad1a8239cc335ccf3"]},"responsetime":0.00000826}',
     A.CONTENT, "please check request required header/message/buttonText/ at least one row"),
    ("14", 400, '{"status":"error","message":"14-Data not found","responsetime":0.088298881}', A.TRANSIENT,
     "14-Data not found"),
    # httpapi.txt 9, "Error Codes List at a glance": the numbered messages without a sample body
    ("01", *_httpapi_error("01-Access token failed"), A.AUTH, "01-Access token failed"),
    ("02", *_httpapi_error("02-Client id not found"), A.AUTH, "02-Client id not found"),
    ("03", *_httpapi_error("03-Instance id not found"), A.AUTH, "03-Instance id not found"),
    ("04", *_httpapi_error("04-Phone number not registered on whatsapp or your instance not connected"),
     A.RECIPIENT, "04-Phone number not registered on whatsapp or your instance not connected"),
    ("06", *_httpapi_error("06-Not enough quota"), A.QUOTA, "06-Not enough quota"),
    ("07", *_httpapi_error("07-Quota limit"), A.QUOTA, "07-Quota limit"),
    ("11", *_httpapi_error("11-Unknown file type"), A.CONTENT, "11-Unknown file type"),
    ("12", *_httpapi_error("12-Parsing parameter failed"), A.CONTENT, "12-Parsing parameter failed"),
    ("13", *_httpapi_error("13-Parameter required"), A.CONTENT, "13-Parameter required"),
    ("15", *_httpapi_error("15-QrCode failed"), A.TRANSIENT, "15-QrCode failed"),
    # the HTTP statuses of section 9, with no body the table knows
    ("HTTP 400", 400, "Bad Request", A.CONTENT, "HTTP 400"),
    ("HTTP 401", 401, "Unauthorized", A.AUTH, "HTTP 401"),
    ("HTTP 403", 403, "Forbidden", A.TRANSIENT, "HTTP 403"),
    ("HTTP 500", 500, "HTTP ERROR", A.AMBIGUOUS, "HTTP 500"),
    ("HTTP 502", 502, "Service Temporarily Overloaded or there are Network issues between the two Servers",
     A.THROTTLED, "HTTP 502"),
    ("HTTP 503", 503, "Service Unavailable", A.TRANSIENT, "HTTP 503"),
]

MESSAGES = {
    "socnet": Outbound(message_id=1, to="+256701234567", text="Hello"),
    "smsglobal": Outbound(message_id=1, to="+61400000000", text="Hello"),
    "devino": Outbound(message_id=1, to="+79034567890", text="Code: 1234"),
    "httpapi": Outbound(message_id=1, to="+919300000001", text="hello"),
}
CLIENTS = {
    "socnet": socnet.SocnetClient,
    "smsglobal": smsglobal.SmsGlobalClient,
    "devino": devino.DevinoClient,
    "httpapi": httpapi.HttpApiClient,
}
ALL_CASES = [
    pytest.param(provider, *case, id=f"{provider}:{case[0]}")
    for provider, cases in (("socnet", SOCNET_CASES), ("smsglobal", SMSGLOBAL_CASES),
                            ("devino", DEVINO_SEND_CASES), ("httpapi", HTTPAPI_CASES))
    for case in cases
]


def classify(provider: str, status: int, body: str, headers: dict | None = None):
    client = CLIENTS[provider](account(provider))
    return client.parse_result(answer(status, body, headers), MESSAGES[provider])


@pytest.mark.parametrize(("provider", "key", "status", "body", "outcome", "code"), ALL_CASES)
def test_each_documented_answer_has_its_outcome(provider, key, status, body, outcome, code):
    # given the document's sample answer; when the client reads it
    result = classify(provider, status, body)
    # then it is the row's outcome, with the gateway's own code and the body kept
    assert (result.outcome, result.code) == (outcome, code)
    assert result.raw is not None
    if outcome != A.ACCEPTED:
        assert result.detail


def test_the_table_key_named_by_each_case_is_the_row_it_reaches():
    assert {case[0] for case in SOCNET_CASES} == set(socnet.OUTCOMES)
    assert {case[0] for case in SMSGLOBAL_CASES} == set(smsglobal.OUTCOMES)
    assert {case[0] for case in DEVINO_SEND_CASES} | set(DEVINO_ERROR_CODES) == set(devino.OUTCOMES)
    assert {case[0] for case in HTTPAPI_CASES} == set(httpapi.OUTCOMES)


@pytest.mark.parametrize("code", DEVINO_ERROR_CODES)
def test_each_devino_callback_error_code_has_its_outcome(code):
    # given devino.txt's status callback sample carrying one of its error codes
    body = ('[{"messageId": 1, "ts": 0, "status": "UNDELIVERED", "errorCode": CODE, "ip": "127.0.0.1", '
            '"browser": "string", "os": "string", "userAgent": "string", "options": "string"}]')
    body = body.replace("CODE", code)
    # when it is parsed
    [update] = parse_devino_callback(body.encode())
    # then the row's outcome and words come with it; 2301 means send again
    rule = devino.OUTCOMES[code]
    assert (update.outcome, update.error_code, update.reason) == (rule.outcome, code, rule.reason)
    assert update.kind == (EventKind.THROTTLED if code == "2301" else EventKind.FAILED)


def test_design_table_examples_hold():
    # DESIGN.md "Classification" names these explicitly
    assert devino.OUTCOMES["2301"].outcome == A.THROTTLED
    assert devino.OUTCOMES["2005"].outcome == devino.OUTCOMES["billing.error"].outcome == A.QUOTA
    assert devino.OUTCOMES["forbidden"].outcome == A.AUTH
    assert devino.OUTCOMES["2305"].outcome == A.RECIPIENT
    assert {devino.OUTCOMES[c].outcome for c in ("2300", "2304", "2308", "2309", "2310", "2311", "2312")} == {
        A.CONTENT}
    assert {httpapi.OUTCOMES[c].outcome for c in ("05", "06", "07")} == {A.QUOTA}
    assert httpapi.OUTCOMES["01"].outcome == httpapi.OUTCOMES["invalid object id"].outcome == A.AUTH
    assert httpapi.OUTCOMES["09"].outcome == httpapi.OUTCOMES["10"].outcome == A.CONTENT
    assert httpapi.OUTCOMES["HTTP 502"].outcome == A.THROTTLED
    assert socnet.OUTCOMES["403"].outcome == A.QUOTA and socnet.OUTCOMES["invalid"].outcome == A.RECIPIENT
    assert smsglobal.OUTCOMES["HTTP 402"].outcome == A.QUOTA


# ---------------------------------------------------------------------- what the rows carry


def test_socnet_channel_1_gives_id_and_cost():
    result = classify("socnet", 200, SOCNET_CASES[1][2])
    assert (result.provider_message_id, result.cost, result.detail) == ("3EB002BAE9545124A5B7B2", "90", None)


def test_socnet_channel_2_gives_id_and_cost():
    result = classify("socnet", 200, SOCNET_CASES[2][2])
    assert (result.provider_message_id, result.cost) == ("message_id", "0")


def test_socnet_failure_keeps_the_gateways_words():
    result = classify("socnet", 403, SOCNET_CASES[6][2])
    assert result.detail == "Insufficient credit (0) for transaction charge of xxx"


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        # socnet.txt prints these two with a trailing comma, which is not JSON: the HTTP status decides
        (401, '{\n  "message": "Invalid user credentials",\n  "status": 401,\n}', A.AUTH),
        (403, '{\n  "message": "Insufficient credit (0) for transaction charge of xxx",\n  "status": 403,\n}',
         A.QUOTA),
    ],
)
def test_socnet_bodies_printed_as_broken_json_still_classify_by_status(status, body, outcome):
    result = classify("socnet", status, body)
    assert (result.outcome, result.code) == (outcome, f"HTTP {status}")


def test_smsglobal_accepted_gives_the_message_id():
    assert classify("smsglobal", 200, SMSGLOBAL_CASES[0][2]).provider_message_id == "6746514019161950"


def test_smsglobal_429_carries_retry_after():
    result = classify("smsglobal", 429, '{"error": "Too Many Requests"}', {"Retry-After": "7"})
    assert (result.outcome, result.retry_after) == (A.THROTTLED, 7.0)


def test_devino_ok_gives_the_message_id():
    assert classify("devino", 200, DEVINO_SEND_CASES[0][2]).provider_message_id == "3482512350952730368"


def test_httpapi_success_gives_the_message_id_in_either_spelling():
    assert classify("httpapi", 200, HTTPAPI_CASES[0][2]).provider_message_id == "62b32db5758e0afb0d3907e1"
    other = HTTPAPI_CASES[0][2].replace("messageIDs", "messageIds")
    assert classify("httpapi", 200, other).provider_message_id == "62b32db5758e0afb0d3907e1"


def test_httpapi_raw_body_never_keeps_the_token():
    # given the document's own quota sample, which echoes the request's token
    result = classify("httpapi", 400, HTTPAPI_CASES[1][2])
    # then the kept body has it masked
    assert TOKEN not in json.dumps(result.raw)
    assert result.raw["request"]["token"] == ["****"]


# ---------------------------------------------------------------------- nobody documented it


@pytest.mark.parametrize(
    ("provider", "status", "body"),
    [
        ("socnet", 200, '{"status": "valid"}'),
        ("socnet", 200, '{"sent": "false"}'),
        ("socnet", 200, "<html>hello</html>"),
        ("socnet", 418, '{"message": "teapot", "status": 418}'),
        ("socnet", 200, "[1, 2, 3]"),
        ("smsglobal", 200, '{"messages": [{"id": 1, "status": "teleported"}]}'),
        ("smsglobal", 200, '{"messages": []}'),
        ("smsglobal", 302, "moved"),
        ("devino", 200, '{"result": [{"code": "CODE", "reasons": [{"key": "string", "ref": "string"}], '
                        '"messageId": "string"}]}'),
        ("devino", 200, '{"result": []}'),
        ("devino", 200, '{"result": "nonsense"}'),
        ("devino", 418, "teapot"),
        ("httpapi", 200, '{"status": "error", "message": "99-Something new"}'),
        ("httpapi", 200, "not json"),
        ("httpapi", 418, '{"data": null}'),
    ],
)
def test_undocumented_answers_are_ambiguous_with_the_body_kept(provider, status, body):
    # the gateway may have taken the message: never sent again blindly, and the answer kept for a human
    result = classify(provider, status, body)
    assert result.outcome == A.AMBIGUOUS and result.undocumented
    assert result.raw is not None
    assert result.code == f"undocumented HTTP {status}"


@pytest.mark.parametrize(("status", "body", "outcome", "code"), [
    (401, '{"reasons": [{"key": "forbidden"}], "description": "Access denied"}', A.AUTH, "forbidden"),
    (402, '{"reasons": [{"key": "billing.error"}]}', A.QUOTA, "billing.error"),
    (400, '{"reasons": [{"key": "too.many.messages", "ref": "messages"}]}', A.CONTENT,
     "too.many.messages messages"),
])
def test_devino_whole_call_error_with_reasons_and_no_result_is_classified_by_its_reasons(status, body, outcome,
                                                                                         code):
    result = classify("devino", status, body)
    assert (result.outcome, result.code, result.undocumented) == (outcome, code, False)
