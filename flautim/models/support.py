"""Support tickets written from the app and answered from the admin panel."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import UTCDateTime, created_at_column, db


class SupportTicket(db.Model):
    __tablename__ = "support_tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    # "open" (waiting for staff), "answered" (waiting for the user) or "closed".
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The experiment the user asked about ("Falar com o suporte sobre este experimento"):
    # one they could see when they wrote; the ticket outlives the experiment.
    experiment_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="SET NULL"), index=True
    )

    user = relationship("User")
    experiment = relationship("Experiment")
    messages = relationship(
        "SupportMessage",
        back_populates="ticket",
        order_by="SupportMessage.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class SupportMessage(db.Model):
    __tablename__ = "support_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    from_staff: Mapped[bool] = mapped_column(default=False)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()

    ticket = relationship("SupportTicket", back_populates="messages")
    author = relationship("User")
