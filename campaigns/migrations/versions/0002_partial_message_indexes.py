"""partial message indexes: ingest no longer pays for indexes its rows never use

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

IN_FLIGHT = "state IN ('queued', 'sending', 'unknown')"
HAS_PROVIDER_ID = "provider_message_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_provider_id")
        batch_op.drop_index("ix_message_state_updated")
        batch_op.create_index("ix_message_provider_id", ["provider_message_id"], unique=False,
                              sqlite_where=sa.text(HAS_PROVIDER_ID), postgresql_where=sa.text(HAS_PROVIDER_ID))
        batch_op.create_index("ix_message_in_flight", ["state", "updated_at"], unique=False,
                              sqlite_where=sa.text(IN_FLIGHT), postgresql_where=sa.text(IN_FLIGHT))


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_in_flight")
        batch_op.drop_index("ix_message_provider_id")
        batch_op.create_index("ix_message_state_updated", ["state", "updated_at"], unique=False)
        batch_op.create_index("ix_message_provider_id", ["provider_message_id"], unique=False)
