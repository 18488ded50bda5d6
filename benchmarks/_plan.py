"""What a harness run measures: the rows (settings) of each workload, and their order.

:func:`plan_settings` turns the workloads asked for and what the server offers into the
settings to run, tuspipe next to the clients it is compared with, and says what it left out
and why (a server without an extension, a client not installed, a client that cannot do it);
:func:`schedule` interleaves their runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ._http import ServerInfo
from ._runs import Setting, format_size

__all__ = [
    "DEFAULT_MANY_CONCURRENCY",
    "PARALLEL_PARTS",
    "TUSPY_NO_GENERATOR",
    "Plan",
    "plan_settings",
    "schedule",
]

#: Uploads at once in every concurrent many-files row (tuspipe, aiotus, httpx, curl).
DEFAULT_MANY_CONCURRENCY = 8
PARALLEL_PARTS = (1, 2, 4)


@dataclass(frozen=True)
class Plan:
    """The settings to run, the ones left out with the reason, and the rows that cannot be
    measured at all (a client that cannot do it), shown in the table with their reason."""

    settings: list[Setting]
    left_out: list[str]
    unmeasured: list[tuple[Setting, str]]


#: Why the items rows have no tuspy beside them.
TUSPY_NO_GENERATOR = (
    "tuspy 1.1.0 cannot take a generator: its uploader takes a file path or a seekable file "
    "object (it seeks to find the size and to every chunk's offset)"
)


def plan_settings(
    workloads: Sequence[str],
    *,
    size: int,
    chunk_sizes: Sequence[int],
    server: ServerInfo,
    curl: str | None,
    many_concurrency: int | None = DEFAULT_MANY_CONCURRENCY,
    have_aiotus: bool = True,
) -> Plan:
    """The rows to measure, tuspipe next to its tuspy counterpart, in workload order."""
    settings: list[Setting] = []
    left_out: list[str] = []
    unmeasured: list[tuple[Setting, str]] = []
    # A chunk as large as the file is the whole-file row already.
    chunks = sorted({chunk for chunk in chunk_sizes if chunk < size})
    dropped = sorted(set(chunk_sizes) - set(chunks))
    if dropped and ("chunks" in workloads or "checksums" in workloads):
        left_out.append(
            f"chunk size(s) {', '.join(map(format_size, dropped))}: not below the "
            f"{format_size(size)} file, so the same as the whole-file rows"
        )
    if "defaults" in workloads:
        settings += [
            Setting("defaults", "tuspipe", bare=True),
            # The same call under asyncio (trio in guest mode), beside it (issue 13).
            Setting("defaults", "tuspipe", bare=True, loop="asyncio"),
            Setting("defaults", "tuspy"),
        ]
        if curl is not None:
            settings.append(Setting("defaults", "curl"))
        else:
            left_out.append("defaults curl (the ceiling): curl is not installed (see --curl)")
        if server.url.startswith("http://"):
            settings.append(Setting("defaults", "sendfile"))
        else:
            left_out.append("defaults sendfile: the raw-socket ceiling speaks plain http only")
    shapes: list[tuple[int | None, bool]] = [(chunk, False) for chunk in chunks] + [(None, True)]
    if "chunks" in workloads:
        for chunk, whole in shapes:
            for client in ("tuspipe", "tuspy"):
                settings.append(Setting("chunks", client, chunk_size=chunk, whole=whole))
    if "checksums" in workloads:
        for algorithm, clients in (("sha1", ("tuspipe", "tuspy")), ("crc32", ("tuspipe",))):
            if not server.offers_checksum(algorithm):
                left_out.append(f"checksums {algorithm}: the server does not offer {algorithm}")
                continue
            for chunk, whole in shapes:
                for client in clients:
                    settings.append(
                        Setting(
                            "checksums", client, chunk_size=chunk, whole=whole, checksum=algorithm
                        )
                    )
    if "parallel" in workloads:
        for parts in PARALLEL_PARTS:
            if parts > 1 and not server.supports("concatenation"):
                left_out.append(
                    f"parallel {parts}: the server does not offer concatenation (tuspipe would "
                    "upload in one piece)"
                )
                continue
            settings.append(Setting("parallel", "tuspipe", parallel=parts))
    if "many" in workloads:
        settings += _many_settings(server, curl, many_concurrency, have_aiotus, left_out)
    if "stream" in workloads:
        if server.supports("creation-defer-length"):
            settings += [
                Setting("stream", "tuspipe", source="generator"),
                Setting("stream", "tuspipe", source="pipe"),
            ]
        else:
            left_out.append(
                "stream (generator, pipe): the server does not offer creation-defer-length, "
                "which an upload of unknown length needs"
            )
    if "items" in workloads:
        if server.supports("creation-defer-length"):
            settings += [
                Setting("items", "tuspipe", source="items"),
                Setting("items", "tuspipe", source="bytes"),
            ]
            unmeasured.append((Setting("items", "tuspy", source="items"), TUSPY_NO_GENERATOR))
        else:
            left_out.append(
                "items: the server does not offer creation-defer-length, which an upload "
                "from a generator (of unknown length) needs"
            )
    return Plan(settings, left_out, unmeasured)


def _many_settings(
    server: ServerInfo,
    curl: str | None,
    concurrency: int | None,
    have_aiotus: bool,
    left_out: list[str],
) -> list[Setting]:
    """The many-files rows: every concurrent client `concurrency` at a time, the tuspy loop
    one file after another (tuspy has no concurrency of its own); tuspipe under trio and,
    with the same settings, under asyncio."""
    settings = [
        Setting("many", "tuspipe", source="files", concurrency=concurrency),
        Setting("many", "tuspipe", source="files", concurrency=concurrency, loop="asyncio"),
        Setting("many", "tuspy", source="files"),
    ]
    at_once = concurrency or DEFAULT_MANY_CONCURRENCY
    if have_aiotus:
        settings.append(Setting("many", "aiotus", source="files", concurrency=at_once))
    else:
        left_out.append("many aiotus: aiotus is not installed (pip install -e '.[peers]')")
    if not server.supports("creation-with-upload"):
        left_out.append(
            "many httpx and curl (one POST per file): the server does not offer "
            "creation-with-upload"
        )
        return settings
    # The floor: bare httpx, one POST per file carrying its bytes.
    settings.append(Setting("many", "httpx", source="files", concurrency=at_once))
    if curl is not None:
        # The ceiling: the same POSTs from curl --parallel.
        settings.append(Setting("many", "curl", source="files", concurrency=at_once))
    else:
        left_out.append("many curl (the ceiling): curl is not installed (see --curl)")
    return settings


def schedule(settings: Sequence[Setting], repeats: int) -> Iterator[tuple[int, Setting]]:
    """Every run: all settings round-robin, repeat after repeat, each repeat in the opposite
    order of the one before, so no client always runs first or after the same neighbour."""
    for repeat in range(repeats):
        order = settings if repeat % 2 == 0 else list(reversed(settings))
        for setting in order:
            yield repeat, setting
