"""The user service's rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bmt_user import domain


def test_codes_are_six_random_digits() -> None:
    codes = {domain.new_otp() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 190  # random, not a counter or a constant


def test_emails_are_normalised_and_checked() -> None:
    assert domain.EmailRequest(email="  Alice@Example.COM ").email == "alice@example.com"
    with pytest.raises(ValidationError, match="must be an e-mail address"):
        domain.EmailRequest(email="alice.example.com")


@pytest.mark.parametrize(
    ("password", "ok"), [("x" * 7, False), ("x" * 8, True), ("x" * 128, True), ("x" * 129, False)]
)
def test_password_length_is_8_to_128(password: str, ok: bool) -> None:
    fields = {
        "verification_token": "t" * 40,
        "password": password,
        "name": "A",
        "birthday": "2000-01-01",
        "sex": "other",
    }
    if ok:
        domain.CompleteRegistration.model_validate(fields)
    else:
        with pytest.raises(ValidationError, match="password"):
            domain.CompleteRegistration.model_validate(fields)


def test_birthdays_are_in_the_past() -> None:
    with pytest.raises(ValidationError, match="between 1900-01-01 and today"):
        domain.ProfileUpdate(birthday="2999-01-01")  # type: ignore[arg-type]


def test_passwords_are_hashed_with_argon2id() -> None:
    stored = domain.hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert domain.password_matches(stored, "correct horse")
    assert not domain.password_matches(stored, "wrong horse")
    assert not domain.password_matches(None, "anything")


def test_code_hashes_are_keyed() -> None:
    assert domain.keyed_hash("pepper-1", "123456") != domain.keyed_hash("pepper-2", "123456")
