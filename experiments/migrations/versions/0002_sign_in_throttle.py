"""sign-in throttle and session generations

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_throttle",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject", name=op.f("pk_sign_in_throttle")),
    )
    with op.batch_alter_table("sign_in_throttle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sign_in_throttle_last_failure_at"), ["last_failure_at"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_version")
    with op.batch_alter_table("sign_in_throttle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_in_throttle_last_failure_at"))
    op.drop_table("sign_in_throttle")
