"""Keeping the caches current from the change feed (`shared.changes.ChangeSource`).

`follow` applies every committed change to every cache, in commit order. While it delivers, the caches use
their feed TTL; when the feed fails, they forget what they hold (it may have missed changes), fall back to
their short TTL, and `follow` subscribes again after the last change it applied, so nothing is skipped.
A subscriber the feed cut off for falling behind (`SubscriberLagged`) missed changes it cannot get back: the
caches forget what they hold and `follow` subscribes again at once, from now on.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from modelreg.services.changefeed.hub import SubscriberLagged
from modelreg.shared.changes import ChangeSource, RegistryChange

log = structlog.get_logger("modelreg.api")


class ChangeConsumer(Protocol):
    def apply(self, change: RegistryChange) -> None: ...

    def following(self, live: bool) -> None: ...


async def follow(
    source: ChangeSource, *caches: ChangeConsumer, retry_s: float = 1.0, max_retry_s: float = 30.0
) -> None:
    """Apply the feed to `caches` until cancelled; never raises but CancelledError."""
    after: str | None = None
    delay = retry_s
    failures = 0
    while True:
        try:
            # Resume after the last change applied; a token that fails twice in a row may be gone from the
            # feed's history: the caches were emptied when it failed, so starting from now is safe then.
            changes = source.subscribe(after if failures < 2 else None)
            for cache in caches:
                cache.following(True)
            async for change in changes:
                for cache in caches:
                    cache.apply(change)
                after = change.token
                delay, failures = retry_s, 0
            log.warning("change feed ended; caches fall back to their TTL")
        except asyncio.CancelledError:
            for cache in caches:
                cache.following(False)
            raise
        except SubscriberLagged as exc:
            # Changes were missed (buffer overflow, or a token the feed cannot resume): drop what the caches
            # hold and start again from now, without waiting.
            log.warning("caches fell behind the change feed; emptied and resubscribed", error=str(exc)[:300])
            for cache in caches:
                cache.following(False)
            after, delay, failures = None, retry_s, 0
            continue
        except Exception as exc:
            log.warning("change feed failed; caches fall back to their TTL", error=repr(exc)[:300])
        failures += 1
        for cache in caches:
            cache.following(False)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_retry_s)
