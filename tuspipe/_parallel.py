"""Parallel uploads: one source as several partial uploads at once, joined on the server.

The concatenation extension: each part is created with ``Upload-Concat: partial`` and
uploaded by an ordinary pipeline over its slice of the source, all at once on the client's
one connection pool; a final ``Upload-Concat: final;<parts>`` POST joins them. The journal
records the part URLs as soon as they exist and the final URL once it does, so a killed
parallel upload resumes every part.
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from ._capabilities import CapabilityCache
from ._channels import ChannelStats
from ._errors import UploadNotFoundError, UsageError
from ._journal import JournalEntry, public_endpoint
from ._pipeline import gather, run_pipeline
from ._plan import UploadPlan, headers_to
from ._protocol import concatenation_request, creation_request, upload_expires
from ._retry import create_with_retries, head_upload
from ._source import Source, slice_source
from ._transport import Transport
from ._types import UploadResult

__all__ = ["parallel_parts", "part_spans", "run_parallel"]

logger = logging.getLogger("tuspipe")


async def parallel_parts(
    capabilities: CapabilityCache,
    source: Source,
    plan: UploadPlan,
    stop_at: int | None,
    entry: JournalEntry | None,
) -> int:
    """How many parts to upload at once: a journaled parallel upload keeps its count; else
    `parallel`, when the server says it supports concatenation (otherwise one, with a
    warning)."""
    if entry is not None and entry.parts:
        return len(entry.parts)
    if stop_at is not None or plan.upload_url is not None or source.size is None:
        raise UsageError(
            "parallel= uploads a whole source that can be read again, as a new upload: it "
            "does not combine with stop_at=, upload_url= or a one-pass source"
        )
    assert plan.url is not None
    known = await capabilities.known(plan.url)
    if known is None or not known.supports("concatenation"):
        # Unknown is not tried: the parts of a failed concatenation would be left behind.
        logger.warning(
            "%s %s concatenation; uploading %s in one piece",
            plan.url,
            "does not say whether it supports" if known is None else "does not support",
            source.name,
        )
        return 1
    return max(1, min(plan.parallel, source.size))


def part_spans(size: int, parts: int) -> list[tuple[int, int]]:
    """``(start, length)`` of each part: as equal as whole bytes allow."""
    bounds = [size * index // parts for index in range(parts + 1)]
    return [(bounds[index], bounds[index + 1] - bounds[index]) for index in range(parts)]


async def _resume_parts(
    transport: Transport,
    plan: UploadPlan,
    entry: JournalEntry,
    spans: list[tuple[int, int]],
) -> tuple[str | None, list[int]] | None:
    """Where a journaled parallel upload stands: (the final upload if it exists, each part's
    offset), or None when the server no longer has it and it must start over."""
    try:
        if entry.url:
            _, _, final = await head_upload(
                transport, entry.url, headers_to(plan, entry.url), plan.retry
            )
            if final.complete and final.length == entry.size:
                return entry.url, [length for _, length in spans]
            logger.warning(
                "the journaled final upload %s is not complete; starting over", entry.url
            )
            return None
        offsets = []
        for part_url, (_, length) in zip(entry.parts, spans, strict=True):
            _, _, status = await head_upload(
                transport, part_url, headers_to(plan, part_url), plan.retry
            )
            if status.length != length:
                logger.warning(
                    "the journaled part %s is not this source's; starting over", part_url
                )
                return None
            offsets.append(status.offset)
        return None, offsets
    except UploadNotFoundError:
        logger.info("a journaled part of %s is gone; starting over", entry.source)
        return None


async def run_parallel(
    transport: Transport,
    source: Source,
    plan: UploadPlan,
    parts: int,
    algorithm: str | None,
    key: str | None,
    entry: JournalEntry | None,
) -> UploadResult:
    """Upload `source` as `parts` partial uploads at once, then join them (concatenation).

    Each part is an ordinary pipeline over its slice of the source, on the shared connection
    pool. The journal records the part URLs as soon as they exist and the final URL once it
    does, so a killed parallel upload resumes every part; a server that deletes the parts
    once the final upload exists (tuspyserver does) is fine, because a journaled final
    upload is never asked about its parts again.
    """
    assert source.size is not None
    assert plan.url is not None
    size, journal = source.size, plan.journal
    spans = part_spans(size, parts)
    state = None
    if entry is not None and entry.parts and journal is not None:
        state = await _resume_parts(transport, plan, entry, spans)
        if state is None:
            await trio.to_thread.run_sync(journal.forget, entry.key)
    if state is not None and entry is not None:
        final_url, offsets = state
        part_urls = list(entry.parts)
    else:
        final_url, offsets = None, [0] * parts
        part_urls = await _create_parts(transport, plan, spans)
        if key is not None and journal is not None:
            await trio.to_thread.run_sync(
                journal.record_created,
                JournalEntry(
                    key=key,
                    url="",
                    endpoint=public_endpoint(plan.url),
                    source=source.name,
                    size=size,
                    parts=tuple(part_urls),
                ),
            )
    resumed_from = sum(offsets)
    if plan.on_progress is not None:
        plan.on_progress(resumed_from, size)

    channel_stats: list[ChannelStats] = []
    if final_url is None:
        await _upload_parts(
            transport, source, plan, spans, part_urls, offsets, algorithm, channel_stats
        )
        final_url, response = await create_with_retries(
            transport,
            concatenation_request(plan.url, part_urls, plan.metadata, plan.headers),
            plan.retry,
            allow_insecure_location=plan.allow_insecure_location,
        )
        logger.info("joined %d parts of %s as %s", parts, source.name, final_url)
        if key is not None and journal is not None:
            finished = JournalEntry(
                key=key,
                url=final_url,
                endpoint=public_endpoint(plan.url),
                source=source.name,
                size=size,
                offset=size,
                expires=upload_expires(response),
                parts=tuple(part_urls),
            )
            await trio.to_thread.run_sync(journal.record_created, finished)
    if key is not None and journal is not None:
        await trio.to_thread.run_sync(journal.record_finished, key)
    if plan.on_upload_url is not None:
        plan.on_upload_url(final_url)
    return UploadResult(
        url=final_url,
        size=size,
        offset=size,
        resumed_from=resumed_from,
        checksum=algorithm,
        channel_stats=_merged_by_name(channel_stats),
    )


def _merged_by_name(channel_stats: list[ChannelStats]) -> tuple[ChannelStats, ...]:
    """One figure per channel name: the parts' pipelines summed."""
    merged: dict[str, ChannelStats] = {}
    for stats in channel_stats:
        known = merged.get(stats.name)
        merged[stats.name] = stats if known is None else known.merged(stats)
    return tuple(merged.values())


