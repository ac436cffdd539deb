"""service_window (when a number last wrote to an account) and gateway_template (an account's templates as
its gateway keeps them), for gateways with approved templates and a customer-service window (Meta's Cloud API)

Revision ID: 0012
Revises: 0010
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_window",
        sa.Column("account_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("last_inbound_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_name", "phone"),
    )
    op.create_index(op.f("ix_service_window_last_inbound_at"), "service_window", ["last_inbound_at"])
    op.create_table(
        "gateway_template",
        sa.Column("account_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False, server_default=""),
        sa.Column("slots", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("synced_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_name", "name", "language"),
    )


def downgrade() -> None:
    op.drop_table("gateway_template")
    op.drop_index(op.f("ix_service_window_last_inbound_at"), table_name="service_window")
    op.drop_table("service_window")
