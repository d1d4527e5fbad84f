"""The database schema. Import models from here."""

from .accounts import ApiToken, User
from .assets import Dataset, HyperparameterFile, ModelCode
from .base import MAX_ID, Base, db, utcnow
from .experiments import (
    ALLOWED_TRANSITIONS,
    ClientResult,
    Experiment,
    ExperimentEvent,
    ExperimentKind,
    ExperimentState,
    FailureKind,
    InvalidTransition,
    LogRecord,
    MetricRow,
    ModelArtifact,
)
from .projects import AuditEvent, Invitation, Membership, Project, Role
from .quotas import QuotaOverride, RunUsage
from .support import SupportMessage, SupportTicket

__all__ = [
    "ALLOWED_TRANSITIONS", "MAX_ID", "ApiToken", "AuditEvent", "Base", "ClientResult", "Dataset", "Experiment",
    "ExperimentEvent", "ExperimentKind", "ExperimentState", "FailureKind", "HyperparameterFile", "InvalidTransition",
    "Invitation", "LogRecord", "Membership", "MetricRow", "ModelArtifact", "ModelCode", "Project",
    "QuotaOverride", "Role", "RunUsage", "SupportMessage", "SupportTicket", "User", "db", "utcnow",
]
