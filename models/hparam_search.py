"""Equal-budget hyper-parameter search: every model gets the same trials, search space and sampler, chosen on
validation only (Optuna TPE). `python -m models.hparam_search --pretrain DIR --coldstart DIR --out OUT --trials 8`.

Budget: each model (SRF, Shared-Bottom, MMoE, PLE, STAR by default) gets `trials` trials, each with the same
pretraining epochs (and fine-tuning epochs); no pruning, so no model is stopped early by another's results.
The sampler is TPE seeded with `seed` for every model alike (its first `n_startup` trials are random, so a small
budget is a seeded random search, the fair baseline of hyper-parameter comparisons).

Search space (model-agnostic: every model has these knobs; SEARCH_SPACE):
  lr                      log-uniform [3e-4, 1e-2]   pretraining AdamW learning rate
  weight_decay            log-uniform [1e-6, 1e-1]   dense parameters
  embedding_weight_decay  log-uniform [1e-1, 1e2]    embedding tables (models.engine.TrainConfig)
  dropout                 uniform     [0.0, 0.3]     every MLP of the model (constructor keyword)
  hidden                  {32, 64, 128}              aspect width (constructor keyword)
  batch_size              {1024, 2048, 4096}         pretraining global batch

Objective (`objective`): "coldstart" (default) = cold-start *validation* AUC of the pretrained model fine-tuned
with `freeze` (the number the pipeline registers and promotes on), or "pretrain" = pretraining validation AUC
(half the cost: no fine-tune). Fine-tuning keeps models.finetune.FinetuneConfig's optimiser settings and the
searched architecture (it is the pretrained checkpoint's). The test split is never read.

Trial 0 of every model is the point the pipeline trains today (`current_point`: the code defaults overlaid with
models/tuned_defaults.json), so each model's search says whether its defaults are still its best; it counts in the
budget like any other trial. `--write-defaults PATH` writes the proposed models/tuned_defaults.json: each model's
best point where it beats the current default by more than noise without costing the pretrain domains
(`adoption`), else the current default (adopting the file is a commit: see that module).

Each trial trains into OUT/<model>/trial-<params digest>/{pre,fine}; a study is kept in OUT/<model>/study.db
(SQLite), so rerunning the same search resumes it: finished trials are kept, an interrupted one is asked again
(the same parameters, so its run folder resumes from last.pt) and the rest are run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from models.engine import TrainConfig

log = logging.getLogger("models.hparam_search")

MODELS: tuple[str, ...] = ("srf", "shared_bottom", "mmoe", "ple", "star")
#: name -> (kind, low, high) for floats / ("choice", values) for categoricals; the same for every model.
SEARCH_SPACE: dict[str, tuple] = {
    "lr": ("log", 3e-4, 1e-2),
    "weight_decay": ("log", 1e-6, 1e-1),
    "embedding_weight_decay": ("log", 1e-1, 1e2),
    "dropout": ("uniform", 0.0, 0.3),
    "hidden": ("choice", (32, 64, 128)),
    "batch_size": ("choice", (1024, 2048, 4096)),
}
#: The code defaults as a point of SEARCH_SPACE: TrainConfig's lr and embedding decay, every model's constructor
#: dropout / hidden, the trainer resource's pretraining batch; weight decay 0 is the space's floor (1e-6).
CODE_DEFAULTS: dict[str, Any] = {"lr": TrainConfig.lr, "weight_decay": max(TrainConfig.weight_decay, 1e-6),
                                 "embedding_weight_decay": TrainConfig.embedding_weight_decay, "dropout": 0.1,
                                 "hidden": 64, "batch_size": 2048}
OBJECTIVES = ("coldstart", "pretrain")


@dataclass
class SearchConfig:
    """The budget and settings shared by every model's search."""

    trials: int = 8                 # trials per model
    epochs: int = 2                 # pretraining epochs per trial (early stopping on valid AUC inside)
    finetune_epochs: int = 3        # fine-tuning epochs per trial (objective "coldstart")
    finetune_batch_size: int = 256
    objective: str = "coldstart"    # coldstart | pretrain
    freeze: str = "none"            # fine-tuning freeze level of every trial (one level: the cost stays 1 fine-tune)
    models: Sequence[str] = MODELS
    seed: int = 0                   # sampler seed and training seed, the same for every model
    n_startup: int = 4              # TPE's random trials before it models the results
    device: str = "auto"
    num_threads: int = 0
    model_kwargs: dict[str, Any] = field(default_factory=dict)   # fixed constructor keywords for every model

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"SearchConfig: objective={self.objective!r}; use one of {OBJECTIVES}")
        if self.trials < 1 or self.epochs < 1:
            raise ValueError(f"SearchConfig: trials ({self.trials}) and epochs ({self.epochs}) must be >= 1")
        self.models = tuple(self.models)


