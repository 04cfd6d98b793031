"""The worker's check that a client did not fill a gateway-set argument positionally."""

from __future__ import annotations

from typing import Any

import pytest

from stirfried.celery import ProtectedArgument, check_positional, positional_parameters


def send(to: str, body: str, user: str | None = None, room: str | None = None) -> None: ...


def spread(first: int, *rest: Any, user: str | None = None, room: str | None = None) -> None: ...


def only(a: int, /, user: str, *, room: str | None = None) -> None: ...


def test_positional_parameters_stop_at_star_args_and_keyword_only_ones():
    assert positional_parameters(send) == ("to", "body", "user", "room")
    assert positional_parameters(spread) == ("first",)
    assert positional_parameters(only) == ("a", "user")
    assert positional_parameters(object()) is None


@pytest.mark.parametrize(
    ("function", "args", "refused"),
    [
        (send, ("a@x", "hi"), None),
        (send, ("a@x", "hi", "admin"), "user"),
        (send, ("a@x", "hi", None, "room-of-another"), "room"),
        (spread, (1, "admin", "room-of-another"), None),  # they land in *rest, not in user / room
        (only, (1, "admin"), "user"),
    ],
)
def test_a_positional_value_for_a_protected_parameter_is_refused(function, args, refused):
    parameters = positional_parameters(function)
    if refused is None:
        check_positional(parameters, args, ("user", "room"))
        return
    with pytest.raises(ProtectedArgument, match=repr(refused)):
        check_positional(parameters, args, ("user", "room"))


def test_nothing_is_refused_when_nothing_is_protected_or_no_signature_is_known():
    check_positional(("user",), ("admin",), ())
    check_positional(None, ("admin",), ("user",))
