"""Who calls a route of the HTTP API, and whether they may.

Owns :class:`Access`, the bearer-token dependency of every ``/api/v1`` route: the identity
:class:`~controlplane.api.intake.Intake` authenticated, and :meth:`Access.allow` (403 unless the
SubjectAccessReview allows the verb; 404 for an unwatched namespace). The checks are
:mod:`controlplane.api.auth`'s. See docs/api.md, "Authentication and authorisation".
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controlplane.api import alertmanager
from controlplane.api.auth import Authenticator, Identity, Unauthenticated
from controlplane.api.intake import IDENTITY_KEY, REALM


class Access:
    """Authentication and authorisation of the API's callers through ``auth``; ``watched``: the
    namespaces the controller watches (None: all of them)."""

    def __init__(self, auth: Authenticator, watched: tuple[str, ...] | None) -> None:
        self.auth, self.watched = auth, watched
        bearer = HTTPBearer(auto_error=False, description="a Kubernetes token or the static token")

        def identity(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        ) -> Identity:
            known = request.scope.get(IDENTITY_KEY)
            if isinstance(known, Identity):  # Intake authenticated this request's token
                return known
            try:
                return auth.authenticate(credentials.credentials if credentials else None)
            except Unauthenticated as exc:
                raise HTTPException(401, exc.reason, headers={"WWW-Authenticate": REALM}) from None

        self.identity: Callable[..., Identity] = identity
        """The dependency of a route parameter that is the caller:
        ``who: Annotated[Identity, Depends(access.identity)]``."""

    def allow(
        self, who: Identity, verb: str, namespace: str | None, name: str | None = None
    ) -> None:
        """Raise 403 unless ``who`` may ``verb`` modelcanaries there, 404 for an unwatched
        namespace."""
        decision = self.auth.authorize(who, verb, namespace, name)
        if not decision.allowed:
            raise HTTPException(403, decision.reason)
        if self.watched is not None and namespace is not None and namespace not in self.watched:
            raise HTTPException(404, alertmanager.unwatched(namespace, self.watched))
