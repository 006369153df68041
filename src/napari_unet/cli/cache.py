"""``napari-unet cache list|clean``: the out-of-core label stores of the Segment dock."""

from __future__ import annotations

import time

from ._common import non_negative_float


def add_parser(sub) -> None:
    cache = sub.add_parser("cache", help="list or remove the label stores the Segment dock "
                                         "wrote for large layers")
    actions = cache.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", help="stores, sizes and ages")
    ls.set_defaults(func=run_list)
    clean = actions.add_parser("clean", help="remove stores (hand edits in them are lost)")
    clean.add_argument("--older-than", type=non_negative_float, default=0.0, metavar="DAYS",
                       help="only stores not modified for this many days")
    clean.add_argument("--dry-run", action="store_true", help="only say what would go")
    clean.set_defaults(func=run_clean)


def run_list(args) -> int:
    from ..cache import cache_entries, format_bytes
    from ..paths import results_dir

    entries = cache_entries()
    for e in entries:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.modified))
        print(f"{format_bytes(e.size):>10}  {stamp}  {e.path.name}")
    total = sum(e.size for e in entries)
    print(f"{len(entries)} stores, {format_bytes(total)} in {results_dir()}")
    return 0


def run_clean(args) -> int:
    from ..cache import clean_cache, format_bytes

    removed = clean_cache(older_than_days=args.older_than, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.path}")
    print(f"{verb} {len(removed)} stores, {format_bytes(sum(e.size for e in removed))}")
    return 0
