"""users.notify_run_end: email a user when a run they started ends (on by default)

Revision ID: 0005_users_notify_run_end
Revises: 0004_client_results
Create Date: 2026-12-02 07:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005_users_notify_run_end"
down_revision = "0004_client_results"
branch_labels = None
depends_on = None


def upgrade():
    # batch: SQLite (the demo's database) cannot add a NOT NULL column otherwise.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_run_end", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("notify_run_end")
