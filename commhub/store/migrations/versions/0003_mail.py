"""email: messages, where the server keeps them, attachments, checkpoints, tombstones, warnings, outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', TIME, nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_blobs'))
    )
    op.create_table('emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_key', sa.String(length=400), nullable=False),
    sa.Column('message_id', sa.String(length=400), nullable=True),
    sa.Column('thread_key', sa.String(length=400), nullable=False),
    sa.Column('in_reply_to', sa.String(length=400), nullable=True),
    sa.Column('refs', JSON, nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('sent_at', TIME, nullable=True),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('from_address', sa.String(length=320), nullable=True),
    sa.Column('from_name', sa.String(length=300), nullable=False),
    sa.Column('addresses', JSON, nullable=False),
    sa.Column('text_body', sa.Text(), nullable=False),
    sa.Column('html_body', sa.Text(), nullable=True),
    sa.Column('raw_sha256', sa.String(length=64), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('flags', JSON, nullable=False),
    sa.Column('problems', JSON, nullable=False),
    sa.Column('headers_only', sa.Boolean(), nullable=False),
    sa.Column('unparsable', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('assigned', sa.Boolean(), nullable=False),
    sa.Column('created_at', TIME, nullable=False),
    sa.CheckConstraint("direction IN ('in', 'out')", name=op.f('ck_emails_direction')),
    sa.CheckConstraint("status IN ('received', 'queued', 'sent', 'failed')", name=op.f('ck_emails_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emails')),
    sa.UniqueConstraint('message_key', name=op.f('uq_emails_message_key'))
    )
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.create_index('ix_emails_assigned_created', ['assigned', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_emails_raw_sha256'), ['raw_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_emails_thread_key'), ['thread_key'], unique=False)

    op.create_table('mail_checkpoints',
    sa.Column('mailbox', sa.String(length=64), nullable=False),
    sa.Column('folder', sa.String(length=300), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('last_uid', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', TIME, nullable=False),
    sa.PrimaryKeyConstraint('mailbox', 'folder', name=op.f('pk_mail_checkpoints'))
    )
    op.create_table('mail_tombstones',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('erased_at', TIME, nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_mail_tombstones'))
    )
    op.create_table('email_attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_id', sa.Integer(), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=500), nullable=False),
    sa.Column('content_type', sa.String(length=200), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('content_id', sa.String(length=300), nullable=True),
    sa.Column('inline', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['email_id'], ['emails.id'], name=op.f('fk_email_attachments_email_id_emails'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_attachments'))
    )
    with op.batch_alter_table('email_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_attachments_blob_sha256'), ['blob_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_attachments_email_id'), ['email_id'], unique=False)

    op.create_table('email_locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_id', sa.Integer(), nullable=False),
    sa.Column('mailbox', sa.String(length=64), nullable=False),
    sa.Column('folder', sa.String(length=300), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['email_id'], ['emails.id'], name=op.f('fk_email_locations_email_id_emails'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_locations')),
    sa.UniqueConstraint('mailbox', 'folder', 'uidvalidity', 'uid', name=op.f('uq_email_locations_mailbox_folder_uidvalidity_uid'))
    )
    with op.batch_alter_table('email_locations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_locations_email_id'), ['email_id'], unique=False)

    op.create_table('email_participants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.ForeignKeyConstraint(['email_id'], ['emails.id'], name=op.f('fk_email_participants_email_id_emails'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_participants'))
    )
    with op.batch_alter_table('email_participants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_participants_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_participants_domain'), ['domain'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_participants_email_id'), ['email_id'], unique=False)

    op.create_table('mail_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_id', sa.Integer(), nullable=True),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('mail_from', sa.String(length=320), nullable=False),
    sa.Column('recipients', JSON, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', TIME, nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('appended', sa.Boolean(), nullable=False),
    sa.Column('created_at', TIME, nullable=False),
    sa.Column('sent_at', TIME, nullable=True),
    sa.CheckConstraint("status IN ('queued', 'sent', 'failed')", name=op.f('ck_mail_outbox_status')),
    sa.ForeignKeyConstraint(['email_id'], ['emails.id'], name=op.f('fk_mail_outbox_email_id_emails'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_outbox'))
    )
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_outbox_email_id'), ['email_id'], unique=False)
        batch_op.create_index('ix_mail_outbox_status_next', ['status', 'next_attempt_at'], unique=False)

    op.create_table('mail_warnings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox', sa.String(length=64), nullable=False),
    sa.Column('folder', sa.String(length=300), nullable=True),
    sa.Column('uid', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('email_id', sa.Integer(), nullable=True),
    sa.Column('created_at', TIME, nullable=False),
    sa.ForeignKeyConstraint(['email_id'], ['emails.id'], name=op.f('fk_mail_warnings_email_id_emails'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_warnings'))
    )
    with op.batch_alter_table('mail_warnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_warnings_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('history_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_history_entries_email_id'), ['email_id'])
        batch_op.create_foreign_key(batch_op.f('fk_history_entries_email_id_emails'), 'emails', ['email_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('history_entries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_history_entries_email_id_emails'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_history_entries_email_id'), type_='unique')
        batch_op.drop_column('email_id')

    with op.batch_alter_table('mail_warnings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_warnings_created_at'))

    op.drop_table('mail_warnings')
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_mail_outbox_status_next')
        batch_op.drop_index(batch_op.f('ix_mail_outbox_email_id'))

    op.drop_table('mail_outbox')
    with op.batch_alter_table('email_participants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_participants_email_id'))
        batch_op.drop_index(batch_op.f('ix_email_participants_domain'))
        batch_op.drop_index(batch_op.f('ix_email_participants_address'))

    op.drop_table('email_participants')
    with op.batch_alter_table('email_locations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_locations_email_id'))

    op.drop_table('email_locations')
    with op.batch_alter_table('email_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_attachments_email_id'))
        batch_op.drop_index(batch_op.f('ix_email_attachments_blob_sha256'))

    op.drop_table('email_attachments')
    op.drop_table('mail_tombstones')
    op.drop_table('mail_checkpoints')
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_emails_thread_key'))
        batch_op.drop_index(batch_op.f('ix_emails_raw_sha256'))
        batch_op.drop_index('ix_emails_assigned_created')

    op.drop_table('emails')
    op.drop_table('blobs')
