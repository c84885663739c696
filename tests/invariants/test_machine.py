"""Hypothesis generates sequences of client steps through the gateway and checks the seven
privacy invariants after every step (:mod:`tests.invariants.machine`).

Bounded for CI: ``INVARIANTS_EXAMPLES`` sequences of at most ``INVARIANTS_STEPS`` steps
(defaults below, about two minutes on two shared cores); ``make invariants`` runs deeper.
A failure shrinks to a short sequence and prints it as a story; keep it as an example in
``test_examples.py``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.invariants.machine import Stack, machine_for

EXAMPLES = int(os.environ.get("INVARIANTS_EXAMPLES", "6"))
STEPS = int(os.environ.get("INVARIANTS_STEPS", "12"))
#: make invariants raises the per-test timeout with the depth.
TIMEOUT_S = int(os.environ.get("INVARIANTS_TIMEOUT_S", "600"))


@pytest.mark.timeout(TIMEOUT_S)
def test_privacy_invariants_hold_after_every_step(stack: Stack) -> None:
    run_state_machine_as_test(
        machine_for(stack),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=os.environ.get("INVARIANTS_RANDOM") != "1",
            phases=(Phase.explicit, Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        ),
    )
