"""relative reminders and quiet hours: message.timezone and message.dedupe_key (unique when set)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

HAS_KEY = "dedupe_key IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.create_index("uq_message_dedupe_key", ["dedupe_key"], unique=True,
                              sqlite_where=sa.text(HAS_KEY), postgresql_where=sa.text(HAS_KEY))


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("uq_message_dedupe_key")
        batch_op.drop_column("dedupe_key")
        batch_op.drop_column("timezone")
