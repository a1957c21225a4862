"""Webhooks: registrations, signed deliveries, retries with back-off, dead letters, replay.

Every event that matches a webhook becomes a *delivery* item, written by the stream handler
(chalicelib/fanout.py) before anything is sent, so nothing depends on the first POST succeeding.
Deliveries of one (webhook, execution) pair form a *lane* that is sent strictly in seq order by
whoever holds the lane's lease (the stream handler right away, or the retry function later). The
lane walks the execution's event log from its cursor — a stream record only triggers it — so stream
order (per item, split across shards) never decides what is sent or in what order. When a
POST fails, the lane waits (exponential back-off) and later events of that execution wait behind
it; other lanes go on. After the last attempt the delivery is marked ``dead`` and the lane moves
on; ``dead`` deliveries are listed by the API and can be replayed.

One module per concern; import from them, not from this package:
- ``models``: the registration body and its URL policy, a registered ``Hook``, the delivery's shape
- ``signing``: the ``X-Dagcast-Signature`` HMAC (pure)
- ``secrets``: the KMS box that seals and opens webhook secrets
- ``store``: the webhook items in the table (hooks, deliveries, lanes, due entries) and their keys
- ``sender``: one signed POST of one delivery
- ``dispatcher``: lanes, leases, the retry loop and its back-off
"""
