"""campaign.canary_until_id, canary_auto, canary_done_at: a canary start (campaigns.canary)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("canary_until_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                      nullable=True))
        batch_op.add_column(sa.Column("canary_auto", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("canary_done_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_column("canary_done_at")
        batch_op.drop_column("canary_auto")
        batch_op.drop_column("canary_until_id")
