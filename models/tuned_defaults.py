"""Per-model training defaults adopted from the equal-budget hyper-parameter search (models/hparam_search.py).

`models/tuned_defaults.json` is written by a search (`python -m models.hparam_search ... --write-defaults PATH`, or
the `hparam_search` job, which writes a candidate file under `var/reports/<dataset>/hparam_search/`) and adopted by
committing it here: the search proposes, a reviewed commit changes what the pipeline trains. It holds, per model,
the search's best point by *validation* objective where the adoption rule accepted it (models.hparam_search.adoption:
a gain above noise that does not cost the pretrain domains), and where it came from (dataset, budget, each model's
decision and why). Today it names no model: the 2026-12-06 search confirmed the code defaults. A model absent
from the file trains with the code defaults (`models.engine.TrainConfig`, the model's constructor keywords, the
trainer resource's batch size).

The pipeline's pretraining (orchestration/training_launch.py) applies them to every pretraining run of that model
(the with/without-behaviour twins, ablations and seed benchmark alike); explicit keywords still win.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULTS_FILE = Path(__file__).with_name("tuned_defaults.json")
#: Searched parameters (models.hparam_search.SEARCH_SPACE) that are model constructor keywords; the others are
#: TrainConfig fields. The one split of a parameter set, for the search's trials and the pipeline alike.
MODEL_KEYWORDS = ("dropout", "hidden")
TRAIN_FIELDS = ("lr", "weight_decay", "embedding_weight_decay", "batch_size")


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.exists():
        return {"models": {}}
    data = json.loads(file.read_text())
    if not isinstance(data.get("models"), dict):
        raise ValueError(f"{file}: expected an object with a 'models' mapping (model -> parameters)")
    return data


def tuned_params(model: str, path: Path | None = None) -> dict[str, Any]:
    """The adopted parameters of `model` ({} when it has none): keys of MODEL_KEYWORDS and TRAIN_FIELDS."""
    path = path or DEFAULTS_FILE
    params = _load(str(path))["models"].get(model, {})
    unknown = set(params) - set(MODEL_KEYWORDS) - set(TRAIN_FIELDS)
    if unknown:
        raise ValueError(f"{path}: unknown parameter(s) {sorted(unknown)} for {model}")
    return dict(params)


def split(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor keywords, TrainConfig fields) of a parameter set."""
    return ({k: v for k, v in params.items() if k in MODEL_KEYWORDS},
            {k: v for k, v in params.items() if k in TRAIN_FIELDS})


def digest(path: Path | None = None) -> str:
    """A digest of the adopted defaults (part of the training run folders' key: adopting new ones retrains)."""
    path = path or DEFAULTS_FILE
    return hashlib.sha256(json.dumps(_load(str(path))["models"], sort_keys=True).encode()).hexdigest()[:12]


def defaults_document(best: dict[str, dict[str, Any]], source: dict[str, Any]) -> dict[str, Any]:
    """The file's content: {"source": where it came from, "models": {model: parameters}}."""
    keep = (*MODEL_KEYWORDS, *TRAIN_FIELDS)
    models = {m: {k: (int(v) if k in ("hidden", "batch_size") else float(f"{float(v):.4g}"))
                  for k, v in p.items() if k in keep}
              for m, p in best.items()}
    return {"source": source, "models": models}
