"""The due deliveries' index also orders by id, so a claim reads the `limit` it takes in (due time, id) order and
stops: ordered by id alone, a claim walked every delivered row of the subscription kept before the first pending one

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_webhookdelivery_due", table_name="webhookdelivery")
    op.create_index("ix_webhookdelivery_due", "webhookdelivery", ["subscription_id", "next_attempt_at", "id"],
                    sqlite_where=PENDING, postgresql_where=PENDING)


def downgrade() -> None:
    op.drop_index("ix_webhookdelivery_due", table_name="webhookdelivery")
    op.create_index("ix_webhookdelivery_due", "webhookdelivery", ["subscription_id", "next_attempt_at"],
                    sqlite_where=PENDING, postgresql_where=PENDING)
