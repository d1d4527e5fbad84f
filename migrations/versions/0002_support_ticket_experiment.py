"""support tickets name the experiment they are about

Revision ID: 0002_support_ticket_experiment
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_support_ticket_experiment"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("support_tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("experiment_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_support_tickets_experiment_id"), ["experiment_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_support_tickets_experiment_id_experiments"),
            "experiments",
            ["experiment_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("support_tickets", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_support_tickets_experiment_id_experiments"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_support_tickets_experiment_id"))
        batch_op.drop_column("experiment_id")
