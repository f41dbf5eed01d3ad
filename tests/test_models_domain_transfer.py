"""A small domain that inverts the majority's user-topic affinity (the synthetic rec_coupons) must not be lost to
memorising id embeddings: the trainer's default embedding weight decay (models.engine.TrainConfig)."""
from dataclasses import replace

import pandas as pd
import pytest

from inverted_domain_fixture import write_folder
from models.engine import TrainConfig
from models.metrics import domain_auc
from models.references import category_click_rate
from models.train import train


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("inverted")
    return root, write_folder(root)


def test_inverted_domain_is_learned_with_the_default_embedding_decay(folder, tmp_path):
    root, valid = folder
    rule = domain_auc(valid["label"], category_click_rate(pd.read_parquet(root / "train.parquet"), valid),
                      valid["domain_id"])[1]
    assert rule > 0.6                     # the (domain, subcategory) click rate ranks the inverted domain
    cfg = TrainConfig(model="srf", model_kwargs={"hidden": 32}, epochs=3, batch_size=512, num_threads=1,
                      checkpoint_every=0, progress=False)
    # Without decay the id tables memorise the training rows (loss 0.53) and what transfers through them is the
    # majority's affinity, inverted here: the domain falls to chance by the checkpoint kept (0.52 at this seed).
    memorised = train(replace(cfg, embedding_weight_decay=0.0), root, tmp_path / "no_decay")
    assert memorised["metrics"]["domain_auc"][1] < 0.535
    assert TrainConfig.embedding_weight_decay > 0
    result = train(cfg, root, tmp_path / "default")
    assert result["metrics"]["domain_auc"][1] > 0.55, result["metrics"]["domain_auc"]
    assert result["metrics"]["auc"] > memorised["metrics"]["auc"]
