"""experiment events: a partial index of what the live page is sent (all but the clients' reports)

Revision ID: 0006_events_page_index
Revises: 0005_users_notify_run_end
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_events_page_index"
down_revision = "0005_users_notify_run_end"
branch_labels = None
depends_on = None

WHERE = "type NOT IN ('client_train', 'client_evaluate')"


def upgrade():
    with op.batch_alter_table("experiment_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_experiment_events_page",
            ["experiment_id", "id"],
            unique=False,
            postgresql_where=sa.text(WHERE),
            sqlite_where=sa.text(WHERE),
        )


def downgrade():
    with op.batch_alter_table("experiment_events", schema=None) as batch_op:
        batch_op.drop_index("ix_experiment_events_page")
