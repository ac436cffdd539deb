"""The gateway sandbox: Socnet, SMSGlobal, Devino and the WhatsApp HTTP API, simulated in one process
(`blast sandbox`), written from the gateways' documents and sharing no code with `workers.providers`.

Modules: `server` (the ASGI app and `serve`), `gateways/` (one module per gateway, found by a package
scan: `socnet`, `smsglobal`, `devino`, `httpapi`; `base` holds what they share), `control` (the
/_sandbox/ API), `state` (accounts, knobs, stats), `runtime` (progress of statuses, the knobs every send
obeys), `callbacks` (POSTs to clients, with retries), `harness` (the client-side `SandboxProcess` for
tests, the demo and benchmarks).

Choices of ours where the documents (and providers/README.md's "Choices of ours") are silent:

All gateways
- Order of checks on a send: credentials, then `latency_ms`, then `fail_fraction` (HTTP 503), then the
  parameters, then `quota`, then `rate_cap`, then "not on WhatsApp", then acceptance. SMSGlobal parses
  its recipients before `fail_fraction` (the share counts per request all the same).
- Statuses: an accepted message is "sent" at once (its callback goes out right after the answer),
  "delivered" `progress_seconds` later, "read" as long again for a `read_fraction` of messages; with
  `progress_seconds` null it stays "sent". A message delivered but never to be read is final.
- `rate_cap` counts acceptances in the sliding second (now - 1 s, now]; a request whose messages would
  take the count over the cap is refused whole (an SMSGlobal request with more recipients than the cap is
  always refused). Refused, throttled and not-on-WhatsApp messages never count as accepted, never use
  quota and never enter the peak. `quota` is decremented by every accepted message.
- Stats: `rejected` counts messages by reason: "quota", "rate_cap", "fail_fraction", "not_on_whatsapp",
  "auth" (a known SMSGlobal key with a bad MAC), "missing:<param>", "invalid:<param>",
  "too_long:<param>", and Devino's "<key> <ref>" with the message index written [i] (a message with
  several reasons counts once, under its first). A request with an unknown key belongs to no account and
  is counted nowhere. `requests` counts every request an account's credentials authenticated.
- Ids never repeat within a process, even across resets.
- Callbacks and webhooks are POSTed by a few concurrent senders: two statuses of one message close together
  may arrive out of order, as a real gateway's may (Blast never moves a message backwards).
- Control API beyond the contract: GET /_sandbox/health (readiness), GET /_sandbox/knobs?provider=&key=
  and GET /_sandbox/accounts (what is set; secrets never shown), GET /_sandbox/callbacks (the callback
  sender's counts). A new or replaced account starts with the default knobs (the command line's flags).
  Inbound messages to Socnet are kept but pushed nowhere (its document has none); to SMSGlobal they
  show in the incoming list.
- The 503 of `fail_fraction` has the gateway's own body where its document shows one (Socnet, SMSGlobal
  JSON); Devino and the HTTP API answer a plain-text page, like a proxy in front of them.
- Gateways less tidy than their documents (knobs; the shares are exact and evenly spread, 0.2 = every
  fifth): `ambiguous_fraction` (of the sends taken: answered 500 after taking them; counted in stats
  `garbled.ambiguous`), `lost_fraction` (of the send requests: 500, nothing taken; `rejected.lost_fraction`),
  `undocumented_fraction` (of the sends taken: 200 with a body no document lists; `garbled.undocumented`),
  `status_words` (sent/delivered/read/failed -> a word printed instead; the HTTP API prints number 9 with it),
  `timezone` (an offset: SMSGlobal's date filters and createdDate, the HTTP API's report days and times),
  `callback_delay_seconds` and `callback_drop_fraction` (Devino callbacks and HTTP API webhooks late or never).
- Money and caps, for the forecast before a launch: `charge` (Socnet's channel-1 `cost`, default 90) and
  `daily_limit` (the HTTP API's `quotaLimit`: messages taken per day of the gateway's zone; `todayUsage`
  counts them; past it a send is answered "05-Quota expiry" and counted `rejected.daily_limit`).
- A rate cap counts a message when its request arrives, not when its answer is ready `latency_ms` later, as a
  gateway's own limiter does; the peak is the most arrivals in any sliding second.

Socnet
- A body with `api_key` only (no msisdn, msg, template) is the credentials check: {"status": "valid"}.
- Missing `api_key`: 400 with "data": null (the authentication section's sample); a missing send
  parameter: 422 (the messaging section's). Wrong formats: 422 "The msisdn field must be 12 digits
  starting with 256." (msisdn is N12, "Start with 256"), msg longer than 4096 characters refused.
- The HTTP status equals the body's status (200 for 0, "valid", "invalid"). Rate cap and random
  failures: 503 {"message": "Service unavailable", "status": 503}. Quota: 403 "Insufficient credit (0)
  for transaction charge of 90" (90 = channel 1's sample cost). Channels 1 and 2 are chosen 50/50.

SMSGlobal
- Errors are JSON {"code", "message"}; validation errors 400 {"code": 400, "message": "Validation
  Failed", "errors": {field: [text]}}. Unauthenticated: 401. No credit: 402. Rate cap: 429 with
  Retry-After (whole seconds until the sliding second has room). Random failure: 503.
- The MAC is checked exactly; `ts` freshness and nonce reuse are not checked (the document is silent).
  The port signed is the Host header's (80 when it has none: the sandbox speaks http).
- A text message's field is read as "text" or "Text" (the table's spelling). Text up to 4096
  characters, captions up to 1024. Recipients: 8 to 15 digits, "+" allowed.
- Lists: `offset` is the 1-based position of the first item returned, oldest first; dates are
  "Y-m-d H:i:s" in UTC (the sandbox account's timezone), endDate inclusive of its second.
  `createdDate` prints "Y-m-d H:i:s +0000". Outgoing status: "sent" at once, then "delivered", "read";
  a number not on WhatsApp is "invalidNumber", final, in the send answer itself.
- Credit balance: one credit per message; an unlimited account shows 1,000,000 AUD. Inbound messages
  are addressed to the account's sender, or 61400000000.

Devino
- A problem with the `messages` array itself (absent, empty, over 100) is HTTP 400 with one REJECTED
  result; otherwise HTTP 200 and one result per message. A wrong or missing key: 401 with one REJECTED
  result, reasons key "forbidden".
- `from` must be the account's sender (else not.available); `to` 8+ digits ("+" allowed), over 15 is
  length.too.long; contentType must be in the document's MIME table; contentName must not be blank;
  validity a whole number of days >= 1; languageCode 2 to 8 characters like "en" or "pt_BR".
- Callbacks: one POST per callbackUrl per loop turn carrying up to 100 statuses; `messageId` is a JSON
  number (the send answer's is a string, as in the samples), `ts` UNIX seconds, `errorCode` 0 when
  none; throttled messages are FAILED/2301, numbers not on WhatsApp UNDELIVERED/2305; ip, browser, os,
  userAgent are empty strings. Retries: after 0.1, 0.25, 0.5, 1, 2 s, then every 5 s for 24 hours,
  until an HTTP 200.
- Inbound messages go to the account's `webhook_url` (Devino's "URL told to support"), one object each.

WhatsApp HTTP API 2.0.0
- The token is looked up in the query or the body; `invalid object id` (401) when unknown.
- Missing parameters: 400 "please check request required <name>/<name>/" with the request echoed
  (sendList's words are the document's own); a phone with non-digits or bad numbers (latitude, contact
  phone), over-long texts and button/list rules broken: "12-Parsing parameter failed"; a phone of fewer
  than 8 or more than 15 digits: "04-Phone number not registered..."; links not http(s): "09-Link not
  valid"; a local file missing or over 3 MB: "08-Save file / document failed".
- Rate cap: 502 "502 Bad Gateway" (text); random failure: 503 (text); quota: 400 "05-Quota expiry".
- Reports: `status`/`statusInfo` is 1 "Sent" (5 "Failed" for a failed message) and
  `statusMessage`/`statusMessageInfo` the progress (1 Sent, 3 Delivered, 4 Read, 5 Failed); the
  webhook's `status` uses the progress codes. Keys keep the samples' spelling (campaignStatus
  "clientID", campaignReport and inbox "clientId"). `data` is always a list in campaignReport and
  inboxReport (the inbox sample's single object is read as one element). Lists are newest first, except
  inboxReportOffset (the ones after `offset`, oldest first); `limit` 0 or absent means all; no rows:
  400 "14-Data not found"; an unknown msg_id: 500 "invalid message id".
- Times print in +05:30 like the samples; dd-mm-yyyy dates are India's days. The instance is always
  connected (qrCode answers its status); its WhatsApp number is the account's sender or 919000000000;
  instanceID/clientID are derived from the token, never the token itself. checkBal shows the quota knob
  (1,000,000 when unlimited). Webhooks are retried 3 times (after 0.2, 1 and 3 s) until a 2xx.
"""
