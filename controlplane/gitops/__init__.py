"""Git integration: write-back of automatic rollbacks, and a git source of ModelCanary files.

Its modules, one line each: docs/architecture.md, "Module map" (`gitops/`).
"""

from controlplane.gitops.revert import WriteBackRequest, WriteBackResult
from controlplane.gitops.source import GitSource, SyncReport
from controlplane.gitops.writeback import GitWriteBack

__all__ = ["GitSource", "GitWriteBack", "SyncReport", "WriteBackRequest", "WriteBackResult"]
