"""XOAUTH2 access tokens: from the configuration, or fresh from a command on every connect.

Microsoft 365 and Google tokens expire about hourly, mid-session; a command (an admin's script
around their identity provider) is run again at each reconnect so commhub never holds a stale one.
"""

from __future__ import annotations

import asyncio

from commhub.settings import MailAuth

COMMAND_TIMEOUT_SECONDS = 30


class CredentialError(Exception):
    pass


async def oauth_token(settings: MailAuth) -> str:
    if settings.oauth_token is not None:
        return settings.oauth_token.get_secret_value()
    command = settings.oauth_token_command
    if not command:
        raise CredentialError("no oauth_token or oauth_token_command configured")
    try:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise CredentialError(f"oauth_token_command {command[0]!r} cannot be run: {exc.strerror or exc}") from None
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_SECONDS)
    except (TimeoutError, asyncio.TimeoutError):
        process.kill()
        await process.wait()
        raise CredentialError(f"oauth_token_command gave no token within {COMMAND_TIMEOUT_SECONDS} s") from None
    token = out.decode("utf-8", "replace").strip()
    if process.returncode != 0 or not token:
        reason = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
        raise CredentialError(f"oauth_token_command failed: {reason[0]}")
    return token
