"""Text-embedding throughput: our TextEncoder vs sentence-transformers on the same model, texts, device and batch size,
plus the incremental case (first run vs re-run with 1% new texts through the cache). Ends with one JSON line.

    python benchmarks/bench_embeddings.py --n 2000 --device cpu
    python benchmarks/bench_embeddings.py --n 200000 --device cuda --random-init --model-dir /path/config_and_tokenizer
    python benchmarks/bench_embeddings.py --n 200 --device cpu --encoder smollm2 --skip-st   # a named encoder
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from embeddings.cache import embed_with_cache
from embeddings.encoder import TextEncoder

WORDS = (
    "wireless bluetooth headphones noise cancelling over ear stainless steel kitchen knife set organic cotton t-shirt "
    "women men kids running shoes lightweight breathable waterproof jacket hiking backpack travel camera lens tripod "
    "smartphone case charger cable fast charging laptop stand ergonomic office chair desk lamp led smart home speaker "
    "coffee maker espresso grinder tea kettle electric blender vegan protein powder vitamin supplement yoga mat "
    "fitness "
    "dumbbell set garden hose outdoor furniture patio umbrella winter boots leather wallet sunglasses polarized watch "
    "analog digital kitchen scale baking tray non-stick frying pan cast iron skillet toddler toy building blocks "
    "puzzle "
    "board game novel bestseller mystery thriller cookbook history biography science fiction fantasy edition hardcover "
    "paperback premium quality durable compact portable adjustable rechargeable eco-friendly handmade vintage classic"
).split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    """n deterministic product-title-like texts of 45-65 words (~74 MiniLM tokens on average); distinct per seed."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(45, 66, size=n)
    picks = rng.integers(0, len(WORDS), size=int(lengths.sum()))
    texts, at = [], 0
    for i, length in enumerate(lengths):
        texts.append(f"#{seed}-{i} " + " ".join(WORDS[j] for j in picks[at : at + length]))
        at += length
    return texts


def sentence_transformer(model_dir: str, device: str, dtype: torch.dtype, max_length: int):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device=device, local_files_only=True, model_kwargs={"dtype": dtype})
    model.max_seq_length = max_length
    return model


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="texts per timed run")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")
    parser.add_argument("--model-dir", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2); with "
                        "--random-init it needs only config.json + tokenizer files")
    parser.add_argument("--encoder", default=None,
                        help="a named encoder (embeddings.model_source.ENCODERS: minilm, mpnet, smollm2): its packaged "
                             "folder and pooling; sentence-transformers is compared only for mean pooling")
    parser.add_argument("--random-init", action="store_true",
                        help="random weights from config.json (speed is the same)")
    parser.add_argument("--tokenizer-workers", default="auto", help="'auto', 0 (background thread) or N processes")
    parser.add_argument("--new-fraction", type=float, default=0.01, help="share of new texts in the incremental re-run")
    parser.add_argument("--skip-st", action="store_true", help="time only our encoder")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs of each encoder, interleaved; the best of each counts "
                             "(shared machines are noisy)")
    args = parser.parse_args()

    workers = args.tokenizer_workers if args.tokenizer_workers == "auto" else int(args.tokenizer_workers)
    pooling = "mean"
    if args.encoder:
        from embeddings.model_source import resolve_encoder

        resolved = resolve_encoder(args.encoder)
        args.model_dir, pooling = str(resolved.folder), resolved.pooling
        args.skip_st = args.skip_st or pooling != "mean"  # sentence-transformers pools by mean here
    ours = TextEncoder(args.model_dir, pooling=pooling, max_length=args.max_length, batch_size=args.batch_size,
                       device=args.device, tokenizer_workers=workers, random_init=args.random_init)
    device = ours.device.type
    texts = make_texts(args.n)
    mean_tokens = float(np.mean([len(e.ids) for e in ours._tokenizer.encode_batch(texts[:500])]))
    print(f"device={device} dtype={ours.dtype} n={args.n} batch={args.batch_size} mean_tokens={mean_tokens:.1f} "
          f"tokenizer_workers={ours.workers} model={ours.model_id}", flush=True)

    ours.encode(make_texts(2 * args.batch_size, seed=99))  # warm-up: kernels, allocator, worker processes
    result = {"bench": "embeddings", "device": device,
              "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
              "cpu_cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
              "encoder": args.encoder, "pooling": pooling,
              "n": args.n, "batch_size": args.batch_size, "mean_tokens": round(mean_tokens, 1),
              "tokenizer_workers": ours.workers, "random_init": args.random_init, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        if not args.skip_st:
            st_dir = ours.source
            if args.random_init:  # give sentence-transformers the very same random weights
                ours.model.save_pretrained(tmp)
                from transformers import AutoTokenizer

                AutoTokenizer.from_pretrained(ours.source, local_files_only=True).save_pretrained(tmp)
                st_dir = tmp
            reference = sentence_transformer(st_dir, device, ours.dtype, args.max_length)
            reference.encode(make_texts(2 * args.batch_size, seed=99), batch_size=args.batch_size)
        our_times, st_times = [], []
        for repeat in range(args.repeats):
            our_vectors, seconds = timed(lambda: ours.encode(texts))
            our_times.append(seconds)
            print(f"[{repeat}] ours:                  {args.n / seconds:10.1f} texts/s  ({seconds:.2f} s)", flush=True)
            if reference is not None:
                st_vectors, seconds = timed(lambda: reference.encode(
                    texts, batch_size=args.batch_size, convert_to_numpy=True, normalize_embeddings=True))
                st_times.append(seconds)
                print(f"[{repeat}] sentence-transformers: {args.n / seconds:10.1f} texts/s  ({seconds:.2f} s)",
                      flush=True)
    our_s = min(our_times)
    result["ours_texts_per_s"] = round(args.n / our_s, 1)
    if st_times:
        st_s = min(st_times)
        cosine = (our_vectors * st_vectors).sum(1) / np.linalg.norm(st_vectors, axis=1)
        result.update(st_texts_per_s=round(args.n / st_s, 1), speedup_vs_st=round(st_s / our_s, 2),
                      min_cosine_vs_st=round(float(cosine.min()), 6))
        print(f"best: ours {args.n / our_s:.1f} texts/s, sentence-transformers {args.n / st_s:.1f} texts/s "
              f"-> ratio {st_s / our_s:.2f}x (min cosine {cosine.min():.6f})", flush=True)

    with tempfile.TemporaryDirectory() as cache_dir:
        (_, first), first_s = timed(lambda: embed_with_cache(ours, texts, cache_dir))
        n_new = max(1, int(round(args.n * args.new_fraction)))
        rerun_texts = texts[n_new:] + make_texts(n_new, seed=1)
        (_, again), again_s = timed(lambda: embed_with_cache(ours, rerun_texts, cache_dir))
    assert again["embedded"] == n_new, again
    result.update(incremental_first_s=round(first_s, 3), incremental_rerun_s=round(again_s, 4),
                  incremental_new_texts=n_new, incremental_speedup=round(first_s / again_s, 1))
    print(f"incremental: first {first_s:.2f} s, re-run with {n_new} new texts {again_s:.3f} s "
          f"-> {first_s / again_s:.1f}x faster", flush=True)
    ours.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
