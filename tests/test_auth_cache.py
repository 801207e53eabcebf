"""The auth hook's memory of verified tokens (handlers/auth.py): a token seen before costs
no second verification, and is refused exactly as strictly as a new one would be."""

from __future__ import annotations

import time

import pytest

from handlers.auth import VERIFIED_TOKENS, Authenticator
from hub.config import Settings
from hub.errors import Unauthorized
from tests.auth_support import SECRET, bad_tokens, token


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(Settings(secret_keys={"default": SECRET}, dev_mode=False))


def test_a_remembered_token_still_expires(auth: Authenticator):
    text = token(role="observer", ttl=1)
    assert auth.verify(text).user_id == "ann"
    expiry = auth.verify(text).expires_at
    assert expiry is not None
    time.sleep(max(0.0, expiry - time.time()) + 0.05)
    with pytest.raises(Unauthorized, match="expired"):
        auth.verify(text)
    with pytest.raises(Unauthorized, match="expired"):  # and it is not remembered as good again
        auth.verify(text)


def test_each_verification_answers_its_own_principal(auth: Authenticator):
    text = token(role="instructor", name="Ann")
    first = auth.verify(text)
    first.role, first.name = "observer", "someone else"  # what admission does to its copy
    again = auth.verify(text)
    assert (again.role, again.name, again.token_role) == ("instructor", "Ann", "instructor")


def test_a_good_token_seen_before_does_not_let_its_forgeries_in(auth: Authenticator):
    good = token(role="observer")
    auth.verify(good)
    header, payload, _signature = good.split(".")
    forged = bad_tokens(role="observer")["forged"]
    assert forged is not None
    for text in (forged, f"{header}.{payload}.{forged.split('.')[2]}", f"{header}.{payload}.", good + "x"):
        with pytest.raises(Unauthorized):
            auth.verify(text)


@pytest.mark.parametrize("case", [case for case, text in bad_tokens().items() if text is not None])
def test_bad_tokens_are_refused_every_time(auth: Authenticator, case: str):
    text = bad_tokens(role="observer")[case]
    assert text is not None
    for _ in range(2):
        with pytest.raises(Unauthorized):
            auth.verify(text)


def test_beyond_what_is_remembered_every_token_is_still_verified(auth: Authenticator):
    texts = [token(user=f"u{i}", role="observer") for i in range(VERIFIED_TOKENS + 50)]
    assert [auth.verify(t).user_id for t in texts] == [f"u{i}" for i in range(len(texts))]
    assert auth.verify(texts[0]).user_id == "u0"  # forgotten first, verified afresh
