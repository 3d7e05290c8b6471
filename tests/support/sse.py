"""A server-sent-events reader for the tests of the dashboard's live watch.

:class:`EventStream` opens ``GET url`` with httpx on a thread of its own and parses what comes
into ``(event, data)`` pairs (a ``: comment`` is ``("comment", text)``), so that a test waits for
the next one with a deadline instead of blocking on the socket; :meth:`EventStream.ended` says
whether the server closed the stream.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import httpx

END = ("end", "")


class EventStream:
    """The events of ``GET url`` with ``headers`` (status and headers in :attr:`response`)."""

    def __init__(self, url: str, headers: dict[str, str], timeout_s: float = 10.0) -> None:
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.body = b""
        self._ready = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, read=None))
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise AssertionError(f"no answer from {url} within {timeout_s}s")

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self._response = response
                self.status, self.headers = response.status_code, response.headers
                if response.status_code != 200:
                    self.body = response.read()
                    self._ready.set()
                    return
                self._ready.set()
                event, data = "message", ""
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.events.put(("comment", line[1:].strip()))
                    elif line.startswith("event:"):
                        event = line[len("event:") :].strip()
                    elif line.startswith("data:"):
                        data += line[len("data:") :].strip()
                    elif line == "":
                        if data:
                            self.events.put((event, data))
                        event, data = "message", ""
        except httpx.HTTPError:
            pass
        finally:
            self._client.close()
            self._ready.set()
            self.events.put(END)

    def next(self, timeout_s: float = 10.0, *, comments: bool = False) -> tuple[str, Any]:
        """The next event (``data`` parsed as JSON), comments skipped unless asked for."""
        while True:
            try:
                event, data = self.events.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(f"no event within {timeout_s}s") from None
            if event == "comment" and not comments:
                continue
            if event in ("comment", "end"):
                return event, data
            return event, json.loads(data)

    def ended(self, timeout_s: float = 10.0) -> bool:
        """Whether the server ends the stream within ``timeout_s`` (events before are dropped)."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._client.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
