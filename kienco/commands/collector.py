"""``kienco collector run``: the centre's collector (``pip install '.[collector]'``);
``kienco collector check-shards``: a national deployment's shard configs, together."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kienco.commands import Subcommands


def run(args: argparse.Namespace) -> int:
    from collector.config import load_collector_config
    from collector.heap import keep_settled, settle
    from collector.service import Collector
    from plumbing.config_errors import ConfigError
    from plumbing.secrets import unreadable_secrets

    config = load_collector_config(args.config)
    # A secret it cannot read stops it now, naming the key (exit 2: restarting cannot help).
    if problems := unreadable_secrets(config):
        raise ConfigError(str(args.config), problems)
    collector = Collector(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    collector.start()
    # Started: what is alive now (code, config, restored state) leaves the garbage
    # collector's walks, which stop every thread (collector/heap.py).
    frozen = settle()
    keep_settled()  # and what survives each full collection from now on
    logging.getLogger("kienco.collector").info(
        "collector: %s %s -> %s; API and /metrics on %s; %d objects of the start frozen",
        config.broker.url,
        " ".join(config.topic_filters),
        f"{config.influx.url}/{config.influx.database}" if config.influx else "no history",
        collector.api.url if collector.api else "-",
        frozen,
    )
    stop.wait()
    collector.stop()
    _audit_heap()
    return 0


# Past this much leaked by freezing, the heap audit at stop warns (collector/heap.py).
LEAK_WARN_BYTES = 1 << 20


def _audit_heap() -> None:
    """After a clean stop (everything saved): what freezing leaked (collector/heap.py)."""
    from collector.heap import audit

    log = logging.getLogger("kienco.collector")
    started = time.monotonic()
    try:
        leaked = audit()
    except Exception:  # a diagnostic after a clean stop: it must not turn it into a failure
        log.exception("collector: heap audit at stop failed (the stop itself was clean)")
        return
    took_s = time.monotonic() - started
    if not leaked.count:
        log.info(
            "collector: heap audit at stop: 0 objects had been kept frozen as garbage (%.1f s)",
            took_s,
        )
        return
    grew = leaked.size_bytes > LEAK_WARN_BYTES
    log.log(
        logging.WARNING if grew else logging.INFO,
        "collector: heap audit at stop: %d objects (%.1f kB) had been kept frozen as garbage "
        "in reference cycles, never collected while running (%.1f s; %s)%s",
        leaked.count,
        leaked.size_bytes / 1024,
        took_s,
        ", ".join(f"{name} {n}" for name, n in leaked.by_type.most_common(8)),
        "; the process grew by them: please report it" if grew else "",
    )


def check_shards(args: argparse.Namespace) -> int:
    """Every problem of the shards together (collector/shard_plan.py): 1 if any is an error."""
    from collector.config import load_collector_config
    from collector.inventory import load_inventory
    from collector.shard_plan import Shard, check

    shards = [Shard(str(path), load_collector_config(path)) for path in args.configs]
    inventory = load_inventory(args.inventory) if args.inventory else None
    problems = check(shards, inventory)
    label = {"error": ("lỗi", "error"), "warning": ("lưu ý", "warning")}
    for problem in problems:
        vi, en = label[problem.level]
        print(f"{vi if args.lang == 'vi' else en}: {problem.text(args.lang)}")
    errors = sum(p.level == "error" for p in problems)
    carried = sorted({p for s in shards for p in s.config.provinces or ()})
    summary = {
        "vi": f"{len(shards)} shard, {len(carried)} tỉnh; {errors} lỗi, "
        f"{len(problems) - errors} lưu ý",
        "en": f"{len(shards)} shard(s), {len(carried)} province(s); {errors} error(s), "
        f"{len(problems) - errors} warning(s)",
    }
    print(summary[args.lang])
    return 1 if errors else 0


def add_parser(sub: Subcommands) -> None:
    collector = sub.add_parser("collector", help="the centre's collector").add_subparsers(
        dest="collector_cmd", required=True
    )
    running = collector.add_parser("run", help="receive, validate and store every report")
    running.add_argument("--config", type=Path, required=True, help="collector config (YAML)")
    running.set_defaults(func=run)
    checking = collector.add_parser(
        "check-shards",
        help="a national deployment's shard configs together: every inventory province "
        "carried by exactly one shard",
        description="Loads each shard's config as `collector run` would and checks them "
        "together: a province carried by two shards, an inventory province carried by none "
        "(its sites judged by no one), two shards of one name, a shard's province with no "
        "inventory site. Exit status: 0 none is an error, 1 some are, 2 a config or the "
        "inventory cannot be loaded (key, value, fix).",
    )
    checking.add_argument("configs", type=Path, nargs="+", help="every shard's config (YAML)")
    checking.add_argument(
        "--inventory", type=Path, help="the national inventory (CSV or YAML) the shards share"
    )
    checking.add_argument("--lang", choices=["vi", "en"], default="vi")
    checking.set_defaults(func=check_shards)
