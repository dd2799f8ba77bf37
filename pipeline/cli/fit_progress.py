"""How `mmpipe fit` shows its progress on stderr: on a terminal, a rich progress bar per seed being
fitted (the stage, epochs done of the stage's cap, the time left, the loop's last message); in a
log (stderr not a terminal), one plain line when a stage ends, never a redrawn bar. Fed by
`pipeline.fit.fit_runs`'s ``on_epoch`` events, from worker processes too (``--jobs``)."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Column

from mmpipe.adapters.progress import EpochEvent


class FitProgress:
    """``with FitProgress(console) as shown: fit_runs(..., on_epoch=shown.epoch, progress=shown.message)``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        note = Column(no_wrap=True, overflow="ellipsis", ratio=1)  # the bar keeps its width, the message gives way
        self.bar = Progress(TextColumn("{task.description}", table_column=Column(no_wrap=True)),
                            BarColumn(bar_width=30), MofNCompleteColumn(), TextColumn("epochs"), TimeRemainingColumn(),
                            TextColumn("{task.fields[note]}", markup=False, table_column=note),
                            console=console, expand=True) if console.is_terminal else None
        self._tasks: dict[int, tuple[TaskID, str]] = {}  # seed -> (its bar, its current stage)
        self._current: int | None = None  # the seed fitting in this process (its text messages)
        self._lock = threading.Lock()  # events arrive on the worker-event thread with --jobs

    def __enter__(self) -> FitProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.stop()

    def epoch(self, seed: int, event: EpochEvent) -> None:
        with self._lock:
            self._current = seed
            if self.bar is None:
                if event.last:
                    self.console.print(f"seed {seed}: {event.stage} stage ended after {event.epoch} of {event.cap} "
                                       "epochs", markup=False, highlight=False)
                return
            description = f"seed {seed} {event.stage}"
            task, stage = self._tasks.get(seed, (None, None))
            if task is None:
                task = self.bar.add_task(description, total=event.cap, note="")
            elif stage != event.stage:
                self.bar.reset(task, total=event.cap, description=description, note="")
            self._tasks[seed] = (task, event.stage)
            self.bar.update(task, completed=event.cap if event.last else event.epoch)

    def message(self, text: str) -> None:
        """A training loop's text message (losses), shown beside the bar of the seed fitting here."""
        with self._lock:
            if self.bar is not None and self._current in self._tasks:
                self.bar.update(self._tasks[self._current][0], note=text)
