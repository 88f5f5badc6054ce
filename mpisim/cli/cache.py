"""``mpisim cache``: where the system-matrix cache is, what it holds, clearing it."""

from .. import cache

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("cache", help="list or clear the system-matrix cache",
                       description="Show where the system-matrix cache is (path), what it holds (list: size and "
                                   "summary of each entry) or empty it (clear). Outputs linked to an entry keep "
                                   "their content when the cache is cleared.")
    p.add_argument("action", choices=["list", "clear", "path"], help="list, clear or path")
    p.add_argument("--cache-dir", default=None,
                   help="cache folder (default $MPISIM_CACHE_DIR, else ~/.cache/mpisim)")
    p.set_defaults(func=run)


def run(args):
    if args.action == "path":
        print(cache.cache_dir(args.cache_dir))
    elif args.action == "list":
        entries = cache.list_entries(args.cache_dir)
        if not entries:
            print(f"cache {cache.cache_dir(args.cache_dir)} is empty")
        for p, size, summary in entries:
            print(f"{size / 1e6:10.1f} MB  {p.name}  {summary}")
    else:
        n = cache.clear(args.cache_dir)
        print(f"removed {n} file(s) from {cache.cache_dir(args.cache_dir)}")
