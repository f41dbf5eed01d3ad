"""Pipeline stages at several data sizes: seconds, peak RSS and growth exponent per stage, full run vs daily tick.

The stages are the library calls the Dagster assets and asset checks make (orchestration/assets/*.py,
orchestration/checks/*.py), without Dagster: write_source, land_days, validate, the Great Expectations suites of
the raw tables and the marts, `dbt build`, export_marts, text embeddings, Feast apply / materialize, the training
folders and (`--train-epoch`) one epoch of one model. Each stage runs in its own subprocess, so its peak RSS is
that process's own (os.wait4's ru_maxrss, dbt and DuckDB included: both run in-process); its seconds are the call
alone, without interpreter start and imports.

Per size, in its own temporary var dir (unisr_data.paths.Paths):
  full run    every stage over all days;
  daily tick  after an untimed build over all days but the last, the same stages for the last day only: landing of
              that day, validate(days=[last]), dbt's incremental build of that day, Feast materialize_incremental,
              training folders appended — each where the code has the incremental API; where it does not, the stage
              rebuilds everything and the table says "full rebuild".

`--grow volume` (default) keeps the generator's 21 days and raises the daily volume; `--grow days` keeps the daily
volume (`--daily-impressions`, default the default data set's 400k / 21) and raises the number of days, i.e. more
history: the issue's criterion "at 10x the history the daily tick <= 1.5x the default-size tick" is the tick
growth printed in that mode.

Reference measured in the same run: the first size. Printed: stage x size (seconds, peak MiB), each stage's growth
exponent (least-squares slope of log seconds vs log impressions; 1 = linear, > 1.15 flagged super-linear), the
tick / full-run ratio and the tick's growth against the first size; the same tables as markdown in `--out`.

    .venv/bin/python benchmarks/bench_pipeline_scale.py                          # 0.3M,1M
    .venv/bin/python benchmarks/bench_pipeline_scale.py --sizes 0.3M,1M,3M,10M   # 10M: data stages only
    .venv/bin/python benchmarks/bench_pipeline_scale.py --grow days --sizes 0.4M,4M --skip-embeddings
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Stages of the full run, in order; the data stages run at every size, the rest below `--data-only-from`.
DATA_STAGES = ("source", "landing", "validate", "raw_checks", "dbt_build", "mart_checks", "export_marts")
FEATURE_STAGES = ("embeddings", "feast_apply", "materialize", "training_sets")
TICK_STAGES = ("landing", "validate", "raw_checks", "dbt_build", "mart_checks", "export_marts", *FEATURE_STAGES)
SUPER_LINEAR = 1.15
DEFAULT_DAYS = 21
DEFAULT_DAILY = 400_000 / DEFAULT_DAYS


# ---------------------------------------------------------------------------------------------------- the stages
# Each runs in a child process: `stage_<name>(paths, **args) -> dict` (the dict's "mode" says full or incremental).


#: The source's days, listed once by the source stage (as the pipeline's source_data asset lists them to register
#: its partitions): a tick stage is told its day, as a Dagster run is told its partition key, rather than listing
#: the whole source again inside its timed call.
DAYS_FILE = ".bench-days.json"


def _days(paths) -> list[str]:
    return json.loads((paths.source_dir / DAYS_FILE).read_text())


def stage_source(paths, n_impressions: int, n_days: int, seed: int = 7) -> dict:
    from unisr_data.landing import source_days
    from unisr_data.sources import write_source

    counts = write_source("synthetic", paths.source_dir, seed=seed, n_impressions=n_impressions, n_days=n_days)
    (paths.source_dir / DAYS_FILE).write_text(json.dumps(source_days(paths.source_dir)))
    return {"rows": int(counts.get("impressions", 0))}


def stage_landing(paths, which: str = "all") -> dict:
    """which: all | all_but_last | last."""
    from unisr_data.landing import land_days

    days = _days(paths)
    days = {"all": days, "all_but_last": days[:-1], "last": days[-1:]}[which]
    counts = land_days(paths.source_dir, paths.landing_dir, days)
    return {"days": len(days), "rows": int(sum(v for k, v in counts.items() if k.startswith("impressions_")))}


def _accepts(function, name: str) -> bool:
    return name in inspect.signature(function).parameters


def stage_validate(paths, last_day_only: bool = False) -> dict:
    from unisr_data.validation import validate

    kwargs, mode = {}, "full"
    if last_day_only:
        if _accepts(validate, "days"):
            kwargs["days"], mode = _days(paths)[-1:], "incremental"
        else:
            mode = "full rebuild (validate has no days=)"
    report = validate(paths.landing_dir, paths.raw_dir, paths.quarantine_dir, **kwargs)
    return {"mode": mode, "clean_impressions": int(report.tables["impressions"].clean)}


def stage_raw_checks(paths, last_day_only: bool = False) -> dict:
    """The raw tables' asset checks (orchestration/checks/ingest.py): rows conserved, quarantine share and the GE
    suite; after a daily validation the impression checks look at the day's parts only, as the checks do."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from unisr_data.contract import TABLES, parquet_rows, table_path
    from unisr_data.quality import check_frame

    parts, mode = None, "full"
    if last_day_only:
        try:
            from unisr_data.validation import impression_part_names
        except ImportError:
            mode = "full rebuild (no per-day validation)"
        else:
            parts, mode = impression_part_names(_days(paths)[-1:]), "incremental"
    failed = []
    for table in TABLES:
        folders = [table_path(d, table) for d in (paths.landing_dir, paths.raw_dir, paths.quarantine_dir)]
        day_parts = parts if table == "impressions" else None
        if day_parts is None:
            landing, clean, quarantined = (parquet_rows(f) for f in folders)
            data = pq.read_table(folders[1])
        else:
            landing, clean, quarantined = (sum(parquet_rows(f / name) for name in day_parts) for f in folders)
            data = pa.concat_tables([pq.read_table(folders[1] / name) for name in day_parts
                                     if (folders[1] / name).exists()])
        quarantine = folders[2]  # quarantine share: over the whole table, as the check does
        files = sorted(quarantine.glob("*.parquet")) if quarantine.is_dir() else [quarantine]
        sum(pq.read_table(f, columns=["_reason"]).num_rows for f in files if f.exists())
        if landing != clean + quarantined or not check_frame(data.to_pandas(), f"raw_{table}").success:
            failed.append(table)
    return {"mode": mode, "failed": failed}


