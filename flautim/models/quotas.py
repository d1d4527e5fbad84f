"""Quotas: the limits an admin set for one user or one project, and the run time each run
used (the ledger the monthly budgets are summed from). The rules live in flautim/quotas.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import UTCDateTime, created_at_column, db


class QuotaOverride(db.Model):
    """An admin's limits for one user or one project. Each NULL column means the site's
    default (flautim/config.py, QUOTA_*); a negative value means no limit."""

    __tablename__ = "quota_overrides"
    __table_args__ = (CheckConstraint("(user_id IS NULL) <> (project_id IS NULL)", name="one_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), unique=True)
    running: Mapped[int | None] = mapped_column()
    queued: Mapped[int | None] = mapped_column()
    storage_mb: Mapped[int | None] = mapped_column(BigInteger())
    cpu_hours: Mapped[float | None] = mapped_column(Float)
    gpu_hours: Mapped[float | None] = mapped_column(Float)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = created_at_column()


class RunUsage(db.Model):
    """The run time one attempt used, written once when it ended.

    Kept when the experiment, its project or its user is deleted (the ids become NULL), so
    deleting things cannot hand a tenant a fresh monthly budget.
    """

    __tablename__ = "run_usage"
    __table_args__ = (
        UniqueConstraint("experiment_id", "attempt"),
        Index("ix_run_usage_user_month", "user_id", "finished_at"),
        Index("ix_run_usage_project_month", "project_id", "finished_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"))
    attempt: Mapped[int] = mapped_column()
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    gpu: Mapped[bool] = mapped_column(default=False)
    containers: Mapped[int] = mapped_column()
    wall_seconds: Mapped[float] = mapped_column(Float)
    # wall_seconds × containers: what the monthly budgets count.
    container_seconds: Mapped[float] = mapped_column(Float)
    # The month the run counts in is the month it ended (UTC).
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
