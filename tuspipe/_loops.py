"""Where tuspipe's coroutines meet the caller's event loop: trio as it is, asyncio through trio's
guest mode. The trio code is the only implementation; this module only decides where it runs.

Theory of operation
-------------------

**Detection.** Every public coroutine (the ``*_async`` functions, the methods of
:class:`~tuspipe.Client`, compat's ``AsyncUploader``) is wrapped by :func:`any_loop`, which asks
sniffio (as httpx and anyio do) which library runs the caller:

* ``"trio"``: the call goes straight to the trio code: one sniffio look-up, nothing else, so
  under trio nothing changes. tuspipe's own calls from inside its trio code take this path too,
  inside a guest run as well (trio names itself to sniffio while its code runs).
* ``"asyncio"``: the call becomes a *job* in the loop's guest run (below); the caller awaits an
  asyncio future that the job settles.
* anything else (curio, or no async library at all): a UsageError naming trio and asyncio.

**One guest run per loop.** The first job on an asyncio loop starts a trio run in guest mode on
that loop (``trio.lowlevel.start_guest_run``): trio's scheduler then runs inside the loop's
callbacks, on the loop's thread, and only trio's wait for I/O sits in a helper thread. So the
job's code and every callback it makes (``on_progress`` and the other hooks) run on the loop's
thread, between the loop's own callbacks. The run's main task holds one nursery; every job of
that loop is a task in it, so concurrent calls (``asyncio.gather`` of fifty uploads) share it.

**How a job enters.** On the loop's thread, the caller counts a hold on the run and hands the
job over with ``TrioToken.run_sync_soon`` (thread-safe, and it wakes trio from its I/O wait);
that callback starts the job in the nursery. The job runs the coroutine in a cancel scope of its
own and settles the caller's future, from inside a trio step (so on the loop's thread), with
the result or with the very exception object raised: same type, message, ``__cause__`` and
traceback.

**Cancellation, asyncio to trio.** The caller waits with ``asyncio.wait``, which never cancels
the future, so a cancel of the caller's task (``task.cancel()``, ``asyncio.timeout``,
``asyncio.wait_for``, or Ctrl-C under ``asyncio.run``, which cancels the main task) reaches the
caller alone. It then cancels the job's scope (through ``run_sync_soon``), waits until the job
has run its shielded, time-bounded cleanup (the journal then holds what the server
acknowledged, and the next call resumes), and raises ``CancelledError``. No trio task outlives
the call that started it.

**Cancellation, trio to asyncio.** When the run is cancelled as a whole (its loop is shutting
down), each job's future is cancelled, so its caller sees ``CancelledError``.

**When the run ends.** The holds count the jobs in flight plus the objects that keep trio
resources between calls (an open Client's connection pool, see :class:`RunHome`). When they
drop to zero, the main task leaves and the run ends; the next job starts a new run (once the
old one has finished: a thread hosts one trio run at a time). If the loop shuts down while the
run is still held (``asyncio.run`` cancels every task left at its end, the run's keeper task
among them), the keeper cancels the whole run and waits for it, so no trio task is stranded on
a closed loop. A loop closed by hand without that cleanup strands its run; close Clients first.

**Pinned objects.** A Client's pool holds trio sockets and locks, which belong to the trio run
that made them. A :class:`RunHome` pins its owner to the run that first uses it (and under
asyncio keeps that guest run up until the owner is closed): using the owner under another loop
or run is a UsageError, never undefined behaviour. ``http_client=`` is refused under asyncio the
same way: an ``httpx.AsyncClient``'s connections belong to the loop that opened them, while
tuspipe's requests run on trio.

Blocking calls (``tuspipe.upload``) are :mod:`tuspipe._sync`'s; inside a running asyncio loop
they run trio in a worker thread (see :func:`asyncio_running_here`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

import sniffio
import trio

from ._errors import UsageError

if TYPE_CHECKING:
    import asyncio

    from outcome import Outcome

__all__ = ["RunHome", "any_loop", "any_loop_methods", "asyncio_running_here"]

logger = logging.getLogger("tuspipe")

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C", bound=type)


def any_loop(function: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """`function` (trio code), awaitable from trio and from asyncio alike.

    Under trio it is awaited as it is; under asyncio it runs as a job of the loop's guest run
    (see the module's docstring). Elsewhere the call raises UsageError.
    """
    return _wrapped(function, pinned=False)


def any_loop_methods(cls: C) -> C:
    """Wrap each public coroutine method of `cls` (and ``__aenter__``/``__aexit__``) with
    :func:`any_loop`, in one place.

    If `cls` declares an attribute ``_home: RunHome``, every such call first enters that home
    (inside trio), so that the instance is pinned to one trio run (see :class:`RunHome`).
    """
    pinned = "_home" in inspect.get_annotations(cls)
    for name, member in list(vars(cls).items()):
        public = not name.startswith("_") or name in ("__aenter__", "__aexit__")
        if public and inspect.iscoroutinefunction(member):
            setattr(cls, name, _wrapped(member, pinned=pinned))
    return cls


def _wrapped(
    function: Callable[P, Awaitable[T]], *, pinned: bool
) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(function)
    async def on_the_callers_loop(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = ""
        if library == "trio":
            if pinned:
                args[0]._home.enter()  # type: ignore[attr-defined]  # checked by any_loop_methods
            return await function(*args, **kwargs)
        if library == "asyncio":
            # The job calls this same wrapper again, inside trio, where it takes the path above.
            return await _guest_run().run(functools.partial(on_the_callers_loop, *args, **kwargs))
        where = f"under {library}" if library else "with no event loop running"
        raise UsageError(
            f"{on_the_callers_loop.__qualname__}() was awaited {where}; tuspipe's coroutines run "
            "under trio or asyncio (from other code, call the blocking form, e.g. "
            "tuspipe.upload(), in a worker thread)"
        )

    return on_the_callers_loop


def asyncio_running_here() -> bool:
    """Whether an asyncio event loop is running in this thread (a blocking call made from a
    coroutine, or from a notebook cell)."""
    asyncio = sys.modules.get("asyncio")  # not imported: no loop can be running
    return asyncio is not None and asyncio._get_running_loop() is not None


class RunHome:
    """The trio run in which an object's trio resources live (a Client's connection pool).

    :meth:`enter` (called inside trio at each use) pins the owner to the run that first uses
    it; under asyncio the owner then holds that loop's guest run up until :meth:`leave` (its
    ``aclose``). Use under any other run or loop is a UsageError. If the loop shuts down with
    the owner still open, `close` (the owner's ``aclose``) is awaited as the run ends, since
    nothing could use the owner afterwards. `refuse_asyncio`, if given, is the message of the
    UsageError raised when the owner is first used under asyncio.
    """

    def __init__(
        self,
        owner: str,
        close: Callable[[], Awaitable[None]],
        *,
        refuse_asyncio: str | None = None,
    ) -> None:
        self._owner = owner
        self.close = close
        self._refuse_asyncio = refuse_asyncio
        self._token: trio.lowlevel.TrioToken | None = None
        self._guest: _GuestRun | None = None
        self._where = ""
        self._closed = False

    def enter(self) -> None:
        """Pin the owner to the current trio run, or check that it is the pinned one."""
        token = trio.lowlevel.current_trio_token()
        if token is self._token or self._closed:  # (a closed owner holds nothing to pin)
            return
        guest = _GUEST.get()
        here = "a trio run" if guest is None else "an asyncio event loop"
        if self._token is not None:
            if here == self._where:
                here = "another " + here.split(" ", 1)[1]
            raise UsageError(
                f"this {self._owner} was first used in {self._where} and cannot be used in "
                f"{here}: its connections belong to the event loop that opened them. Open one "
                f"{self._owner} in each event loop (or trio run) that uploads"
            )
        if guest is not None and self._refuse_asyncio is not None:
            raise UsageError(self._refuse_asyncio)
        self._token, self._where = token, here
        if guest is not None:
            guest.hold()
            guest.pinned.add(self)
            self._guest = guest

    @property
    def closed(self) -> bool:
        """Whether :meth:`leave` was called."""
        return self._closed

    def leave(self) -> None:
        """The owner is closed: release the run it held (idempotent; call inside trio)."""
        self._closed = True
        guest, self._guest = self._guest, None
        if guest is not None:
            guest.pinned.discard(self)
            guest.release()


# ---- the guest run ------------------------------------------------------------------------

# Seconds the objects left open on a closing loop get to close.
_CLOSE_TIMEOUT = 5.0

_GUEST: trio.lowlevel.RunVar[_GuestRun | None] = trio.lowlevel.RunVar(
    "tuspipe_guest_run", default=None
)
# The live guest run of each asyncio loop (touched on the loops' own threads only).
_guests: dict[asyncio.AbstractEventLoop, _GuestRun] = {}


def _guest_run() -> _GuestRun:
    """The running asyncio loop's guest run: the live one, or a new one (which starts once the
    loop's previous run, if it is still ending, has ended)."""
    import asyncio  # already imported: sniffio found asyncio running

    loop = asyncio.get_running_loop()
    guest = _guests.get(loop)
    if guest is None or not guest.accepting:
        guest = _GuestRun(loop, after=guest)
        _guests[loop] = guest
    return guest


class _Job(Generic[T]):
    """One call made from asyncio: the trio coroutine, its cancel scope, the caller's future."""

    def __init__(self, call: Callable[[], Awaitable[T]], done: asyncio.Future[T]) -> None:
        self.call = call
        self.done = done
        self.scope = trio.CancelScope()

    async def run(self, guest: _GuestRun) -> None:
        """Run the call and settle the future (a task of the guest run: on the loop's thread)."""
        done = self.done
        try:
            with self.scope:
                value = await self.call()
                if not done.done():
                    done.set_result(value)
            if self.scope.cancelled_caught and not done.done():  # the caller waits for this
                done.cancel()
        except BaseException as error:
            if _is_cancellation(error):  # the whole run is being cancelled: pass it on
                done.cancel()
                raise
            if not done.done():
                done.set_exception(error)
        finally:
            guest.release()


def _is_cancellation(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(trio.Cancelled) is not None
    return isinstance(error, trio.Cancelled)


class _GuestRun:
    """A trio run in guest mode on one asyncio loop, hosting every tuspipe job on it.

    Everything here happens on the loop's thread: the asyncio side of a call, and trio's
    steps (the guest run's callbacks). So the hold count needs no lock.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, after: _GuestRun | None) -> None:
        self.loop = loop
        self.accepting = True  # False from the moment the run is told to end
        self.ended: asyncio.Future[None] = loop.create_future()
        self._holds = 0
        self.pinned: set[RunHome] = set()  # the open objects pinned to this run
        self._stop = trio.Event()
        self._scope = trio.CancelScope()  # the whole run's: cancelled if the loop shuts down
        self._nursery: trio.Nursery | None = None
        self._waiting: list[_Job[Any]] = []  # jobs handed over before the nursery opened
        self._token: trio.lowlevel.TrioToken | None = None
        self._keeper: asyncio.Future[None] | None = None
        if after is None:
            self.loop.call_soon(self._start)
        else:  # a thread hosts one trio run at a time
            after.ended.add_done_callback(lambda _: self._start())

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call` as a job of this run and return (or raise) what it does; see the
        module's docstring for cancellation."""
        import asyncio

        job = _Job(call, self.loop.create_future())
        self._holds += 1  # before the hand-over: the run cannot end with a job on its way
        if self._token is None:
            self._waiting.append(job)  # started by the run's main task
        else:
            self._token.run_sync_soon(self._begin, job)
        try:
            await asyncio.wait([job.done])
        except asyncio.CancelledError:
            self._cancel(job)
            await _outwait(job.done)
            if not job.done.cancelled():
                job.done.exception()  # retrieved: the cancellation supersedes it
            raise
        result: T = job.done.result()
        return result

    def _start(self) -> None:
        """Start the trio run, unless every job left before it could (a loop callback)."""
        import asyncio

        if self._holds == 0:
            self._finished(None)
            return
        try:
            trio.lowlevel.start_guest_run(
                self._main,
                run_sync_soon_threadsafe=self._soon_threadsafe,
                run_sync_soon_not_threadsafe=self.loop.call_soon,
                done_callback=self._finished,
                # asyncio, not trio, owns this thread's signal wakeup fd
                host_uses_signal_set_wakeup_fd=True,
            )
        except RuntimeError as error:  # trio's "Attempted to call run() from inside a run()"
            failure = UsageError(
                "tuspipe cannot start its trio run on this asyncio loop: another trio run is "
                "live in this thread (a tuspipe.Client left open on another event loop here, "
                f"or a trio guest run of your own): {error}"
            )
            for job in self._waiting:
                job.done.set_exception(failure)
            self._waiting.clear()
            self._finished(None)
            return
        self._token = trio.lowlevel.current_trio_token()
        self._keeper = asyncio.ensure_future(self._keep(), loop=self.loop)

    def _soon_threadsafe(self, step: Callable[[], object]) -> None:
        try:
            self.loop.call_soon_threadsafe(step)
        except RuntimeError:  # the loop was closed under a live run: nothing can run it now
            logger.warning("an asyncio loop was closed while tuspipe's trio run on it was live")

    async def _main(self) -> None:
        _GUEST.set(self)
        with self._scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for job in self._waiting:
                    nursery.start_soon(job.run, self)
                self._waiting.clear()
                await self._stop.wait()
        self._nursery = None
        # Ending with the loop: close what is still pinned to the run (a Client left open),
        # as nothing can use it afterwards. Shielded, and bounded like every cleanup.
        with trio.CancelScope(shield=True, deadline=trio.current_time() + _CLOSE_TIMEOUT):
            for home in list(self.pinned):
                await home.close()

    def _begin(self, job: _Job[Any]) -> None:
        """Start `job` (a trio callback, from run_sync_soon; it must not raise)."""
        try:
            if self._nursery is None:
                raise RuntimeError("the nursery is not open")
            self._nursery.start_soon(job.run, self)
        except RuntimeError:  # not open yet (main drains the list), or closing with the loop
            self._waiting.append(job)  # (and then cancelled as the run ends)

    def hold(self) -> None:
        """One more job or pinned object keeps the run up."""
        self._holds += 1

    def release(self) -> None:
        """One fewer; at none the run ends (inside trio, or before the run started)."""
        self._holds -= 1
        if self._holds == 0:
            self.accepting = False
            self._stop.set()

    def _cancel(self, job: _Job[Any]) -> None:
        """Cancel `job` for its caller."""
        if job in self._waiting:  # not started: it never will be
            self._waiting.remove(job)
            job.done.cancel()
            self.release()
        elif self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(job.scope.cancel)

    async def _keep(self) -> None:
        """Wait for the run's end; if cancelled first (the loop is shutting down: asyncio.run
        cancels every task left), cancel the whole run and wait for its end."""
        import asyncio

        try:
            await asyncio.wait([self.ended])
        except asyncio.CancelledError:
            self.accepting = False
            if self._token is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(self._scope.cancel)
            await _outwait(self.ended)
            raise

    def _finished(self, run_outcome: Outcome[None] | None) -> None:
        """The run is over (trio's done callback, on the loop's thread), or never started."""
        self.accepting = False
        if _guests.get(self.loop) is self:
            del _guests[self.loop]
        for job in self._waiting:
            job.done.cancel()
        self._waiting.clear()
        self.ended.set_result(None)
        if run_outcome is None:
            return
        try:
            run_outcome.unwrap()
        except (KeyboardInterrupt, SystemExit):
            raise  # out of the loop, as a Ctrl-C in the loop's own code would
        except BaseException as error:
            self.loop.call_exception_handler(
                {"message": "tuspipe's trio guest run failed", "exception": error}
            )


async def _outwait(future: asyncio.Future[Any]) -> None:
    """Wait until `future` is done, through any cancellation of the waiting task (whose
    caller raises CancelledError afterwards)."""
    import asyncio

    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            continue
