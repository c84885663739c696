"""Incidents consume nothing: affected users come from the ledger, which its own consumer
fills."""

from kit.app import AppContext
from kit.consumer import EventConsumer


def consumers(context: AppContext) -> list[EventConsumer]:
    return []
