"""the citizens' portal: moderation of citizens' texts, published decision summaries, ideas' fields

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feedback_texts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('title', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('theme', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('district', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('target', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_feedback_texts_target'), ['target'], unique=False)

    op.create_table('moderation',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('pilot_key', sa.String(length=64), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('public_reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=False),
    sa.Column('adopted_pilot', sa.String(length=64), nullable=True),
    sa.Column('merged_into', sa.String(length=36), nullable=True),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_moderation'))
    )
    with op.batch_alter_table('moderation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_moderation_pilot_key'), ['pilot_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_moderation_merged_into'), ['merged_into'], unique=False)

    op.create_table('decision_summaries',
    sa.Column('decision_id', sa.Integer(), nullable=False),
    sa.Column('pilot_key', sa.String(length=64), nullable=False),
    sa.Column('summary_fr', sa.Text(), nullable=False),
    sa.Column('summary_en', sa.Text(), nullable=False),
    sa.Column('published_by', sa.String(length=200), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], name=op.f('fk_decision_summaries_decision_id_decisions')),
    sa.PrimaryKeyConstraint('decision_id', name=op.f('pk_decision_summaries'))
    )
    with op.batch_alter_table('decision_summaries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decision_summaries_pilot_key'), ['pilot_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('decision_summaries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_summaries_pilot_key'))
    op.drop_table('decision_summaries')
    with op.batch_alter_table('moderation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_moderation_merged_into'))
        batch_op.drop_index(batch_op.f('ix_moderation_pilot_key'))
    op.drop_table('moderation')
    with op.batch_alter_table('feedback_texts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_texts_target'))
        batch_op.drop_column('target')
        batch_op.drop_column('district')
        batch_op.drop_column('theme')
        batch_op.drop_column('title')
