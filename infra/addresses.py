"""Email address validation and normalisation (email-validator, no DNS)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from domain import errors


class AddressValidator:
    def __init__(self, *, check_deliverability: bool = False) -> None:
        self.check_deliverability = check_deliverability

    def normalize(self, address: str) -> str:
        if len(address) > 320:
            raise errors.InvalidAddress("An email address has at most 254 characters.")
        try:
            valid = validate_email(address, check_deliverability=self.check_deliverability)
        except EmailNotValidError as exc:
            raise errors.InvalidAddress(str(exc)) from None
        return valid.normalized
