"""`python -m serving.cli rank --user U --domain D [--query TEXT] --items I1,I2,...` and `... serve`."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from serving.http import ENV_CHECKPOINT, ENV_ONLINE, ENV_WARM_UP
from serving.ranking_request import RankingRequestError
from unisr_data.paths import Paths


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=os.environ.get("UNISR_DATASET", "synthetic"))
    parser.add_argument("--var-dir", type=Path, default=None, help="pipeline root (default $UNISR_VAR_DIR or ./var)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="serve this file, not the promoted model")
    parser.add_argument("--online", choices=["sqlite", "redis"], default="sqlite",
                        help="online store; redis reads its address from $UNISR_REDIS")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rank = sub.add_parser("rank", help="rank candidates once and print JSON")
    _common(rank)
    rank.add_argument("--user", required=True)
    rank.add_argument("--domain", required=True, help="domain id or name")
    rank.add_argument("--query", default=None)
    rank.add_argument("--items", required=True, help="comma-separated candidate item ids")
    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="processes, each with its own model copy")
    serve.add_argument("--torch-threads", type=int, default=1,
                       help="intra-op threads per worker; 1 avoids oversubscribing cores under concurrent requests")
    serve.add_argument("--no-warm-up", action="store_true", help="load the query encoder on the first unseen query")
    return parser


def _fail(err: Exception) -> int:
    """One line on stderr, exit status 2: what was refused and why, no traceback."""
    print("error: " + " ".join(str(err).splitlines()), file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = args.var_dir or Paths.default().root
    if args.command == "rank":
        from models.inference import NonFiniteScoresError
        from serving.limits import ServingLimits
        from serving.ranker import Ranker

        try:
            ranker = Ranker(Paths(root, args.dataset), args.checkpoint, online=args.online,
                            limits=ServingLimits.from_env())
        except (FileNotFoundError, ValueError) as err:  # nothing promoted, no online store, a refused checkpoint
            return _fail(err)
        domain = int(args.domain) if args.domain.isascii() and args.domain.isdecimal() else args.domain
        try:
            version, ranked = ranker.rank_with_version(args.user, domain, args.query,
                                                       [i for i in args.items.split(",") if i])
        except (RankingRequestError, NonFiniteScoresError) as err:
            return _fail(err)
        print(json.dumps({"model_version": version,
                          "items": [{"item_id": r.item_id, "score": r.score} for r in ranked]}, indent=2,
                         allow_nan=False))
        return 0

    import torch
    import uvicorn

    from serving.limits import ServingLimits
    from serving.ranker import Ranker

    # refuse a bad checkpoint, store or limit here, in one line, rather than in a traceback from every worker
    try:
        Ranker(Paths(root, args.dataset), args.checkpoint, online=args.online, limits=ServingLimits.from_env())
    except (FileNotFoundError, ValueError) as err:
        return _fail(err)
    # workers are separate processes: hand them the configuration through their environment
    os.environ.update({"UNISR_VAR_DIR": str(root), "UNISR_DATASET": args.dataset, ENV_ONLINE: args.online,
                       ENV_WARM_UP: "0" if args.no_warm_up else "1",
                       "OMP_NUM_THREADS": str(args.torch_threads)})
    if args.checkpoint is not None:
        os.environ[ENV_CHECKPOINT] = str(args.checkpoint.resolve())
    torch.set_num_threads(args.torch_threads)
    uvicorn.run("serving.http:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
