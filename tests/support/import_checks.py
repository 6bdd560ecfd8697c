"""What every import reader must hold to, whatever bytes it was given."""

from __future__ import annotations

from commhub.contacts.records import ImportRow, PhoneRecord


def check_rows(rows: list[ImportRow]) -> None:
    for row in rows:
        assert isinstance(row, ImportRow)
        assert row.line >= 1
        assert (row.record is None) != (row.error is None)
        if row.record is not None:
            assert not row.record.is_empty()
            assert all(isinstance(phone, PhoneRecord) and phone.raw for phone in row.record.phones)
