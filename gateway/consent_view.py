"""The gateway's reading of consent state (design principle 4): a
:class:`~kit.consent_state.ConsentStateView` over the compacted ``consent.state`` topic,
started and stopped with the app, behind two functions on ``app.state`` that tests replace:

- ``app.state.consent_granted(subject, purpose) -> bool``: False until the view has caught
  up (fail closed), and False for anything that is not a plain consent question;
- ``app.state.policy_sequence_agreed(subject) -> int | None``: the publication sequence of
  the policy version the subject last agreed to; None when they never agreed (the gateway
  treats that as agreed to an older version than any); :class:`ConsentViewNotReady` until
  the view has caught up, so the gateway fails closed (503) rather than guess (OB-5-3).

Decided: the newest *major* policy sequence comes from the setting
``policy_major_sequence`` (``GATEWAY_POLICY_MAJOR_SEQUENCE``) for now, not yet from the
``com.signature.consent.policy.published.v1`` events on ``consent.events``.
"""

from __future__ import annotations

from collections.abc import Callable

from kit.consent_state import ConsentStateView

__all__ = ["ConsentCheck", "ConsentViewNotReady", "PolicyAgreed", "consent_check", "policy_agreed"]

ConsentCheck = Callable[[str, str], bool]
PolicyAgreed = Callable[[str], "int | None"]


class ConsentViewNotReady(Exception):
    """The consent-state view has not caught up with its topic yet: nobody's answer is known."""


def consent_check(view: ConsentStateView) -> ConsentCheck:
    def granted(subject: str, purpose: str) -> bool:
        if not view.ready:
            return False
        try:
            return view.granted(subject, purpose)
        except ValueError:  # not a consent, or a per-recipient one asked without recipient
            return False

    return granted


def policy_agreed(view: ConsentStateView) -> PolicyAgreed:
    def agreed(subject: str) -> int | None:
        if not view.ready:
            raise ConsentViewNotReady(view.name)
        return view.policy_sequence_agreed(subject)

    return agreed
