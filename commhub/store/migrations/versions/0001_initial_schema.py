"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('agents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('agent', 'admin')", name=op.f('ck_agents_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('name', name=op.f('uq_agents_name'))
    )
    op.create_table('agent_extensions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('extension', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_extensions_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_extensions')),
    sa.UniqueConstraint('extension', name=op.f('uq_agent_extensions_extension'))
    )
    with op.batch_alter_table('agent_extensions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_extensions_agent_id'), ['agent_id'], unique=False)

    op.create_table('agent_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_tokens_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_agent_tokens_token_hash'))
    )
    with op.batch_alter_table('agent_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_tokens_agent_id'), ['agent_id'], unique=False)

    op.create_table('history_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_history_entries_agent_id_agents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_history_entries'))
    )
    op.create_table('organizations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_key', sa.String(length=200), nullable=False),
    sa.Column('customer_class', sa.String(length=1), nullable=True),
    sa.Column('street', sa.String(length=200), nullable=True),
    sa.Column('postal_code', sa.String(length=20), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('country', sa.String(length=100), nullable=True),
    sa.Column('domain', sa.String(length=253), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('owner_agent_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("customer_class IN ('A', 'B', 'C')", name=op.f('ck_organizations_class')),
    sa.ForeignKeyConstraint(['owner_agent_id'], ['agents.id'], name=op.f('fk_organizations_owner_agent_id_agents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations'))
    )
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organizations_domain'), ['domain'], unique=False)
        batch_op.create_index(batch_op.f('ix_organizations_name_key'), ['name_key'], unique=False)

    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('salutation', sa.String(length=50), nullable=True),
    sa.Column('title', sa.String(length=50), nullable=True),
    sa.Column('first_name', sa.String(length=100), nullable=True),
    sa.Column('last_name', sa.String(length=100), nullable=True),
    sa.Column('name_key', sa.String(length=220), nullable=False),
    sa.Column('position', sa.String(length=100), nullable=True),
    sa.Column('customer_class', sa.String(length=1), nullable=True),
    sa.Column('street', sa.String(length=200), nullable=True),
    sa.Column('postal_code', sa.String(length=20), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('country', sa.String(length=100), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('owner_agent_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("customer_class IN ('A', 'B', 'C')", name=op.f('ck_contacts_class')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_contacts_organization_id_organizations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_agent_id'], ['agents.id'], name=op.f('fk_contacts_owner_agent_id_agents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_name_key_organization', ['name_key', 'organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_organization_id'), ['organization_id'], unique=False)

    op.create_table('email_addresses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('raw', sa.String(length=320), nullable=False),
    sa.CheckConstraint('(contact_id IS NULL) <> (organization_id IS NULL)', name=op.f('ck_email_addresses_one_owner')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_email_addresses_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_email_addresses_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_addresses'))
    )
    with op.batch_alter_table('email_addresses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_addresses_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_addresses_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_email_addresses_organization_id', ['organization_id'], unique=False,
                              sqlite_where=sa.text('organization_id IS NOT NULL'),
                              postgresql_where=sa.text('organization_id IS NOT NULL'))

    op.create_table('history_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(contact_id IS NULL) <> (organization_id IS NULL)', name=op.f('ck_history_links_one_owner')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_history_links_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['entry_id'], ['history_entries.id'], name=op.f('fk_history_links_entry_id_history_entries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_history_links_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_history_links')),
    sa.UniqueConstraint('entry_id', 'contact_id', name=op.f('uq_history_links_entry_id_contact_id')),
    sa.UniqueConstraint('entry_id', 'organization_id', name=op.f('uq_history_links_entry_id_organization_id'))
    )
    with op.batch_alter_table('history_links', schema=None) as batch_op:
        batch_op.create_index('ix_history_links_contact_time', ['contact_id', 'occurred_at', 'entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_history_links_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index('ix_history_links_organization_time', ['organization_id', 'occurred_at', 'entry_id'], unique=False)

    op.create_table('phone_numbers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('raw', sa.String(length=100), nullable=False),
    sa.Column('e164', sa.String(length=20), nullable=True),
    sa.Column('extension', sa.String(length=20), nullable=True),
    sa.Column('switchboard_prefix', sa.String(length=20), nullable=True),
    sa.CheckConstraint("kind IN ('work', 'mobile', 'home', 'fax', 'switchboard')", name=op.f('ck_phone_numbers_kind')),
    sa.CheckConstraint('(contact_id IS NULL) <> (organization_id IS NULL)', name=op.f('ck_phone_numbers_one_owner')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_phone_numbers_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_phone_numbers_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_phone_numbers'))
    )
    with op.batch_alter_table('phone_numbers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_phone_numbers_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_phone_numbers_e164'), ['e164'], unique=False)
        batch_op.create_index('ix_phone_numbers_organization_id', ['organization_id'], unique=False,
                              sqlite_where=sa.text('organization_id IS NOT NULL'),
                              postgresql_where=sa.text('organization_id IS NOT NULL'))
        batch_op.create_index('ix_phone_numbers_switchboard_prefix', ['switchboard_prefix'], unique=False,
                              sqlite_where=sa.text('switchboard_prefix IS NOT NULL'),
                              postgresql_where=sa.text('switchboard_prefix IS NOT NULL'))

    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('assignee_agent_id', sa.Integer(), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('phone_e164', sa.String(length=20), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('callback', 'follow_up')", name=op.f('ck_tasks_kind')),
    sa.CheckConstraint("status IN ('open', 'done', 'cancelled')", name=op.f('ck_tasks_status')),
    sa.ForeignKeyConstraint(['assignee_agent_id'], ['agents.id'], name=op.f('fk_tasks_assignee_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_tasks_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_tasks_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index('ix_tasks_phone_status', ['phone_e164', 'status'], unique=False)
        batch_op.create_index('ix_tasks_status_assignee', ['status', 'assignee_agent_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_status_assignee')
        batch_op.drop_index('ix_tasks_phone_status')
        batch_op.drop_index(batch_op.f('ix_tasks_organization_id'))
        batch_op.drop_index(batch_op.f('ix_tasks_contact_id'))

    op.drop_table('tasks')
    with op.batch_alter_table('phone_numbers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_phone_numbers_switchboard_prefix'))
        batch_op.drop_index(batch_op.f('ix_phone_numbers_organization_id'))
        batch_op.drop_index(batch_op.f('ix_phone_numbers_e164'))
        batch_op.drop_index(batch_op.f('ix_phone_numbers_contact_id'))

    op.drop_table('phone_numbers')
    with op.batch_alter_table('history_links', schema=None) as batch_op:
        batch_op.drop_index('ix_history_links_organization_time')
        batch_op.drop_index(batch_op.f('ix_history_links_entry_id'))
        batch_op.drop_index('ix_history_links_contact_time')

    op.drop_table('history_links')
    with op.batch_alter_table('email_addresses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_addresses_organization_id'))
        batch_op.drop_index(batch_op.f('ix_email_addresses_contact_id'))
        batch_op.drop_index(batch_op.f('ix_email_addresses_address'))

    op.drop_table('email_addresses')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_organization_id'))
        batch_op.drop_index('ix_contacts_name_key_organization')

    op.drop_table('contacts')
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organizations_name_key'))
        batch_op.drop_index(batch_op.f('ix_organizations_domain'))

    op.drop_table('organizations')
    op.drop_table('history_entries')
    with op.batch_alter_table('agent_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_tokens_agent_id'))

    op.drop_table('agent_tokens')
    with op.batch_alter_table('agent_extensions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_extensions_agent_id'))

    op.drop_table('agent_extensions')
    op.drop_table('agents')

