"""Every interleaving of two operations, driven through a store that pauses at each step.

A *step* is one call of a document store's byte-level primitives (create, read, exists, list,
delete)
that the scenario names as contended for the operation making it: a write the other operation
may read, or a read of what the other operation may write. The
two operations run in threads; each stops before every step and a controller lets one of them
go. Where both wait, it branches: the exploration runs the scenario again and again, each time
with another sequence of choices, depth first, until every distinct interleaving of the steps
as they actually happen has run once (stateless model checking). Steps on other keys (a CA's
certificate, say) run freely: neither operation writes them.

The store is the adapter's own class with its primitives wrapped (`stepping_store`): the local
directory and S3 (under moto) run their real code. Each operation's own calls run one after the
other (the S3 adapter's concurrent reads and writes are turned off), so that its steps are in a
definite order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chalicelib.adapters.documents import DocumentStore
from chalicelib.ports.store import CertificateState

StoreClass = TypeVar("StoreClass", bound=type[DocumentStore])
STEP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Step:
    operation: str
    primitive: str  # create, read, exists, keys or delete
    key: str


class Controller:
    """Lets one waiting operation take its next step at a time, in the order `choices` says
    where both wait (0: the first operation, 1: the second), then the first by default."""

    def __init__(self, choices: Sequence[int]) -> None:
        self._names: list[str] = []
        self._choices = list(choices)
        self._condition = threading.Condition()
        self._waiting: dict[str, Step] = {}
        self._running: set[str] = set()
        self._released: str | None = None
        self.trace: list[Step] = []
        self.branches: list[int] = []  # at each branch point: the choice made
        self._local = threading.local()

    def start(self, names: Sequence[str]) -> None:
        """The operations about to run, in the order choice 0 and 1 name them."""
        self._names = list(names)
        self._running = set(names)

    def bind(self, operation: str) -> None:
        """The calling thread runs `operation` (its steps are that operation's)."""
        self._local.operation = operation

    def step(self, primitive: str, key: str, contended: Contended) -> None:
        operation = getattr(self._local, "operation", None)
        if operation is None or not contended(operation, primitive, key):
            return  # setup and checks, or a call the other operation cannot affect
        with self._condition:
            self._waiting[operation] = Step(operation, primitive, key)
            self._running.discard(operation)
            self._condition.notify_all()
            if not self._condition.wait_for(
                lambda: self._released == operation, STEP_TIMEOUT_SECONDS
            ):
                raise TimeoutError(f"{operation} waited {STEP_TIMEOUT_SECONDS} s at {key}")
            self._released = None
            self._running.add(operation)

    def finished(self, operation: str) -> None:
        with self._condition:
            self._running.discard(operation)
            self._condition.notify_all()

    def drive(self) -> None:
        """Release waiting operations one at a time until none is left."""
        while True:
            with self._condition:
                if not self._condition.wait_for(lambda: not self._running, STEP_TIMEOUT_SECONDS):
                    raise TimeoutError(f"{sorted(self._running)} neither stepped nor finished")
                waiting = [name for name in self._names if name in self._waiting]
                if not waiting:
                    return
                if len(waiting) > 1:
                    depth = len(self.branches)
                    choice = self._choices[depth] if depth < len(self._choices) else 0
                    self.branches.append(choice)
                    chosen = waiting[choice]
                else:
                    chosen = waiting[0]
                self.trace.append(self._waiting.pop(chosen))
                self._released = chosen
                self._running.add(chosen)
                self._condition.notify_all()


Contended = Callable[[str, str, str], bool]
"""(operation, primitive, key) -> whether that call is a step."""


def stepping_store(
    store_class: StoreClass, contended: Contended, controller: Callable[[], Controller | None]
) -> StoreClass:
    """`store_class` with a pause before each contended primitive call."""

    class Stepping(store_class):  # type: ignore[valid-type,misc]
        writers = 1  # one write at a time, in the operation's own order

        def _pause(self, primitive: str, key: str) -> None:
            current = controller()
            if current is not None:
                current.step(primitive, key, contended)

        def _create(self, key: str, data: bytes) -> None:
            self._pause("create", key)
            return super()._create(key, data)

        def _read(self, key: str) -> bytes | None:
            self._pause("read", key)
            return super()._read(key)

        def _exists(self, key: str) -> bool:
            self._pause("exists", key)
            return super()._exists(key)

        def _keys(self, prefix: str) -> Iterator[str]:
            self._pause("keys", prefix)
            return super()._keys(prefix)

        def _delete(self, key: str) -> None:
            self._pause("delete", key)
            return super()._delete(key)

        def certificate_states(self, names: Sequence[tuple[str, str]]) -> list[CertificateState]:
            return DocumentStore.certificate_states(self, names)  # one read after the other

    Stepping.__name__ = f"Stepping{store_class.__name__}"
    return Stepping  # type: ignore[return-value]


@dataclass
class Run:
    """One interleaving: the steps in the order they ran, and what each operation returned
    (or raised)."""

    trace: list[Step]
    outcomes: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)

    def index(self, operation: str, primitive: str, key_part: str) -> int | None:
        """Where in the trace `operation` first took such a step (None: never)."""
        for position, step in enumerate(self.trace):
            if (step.operation, step.primitive) == (operation, primitive) and key_part in step.key:
                return position
        return None

    def last(self, operation: str) -> int:
        return max(i for i, step in enumerate(self.trace) if step.operation == operation)


Operation = Callable[[], Any]


def run_once(
    controller: Controller, operations: dict[str, Operation], expected: tuple[type, ...]
) -> Run:
    """Both operations in threads under `controller`; `expected` errors are outcomes."""
    run = Run(controller.trace)
    controller.start(list(operations))

    def body(name: str, operation: Operation) -> None:
        controller.bind(name)
        try:
            run.outcomes[name] = operation()
        except expected as err:
            run.outcomes[name] = err
        except BaseException as err:  # reported by the test, not lost in the thread
            run.errors[name] = err
        finally:
            controller.finished(name)

    threads = [
        threading.Thread(target=body, args=(name, operation), daemon=True)
        for name, operation in operations.items()
    ]
    for thread in threads:
        thread.start()
    controller.drive()
    for thread in threads:
        thread.join(STEP_TIMEOUT_SECONDS)
    return run


def explore(
    prepare: Callable[[Controller], dict[str, Operation]],
    check: Callable[[Run], None],
    expected: tuple[type, ...],
    limit: int = 5000,
) -> int:
    """Run every interleaving once, depth first; `prepare` sets up a fresh scenario (the
    controller is the one its store must ask) and returns the two operations by name; `check`
    asserts the invariants of each run. Returns how many interleavings ran."""
    pending: list[list[int]] = [[]]
    runs = 0
    while pending:
        choices = pending.pop()
        controller = Controller(choices)
        run = run_once(controller, prepare(controller), expected)
        if run.errors:
            name, error = next(iter(run.errors.items()))
            raise AssertionError(
                f"{name} failed in interleaving {controller.branches}: {error!r}"
            ) from error
        try:
            check(run)
        except AssertionError as failed:
            steps = "\n".join(f"  {step.operation}: {step.primitive} {step.key}"
                              for step in run.trace)  # fmt: skip
            raise AssertionError(f"{failed}\nin this interleaving:\n{steps}") from failed
        runs += 1
        if runs > limit:
            raise AssertionError(f"more than {limit} interleavings: narrow the contended keys")
        # every branch point past the forced prefix where 0 was taken has an untried 1
        for depth in range(len(choices), len(controller.branches)):
            if controller.branches[depth] == 0:
                pending.append([*controller.branches[:depth], 1])
    return runs
