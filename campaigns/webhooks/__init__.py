"""Outbound webhooks: Blast's events POSTed to the systems that subscribe, signed as the Standard Webhooks
specification says, at least once.

subscriptions.py  who wants which events, and their signing secrets
outbox.py         event rows written in the transaction of the change they report
deliveries.py     the outbox read back: claimed (row locks or a lease), answers recorded, failures rescheduled
signing.py        the `webhook-*` headers of one POST

The POSTs themselves are made by Celery tasks on the `webhooks` queue (workers/webhooks.py), never on the
send path. (Inbound webhooks, the gateways' callbacks, are campaigns/web/hooks.py.)
"""