def suggest(trial) -> dict[str, Any]:
    """One point of SEARCH_SPACE from an Optuna trial: {param: value}."""
    params = {}
    for name, spec in SEARCH_SPACE.items():
        if spec[0] == "choice":
            params[name] = trial.suggest_categorical(name, list(spec[1]))
        else:
            params[name] = trial.suggest_float(name, spec[1], spec[2], log=spec[0] == "log")
    return params


def current_point(model: str) -> dict[str, Any]:
    """What the pipeline pretrains `model` with today: CODE_DEFAULTS overlaid with its adopted tuned defaults."""
    from models.tuned_defaults import tuned_params

    return {**CODE_DEFAULTS, **tuned_params(model)}


def params_digest(params: dict[str, Any]) -> str:
    """A short stable digest of a parameter set (names a trial's run folder)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:10]


def run_trial(model: str, params: dict[str, Any], pretrain_dir: Path, coldstart_dir: Path | None, out_dir: Path,
              cfg: SearchConfig) -> dict[str, Any]:
    """Pretrain `model` with `params` (and fine-tune it for the objective "coldstart"); returns {"value": the
    objective, "pretrain_valid_auc", "coldstart_valid_auc" (or None), "pretrain_checkpoint", "seconds"}."""
    from models.finetune import FinetuneConfig, finetune
    from models.train import train
    from models.tuned_defaults import split

    t0 = time.perf_counter()
    model_params, train_fields = split(params)     # constructor keywords / TrainConfig fields
    kwargs = {**cfg.model_kwargs, **model_params}
    common = dict(device=cfg.device, num_threads=cfg.num_threads, seed=cfg.seed, progress=False)
    pre = train(TrainConfig(model=model, model_kwargs=kwargs, epochs=cfg.epochs, **train_fields, **common),
                pretrain_dir, out_dir / "pre")
    out = {"pretrain_valid_auc": _auc(pre), "coldstart_valid_auc": None, "pretrain_checkpoint": str(pre["checkpoint"])}
    if cfg.objective == "coldstart":
        if coldstart_dir is None:
            raise ValueError("hparam_search: objective 'coldstart' needs the cold-start training folder")
        fine = finetune(FinetuneConfig(freeze=cfg.freeze, epochs=cfg.finetune_epochs,
                                       batch_size=cfg.finetune_batch_size, **common),
                        coldstart_dir, pre["checkpoint"], out_dir / "fine")
        out["coldstart_valid_auc"] = _auc(fine)
    out["value"] = out["coldstart_valid_auc"] if cfg.objective == "coldstart" else out["pretrain_valid_auc"]
    out["seconds"] = time.perf_counter() - t0
    return out


def _auc(result: dict) -> float:
    auc = result["metrics"].get("auc")
    return float("nan") if auc is None else float(auc)


def search_model(model: str, pretrain_dir: Path, coldstart_dir: Path | None, out_dir: Path, cfg: SearchConfig,
                 on_trial: Callable[[dict], None] | None = None) -> list[dict[str, Any]]:
    """`cfg.trials` trials of `model` (resuming OUT/<model>/study.db); returns one row per trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = Path(out_dir) / model
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=f"{model}-{cfg.objective}", direction="maximize", load_if_exists=True,
        storage=f"sqlite:///{folder / 'study.db'}")
    # The sampler's random stream restarts with each process: offset its seed by the trials already in the study,
    # or a resumed / extended search would draw the points of its first trials again.
    study.sampler = optuna.samplers.TPESampler(seed=cfg.seed + 1_000_003 * len(study.trials),
                                               n_startup_trials=cfg.n_startup)
    # What the trials' results depend on (more trials extend a study; device and threads do not change results).
    free = ("models", "trials", "device", "num_threads")
    budget = json.dumps({k: v for k, v in asdict(cfg).items() if k not in free}, sort_keys=True, default=str)
    if study.user_attrs.get("budget", budget) != budget:
        raise ValueError(f"{folder / 'study.db'} holds a search with another budget ({study.user_attrs['budget']}); "
                         f"delete {folder} or search into another folder")
    study.set_user_attr("budget", budget)

    def objective(trial) -> float:
        params = suggest(trial)
        result = run_trial(model, params, pretrain_dir, coldstart_dir,
                           folder / f"trial-{params_digest(params)}", cfg)
        for k in ("pretrain_valid_auc", "coldstart_valid_auc", "seconds", "pretrain_checkpoint"):
            trial.set_user_attr(k, result[k])
        log.info("%s trial %d: %s = %.4f (%s)", model, trial.number, cfg.objective, result["value"],
                 ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()))
        if on_trial is not None:
            on_trial({"model": model, "trial": trial.number, "value": result["value"], **params})
        return -math.inf if math.isnan(result["value"]) else result["value"]

    for t in study.trials:
        # A trial left RUNNING by a killed process is closed as failed and asked again with the same parameters,
        # so its run folder (named by the parameters) resumes from last.pt.
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(t.params)
    if not study.trials:
        study.enqueue_trial(current_point(model), user_attrs={"current_default": True})
    remaining = cfg.trials - sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, catch=())
    rows = []
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        rows.append({"model": model, "trial": t.number, "objective": cfg.objective, "value": t.value,
                     **{k: t.params.get(k) for k in SEARCH_SPACE},
                     "current_default": bool(t.user_attrs.get("current_default", False)),
                     **{k: t.user_attrs.get(k) for k in ("pretrain_valid_auc", "coldstart_valid_auc", "seconds",
                                                        "pretrain_checkpoint")}})
    return rows[: cfg.trials]


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def search(pretrain_dir: str | Path, coldstart_dir: str | Path | None, out_dir: str | Path, cfg: SearchConfig,
           on_trial: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Every model of `cfg.models` with the same budget; a frame of all trials (model, trial, value, params,
    pretrain/coldstart valid AUC, seconds, best: the model's best trial by `value`)."""
    coldstart = Path(coldstart_dir) if coldstart_dir else None
    rows = [r for m in cfg.models
            for r in search_model(m, Path(pretrain_dir), coldstart, Path(out_dir), cfg, on_trial)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    best = frame.groupby("model")["value"].idxmax()
    frame["best"] = False
    frame.loc[best.to_numpy(), "best"] = True
    return frame


def best_per_model(trials: pd.DataFrame) -> pd.DataFrame:
    """The best trial of each model (by validation objective), best model first."""
    if trials.empty:
        return trials
    return trials[trials["best"]].sort_values("value", ascending=False).reset_index(drop=True)


def markdown(trials: pd.DataFrame, cfg: SearchConfig) -> str:
    """The report: budget, best parameters per model, all trials."""
    def table(frame: pd.DataFrame) -> str:
        cols = ["model", "trial", "current_default", "value", "pretrain_valid_auc", "coldstart_valid_auc",
                *SEARCH_SPACE, "seconds"]
        frame = frame[[c for c in cols if c in frame]]
        head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
        return head + "\n".join("| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(False))

    objective = ("cold-start validation AUC after pretrain + fine-tune (freeze " + cfg.freeze + ")"
                 if cfg.objective == "coldstart" else "pretraining validation AUC")
    return (f"# Hyper-parameter search (equal budget)\n\n"
            f"{cfg.trials} trials per model, {cfg.epochs} pretraining epochs"
            + (f" + {cfg.finetune_epochs} fine-tuning epochs" if cfg.objective == "coldstart" else "")
            + f" each; TPE (seed {cfg.seed}, {cfg.n_startup} random start-up trials); objective: {objective}. "
            f"Chosen on validation only; the test split is not read. Trial 0 of each model is the point the "
            f"pipeline trained with when the search ran (current_default).\n\n"
            f"## Best per model\n\n{table(best_per_model(trials))}\n\n"
            f"## Adoption (gain >= {ADOPT_MIN_GAIN} over the current default, pretraining validation AUC not more "
            f"than {ADOPT_MAX_PRETRAIN_LOSS} lower)\n\n{_adoption_lines(trials)}\n\n## All trials\n\n{table(trials)}\n")


def _adoption_lines(trials: pd.DataFrame) -> str:
    if trials.empty:
        return "(no trials)"
    return "\n".join(f"- {model}: {'adopt trial ' + str(d['best_trial']) if d['adopt'] else 'keep the current default'}"
                     f" ({d['why']})" for model, d in adoption(trials).items())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else (f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}")
    return "" if value is None else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.hparam_search", description=__doc__.split("\n")[0])
    parser.add_argument("--pretrain", required=True, type=Path, help="pretraining training folder")
    parser.add_argument("--coldstart", type=Path, help="cold-start training folder (objective coldstart)")
    parser.add_argument("--out", required=True, type=Path, help="trials, studies, hparam_search.{csv,md}")
    parser.add_argument("--trials", type=int, default=SearchConfig.trials)
    parser.add_argument("--epochs", type=int, default=SearchConfig.epochs)
    parser.add_argument("--finetune-epochs", type=int, default=SearchConfig.finetune_epochs)
    parser.add_argument("--objective", choices=OBJECTIVES, default=SearchConfig.objective)
    parser.add_argument("--freeze", default=SearchConfig.freeze)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seed", type=int, default=SearchConfig.seed)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-threads", type=int, default=0)
    parser.add_argument("--write-defaults", type=Path,
                        help="write the proposed models/tuned_defaults.json here (points the adoption rule accepts)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = SearchConfig(trials=args.trials, epochs=args.epochs, finetune_epochs=args.finetune_epochs,
                       objective=args.objective, freeze=args.freeze, models=args.models.split(","), seed=args.seed,
                       device=args.device, num_threads=args.num_threads)
    trials = search(args.pretrain, args.coldstart, args.out, cfg)
    write_report(trials, cfg, args.out)
    if args.write_defaults:
        write_defaults(trials, cfg, args.write_defaults, dataset=str(args.pretrain))
    print(best_per_model(trials).to_string(index=False))


def write_report(trials: pd.DataFrame, cfg: SearchConfig, out_dir: str | Path) -> tuple[Path, Path]:
    """OUT/hparam_search.csv (all trials) and OUT/hparam_search.md; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, md = out_dir / "hparam_search.csv", out_dir / "hparam_search.md"
    trials.to_csv(csv, index=False)
    md.write_text(markdown(trials, cfg))
    return csv, md


#: Adoption rule of `write_defaults`: a model's best point replaces its current default only when it beats it on the
#: objective by at least ADOPT_MIN_GAIN (one cold-start validation AUC has a ~±0.012 interval on the synthetic
#: default: smaller gains are noise) and does not lower the pretraining validation AUC by more than
#: ADOPT_MAX_PRETRAIN_LOSS (the foundation model serves every pretrain domain, not only the cold-start one).
ADOPT_MIN_GAIN = 0.005
ADOPT_MAX_PRETRAIN_LOSS = 0.002


def adoption(trials: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per model: {"best", "current_default" (objective values), "pretrain_change", "adopt": bool, "why"}."""
    decisions = {}
    for model, rows in trials.groupby("model", sort=False):
        best = rows.loc[rows["value"].idxmax()]
        current = rows[rows["current_default"]]
        out = {"best_trial": int(best["trial"]), "best": round(float(best["value"]), 4)}
        if current.empty:
            decisions[model] = {**out, "current_default": None, "adopt": True, "why": "no current-default trial"}
            continue
        cur = current.iloc[0]
        gain = float(best["value"]) - float(cur["value"])
        pre_change = float(best["pretrain_valid_auc"]) - float(cur["pretrain_valid_auc"])
        if int(best["trial"]) == int(cur["trial"]):
            adopt, why = False, "the current default is the best point"
        elif gain < ADOPT_MIN_GAIN:
            adopt, why = False, f"gain {gain:+.4f} < {ADOPT_MIN_GAIN} (noise)"
        elif pre_change < -ADOPT_MAX_PRETRAIN_LOSS:
            adopt, why = False, f"pretraining validation AUC {pre_change:+.4f} (worse on the pretrain domains)"
        else:
            adopt, why = True, f"gain {gain:+.4f}, pretraining validation AUC {pre_change:+.4f}"
        decisions[model] = {**out, "current_default": round(float(cur["value"]), 4),
                            "pretrain_change": round(pre_change, 4), "adopt": adopt, "why": why}
    return decisions


def write_defaults(trials: pd.DataFrame, cfg: SearchConfig, path: str | Path, dataset: str) -> Path:
    """The proposed models/tuned_defaults.json: per model its best point by validation objective where `adoption`
    accepts it, else its current adopted point (none: the code defaults), with where it came from (budget, every
    model's decision and why)."""
    from models.tuned_defaults import defaults_document, tuned_params

    decisions = adoption(trials) if not trials.empty else {}
    best = best_per_model(trials)
    chosen = {}
    for r in best.to_dict("records"):
        adopted = {k: r[k] for k in SEARCH_SPACE} if decisions[r["model"]]["adopt"] else tuned_params(r["model"])
        if adopted:
            chosen[r["model"]] = adopted
    source = {"dataset": dataset, "trials_per_model": cfg.trials, "epochs": cfg.epochs,
              "finetune_epochs": cfg.finetune_epochs, "objective": cfg.objective, "freeze": cfg.freeze,
              "seed": cfg.seed, "adopt_min_gain": ADOPT_MIN_GAIN, "adopt_max_pretrain_loss": ADOPT_MAX_PRETRAIN_LOSS,
              "decisions": decisions}
    document = defaults_document(chosen, source)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


if __name__ == "__main__":
    main()
