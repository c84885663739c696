"""Policy consumers: none; the policy domain only publishes events."""

from kit.app import AppContext
from kit.consumer import EventConsumer


def consumers(context: AppContext) -> list[EventConsumer]:
    return []
