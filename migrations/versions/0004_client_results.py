"""client results: one row per client, round and phase (the per-client table at scale)

Revision ID: 0004_client_results
Revises: 0003_experiment_parent_and_kind
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_client_results"
down_revision = "0003_experiment_parent_and_kind"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "client_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("client", sa.Integer(), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=True),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_client_results_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_results")),
    )
    with op.batch_alter_table("client_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_client_results_round",
            ["experiment_id", "attempt", "round", "phase", "loss"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("client_results", schema=None) as batch_op:
        batch_op.drop_index("ix_client_results_round")
    op.drop_table("client_results")
