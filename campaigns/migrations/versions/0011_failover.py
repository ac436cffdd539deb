"""Failover (campaigns.failover): message.account_name, the account a message was last handed to (NULL: never
handed to one, or sent before this revision, through its campaign's own account); campaign.failover_account, the account its messages go through
now when not its own; account.stopped_at, stop_reason and transient_streak, an account's last stop and its run of
transient answers.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failover_account", sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stopped_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("stop_reason", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column("transient_streak", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("transient_streak")
        batch_op.drop_column("stop_reason")
        batch_op.drop_column("stopped_at")
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_column("failover_account")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("account_name")