async def _create_parts(
    transport: Transport, plan: UploadPlan, spans: list[tuple[int, int]]
) -> list[str]:
    """Create one partial upload per span, all at once; their URLs in order."""
    assert plan.url is not None
    url = plan.url
    part_urls = [""] * len(spans)

    async def create(index: int, length: int) -> None:
        # The metadata goes on the parts too: some servers (tuspyserver) refuse a HEAD of an
        # upload without it, and a resumed part must be asked for its offset.
        request = creation_request(url, length, plan.metadata, plan.headers, partial=True)
        created = await create_with_retries(
            transport, request, plan.retry, allow_insecure_location=plan.allow_insecure_location
        )
        part_urls[index] = created[0]

    await gather([partial(create, index, length) for index, (_, length) in enumerate(spans)])
    return part_urls


async def _upload_parts(
    transport: Transport,
    source: Source,
    plan: UploadPlan,
    spans: list[tuple[int, int]],
    part_urls: list[str],
    offsets: list[int],
    algorithm: str | None,
    channel_stats: list[ChannelStats],
) -> None:
    """Run one pipeline per unfinished part, all at once; progress is their sum (and the
    parts' channel figures are collected in `channel_stats`)."""
    size = source.size

    async def acknowledged(index: int, new_offset: int) -> None:
        offsets[index] = new_offset
        if plan.on_progress is not None:
            plan.on_progress(sum(offsets), size)

    async def upload_part(index: int) -> None:
        start, length = spans[index]
        await run_pipeline(
            transport=transport,
            url=part_urls[index],
            headers=headers_to(plan, part_urls[index]),
            source=slice_source(source, start, length),
            start=offsets[index],
            stop=length,
            algorithm=algorithm,
            settings=plan.settings,
            retry=plan.retry,
            body_limits=plan.body_limits,
            on_acknowledged=partial(acknowledged, index),
            channel_stats=channel_stats,
        )

    await gather(
        [
            partial(upload_part, index)
            for index in range(len(spans))
            if offsets[index] < spans[index][1]
        ]
    )
