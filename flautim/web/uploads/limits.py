"""How much an upload may hold, read from the site's Config."""

from __future__ import annotations

from dataclasses import dataclass

from flautim.config import Config

MB = 1024 * 1024
# A zip entry that expands more than this many times is treated as a zip bomb. Real data
# (CSV, images, numpy arrays) compresses far less; a bomb compresses ~1000x.
MAX_COMPRESSION_RATIO = 100
# Python sources (dataset class, model API, hyperparameters) are small by nature.
MAX_SOURCE_BYTES = 1 * MB


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int
    max_unzipped_bytes: int
    max_archive_files: int
    max_ratio: int = MAX_COMPRESSION_RATIO
    max_source_bytes: int = MAX_SOURCE_BYTES

    @classmethod
    def from_config(cls, config: Config) -> UploadLimits:
        return cls(
            max_upload_bytes=config.MAX_UPLOAD_MB * MB,
            max_unzipped_bytes=config.MAX_UNZIPPED_MB * MB,
            max_archive_files=config.MAX_ARCHIVE_FILES,
        )
