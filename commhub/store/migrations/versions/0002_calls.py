"""calls, their events, the agents' message backlog; history entries know their call

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('provider_call_id', sa.String(length=200), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('caller_raw', sa.String(length=200), nullable=True),
    sa.Column('caller_e164', sa.String(length=20), nullable=True),
    sa.Column('caller_name', sa.String(length=200), nullable=True),
    sa.Column('withheld', sa.Boolean(), nullable=False),
    sa.Column('callee_raw', sa.String(length=200), nullable=True),
    sa.Column('customer_e164', sa.String(length=20), nullable=True),
    sa.Column('targets', JSON, nullable=False),
    sa.Column('agent_ids', JSON, nullable=False),
    sa.Column('answered_by', sa.String(length=200), nullable=True),
    sa.Column('answered_by_agent_id', sa.Integer(), nullable=True),
    sa.Column('started_at', TIME, nullable=False),
    sa.Column('answered_at', TIME, nullable=True),
    sa.Column('ended_at', TIME, nullable=True),
    sa.Column('duration', sa.Integer(), nullable=True),
    sa.Column('vendor_outcome', sa.String(length=16), nullable=True),
    sa.Column('matches', JSON, nullable=False),
    sa.Column('related_call_id', sa.String(length=200), nullable=True),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('created_at', TIME, nullable=False),
    sa.Column('updated_at', TIME, nullable=False),
    sa.CheckConstraint("direction IN ('in', 'out')", name=op.f('ck_calls_direction')),
    sa.CheckConstraint("state IN ('ringing', 'answered', 'completed', 'missed', 'rejected', 'busy', 'failed', 'forwarded')",
                       name=op.f('ck_calls_state')),
    sa.ForeignKeyConstraint(['answered_by_agent_id'], ['agents.id'],
                            name=op.f('fk_calls_answered_by_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_calls_task_id_tasks'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('source', 'provider_call_id', name=op.f('uq_calls_source_provider_call_id'))
    )
    op.create_index(op.f('ix_calls_caller_e164'), 'calls', ['caller_e164'], unique=False)
    op.create_index('ix_calls_state_started', 'calls', ['state', 'started_at'], unique=False)
    op.create_index('ix_calls_started', 'calls', ['started_at'], unique=False)
    op.create_table('call_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('dedupe_key', sa.String(length=400), nullable=False),
    sa.Column('occurred_at', TIME, nullable=False),
    sa.Column('received_at', TIME, nullable=False),
    sa.Column('data', JSON, nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_call_events_call_id_calls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_events')),
    sa.UniqueConstraint('call_id', 'dedupe_key', name=op.f('uq_call_events_call_id_dedupe_key'))
    )
    op.create_table('agent_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('payload', JSON, nullable=False),
    sa.Column('created_at', TIME, nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_messages_agent_id_agents'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_messages')),
    sa.UniqueConstraint('agent_id', 'seq', name=op.f('uq_agent_messages_agent_id_seq'))
    )
    op.create_index(op.f('ix_agent_messages_created_at'), 'agent_messages', ['created_at'], unique=False)
    # SQLite cannot add a foreign key to an existing table: batch mode rebuilds it (PostgreSQL alters in place).
    with op.batch_alter_table('history_entries') as batch:
        batch.add_column(sa.Column('call_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_history_entries_call_id_calls'), 'calls', ['call_id'], ['id'],
                                 ondelete='SET NULL')
        batch.create_index(op.f('ix_history_entries_call_id'), ['call_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('history_entries') as batch:
        batch.drop_index(op.f('ix_history_entries_call_id'))
        batch.drop_constraint(op.f('fk_history_entries_call_id_calls'), type_='foreignkey')
        batch.drop_column('call_id')
    op.drop_index(op.f('ix_agent_messages_created_at'), table_name='agent_messages')
    op.drop_table('agent_messages')
    op.drop_table('call_events')
    op.drop_index('ix_calls_started', table_name='calls')
    op.drop_index('ix_calls_state_started', table_name='calls')
    op.drop_index(op.f('ix_calls_caller_e164'), table_name='calls')
    op.drop_table('calls')
