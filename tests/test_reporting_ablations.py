"""reporting.ablations: every SRF variant fine-tuned and compared with the default on the same test rows."""
from __future__ import annotations

import logging

import pytest

from model_fixture import DirectTrainer, write_folders
from reporting.ablations import DEFAULT, MODEL_VARIANTS, ablation_table, entry, train_variants
from reporting.checkpoint_comparison import compare_checkpoints


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablations")
    folders = write_folders(root / "data", n_warm=600, n_cold=2000, behaviour=6)
    trainer, log = DirectTrainer(), logging.getLogger("test")
    pretrained = trainer.train(log, folders["pretrain"], root / "runs" / "pre", "srf", DEFAULT, 3)["checkpoint"]
    checkpoints, default = train_variants(trainer, root / "data", lambda name: root / "runs" / name, log, pretrained,
                                          epochs=3)
    return folders, checkpoints, default


def test_every_study_variant_is_trained(variants):
    _, checkpoints, default = variants
    freeze = {entry("freeze", level) for level in ("L0", "L0+L1", "none", "scratch")}
    assert set(checkpoints) == freeze | {entry(study, variant) for study, variant, _ in MODEL_VARIANTS}
    assert default in freeze - {entry("freeze", "scratch")}
    assert all(path.exists() for path in checkpoints.values())


def test_table_gives_each_variant_a_ci_and_its_paired_difference_to_the_default(variants):
    folders, checkpoints, default = variants
    comparison = compare_checkpoints(checkpoints, folders["coldstart"], None, n_boot=200)
    table = ablation_table(comparison, default)
    assert set(table["study"]) == {"freeze", "text", "behaviour", "gating", "divergence"}
    defaults = table[table["variant"].str.endswith("(default)")]
    assert len(defaults) == 5 and (defaults["− default"] == "0").all()
    for study, variant, _ in MODEL_VARIANTS:
        diff = comparison.difference(entry(study, variant), default)
        a, b = comparison.auc(entry(study, variant)), comparison.auc(default)
        assert diff.value == pytest.approx(a.value - b.value) and diff.lo <= diff.value <= diff.hi
        row = table[(table["study"] == study) & (table["variant"] == variant)].iloc[0]
        assert row["AUC"] == str(a) and row["significant"] in ("yes", "no")
    # the fixture's clicks follow the user's history: removing behaviour sequences must cost AUC
    assert comparison.difference(entry("behaviour", "no behaviour"), default).value < 0
