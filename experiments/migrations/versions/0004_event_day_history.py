"""experiments' history by day of first exposure (event time) instead of by processing hour

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 09:00:00.000000

The hourly history held each partition's statistics at the hour the worker wrote them, so a backlog
processed in an hour showed as one point. `exposure_days` holds the statistics of the participants first
exposed each day; it is filled by the workers, which count every participant anew when they start (the
rebuild after a restart), so after the upgrade the history reappears, by event day, at the workers' next
start. The hourly rows are dropped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_STATISTICS = ("n", "sum", "sum_squares", "x_sum", "x_sum_squares", "sum_products")


def _statistics() -> list[sa.Column[object]]:
    return [
        sa.Column(name, sa.BigInteger() if name == "n" else sa.Float(), nullable=False) for name in _STATISTICS
    ]


def upgrade() -> None:
    op.create_table(
        "exposure_days",
        sa.Column("experiment_key", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        *_statistics(),
        sa.PrimaryKeyConstraint(
            "experiment_key", "metric", "variant", "day", "partition", name=op.f("pk_exposure_days")
        ),
    )
    op.drop_table("aggregate_history")


def downgrade() -> None:
    op.create_table(
        "aggregate_history",
        sa.Column("experiment_key", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *_statistics(),
        sa.PrimaryKeyConstraint(
            "experiment_key", "metric", "variant", "partition", "hour", name=op.f("pk_aggregate_history")
        ),
    )
    op.drop_table("exposure_days")
