"""The text-encoder comparison (the paper's BERT vs ChatGLM-6B vs ChatGLM2-6B, with encoders that ship in packages).

For each named frozen encoder (embeddings.model_source.ENCODERS): embed every item and query text into the
encoder's own embeddings folder, copy the default training folders (pretrain, cold-start) and replace only their
text vectors (item_text_emb / query_text_emb parquet and meta.json emb_dim / emb_model), pretrain SRF and fine-tune
it, then score the cold-start test split. All encoders are scored on the same rows with one page-view bootstrap
(models/bootstrap.py), so each encoder's AUC has a 95 % CI and its difference to the default encoder a *paired*
one. An encoder whose package is not installed is reported as skipped, with the reason.

Files (none touches the default pipeline's): `<var>/encoders/<dataset>/<encoder>/{embeddings,pretrain,coldstart}`
and the report `<out_dir>/encoders.{md,csv}`.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from embeddings.model_source import DEFAULT_ENCODER, ENCODERS
from unisr_data.paths import Paths

TEXT_TABLES = ("item_text_emb.parquet", "query_text_emb.parquet")
SAMPLES = ("pretrain", "coldstart")
OK, SKIPPED, FAILED = "ok", "skipped", "failed"


@dataclass(frozen=True)
class _EmbeddingsAt(Paths):
    """`Paths` whose embeddings folder is `folder` (the encoder's own), everything else as the dataset's."""

    folder: Path = Path()

    @property
    def embeddings_dir(self) -> Path:
        return self.folder


@dataclass
class EncoderRun:
    """One encoder's way through the comparison."""

    name: str
    title: str
    pooling: str
    status: str = OK
    reason: str = ""
    model_id: str = ""
    dim: int = 0
    texts_embedded: int = 0
    texts_per_s: float = float("nan")
    seconds: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    folders: dict[str, Path] = field(default_factory=dict)


@dataclass
class EncoderComparisonResult:
    runs: list[EncoderRun]
    table: pd.DataFrame          # one row per encoder, numbers (encoders.csv)
    markdown: str                # encoders.md
    default: str
    n_rows: int = 0
    n_page_views: int = 0
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def reference(self) -> str | None:
        """The default encoder when it was scored (the Δ AUC reference), else None."""
        return self.default if any(r.name == self.default and r.status == OK for r in self.runs) else None

    def not_run(self) -> dict[str, str]:
        """Encoders that were skipped or failed, with why."""
        return {r.name: f"{r.status}: {r.reason}" for r in self.runs if r.status != OK}

    def metadata(self) -> dict[str, float | str]:
        """Flat Dagster metadata: `<encoder>/auc` (+ `_lo`, `_hi`), `<encoder>/delta_auc` ..., `<encoder>/status`."""
        out: dict[str, float | str] = {}
        for row in self.table.to_dict("records"):
            name = row["encoder"]
            out[f"{name}/status"] = row["status"] + (f": {row['reason']}" if row["reason"] else "")
            for key in ("auc", "auc_lo", "auc_hi", "delta_auc", "delta_lo", "delta_hi", "texts_per_s"):
                value = row.get(key)
                if value is not None and not pd.isna(value):
                    out[f"{name}/{key}"] = float(value)
        return out


def encoders_root(paths: Paths) -> Path:
    """`<var>/encoders/<dataset>`: every encoder's embeddings and training folders (outside the default ones, so the
    pipeline's training data and its run keys never change)."""
    return paths.root / "encoders" / paths.dataset


def embed_for_encoder(paths: Paths, encoder, folder: Path) -> dict:
    """Item and query vectors of `encoder` into `folder` (the default embeddings stay untouched). The vector cache
    is the dataset's (keyed by model, so encoders never mix): the default encoder's texts are all cache hits."""
    from embeddings.materialize import materialize_text_embeddings

    return materialize_text_embeddings(_EmbeddingsAt(paths.root, paths.dataset, Path(folder)), encoder,
                                       progress=False, cache_dir=paths.embeddings_dir / "cache")


def build_encoder_folders(paths: Paths, embeddings_dir: Path, out_root: Path, model_id: str) -> dict[str, Path]:
    """Copies of the default training folders (`paths.training_dir/{pretrain,coldstart}`) whose text vectors come
    from `embeddings_dir`; meta.json's emb_dim and emb_model follow. Returns {samples: folder}."""
    from features.training_set import _copy_embeddings

    out = {}
    for samples in SAMPLES:
        src = paths.training_dir / samples
        if not (src / "meta.json").is_file():
            raise FileNotFoundError(f"training folder {src} not found: materialize `training_sets` first (make run)")
        dst = Path(out_root) / samples
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        for path in sorted(src.iterdir()):  # the splits: parquet files or folders of day parts
            if path.name.startswith(".") or path.name in TEXT_TABLES or path.name == "meta.json":
                continue
            if path.is_dir():
                shutil.copytree(path, dst / path.name)
            elif path.is_file():
                shutil.copy2(path, dst / path.name)
        # the same latest-vector-per-id copy the default training folders get (features/training_set.py)
        dim, _ = _copy_embeddings(_EmbeddingsAt(paths.root, paths.dataset, Path(embeddings_dir)), dst)
        meta = json.loads((src / "meta.json").read_text())
        meta.update(emb_dim=int(dim), emb_model=model_id)
        (dst / "meta.json").write_text(json.dumps(meta, indent=2))
        out[samples] = dst
    return out


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _failed(run: EncoderRun, error: Exception, is_default: bool, log) -> None:
    """An optional encoder's failure goes into the table and the others still run; the default encoder's (the
    reference's) fails the comparison."""
    if is_default:
        raise error
    run.status, run.reason = FAILED, f"{type(error).__name__}: {_one_line(error)}"
    log.error(f"encoder {run.name}: failed — {run.reason}")


def run_encoder_comparison(
    paths: Paths,
    names: Sequence[str],
    make_encoder: Callable[[str], object],
    trainer,
    log,
    out_dir: Path,
    run_dir_of: Callable[[str, dict], Path],
    *,
    default: str = DEFAULT_ENCODER,
    freeze: str = "auto",
    epochs: int = 0,
    model_kwargs: dict | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> EncoderComparisonResult:
    """Embed, build folders, pretrain + fine-tune SRF and score cold-start test for each encoder in `names`.

    make_encoder(name) -> an encoder (`TextEncoder` API: encode, dim, model_id, pooling); a FileNotFoundError
    (embeddings.model_source.EncoderNotInstalled) skips that encoder. trainer: `TrainerResource` API (train,
    finetune). run_dir_of(name, inputs) -> the run folder of one training (inputs key it, so a re-run resumes).
    Another error of an optional encoder is reported as failed and the others go on; an error of the default
    encoder (the reference) fails the comparison, and so does having no encoder to score."""
    from models.run_folders import tree_digest

    names = list(dict.fromkeys([default, *names]))  # the reference first, each once
    root = encoders_root(paths)
    runs: list[EncoderRun] = []
    for name in names:
        spec = ENCODERS.get(name)
        run = EncoderRun(name, spec.title if spec else name, spec.pooling if spec else "")
        runs.append(run)
        started = time.perf_counter()
        try:
            encoder = make_encoder(name)
        except FileNotFoundError as error:  # EncoderNotInstalled: the package is absent
            run.status, run.reason = SKIPPED, _one_line(error)
            log.warning(f"encoder {name}: skipped — {run.reason}")
            continue
        except Exception as error:
            _failed(run, error, name == default, log)
            continue
        try:
            run.model_id, run.dim, run.pooling = encoder.model_id, int(encoder.dim), encoder.pooling
            try:
                stats = embed_for_encoder(paths, encoder, root / name / "embeddings")
            finally:
                if hasattr(encoder, "close"):
                    encoder.close()
                encoder = None  # one model in memory at a time
            run.texts_embedded = int(stats["embedded"])
            run.texts_per_s = float(stats["texts_per_s"]) if stats["embedded"] else float("nan")
            run.seconds["embed"] = time.perf_counter() - started
            log.info(f"encoder {name}: {stats['n_items']} items + {stats['n_queries']} queries, "
                     f"{stats['embedded']} embedded ({stats['texts_per_s']} texts/s), {stats['cache_hits']} cached")
            run.folders = build_encoder_folders(paths, root / name / "embeddings", root / name, run.model_id)
            inputs = {"encoder": name, "model_id": run.model_id,
                      "encoder_data": {s: tree_digest(f) for s, f in run.folders.items()}}
            t0 = time.perf_counter()
            pre = trainer.train(log, run.folders["pretrain"], run_dir_of(f"encoder_{name}_pre", inputs), "srf",
                                dict(model_kwargs or {}), epochs)
            fine = trainer.finetune(log, run.folders["coldstart"], pre["checkpoint"],
                                    run_dir_of(f"encoder_{name}", inputs), freeze, epochs)
            run.checkpoint = Path(fine["checkpoint"])
            run.seconds["train"] = time.perf_counter() - t0
            log.info(f"encoder {name}: trained in {run.seconds['train']:.0f}s ({fine.get('freeze', freeze)})")
        except Exception as error:
            _failed(run, error, name == default, log)
    ok = [r for r in runs if r.status == OK]
    if not ok:
        raise RuntimeError("no encoder could be compared: "
                           + "; ".join(f"{r.name}: {r.status} ({r.reason})" for r in runs))
    return _report(paths, runs, default, Path(out_dir), n_boot, seed, log)


def _report(paths: Paths, runs: list[EncoderRun], default: str, out_dir: Path, n_boot: int, seed: int,
            log) -> EncoderComparisonResult:
    from models.evaluate import score
    from models.training_data import TrainingFolder
    from reporting.comparison import MODEL, Rows, compare
    from unisr_data.truth import click_probability

    ok = [r for r in runs if r.status == OK]
    # every encoder's cold-start test split is a copy of the default one: the same rows, in the same order
    test = TrainingFolder.open(paths.training_dir / "coldstart").read("test")
    scores = {}
    for run in ok:
        probs = score(run.checkpoint, run.folders["coldstart"], "test")[0]
        if len(probs) != len(test):
            raise RuntimeError(f"{run.name}: {len(probs)} test scores for {len(test)} rows")
        scores[run.name] = probs
    truth = click_probability(paths.truth_dir, test["impression_id"])
    comparison = compare("test", Rows.from_frame(test), scores, {r.name: MODEL for r in ok}, truth=truth,
                         n_boot=n_boot, seed=seed, metrics=("auc", "new_item_auc"))
    reference = default if default in scores else None
    rows = []
    for run in runs:
        row = {"encoder": run.name, "title": run.title, "pooling": run.pooling, "dim": run.dim or None,
               "status": run.status, "reason": run.reason,
               "texts_per_s": run.texts_per_s if run.texts_embedded else None, "model_id": run.model_id}
        if run.name in scores:
            auc = comparison.auc(run.name)
            row.update(auc=auc.value, auc_lo=auc.lo, auc_hi=auc.hi)
            new = comparison.estimates[run.name].get("new_item_auc")
            if new is not None:
                row.update(new_item_auc=new.value, new_item_auc_lo=new.lo, new_item_auc_hi=new.hi)
            share = comparison.lift_share(run.name)
            if share is not None:
                row.update(lift_share=share.value, lift_share_lo=share.lo, lift_share_hi=share.hi)
            if reference and run.name != reference:
                diff = comparison.difference(run.name, reference)
                row.update(delta_auc=diff.value, delta_lo=diff.lo, delta_hi=diff.hi, significant=diff.significant)
        rows.append(row)
    table = pd.DataFrame(rows)
    for run in ok:
        log.info(f"encoder {run.name}: cold-start test AUC {comparison.auc(run.name)}")
    markdown = _markdown(table, comparison, reference, paths.dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"csv": out_dir / "encoders.csv", "md": out_dir / "encoders.md"}
    table.to_csv(files["csv"], index=False)
    files["md"].write_text(markdown)
    return EncoderComparisonResult(runs, table, markdown, default, comparison.n_rows, comparison.n_page_views, files)


def _ci(row: dict, key: str, lo: str, hi: str, signed: bool = False) -> str:
    from models.bootstrap import format_ci

    value = row.get(key)
    if value is None or pd.isna(value):
        return ""
    return format_ci(float(value), float(row[lo]), float(row[hi]), signed=signed)


def display_table(table: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    """encoders.csv's numbers as the report's strings: `value [lo, hi]`, skipped encoders with their reason."""
    out = []
    for row in table.to_dict("records"):
        status = row["status"] if not row["reason"] else f"{row['status']}: {row['reason']}"
        shown = {"encoder": row["encoder"], "model": row["title"], "pooling": row["pooling"],
                 "dim": "" if pd.isna(row.get("dim")) or not row.get("dim") else int(row["dim"]),
                 "texts/s": "" if row.get("texts_per_s") is None or pd.isna(row["texts_per_s"])
                 else f"{row['texts_per_s']:.0f}",
                 "cold-start test AUC": _ci(row, "auc", "auc_lo", "auc_hi"),
                 "new-item AUC": _ci(row, "new_item_auc", "new_item_auc_lo", "new_item_auc_hi")}
        if "lift_share" in row:
            shown["share of achievable lift"] = ("" if pd.isna(row.get("lift_share")) else
                                                 f"{row['lift_share']:.0%} [{row['lift_share_lo']:.0%}, "
                                                 f"{row['lift_share_hi']:.0%}]")
        if reference:
            if row["encoder"] == reference:
                delta = "reference"
            elif row.get("delta_auc") is None or pd.isna(row.get("delta_auc")):
                delta = ""
            else:
                delta = (_ci(row, "delta_auc", "delta_lo", "delta_hi", signed=True)
                         + (" (significant)" if row["significant"] else " (not significant)"))
            shown[f"Δ AUC vs {reference}"] = delta
        shown["status"] = status
        out.append(shown)
    return pd.DataFrame(out)


def _markdown(table: pd.DataFrame, comparison, reference: str | None, dataset: str) -> str:
    from reporting.comparison import CEILING
    from reporting.evaluation_report import markdown_table

    lines = [
        f"# Text encoders ({dataset}, cold-start test split)",
        "",
        "The same SRF, pretrained and fine-tuned on the same training folders; only the frozen text encoder's "
        "item and query vectors differ. 95 % page-view bootstrap intervals "
        f"({comparison.n_rows} rows in {comparison.n_page_views} page views); the Δ AUC interval is paired (the "
        "same resamples for every encoder). texts/s: this run's embedding throughput on its device (empty when "
        "every text came from the vector cache).",
        "",
        markdown_table(display_table(table, reference)),
        "",
    ]
    if comparison.has_ceiling:
        lines += [f"{CEILING}, synthetic data: AUC {comparison.auc(CEILING)}.", ""]
    return "\n".join(lines)

