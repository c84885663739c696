"""Benchmarks, run side by side in one process and printed as figures and ratios
(``make bench``). No test asserts a time: these machines are shared and noisy.

- ``outbox``: the outbox relay (PostgreSQL -> Kafka) against a raw aiokafka producer
  sending the same events from memory.
- ``gateway``: the gateway's own overhead per request (public route, partner waybill,
  owner read with access event) against calling the upstream directly, in process.
"""
