"""A subscription remembers that its subscriber is down (since when, how many tries in a row, when the next one
goes), so one event probes it at a time instead of every due event being POSTed at it again and again

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhooksubscription") as table:
        table.add_column(sa.Column("down_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        table.add_column(sa.Column("down_tries", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("next_try_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhooksubscription") as table:
        table.drop_column("next_try_at")
        table.drop_column("down_tries")
        table.drop_column("down_since")