def stage_dbt_build(paths, last_day_only: bool = False) -> dict:
    from unisr_data import warehouse

    mode, variables = "full", None
    if last_day_only:
        day = _days(paths)[-1]
        if hasattr(warehouse, "day_window_vars"):
            variables, mode = warehouse.dbt_vars(paths, **warehouse.day_window_vars([day])), "incremental"
        elif _accepts(warehouse.dbt_vars, "days"):
            variables, mode = warehouse.dbt_vars(paths, days=[day]), "incremental"
        else:
            mode = "full rebuild (no day-window dbt vars)"
    result = warehouse.run_dbt(["build"], paths, vars=variables)
    nodes = result.result or []
    errors = [r.node.name for r in nodes if str(r.status) not in ("pass", "success", "fail")]
    if result.exception or errors:
        raise RuntimeError(f"dbt build failed: {errors[:10] or result.exception}")
    # A failing data test still leaves every model built: time the build, report the test.
    failed = [r.node.name for r in nodes if str(r.status) == "fail"]
    return {"mode": mode, "nodes": len(nodes), **({"failed_tests": failed} if failed else {})}


def stage_mart_checks(paths, last_day_only: bool = False) -> dict:
    """The marts' quality checks (orchestration/checks/warehouse.py): GE on the rows the run rebuilt (the tick: from
    its day on) or a sample, and exact DuckDB aggregates over every row, read as WarehouseResource reads them."""
    import duckdb

    from unisr_data.warehouse import MARTS

    try:
        from unisr_data.mart_quality import Scope, check_mart
    except ImportError:  # older code: GE over each whole mart
        from unisr_data.quality import check_frame

        def check_mart(con, mart, scope=None):
            return check_frame(con.execute(f'SELECT * FROM "{mart}"').df(), mart)

        mode, scope = "full rebuild (GE over whole marts)" if last_day_only else "full", None
    else:
        scope = Scope.from_day(_days(paths)[-1] if last_day_only else None)
        mode = "incremental" if last_day_only else "full (GE on a sample)"
    failed = []
    with duckdb.connect(str(paths.warehouse), read_only=True, config={"threads": 2, "memory_limit": "4GB"}) as con:
        for mart in MARTS:
            if not check_mart(con, mart, scope).success:
                failed.append(mart)
    return {"mode": mode, "failed": failed}


