"""TextEncoder: shapes, parity with sentence-transformers, pooling modes, order restoration, errors."""
import os
import re

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest

from embeddings.encoder import TextEncoder
from embeddings.model_source import default_model_dir

TEXTS = [
    "wireless noise cancelling headphones",
    "how to cook rice",
    "a very long product title about a stainless steel espresso machine with milk frother and twenty bar pump",
    "",
    "sneakers",
    "Breaking news: the central bank raises interest rates by a quarter point amid inflation worries",
    "cheap flights to lisbon in may",
    "ÜNICODE tëxt with émojis 🚀 and 漢字",
    "kids bicycle 16 inch",
    "the quick brown fox jumps over the lazy dog " * 3,
    "python dataframe merge on two columns",
    "organic green tea",
    "best budget smartphone 2026 review camera battery",
    "rain jacket women waterproof lightweight packable hood",
    "yoga mat",
    "history of the roman empire documentary",
    "laptop stand aluminium adjustable",
    "a",
    "local bakery sourdough bread recipe with starter and long fermentation",
    "football world cup final highlights",
]


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(device="cpu", batch_size=8)


def test_shapes_dim_and_unit_norm(encoder):
    vectors = encoder.encode(TEXTS)
    assert encoder.dim == 384
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_matches_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(default_model_dir()), device="cpu", local_files_only=True)
    expected = reference.encode(TEXTS, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    cosine = (encoder.encode(TEXTS) * expected).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine


def test_length_sorted_batches_restore_input_order(encoder):
    # batch 3, chunk 5: several chunks and ragged batches, each sorted by length inside
    batched = TextEncoder(device="cpu", batch_size=3, chunk_size=5).encode(TEXTS)
    one_by_one = np.stack([encoder.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_process_pool_tokenisation_gives_the_same_vectors(encoder):
    pooled = TextEncoder(device="cpu", batch_size=4, chunk_size=6, tokenizer_workers=2)
    try:
        np.testing.assert_allclose(pooled.encode(TEXTS), encoder.encode(TEXTS), atol=1e-5)
    finally:
        pooled.close()


def test_empty_string_is_embedded_like_the_bare_special_tokens(encoder):
    vectors = encoder.encode(["", "sneakers", ""])
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert np.isfinite(vectors).all() and float(vectors[0] @ vectors[1]) < 0.99


def test_last_token_pooling_is_the_same_with_left_or_right_padding():
    texts = TEXTS[:10]  # lengths from 2 to ~30 tokens in one batch: plenty of padding on either side
    encoder = TextEncoder(device="cpu", pooling="last-token", batch_size=32)
    encoder.pad_left = False
    right = encoder.encode(texts)
    encoder.pad_left = True
    left = encoder.encode(texts)
    alone = np.stack([encoder.encode([t])[0] for t in texts])  # no padding at all
    np.testing.assert_allclose(left, right, atol=1e-4)
    np.testing.assert_allclose(left, alone, atol=1e-4)


def test_pooling_modes_give_different_vectors_and_model_ids(encoder):
    cls = TextEncoder(device="cpu", pooling="cls")
    mean_vectors, cls_vectors = encoder.encode(TEXTS[:4]), cls.encode(TEXTS[:4])
    assert cls_vectors.shape == mean_vectors.shape
    assert np.abs(cls_vectors - mean_vectors).max() > 0.01
    assert cls.model_id != encoder.model_id and "pooling=cls" in cls.model_id
    with pytest.raises(ValueError, match="pooling"):
        TextEncoder(device="cpu", pooling="max")


def test_missing_model_folder_names_the_path(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        TextEncoder(missing, device="cpu")


def test_random_init_needs_only_config_and_tokenizer(tmp_path):
    import shutil

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(default_model_dir() / name, tmp_path / name)
    first = TextEncoder(tmp_path, device="cpu", random_init=True)
    second = TextEncoder(tmp_path, device="cpu", random_init=True)
    assert "random-init" in first.model_id
    np.testing.assert_allclose(first.encode(TEXTS[:3]), second.encode(TEXTS[:3]), atol=1e-6)  # seeded


def test_a_failed_forward_raises_and_leaves_no_tokenizer_thread_behind():
    import threading

    # max_length 600 > the model's 512 positions: the forward of the first (long) text fails for real, while the
    # producer has 30 more batches to queue (queue size 8): it must not stay blocked on the full queue.
    failing = TextEncoder(device="cpu", batch_size=1, chunk_size=1, max_length=600)
    texts = [" ".join(["word"] * 700)] + TEXTS + TEXTS
    with pytest.raises((RuntimeError, IndexError)):
        failing.encode(texts)
    assert not [t for t in threading.enumerate() if t.name == "tokenize" and t.is_alive()]
    np.testing.assert_allclose(np.linalg.norm(failing.encode(TEXTS[:2]), axis=1), 1.0, atol=1e-5)  # still usable


def test_cache_keys_include_the_compute_dtype(encoder, tmp_path):
    import hashlib

    from embeddings.cache import embed_with_cache, text_key

    texts = TEXTS[:3]
    fp32, first = embed_with_cache(encoder, texts, tmp_path)
    bf16_encoder = TextEncoder(device="cpu", dtype="bfloat16", batch_size=8)
    assert bf16_encoder.model_id == encoder.model_id          # same model: only the dtype tells the vectors apart
    bf16, second = embed_with_cache(bf16_encoder, texts, tmp_path)
    assert first["embedded"] == 3 and second["embedded"] == 3 and second["cache_hits"] == 0
    assert np.abs(bf16 - fp32).max() > 1e-4
    again, third = embed_with_cache(encoder, texts, tmp_path)
    assert third["cache_hits"] == 3 and np.array_equal(again, fp32)
    # float32 keeps the key it had before dtypes were keyed: existing caches stay valid
    assert text_key("m", "mean", "t") == hashlib.sha256("m\x1fmean\x1ft".encode()).hexdigest()
    assert text_key("m", "mean", "t", "bfloat16") != text_key("m", "mean", "t")
