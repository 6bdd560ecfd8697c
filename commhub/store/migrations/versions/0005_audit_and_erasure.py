"""audit trail (append-only) and erasure tombstones

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
DATETIME = sa.DateTime(timezone=True)
REFUSAL = "audit_events is append-only"


def upgrade() -> None:
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', DATETIME, nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('subject_kind', sa.String(length=32), nullable=True),
        sa.Column('subject_id', sa.BigInteger(), nullable=True),
        sa.Column('via', sa.String(length=16), nullable=False),
        sa.Column('client', sa.String(length=64), nullable=True),
        sa.Column('route', sa.String(length=200), nullable=True),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('details', JSON, nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_events_at', 'audit_events', ['at'])
    op.create_index('ix_audit_events_subject', 'audit_events', ['subject_kind', 'subject_id', 'at'])
    op.create_index('ix_audit_events_agent_at', 'audit_events', ['agent_id', 'at'])
    op.create_table(
        'erasure_tombstones',
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('erased_at', DATETIME, nullable=False),
        sa.CheckConstraint("kind IN ('phone', 'email')", name=op.f('ck_erasure_tombstones_kind')),
        sa.PrimaryKeyConstraint('kind', 'digest'),
    )
    op.create_table(
        'privacy_keys',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('created_at', DATETIME, nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                       f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END")
    else:
        op.execute("CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$")
        op.execute("CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")
    else:
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_table('privacy_keys')
    op.drop_table('erasure_tombstones')
    op.drop_index('ix_audit_events_agent_at', table_name='audit_events')
    op.drop_index('ix_audit_events_subject', table_name='audit_events')
    op.drop_index('ix_audit_events_at', table_name='audit_events')
    op.drop_table('audit_events')
