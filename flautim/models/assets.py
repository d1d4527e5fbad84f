"""What a project uploads: datasets, model (API) code and hyperparameter files.

Files live under the project's storage folder; rows keep their metadata and content hash.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import created_at_column, db


class _ProjectAsset:
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    # Relative to the site's DATA_DIR; never a user-supplied path.
    storage_path: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = created_at_column()


class Dataset(_ProjectAsset, db.Model):
    """Data files plus the user's `Dataset` class that reads them."""

    __tablename__ = "datasets"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    file_count: Mapped[int] = mapped_column(default=0)
    # "pending", "ok" or "error": the sandboxed inspection of the Dataset class.
    inspection_status: Mapped[str] = mapped_column(String(16), default="pending")
    # Sample counts, splits, label histogram; or the error with file and line.
    inspection: Mapped[dict] = mapped_column(JSON, default=dict)

    project = relationship("Project")
    created_by = relationship("User")


class ModelCode(_ProjectAsset, db.Model):
    """A version of the model's API code (a `.py`), identified by its content hash."""

    __tablename__ = "model_codes"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))

    project = relationship("Project")
    created_by = relationship("User")


class HyperparameterFile(_ProjectAsset, db.Model):
    """A validated hyperparameter `.py` (parsed, never executed) and its values."""

    __tablename__ = "hyperparameter_files"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    values: Mapped[dict] = mapped_column(JSON, default=dict)

    project = relationship("Project")
    created_by = relationship("User")
