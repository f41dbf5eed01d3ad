"""Seed benchmark tables: every candidate trained with several seeds, AUC as mean ± sd per model and domain."""
from __future__ import annotations

import pandas as pd


def mean_sd_table(rows: pd.DataFrame, value: str = "auc") -> pd.DataFrame:
    """`rows` (model, domain, seed, value) -> domains × models of `mean ± sd (n)`; the domain order is kept."""
    stats = rows.groupby(["domain", "model"], sort=False)[value].agg(["mean", "std", "count"]).reset_index()
    stats["cell"] = [f"{m:.4f} ± {0.0 if pd.isna(s) else s:.4f} (n={n})" for m, s, n in
                     zip(stats["mean"], stats["std"], stats["count"])]
    table = stats.pivot(index="domain", columns="model", values="cell")
    table = table.reindex(index=list(dict.fromkeys(rows["domain"])), columns=list(dict.fromkeys(rows["model"])))
    return table.reset_index().fillna("")


def run_seeds(trainers: list, seeds: list[int], models: tuple[str, ...], training_dir, out_dir_of, log,
              freeze: str = "auto", epochs: int = 0) -> pd.DataFrame:
    """Train every model once per seed (`trainers[i]` carries `seeds[i]`); rows (seed, model, domain, split, auc).

    Multi-domain models are pretrained then fine-tuned (freeze chosen on validation); the single-domain DNN is
    trained on the cold-start data alone. Cold-start rows are scored on test (reported), pretrain domains on
    their validation split.
    """
    import json

    from models.evaluate import evaluate

    pre_dir, cold_dir = training_dir / "pretrain", training_dir / "coldstart"
    names = {int(d["domain_id"]): d["name"] for d in json.loads((pre_dir / "meta.json").read_text())["domains"]}
    rows = []
    for trainer, seed in zip(trainers, seeds):
        for model in (*models, "scratch_dnn"):
            if model == "scratch_dnn":
                fine = trainer.train(log, cold_dir, out_dir_of(model, seed), "dnn", {}, epochs, small_data=True)
            else:
                pre = trainer.train(log, pre_dir, out_dir_of(f"pre_{model}", seed), model, {}, epochs)
                fine = trainer.finetune(log, cold_dir, pre["checkpoint"], out_dir_of(model, seed), freeze, epochs)
                for domain, auc in evaluate(pre["checkpoint"], pre_dir, "valid").get("domain_auc", {}).items():
                    rows.append({"seed": seed, "model": model, "domain": names[int(domain)], "split": "valid",
                                 "auc": auc})
            test = evaluate(fine["checkpoint"], cold_dir, "test")
            rows.append({"seed": seed, "model": model, "domain": "cold-start (test)", "split": "test",
                         "auc": test["auc"]})
            log.info(f"seed {seed} {model}: cold-start test AUC {test['auc']:.4f}")
    frame = pd.DataFrame(rows)
    order = ["cold-start (test)"] + [n for n in names.values() if n in set(frame["domain"])]
    return frame.set_index("domain").loc[order].reset_index()
