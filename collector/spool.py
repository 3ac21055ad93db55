"""The disk spool: line-protocol batches InfluxDB could not take yet.

SQLite in WAL mode with ``synchronous=FULL``: a ``put`` that returned is on
disk (the collector acknowledges MQTT messages after that). Batches leave
oldest first, and only when the caller ``remove``s them after InfluxDB took
them. The spool is bounded in bytes: past the bound the oldest batches are
dropped and counted (``dropped_total``, ``dropped_lines_total``), and the
counts survive restarts. The batch just put is never the one dropped, so a
single batch larger than the bound is kept.

One connection behind a lock: the writer thread and a drain may share it.
One ``Spool`` per file (the totals are kept in memory): one collector process.
"""

from __future__ import annotations

from pathlib import Path

from collector.line_protocol import count_lines
from plumbing.durable import DurableStore

__all__ = ["DEFAULT_MAX_BYTES", "Spool"]

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lines TEXT NOT NULL,
    n_lines INTEGER NOT NULL,
    n_bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counter (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counter (name, value) VALUES ('dropped_batches', 0), ('dropped_lines', 0);
"""


class Spool(DurableStore):
    """Durable FIFO of line-protocol batches, bounded by size."""

    SCHEMA = _SCHEMA

    def __init__(self, path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self.max_bytes = max_bytes
        # Transactions are explicit (BEGIN IMMEDIATE … COMMIT).
        super().__init__(path)
        # Totals kept in memory so put() needs no SUM over the table.
        self._depth, self._lines, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(n_lines), 0), coalesce(sum(n_bytes), 0) FROM batch"
        ).fetchone()

    def put(self, lines: str) -> None:
        """Store a batch; it is on disk when this returns. Empty batches are ignored."""
        n_lines = count_lines(lines)
        if n_lines == 0:
            return
        n_bytes = len(lines.encode())
        with self._lock:
            totals = (self._depth + 1, self._lines + n_lines, self._bytes + n_bytes)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO batch (lines, n_lines, n_bytes) VALUES (?, ?, ?)",
                    (lines, n_lines, n_bytes),
                )
                if totals[2] > self.max_bytes:
                    totals = self._drop_oldest(*totals)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth, self._lines, self._bytes = totals

    def _drop_oldest(self, depth: int, total_lines: int, total_bytes: int) -> tuple[int, int, int]:
        dropped_batches = dropped_lines = 0
        rows = self._db.execute("SELECT id, n_lines, n_bytes FROM batch ORDER BY id")
        doomed: list[int] = []
        for batch_id, n_lines, n_bytes in rows:
            if total_bytes <= self.max_bytes or depth == 1:
                break
            doomed.append(batch_id)
            depth, total_lines, total_bytes = (
                depth - 1,
                total_lines - n_lines,
                total_bytes - n_bytes,
            )
            dropped_batches, dropped_lines = dropped_batches + 1, dropped_lines + n_lines
        rows.close()
        self._db.executemany("DELETE FROM batch WHERE id = ?", [(i,) for i in doomed])
        self._db.execute(
            "UPDATE counter SET value = value + ? WHERE name = 'dropped_batches'",
            (dropped_batches,),
        )
        self._db.execute(
            "UPDATE counter SET value = value + ? WHERE name = 'dropped_lines'", (dropped_lines,)
        )
        return depth, total_lines, total_bytes

    def peek_oldest(self) -> tuple[int, str] | None:
        """The oldest batch as ``(id, lines)``, left in the spool; ``None`` when empty."""
        with self._lock:
            row = self._db.execute("SELECT id, lines FROM batch ORDER BY id LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def remove(self, batch_id: int) -> None:
        """Forget a batch (InfluxDB has it). Removing an unknown id does nothing."""
        with self._lock:
            row = self._db.execute(
                "DELETE FROM batch WHERE id = ? RETURNING n_lines, n_bytes", (batch_id,)
            ).fetchone()
            if row is not None:
                self._depth -= 1
                self._lines -= row[0]
                self._bytes -= row[1]

    def depth(self) -> int:
        """Batches waiting."""
        return int(self._depth)

    def lines_count(self) -> int:
        """Lines (points) waiting."""
        return int(self._lines)

    def size_bytes(self) -> int:
        """UTF-8 bytes of line protocol waiting."""
        return int(self._bytes)

    def _counter(self, name: str) -> int:
        with self._lock:
            (value,) = self._db.execute(
                "SELECT value FROM counter WHERE name = ?", (name,)
            ).fetchone()
        return int(value)

    @property
    def dropped_total(self) -> int:
        """Batches dropped to stay within ``max_bytes``, over the spool's life."""
        return self._counter("dropped_batches")

    @property
    def dropped_lines_total(self) -> int:
        """Lines (points) in those dropped batches."""
        return self._counter("dropped_lines")
