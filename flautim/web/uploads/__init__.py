"""Validating uploads before anything is stored: Python sources (UTF-8, syntax, size) and
data (several files or one zip; zip-slip, symlinks, zip bombs and too many files refused).

Used by the experiment pages and by the JSON API. Everything is staged in a temporary
folder and moved into place in one rename, so a refused upload leaves nothing behind.
"""

from .datasets import StagedDataset, Upload, folder_hash, stage_dataset
from .errors import UserFacingError
from .limits import UploadLimits
from .sources import PythonSource, read_python_upload
from .staging import Staging, read_limited

__all__ = [
    "PythonSource",
    "StagedDataset",
    "Staging",
    "Upload",
    "UploadLimits",
    "UserFacingError",
    "folder_hash",
    "read_limited",
    "read_python_upload",
    "stage_dataset",
]
