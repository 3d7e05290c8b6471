"""``python -m controlplane.pairing``: the pairer as a pod's main process.

Parses its flags, starts a :class:`~controlplane.pairing.pairer.Pairer` and serves until SIGTERM
or SIGINT, then stops it as a pod should (answers in flight finish). A bad flag exits 2 with
argparse's message.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from controlplane.pairing.pairer import Pairer
from controlplane.pairing.sampling import Limits
from controlplane.spec.models import SessionSpec


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m controlplane.pairing",
        description="Answer each variant's share of traffic from it and score paired answers.",
    )
    p.add_argument("--stable", required=True, help="the stable variant's base URL")
    p.add_argument("--candidate", required=True, help="the candidate variant's base URL")
    p.add_argument("--host", default="0.0.0.0", help="the address to listen on")
    p.add_argument("--stable-port", type=int, default=8081, help="answers from the stable")
    p.add_argument("--candidate-port", type=int, default=8082, help="answers from the candidate")
    p.add_argument("--rate", type=float, default=1.0, help="the share of requests paired")
    p.add_argument("--per-minute", type=int, default=None, help="the most pairs in any minute")
    p.add_argument("--concurrency", type=int, default=4, help="the most pairs in flight")
    p.add_argument("--keep", type=int, default=10_000, help="scored pairs kept for the reader")
    p.add_argument(
        "--keep-prompts",
        action="store_true",
        help="keep each paired request and both answers' text on the pages (user data)",
    )
    key = p.add_mutually_exclusive_group()
    key.add_argument("--session-header", help="the header holding a conversation's key")
    key.add_argument("--session-cookie", help="the cookie holding a conversation's key")
    return p


async def serve(args: argparse.Namespace) -> None:
    session = None
    if args.session_header or args.session_cookie:
        session = SessionSpec(header=args.session_header, cookie=args.session_cookie)
    pairer = Pairer(
        args.stable,
        args.candidate,
        Limits(rate=args.rate, per_minute=args.per_minute),
        session=session,
        concurrency=args.concurrency,
        keep=args.keep,
        keep_prompts=args.keep_prompts,
    )
    await pairer.start(args.host, {"stable": args.stable_port, "candidate": args.candidate_port})
    print(f"pairer: stable on {pairer.ports['stable']}, candidate on {pairer.ports['candidate']}")
    sys.stdout.flush()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await pairer.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.concurrency < 1 or args.keep < 1:
        parser().error("--concurrency and --keep must be at least 1")
    try:
        Limits(rate=args.rate, per_minute=args.per_minute)
    except ValueError as exc:
        parser().error(str(exc))
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
