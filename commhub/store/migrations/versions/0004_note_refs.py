"""note refs: the client's id of a note, so a note sent again after a lost confirmation is stored once

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('history_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_ref', sa.String(length=100), nullable=True))
        batch_op.create_index('ix_history_entries_agent_ref', ['agent_id', 'client_ref'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('history_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_history_entries_agent_ref')
        batch_op.drop_column('client_ref')
