"""experiment parent and kind: the centralized baseline of an experiment is its child

Revision ID: 0003_experiment_parent_and_kind
Revises: 0002_support_ticket_experiment
Create Date: 2026-12-02 06:42:07.792678

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0003_experiment_parent_and_kind"
down_revision = "0002_support_ticket_experiment"
branch_labels = None
depends_on = None

KIND = sa.Enum(
    "federated",
    "centralized_baseline",
    name="experimentkind",
    native_enum=False,
    create_constraint=True,
    length=32,
)


def upgrade():
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        # Existing rows are experiments users set up; the model sets the kind from then on.
        batch_op.add_column(sa.Column("kind", KIND, nullable=False, server_default="federated"))
        batch_op.create_unique_constraint(
            batch_op.f("uq_experiments_parent_id"), ["parent_id", "kind"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_experiments_parent_id_experiments"),
            "experiments",
            ["parent_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.alter_column("kind", server_default=None)


def downgrade():
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_experiments_parent_id_experiments"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_experiments_parent_id"), type_="unique")
        # SQLite's batch copy would keep the kind's CHECK and fail on the missing column.
        batch_op.drop_constraint(batch_op.f("ck_experiments_experimentkind"), type_="check")
        batch_op.drop_column("kind")
        batch_op.drop_column("parent_id")
