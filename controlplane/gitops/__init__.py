"""Git integration: write-back of automatic rollbacks, and a git source of ModelCanary files.

Modules, one concern each:

- :mod:`~controlplane.gitops.yamledit`: the pure edit that reverts ``spec.candidate`` in a
  canary.yml, byte-identical elsewhere;
- :mod:`~controlplane.gitops.repo`: a cached bare mirror of one remote, driven through ``git``;
- :mod:`~controlplane.gitops.credentials`: tokens and SSH keys from a Secret, handed to ``git``
  through its environment only;
- :mod:`~controlplane.gitops.locate`: which repository, branch and file hold a canary;
- :mod:`~controlplane.gitops.hosting`: GitHub pull requests and GitLab merge requests;
- :mod:`~controlplane.gitops.writeback`: :class:`GitWriteBack`, the reconciler Notifier;
- :mod:`~controlplane.gitops.source`: :class:`GitSource`, polling a branch and applying its files.

See docs/git.md.
"""

from controlplane.gitops.source import GitSource, SyncReport
from controlplane.gitops.writeback import GitWriteBack, WriteBackRequest, WriteBackResult

__all__ = ["GitSource", "GitWriteBack", "SyncReport", "WriteBackRequest", "WriteBackResult"]
