"""The user service's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from pydantic import SecretStr

from bmt_common.settings import ServiceSettings


class UserSettings(ServiceSettings):
    port: int = 18101
    # Ed25519 private key (PEM) that signs access tokens; its public half is the JWKS.
    jwt_private_key: SecretStr = SecretStr("")
    # Passwords hashed at once (64 MiB each): size the memory limit to it.
    password_hash_workers: int = 2
    access_token_minutes: int = 10
    refresh_token_days: int = 30
    # Keys OTP and verification hashes: a leaked table alone cannot be checked against codes.
    otp_pepper: SecretStr = SecretStr("")
    otp_minutes: int = 10
    otp_max_attempts: int = 5
    otp_requests_per_hour: int = 5
    verification_minutes: int = 10
    # The first admin, created at start-up when no admin exists yet.
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None
