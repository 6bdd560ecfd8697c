"""Keyed digests of erased numbers and addresses (HMAC-SHA256 with the installation's own key).

A plain SHA-256 of a phone number is reversed by trying every number of a region in minutes; a
key that lives only in this installation's database makes the tombstone useless to anyone who
holds a copy of the table without the key."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from commhub.store.models import PrivacyKey

KEY_NAME = "erasure"


async def erasure_key(session: AsyncSession) -> bytes:
    row = await session.get(PrivacyKey, KEY_NAME)
    if row is None:
        row = PrivacyKey(name=KEY_NAME, secret=secrets.token_hex(32))
        session.add(row)
        await session.flush()
    return bytes.fromhex(row.secret)


def digest(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}:{value.strip().lower()}".encode(), hashlib.sha256).hexdigest()
