"""Delivery of rollout alerts to the channels of ``spec.alerts``, off the reconciliation path.

Owns :class:`AlertNotifier`, the controller's notifier: ``notify`` builds the alert and only
enqueues (no I/O, never an exception into the caller); a background thread reads Secrets, renders,
posts with retries, deduplicates through the ledger and reports failures without credentials.
As users see it: docs/alerts.md, "Delivery, retries, deduplication".
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from controlplane.delayqueue import DelayQueue
from controlplane.errors import AlertDeliveryError, Conflict, KubeError
from controlplane.kube.client import KubeClient, Ref
from controlplane.notify.alert import DEFAULT_DASHBOARD_UID, Alert, build_alert
from controlplane.notify.alertmanager import alertmanager_alerts, alerts_url
from controlplane.notify.ledger import Ledger, Owner
from controlplane.notify.secrets import SecretReader
from controlplane.notify.slack import slack_message
from controlplane.notify.webhook import webhook_body, webhook_headers
from controlplane.providers.bounded import clip
from controlplane.rollout.events import delivery_key
from controlplane.rollout.state import Event, RolloutState
from controlplane.spec.models import API_VERSION, AlertSpec, ModelCanary, SecretKeyRef
from controlplane.status import document as st

log = logging.getLogger(__name__)

ChannelKind = Literal["slack", "webhook", "alertmanager"]
Result = Literal["delivered", "failed", "dropped", "deduplicated"]
RESULTS: tuple[Result, ...] = ("delivered", "failed", "dropped", "deduplicated")
CHANNEL_KINDS: tuple[ChannelKind, ...] = ("slack", "webhook", "alertmanager")
USER_AGENT = "canary-controller-notify/1"


@dataclass(frozen=True)
class NotifySettings:
    """What the operator may tune (``canaryctl controller`` flags; docs/alerts.md).

    ``hold_s``: how long one-shot alerts stay firing; ``open_s``: the ``endsAt`` horizon of a pause
    or throttle; ``max_event_age_s``: older events are not sent when a history is replayed.
    """

    grafana_url: str | None = None
    dashboard_uid: str = DEFAULT_DASHBOARD_UID
    queue_size: int = 1000
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0
    timeout_s: float = 10.0
    dedup_window_s: float = 86400.0
    secret_ttl_s: float = 60.0
    hold_s: float = 3600.0
    open_s: float = 7 * 86400.0
    persist_dedup: bool = True
    max_event_age_s: float | None = 86400.0

    def __post_init__(self) -> None:
        if self.queue_size < 1 or self.max_attempts < 1:
            raise ValueError("queue_size and max_attempts must be at least 1")


@dataclass(frozen=True)
class Channel:
    """One entry of ``spec.alerts``: its index, kind, spec and identity (for deduplication)."""

    index: int
    kind: ChannelKind
    spec: AlertSpec
    id: str

    @property
    def path(self) -> str:
        return f"spec.alerts[{self.index}].{self.kind}"


def channels_of(canary: ModelCanary) -> list[Channel]:
    """The canary's channels (an entry with no channel set, which validation refuses, is
    skipped)."""
    out: list[Channel] = []
    for index, spec in enumerate(canary.spec.alerts):
        if spec.slack is not None:
            ref = spec.slack.webhook_secret_ref
            ident = f"slack:{ref.name}/{ref.key}#{spec.slack.channel or ''}"
            out.append(Channel(index, "slack", spec, ident))
        elif spec.webhook is not None:
            out.append(Channel(index, "webhook", spec, f"webhook:{spec.webhook.url}"))
        elif spec.alertmanager is not None:
            ident = f"alertmanager:{alerts_url(spec.alertmanager.url)}"
            out.append(Channel(index, "alertmanager", spec, ident))
    return out


@dataclass
class _Task:
    alert: Alert
    channel: Channel
    owner: Owner
    involved: dict[str, Any]
    key: str
    attempt: int = 0


@dataclass(frozen=True)
class _Retry:
    delay: float
    why: str


@dataclass(frozen=True)
class _Request:
    url: str
    body: bytes
    headers: dict[str, str]
    show: str  # the URL as logs may show it (no Slack webhook token)


def shown_url(url: str) -> str:
    """``url`` as a log line or an Event may show it: scheme, host, port and path, without
    credentials (``user:password@``), query or fragment, where tokens travel."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "the URL"
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds to wait (delta-seconds or an HTTP date); None if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class AlertNotifier:
    """The controller's notifier. Thread-safe; start it once, :meth:`close` it on shutdown.

    ``kube`` reads Secrets, writes the dedup ledger and Events (None: no Secrets, so Slack and
    signed webhooks fail; no persisted dedup; logs only). ``transport`` is handed to
    ``httpx.Client`` (tests); ``rng`` draws the jitter.
    """

    def __init__(
        self,
        kube: KubeClient | None,
        settings: NotifySettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or NotifySettings()
        self.registry = registry if registry is not None else CollectorRegistry()
        self._kube = kube
        self._secrets = SecretReader(kube, ttl_s=self.settings.secret_ttl_s) if kube else None
        self._ledger = Ledger(
            self.settings.dedup_window_s, kube if self.settings.persist_dedup else None
        )
        self._rng = rng or random.Random()
        self._deliveries = Counter(
            "canary_controller_alert_deliveries",
            "Alert deliveries by channel kind and result",
            ["channel", "result"],
            registry=self.registry,
        )
        self._depth = Gauge(
            "canary_controller_alert_queue_depth",
            "Alert deliveries queued, waiting for a retry or in flight",
            registry=self.registry,
        )
        for kind in CHANNEL_KINDS:
            for result in RESULTS:
                self._deliveries.labels(kind, result)
        self._client = httpx.Client(
            timeout=self.settings.timeout_s,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        self._queue: DelayQueue[_Task] = DelayQueue(self.settings.queue_size, drop_oldest=True)
        self._thread = threading.Thread(target=self._run, name="canary-alerts", daemon=True)
        self._thread.start()

    # --------------------------------------------------------------------------- public

    def notify(
        self, obj: Mapping[str, Any], canary: ModelCanary, state: RolloutState, event: Event
    ) -> None:
        """Queue the alert of ``event`` for every subscribed channel; returns at once."""
        try:
            self._enqueue_all(obj, canary, state, event)
        except Exception:  # an alerting bug must never break reconciliation
            log.exception("could not queue alerts for %s", event.type)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def count(self, channel: ChannelKind, result: Result) -> float:
        """The current value of the deliveries counter (tests, diagnostics)."""
        value = self.registry.get_sample_value(
            "canary_controller_alert_deliveries_total", {"channel": channel, "result": result}
        )
        return value or 0.0

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is queued or in flight; False on timeout."""
        return self._queue.join(timeout)

    def close(self, timeout: float = 10.0) -> int:
        """Stop taking alerts, deliver what can be within ``timeout`` seconds, drop the rest.
        Returns how many deliveries were dropped. Safe to call twice."""
        self._queue.close(timeout)
        self._thread.join(max(0.0, timeout) + 0.5)
        left = self._queue.drain()
        self._update_depth()
        for task in left:
            self._count(task.channel.kind, "dropped")
        if left:
            log.warning("%d alert deliveries not made before shutdown (dropped)", len(left))
        if not self._thread.is_alive():
            self._client.close()
        return len(left)

    # --------------------------------------------------------------------------- enqueue

    def _enqueue_all(
        self, obj: Mapping[str, Any], canary: ModelCanary, state: RolloutState, event: Event
    ) -> None:
        alert = build_alert(
            obj,
            canary,
            state,
            event,
            grafana_url=self.settings.grafana_url,
            dashboard_uid=self.settings.dashboard_uid,
        )
        if alert is None:
            return
        age = time.time() - alert.time
        too_old = self.settings.max_event_age_s is not None and age > self.settings.max_event_age_s
        meta = obj.get("metadata") or {}
        owner = Owner(alert.namespace, alert.name, alert.uid)
        involved = {
            "apiVersion": obj.get("apiVersion", API_VERSION),
            "kind": obj.get("kind", "ModelCanary"),
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta
            },
        }
        for channel in channels_of(canary):
            if alert.kind not in channel.spec.events:
                continue
            key = delivery_key(alert.fingerprint, channel.id)
            if too_old:
                self._count(channel.kind, "deduplicated")
                log.info(
                    "%s alert %s for %s not sent: the event is %.0fs old",
                    channel.kind,
                    alert.event_type,
                    alert.canary,
                    age,
                )
                continue
            if not self._ledger.claim(key):
                self._count(channel.kind, "deduplicated")
                log.info(
                    "%s alert %s for %s already sent or queued",
                    channel.kind,
                    alert.event_type,
                    alert.canary,
                )
                continue
            self._enqueue(_Task(alert, channel, owner, involved, key))

    def _enqueue(self, task: _Task) -> None:
        dropped = self._queue.put(task)
        self._update_depth()
        if dropped is not None:
            self._ledger.release(dropped.key)
            self._count(dropped.channel.kind, "dropped")
            log.warning(
                "alert queue full or closed: dropped a %s alert %s for %s",
                dropped.channel.kind,
                dropped.alert.event_type,
                dropped.alert.canary,
            )

    # --------------------------------------------------------------------------- worker

    def _run(self) -> None:
        try:
            while True:
                task = self._queue.get()
                if task is None:
                    return
                self._update_depth()
                retry_in: float | None = None
                try:
                    retry_in = self._process(task)
                except Exception:  # the worker must survive any bug
                    log.exception("alert delivery crashed; the delivery is dropped")
                    self._ledger.release(task.key)
                    self._count(task.channel.kind, "failed")
                finally:
                    self._queue.task_done(retry_in)
                    self._update_depth()
        finally:
            if self._queue.closed:
                self._client.close()

    def _process(self, task: _Task) -> float | None:
        """One delivery attempt; the delay before the next one, or None when done (delivered,
        deduplicated or failed for good)."""
        alert, channel = task.alert, task.channel
        if self._ledger.delivered(task.owner, task.key):
            self._count(channel.kind, "deduplicated")
            log.info(
                "%s alert %s for %s was delivered before (ledger)",
                channel.kind,
                alert.event_type,
                alert.canary,
            )
            return None
        task.attempt += 1
        try:
            request = self._request(task)
            outcome = self._post(request, task.attempt)
        except AlertDeliveryError as exc:
            self._fail(task, str(exc))
            return None
        except KubeError as exc:
            outcome = _Retry(self._backoff(task.attempt), f"reading the Secret failed: {exc}")
        if outcome is None:
            self._ledger.record(task.owner, task.key)
            self._count(channel.kind, "delivered")
            log.info(
                "%s alert %s for %s delivered (attempt %d)",
                channel.kind,
                alert.event_type,
                alert.canary,
                task.attempt,
            )
            return None
        if task.attempt >= self.settings.max_attempts:
            self._fail(task, f"{outcome.why}; gave up after {task.attempt} attempts")
            return None
        log.info(
            "%s alert %s for %s: %s; retry %d in %.2fs",
            channel.kind,
            alert.event_type,
            alert.canary,
            outcome.why,
            task.attempt + 1,
            outcome.delay,
        )
        return outcome.delay

    def _request(self, task: _Task) -> _Request:
        alert, spec = task.alert, task.channel.spec
        if spec.slack is not None:
            url = self._secret(task, spec.slack.webhook_secret_ref).decode(errors="replace")
            if not url.startswith(("https://", "http://")):
                slack_ref = spec.slack.webhook_secret_ref
                raise AlertDeliveryError(
                    f"Secret {alert.namespace}/{slack_ref.name} key {slack_ref.key!r}"
                    " is not an http(s) URL"
                )
            body = json.dumps(slack_message(alert, spec.slack.channel)).encode()
            headers = {"Content-Type": "application/json"}
            return _Request(url, body, headers, "the Slack webhook")
        if spec.webhook is not None:
            hmac_ref = spec.webhook.hmac_secret_ref
            secret = self._secret(task, hmac_ref) if hmac_ref is not None else None
            body = webhook_body(alert)
            headers = webhook_headers(alert, body, secret, int(time.time()))
            return _Request(spec.webhook.url, body, headers, shown_url(spec.webhook.url))
        assert spec.alertmanager is not None
        url = alerts_url(spec.alertmanager.url)
        items = alertmanager_alerts(alert, hold_s=self.settings.hold_s, open_s=self.settings.open_s)
        body = json.dumps(items).encode()
        return _Request(url, body, {"Content-Type": "application/json"}, shown_url(url))

    def _secret(self, task: _Task, ref: SecretKeyRef) -> bytes:
        if self._secrets is None:
            raise AlertDeliveryError(f"no Kubernetes client to read Secret {ref.name}")
        try:
            return self._secrets.read(task.alert.namespace, ref)
        except AlertDeliveryError as exc:
            raise AlertDeliveryError(f"{exc} ({task.channel.path})") from None

    def _post(self, request: _Request, attempt: int) -> _Retry | None:
        """None when delivered; a retry with its delay; raises for a permanent failure."""
        try:
            # streamed and closed unread: the answer's body is never read, held or shown
            with self._client.stream(
                "POST", request.url, content=request.body, headers=request.headers
            ) as response:
                code, retry_after = response.status_code, response.headers.get("Retry-After")
                reason = response.reason_phrase
        except httpx.TimeoutException:
            return _Retry(self._backoff(attempt), f"{request.show} timed out")
        except httpx.HTTPError as exc:
            return _Retry(
                self._backoff(attempt), f"{request.show} unreachable: {type(exc).__name__}"
            )
        if 200 <= code < 300:
            return None
        said = f"{code} {clip(reason, 60)}".rstrip()
        if code == 429:
            wait = retry_after_seconds(retry_after, time.time())
            delay = self._backoff(attempt) if wait is None else wait
            return _Retry(min(delay, self.settings.max_retry_after_s), f"{request.show} said 429")
        if code == 408 or code >= 500:
            return _Retry(self._backoff(attempt), f"{request.show} said {said}")
        raise AlertDeliveryError(f"{request.show} refused the alert: {said}")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter for the retry after attempt number ``attempt``."""
        ceiling = min(
            self.settings.backoff_max_s, self.settings.backoff_base_s * 2.0 ** (attempt - 1)
        )
        return float(ceiling) * self._rng.uniform(0.5, 1.0)

    def _fail(self, task: _Task, message: str) -> None:
        self._ledger.release(task.key)
        self._count(task.channel.kind, "failed")
        alert = task.alert
        text = (
            f"{task.channel.kind} alert ({task.channel.path}) for {alert.event_type} "
            f"not delivered: {message}"
        )
        log.warning("%s: %s", alert.canary, text)
        if self._kube is None:
            return
        try:
            self._kube.event(task.involved, "AlertDeliveryFailed", text[:1000], "Warning")
        except KubeError as exc:
            log.warning("could not record the AlertDeliveryFailed Event: %s", exc)
        self._warn(task.involved, "AlertDeliveryFailed", text[:1000])

    def _warn(self, involved: dict[str, Any], type_: str, text: str) -> None:
        """Add the failure to the canary's ``status.warnings`` (where ``kubectl canary get`` and
        the API show it, beside the Event), compare-and-swap on the resourceVersion, retried on
        a conflict with the controller's own status writes (which keep the list)."""
        assert self._kube is not None
        ref = Ref.of(involved)
        for _ in range(5):
            try:
                obj = self._kube.get(ref)
                status = dict(obj.get("status") or {})
                status[st.WARNINGS_KEY] = st.with_warning(
                    status.get(st.WARNINGS_KEY), type_, text, time.time()
                )
                self._kube.replace_status({**obj, "status": status})
                return
            except Conflict:
                continue
            except KubeError as exc:
                log.warning("could not record %s in the status of %s: %s", type_, ref.name, exc)
                return
        log.warning("could not record %s in the status of %s: kept conflicting", type_, ref.name)

    def _count(self, channel: ChannelKind, result: Result) -> None:
        self._deliveries.labels(channel, result).inc()

    def _update_depth(self) -> None:
        self._depth.set(len(self._queue))