def stage_export_marts(paths) -> dict:
    from unisr_data.warehouse import export_marts

    return {"rows": int(sum(export_marts(paths).values()))}


class StubEncoder:
    """`--skip-embeddings`: 384-d vectors from a hash of the text, so the stage keeps its I/O and cache but no LM."""

    model_id, pooling, dim = "bench-stub-hash", "mean", 384

    def encode(self, texts: list[str], progress: bool = False):
        import zlib

        import numpy as np

        out = np.empty((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            out[i] = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dim, np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def stage_embeddings(paths, stub: bool = False) -> dict:
    from embeddings.materialize import materialize_text_embeddings

    if stub:
        encoder = StubEncoder()
    else:
        from embeddings.encoder import TextEncoder

        encoder = TextEncoder(None, batch_size=256, device="cpu")
    try:
        stats = materialize_text_embeddings(paths, encoder, progress=False)
    finally:
        getattr(encoder, "close", lambda: None)()
    return {"mode": "stub encoder" if stub else "MiniLM", "embedded": stats["embedded"]}


def latest_feature_time(paths):
    """As orchestration/assets/features.py: just after the newest feature row (not imported: it loads Dagster)."""
    from datetime import timedelta, timezone

    import duckdb

    stamps = []
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        for entity in ("user", "item", "query"):
            path = paths.marts_dir / f"{entity}_features.parquet"
            stamps.append(con.execute("SELECT max(event_timestamp) FROM read_parquet(?)", [str(path)]).fetchone()[0])
    stamps = [s if s.tzinfo else s.replace(tzinfo=timezone.utc) for s in stamps if s is not None]
    return max(stamps) + timedelta(seconds=1)


def stage_feast_apply(paths) -> dict:
    from features.store import apply, feature_store

    return {"objects": len(apply(feature_store(paths), paths))}


def stage_materialize(paths, incremental: bool = False) -> dict:
    from datetime import datetime, timezone

    from features import store as feast_store

    store = feast_store.feature_store(paths)
    end = latest_feature_time(paths)
    if incremental and hasattr(feast_store, "materialize_incremental"):
        kwargs = {}
        if _accepts(feast_store.materialize_incremental, "since"):  # the tick rebuilt its day in the marts
            kwargs["since"] = datetime.fromisoformat(_days(paths)[-1]).replace(tzinfo=timezone.utc)
        written, mode = feast_store.materialize_incremental(store, end=end, **kwargs), "incremental"
    else:
        written = feast_store.materialize(store, end=end)
        mode = "full rebuild (no materialize_incremental)" if incremental else "full"
    entities = sum(v.get("entities", 0) if isinstance(v, dict) else v for v in written.values())
    return {"mode": mode, "entities": int(entities)}


def _append_api():
    """(function, how) of the training-set append API if the code has one, else (None, "")."""
    from features import training_set

    for name in ("append_training_days", "append_training_folder", "append_days", "update_training_folder"):
        if hasattr(training_set, name):
            return getattr(training_set, name), name
    for flag in ("days", "append", "incremental"):
        if _accepts(training_set.build_training_folder, flag):
            return training_set.build_training_folder, flag
    return None, ""


def stage_training_sets(paths, last_day_only: bool = False) -> dict:
    from features.store import feature_store
    from features.training_set import build_training_folder

    store = feature_store(paths)
    function, how = _append_api() if last_day_only else (None, "")
    rows = {}
    for name in ("pretrain", "coldstart"):
        out = paths.training_dir / name
        if function is None:
            rows[name] = build_training_folder(store, paths, name, out)
        elif how == "days":
            rows[name] = function(store, paths, name, out, days=_days(paths)[-1:])
        elif how in ("append", "incremental"):
            rows[name] = function(store, paths, name, out, **{how: True})
        else:
            rows[name] = function(store, paths, name, out)
    mode = ("full" if not last_day_only else f"incremental ({how})" if function is not None
            else "full rebuild (no training-set append API)")
    # Where the time goes: Feast's point-in-time joins (update_joined) vs reading, merging and writing the folders.
    join_s = sum(getattr(getattr(r, "days", None), "seconds", 0.0) for r in rows.values())
    parts = sum(sum(getattr(getattr(r, "days", None), "parts_written", {}).values()) for r in rows.values())
    return {"mode": mode, "rows": {k: dict(v) for k, v in rows.items()}, "feast_join_s": round(join_s, 2),
            "day_parts_written": parts}


def stage_train_epoch(paths, model: str = "mmoe") -> dict:
    from models.train import TrainConfig, train

    config = TrainConfig(model=model, epochs=1, batch_size=2048, device="cpu", progress=False, checkpoint_every=0)
    result = train(config, paths.training_dir / "pretrain", paths.root / "bench-train" / model)
    return {"mode": model, "valid_auc": result["metrics"].get("auc")}


STAGES = {name[len("stage_"):]: fn for name, fn in list(globals().items()) if name.startswith("stage_")}


def child(stage: str, root: Path, args: dict, out: Path) -> None:
    """Run one stage in this process; its seconds and result go to `out` as JSON."""
    sys.path.insert(0, str(REPO))
    from unisr_data.paths import Paths

    paths = Paths(root, "synthetic")
    started = time.perf_counter()
    result = STAGES[stage](paths, **args)
    result["seconds"] = time.perf_counter() - started
    out.write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------------- the parent


def run_stage(stage: str, root: Path, args: dict | None = None) -> dict:
    """Run `stage` in a subprocess; returns its result with seconds and peak_mib (the child's ru_maxrss)."""
    out, log = root / f".bench-{stage}.json", root / f".bench-{stage}.log"
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--child", stage, "--root", str(root), "--args", json.dumps(args or {}),
               "--result", str(out)]
    with open(log, "w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"stage {stage} failed (exit {process.returncode}); log {log}:\n{tail}")
    result = json.loads(out.read_text())
    result["peak_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    return result


def parse_size(text: str) -> int:
    """'0.3M' -> 300000, '40k' -> 40000, '1000000' -> 1000000."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(round(float(text.rstrip("km")) * scale))


def size_label(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 or n % 100_000 == 0 else f"{n / 1e3:g}k"


def n_days_for(size: int, grow: str, daily: float) -> int:
    """Days of history at `size` impressions: fixed (volume) or size / daily volume (days); the generator needs 14."""
    return DEFAULT_DAYS if grow == "volume" else max(14, round(size / daily))


def growth_exponent(sizes: list[float], seconds: list[float]) -> float | None:
    """Least-squares slope of log(seconds) on log(size); None with fewer than 2 usable points."""
    points = [(math.log(n), math.log(s)) for n, s in zip(sizes, seconds) if n > 0 and s is not None and s > 0]
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return (sum((x - mean_x) * (y - mean_y) for x, y in points)
            / sum((x - mean_x) ** 2 for x, _ in points))


def measure_size(size: int, n_days: int, work: Path, args) -> dict:
    """Full run and daily tick at one size; {"full": {stage: result}, "tick": {stage: result}}."""
    stub = args.skip_embeddings
    data_only = size >= args.data_only_from
    full_root, tick_root = work / "full", work / "tick"
    full: dict[str, dict] = {}

    def say(message: str) -> None:
        print(f"  [{size_label(size)}] {message}", flush=True)

    def timed(into: dict, stage: str, root: Path, stage_args: dict | None = None) -> None:
        into[stage] = run_stage(stage, root, stage_args)
        extra = f" (Feast joins {into[stage]['feast_join_s']:.1f} s)" if "feast_join_s" in into[stage] else ""
        if "day_parts_written" in into[stage]:
            extra += f" ({into[stage]['day_parts_written']} day parts written)"
        say(f"{stage:<14} {into[stage]['seconds']:8.1f} s {into[stage]['peak_mib']:7.0f} MiB "
            f"{into[stage].get('mode', '')} {' '.join(into[stage].get('failed_tests', []))}".rstrip() + extra)

    timed(full, "source", full_root, {"n_impressions": size, "n_days": n_days, "seed": args.seed})
    full["source"]["rows"] = full["source"].get("rows", size)
    for stage in DATA_STAGES[1:]:
        timed(full, stage, full_root)
    if not data_only:
        timed(full, "embeddings", full_root, {"stub": stub})
        for stage in FEATURE_STAGES[1:]:
            timed(full, stage, full_root)
        if args.train_epoch:
            timed(full, "train_epoch", full_root, {"model": args.train_model})
    if args.no_tick:
        return {"full": full, "tick": {}}

    # The tick's starting point: everything built over all days but the last (untimed), the same source.
    (tick_root / "data" / "synthetic").mkdir(parents=True, exist_ok=True)
    os.symlink(full_root / "data" / "synthetic" / "source", tick_root / "data" / "synthetic" / "source")
    say("building the tick's base (all days but the last; untimed)")
    base = ["landing", "validate", "dbt_build", "export_marts"]
    base += [] if data_only else ["embeddings", "feast_apply", "materialize", "training_sets"]
    for stage in base:
        if stage == "training_sets":
            seed_training_cache(full_root, tick_root)
        run_stage(stage, tick_root, {"which": "all_but_last"} if stage == "landing"
                  else {"stub": stub} if stage == "embeddings" else None)
    tick: dict[str, dict] = {}
    for stage in TICK_STAGES:
        if data_only and stage in FEATURE_STAGES:
            continue
        stage_args = {"landing": {"which": "last"}, "embeddings": {"stub": stub},
                      "materialize": {"incremental": True}}.get(stage)
        if stage in ("validate", "raw_checks", "dbt_build", "mart_checks", "training_sets"):
            stage_args = {"last_day_only": True}
        timed(tick, stage, tick_root, stage_args)
    return {"full": full, "tick": tick}


def seed_training_cache(full_root: Path, tick_root: Path) -> None:
    """Give the tick's base the full run's training folders (their per-day cache of joined rows) before its own
    training_sets build. The cache of a day depends only on the marts' rows up to that day, which a build without
    the last day leaves as they are (tests/test_features_store.py checks it), so the base build reuses every day but
    the last, drops that one and writes its split folders; joining the whole history again through Feast would add
    the full run's cost (O(rows x days)) to an untimed step."""
    source = full_root / "training"
    if source.is_dir() and not (tick_root / "training").exists():
        shutil.copytree(source, tick_root / "training")


def _fmt_s(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f}" if seconds < 100 else f"{seconds:.0f}"


def _fmt_exp(exponent: float | None) -> str:
    return "" if exponent is None else f"{exponent:.2f}"


def tables(results: dict[int, dict], days: dict[int, int], grow: str) -> tuple[str, dict]:
    """Markdown tables (full run and daily tick: stage x size, exponent, flag; totals and ratios) and a summary."""
    sizes = sorted(results)
    lines, summary = [], {"exponents": {}, "super_linear": {}, "tick_ratio": {}, "tick_growth": {}}
    for part, title in (("full", "Full run (every day)"), ("tick", "Daily tick (the last day, after the rest)")):
        stages = [s for s in (*DATA_STAGES, *FEATURE_STAGES, "train_epoch")
                  if any(s in results[n][part] for n in sizes)]
        if not stages:
            continue
        head = " | ".join(f"{size_label(n)} ({days[n]} d) s / MiB" for n in sizes)
        lines += [f"**{title}**", "", f"| stage | {head} | exponent | |", "|---|" + "---|" * len(sizes) + "---|---|"]
        for stage in stages:
            cells, xs, ys = [], [], []
            for n in sizes:
                r = results[n][part].get(stage)
                if r is None:
                    cells.append("–")
                    continue
                mode = r.get("mode", "")
                note = " (full rebuild)" if part == "tick" and mode.startswith("full rebuild") else ""
                cells.append(f"{_fmt_s(r['seconds'])} / {r['peak_mib']:.0f}{note}")
                xs.append(n)
                ys.append(r["seconds"])
            exponent = growth_exponent(xs, ys)
            flag = ""
            if exponent is not None and exponent > SUPER_LINEAR:
                flag = "**super-linear**" if max(ys) >= 1.0 else "super-linear (< 1 s: noise)"
                summary["super_linear"][f"{part}:{stage}"] = round(exponent, 2)
            summary["exponents"][f"{part}:{stage}"] = None if exponent is None else round(exponent, 2)
            lines.append(f"| {stage} | {' | '.join(cells)} | {_fmt_exp(exponent)} | {flag} |")
        totals = [sum(r["seconds"] for r in results[n][part].values()) for n in sizes]
        peaks = [max(r["peak_mib"] for r in results[n][part].values()) for n in sizes]
        exponent = growth_exponent(sizes, totals)
        summary["exponents"][f"{part}:total"] = None if exponent is None else round(exponent, 2)
        cells = " | ".join(f"**{_fmt_s(t)}** / {p:.0f}" for t, p in zip(totals, peaks))
        lines += [f"| total (max MiB) | {cells} | {_fmt_exp(exponent)} | |", ""]
    ticked = [n for n in sizes if results[n]["tick"]]
    if ticked:
        ref = sum(r["seconds"] for r in results[ticked[0]]["tick"].values())
        lines += [f"**Tick vs full run** (growing {grow})", "", "| size | days | full s | tick s | tick / full | "
                  f"tick / tick at {size_label(ticked[0])} |", "|---|---|---|---|---|---|"]
        for n in ticked:
            # Over the stages both ran (the source is not part of a tick; a data-only size has no feature stages).
            common = [s for s in results[n]["tick"] if s in results[n]["full"]]
            full = sum(results[n]["full"][s]["seconds"] for s in common)
            tick = sum(r["seconds"] for r in results[n]["tick"].values())
            summary["tick_ratio"][size_label(n)] = round(tick / full, 3)
            summary["tick_growth"][size_label(n)] = round(tick / ref, 3)
            lines.append(f"| {size_label(n)} | {days[n]} | {_fmt_s(full)} | {_fmt_s(tick)} | {tick / full:.2f} | "
                         f"{tick / ref:.2f} |")
        modes = sorted({f"{s}: {r['mode']}" for n in ticked for s, r in results[n]["tick"].items()
                        if str(r.get("mode", "")).startswith(("full rebuild", "incremental"))})
        lines += ["", "Tick stage modes: " + "; ".join(modes) + "." if modes else "", ""]
    joins = [f"{size_label(n)} {part} {r['feast_join_s']:.0f} of {r['seconds']:.0f} s" for part in ("full", "tick")
             for n in sizes for r in [results[n][part].get("training_sets", {})] if "feast_join_s" in r]
    if joins:
        lines += ["training_sets, Feast point-in-time joins (the rest reads, merges and writes the folders): "
                  + "; ".join(joins) + ".", ""]
    failed = [f"{size_label(n)} {part}: {', '.join(r['failed_tests'])}" for n in sizes for part in ("full", "tick")
              for r in results[n][part].values() if r.get("failed_tests")]
    if failed:
        summary["failed_dbt_tests"] = failed
        lines += ["dbt data tests that failed (the models were built and timed): " + "; ".join(failed) + ".", ""]
    return "\n".join(lines), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.3M,1M", help="impressions per run, comma-separated (k/M suffixes); "
                                                           "the first is the reference")
    parser.add_argument("--grow", choices=("volume", "days"), default="volume",
                        help="volume: 21 days, more impressions a day; days: the same daily volume, more days")
    parser.add_argument("--daily-impressions", type=float, default=DEFAULT_DAILY,
                        help="impressions a day with --grow days (default: the default data set's)")
    parser.add_argument("--data-only-from", default="10M",
                        help="sizes from this one up run the data stages only (source .. export_marts)")
    parser.add_argument("--skip-embeddings", action="store_true",
                        help="stub encoder instead of MiniLM (the stage is bounded by the number of items)")
    parser.add_argument("--train-epoch", action="store_true", help="also one epoch of --train-model on pretrain")
    parser.add_argument("--train-model", default="mmoe")
    parser.add_argument("--no-tick", action="store_true", help="the full run only")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary var dirs")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "benchmarks" / "pipeline_scale.md",
                        help="markdown tables; the measurements go beside it as .json")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="measurements (.json) of earlier runs to tabulate with this one's (same --grow)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--args", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.root, json.loads(args.args), args.result)
        return
    args.data_only_from = parse_size(args.data_only_from)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]  # "" with --merge: tabulate only
    days = {n: n_days_for(n, args.grow, args.daily_impressions) for n in sizes}

    results: dict[int, dict] = {}
    for path in args.merge:  # sizes measured by an earlier run (e.g. a large size run alone)
        earlier = json.loads(path.read_text())
        if earlier["grow"] != args.grow:
            raise SystemExit(f"{path} grew {earlier['grow']}, this run grows {args.grow}: not comparable")
        for size, result in earlier["results"].items():
            results[int(size)], days[int(size)] = result, earlier["days"][size]
    started = time.perf_counter()
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"bench-pipeline-{size_label(size)}-"))
        print(f"{size_label(size)} impressions over {days[size]} days in {work}", flush=True)
        try:
            results[size] = measure_size(size, days[size], work, args)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"grow": args.grow, "days": {str(n): days[n] for n in results},
         "results": {str(n): r for n, r in results.items()}}, indent=1))
    markdown, summary = tables(results, days, args.grow)
    load = os.getloadavg()
    merged = f" (with {', '.join(p.name for p in args.merge)})" if args.merge else ""
    flags = "".join(f" --{name.replace('_', '-')}" for name in ("skip_embeddings", "train_epoch", "no_tick")
                    if getattr(args, name))
    if args.data_only_from != parse_size("10M"):
        flags += f" --data-only-from {size_label(args.data_only_from)}"
    header = (f"`bench_pipeline_scale.py --sizes {args.sizes} --grow {args.grow}{flags}`{merged}"
              f" on {os.cpu_count()} CPUs, load average {load[0]:.1f} at the end; {time.perf_counter() - started:.0f} s"
              f" in all. Seconds are the stage's call alone; MiB is its process's peak RSS. Exponent: slope of "
              f"log seconds vs log impressions (1 = linear; > {SUPER_LINEAR} flagged).\n")
    print()
    print(markdown)
    args.out.write_text(header + "\n" + markdown)
    print(f"markdown: {args.out}")
    print(json.dumps({"sizes": sizes, "days": [days[n] for n in sizes], "grow": args.grow, **summary}))


if __name__ == "__main__":
    main()
