"""Socnet Solutions WhatsApp API v1.01 (socnet.txt), simulated.

One URL takes every request: POST a JSON body with `api_key`. A body with only the key checks the
credentials ({"status": "valid"}); one with `msisdn` and `msg` sends. An accepted send is answered in
the "channel 1" or the "channel 2" shape, at random: the document says to expect either. Socnet has no
delivery reports and no webhook, so nothing follows an accepted send.
"""

from __future__ import annotations

import re
import secrets

from workers.sandbox.gateways.base import SandboxGateway
from workers.sandbox.state import Account, BuiltinAccount, Incoming, Outgoing, e164
from workers.sandbox.web import Request, Response, json_response

PATH = "/projects/bulk/whatsapp/api.php"
CHARGE = 90  # the cost channel 1's sample shows ("cost": "90"); also the "transaction charge" when refused
# Assumption: the document states no text limit; WhatsApp's own limit on a text body.
MAX_TEXT_CHARACTERS = 4096
MSISDN = re.compile(r"256\d{9}")  # "N12", "Start with 256"


def _missing(parameter: str, status: int) -> Response:
    # The authentication section's sample (400) carries "data": null; the messaging one (422) does not.
    body = {"data": None} if status == 400 else {}
    body.update(message=f"The {parameter} field is required.", status=status)
    return json_response(status, body)


def _wrong_format(parameter: str, fmt: str) -> Response:
    return json_response(422, {"message": f"The {parameter} field must be {fmt}.", "status": 422})


def _charge(account: Account) -> int | float:
    """What one accepted send costs (the `charge` knob, else the sample's 90), written as the sample writes
    it: a whole number without a decimal point."""
    charge = account.knobs.charge
    if charge is None:
        return CHARGE
    return int(charge) if charge == int(charge) else charge


UNAVAILABLE = {"message": "Service unavailable", "status": 503}
SERVER_ERROR = {"message": "Server error", "status": 500}  # socnet.txt "Status Codes" 500


class SocnetGateway(SandboxGateway):
    provider = "socnet"
    builtin = BuiltinAccount("sandbox-socnet-key-0123456789abc")


    async def handle(self, request: Request, path: str) -> Response:
        if path != PATH:
            return json_response(404, {"data": None, "message": "Resource not found", "status": 404})
        if request.method != "POST":
            return json_response(405, {"message": "Method is not allowed for the requested route",
                                       "status": 405})
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        api_key = body.get("api_key")
        if api_key in (None, ""):
            return _missing("api_key", 400)
        account = self.runtime.sandbox.account(self.provider, str(api_key))
        if account is None:
            return json_response(401, {"message": "Invalid user credentials", "status": 401})
        account.stats.requests += 1
        if "msisdn" not in body and "msg" not in body and "template" not in body:
            return json_response(200, {"status": "valid"})
        return await self._send(account, body)

    async def _send(self, account: Account, body: dict) -> Response:
        runtime = self.runtime
        await runtime.delay_send(account)
        if runtime.fails_at_random(account):
            return json_response(503, UNAVAILABLE)
        if runtime.lost_at_random(account):
            return json_response(500, SERVER_ERROR)
        refusal = self._invalid(body)
        if refusal is not None:
            reason, response = refusal
            account.reject(reason)
            return response
        msisdn = str(body["msisdn"])
        recipient = e164(msisdn)
        refused = account.refusal()
        charge = _charge(account)
        if refused == "quota":
            account.reject("quota")
            return json_response(403, {
                "message": f"Insufficient credit (0) for transaction charge of {charge}", "status": 403})
        if refused == "rate_cap":
            account.reject("rate_cap")
            return json_response(503, UNAVAILABLE)
        if runtime.not_on_whatsapp(account, recipient):
            account.reject("not_on_whatsapp")
            return json_response(200, {"status": "invalid"})
        if runtime.rng.random() < 0.5:
            message_id = "3EB0" + secrets.token_hex(9).upper()
            answer = {"sent": "true", "from": f"{msisdn}@c.us", "message_type": "chat",
                      "messageId": message_id, "cost": str(charge)}
        else:
            message_id = f"wamid.{secrets.token_hex(16).upper()}"
            answer = {"messaging_product": "whatsapp", "contacts": [{"input": msisdn, "wa_id": msisdn}],
                      "messages": [{"id": message_id, "message_status": "accepted"}], "cost": 0}
        message = Outgoing(message_id, recipient, body["msg"], extra=None)
        account.accept(message)
        message.final = True  # no report will ever change it
        garbled = runtime.garbled_answer(account)
        if garbled == "ambiguous":
            return json_response(500, SERVER_ERROR)
        if garbled == "undocumented":
            return json_response(200, {"result": "queued", "reference": message_id})
        return json_response(200, answer)

    @staticmethod
    def _invalid(body: dict) -> tuple[str, Response] | None:
        """The rejection reason and answer for a send with a missing or malformed parameter."""
        for parameter in ("msisdn", "msg"):
            if body.get(parameter) in (None, ""):
                return f"missing:{parameter}", _missing(parameter, 422)
        msisdn = body["msisdn"]
        if isinstance(msisdn, bool) or not isinstance(msisdn, str | int) or not MSISDN.fullmatch(str(msisdn)):
            return "invalid:msisdn", _wrong_format("msisdn", "12 digits starting with 256")
        if not isinstance(body["msg"], str):
            return "invalid:msg", _wrong_format("msg", "a string")
        if len(body["msg"]) > MAX_TEXT_CHARACTERS:
            return "too_long:msg", _wrong_format("msg", f"at most {MAX_TEXT_CHARACTERS} characters")
        template = body.get("template")
        if template is not None and not isinstance(template, str):
            return "invalid:template", _wrong_format("template", "a string")
        return None

    def on_status(self, account: Account, message: Outgoing) -> None:
        """Socnet reports nothing after the send."""

    def on_inbound(self, account: Account, incoming: Incoming) -> bool:
        """Socnet's document has no inbound messages: kept for the record, pushed nowhere."""
        return False
