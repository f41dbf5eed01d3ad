"""Fetch a public dataset archive, verify its checksum and extract it once.

`python -m unisr_data.download ml-latest-small var/downloads` prints the extracted folder. A second call with
the archive already present and verified neither downloads nor extracts again.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

CHUNK_BYTES = 1 << 20
DONE_MARKER = ".unisr-extracted"


@dataclass(frozen=True)
class DatasetSource:
    """Where one archive lives and how to check it; `folder` is the top-level folder inside the zip."""

    file: str
    url: str
    folder: str
    #: SHA-256 of the archive when known; None = not published, the computed digest is printed instead.
    sha256: str | None = None
    #: MD5 as published by the provider (GroupLens ships `<zip>.md5`), checked when no SHA-256 is known.
    md5: str | None = None


GROUPLENS = "https://files.grouplens.org/datasets/movielens"
DATASETS: dict[str, DatasetSource] = {
    "ml-latest-small": DatasetSource("ml-latest-small.zip", f"{GROUPLENS}/ml-latest-small.zip", "ml-latest-small"),
    "ml-100k": DatasetSource("ml-100k.zip", f"{GROUPLENS}/ml-100k.zip", "ml-100k",
                             md5="0e33842e24a9c977be4e0107933c0723"),
    "ml-25m": DatasetSource("ml-25m.zip", f"{GROUPLENS}/ml-25m.zip", "ml-25m",
                            md5="6b51fb2759a8657d3bfcbfc42b592ada"),
    # The official MIND link from msnews.github.io; the zip has no top-level folder.
    "mind-small-train": DatasetSource(
        "MINDsmall_train.zip", "https://mind201910small.blob.core.windows.net/release/MINDsmall_train.zip",
        "MINDsmall_train",
    ),
}


class ChecksumError(RuntimeError):
    """The downloaded archive does not match its recorded checksum."""


def download(
    name: str,
    dest_dir: Path,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Download (if needed), verify and extract dataset `name` under `dest_dir`; returns the extracted folder.

    `url` / `sha256` override the registry (a `file://` URL works); an unknown `name` needs `url`.
    """
    source = DATASETS.get(name)
    if source is None:
        if url is None:
            raise KeyError(f"unknown dataset {name!r}: pass url=..., or use one of {sorted(DATASETS)}")
        file = Path(urllib.request.url2pathname(url.rsplit("/", 1)[-1])).name
        source = DatasetSource(file=file, url=url, folder=Path(file).stem)
    url = url or source.url
    expected_sha = (sha256 or source.sha256 or "").lower() or None
    expected_md5 = None if sha256 else source.md5
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / source.file
    target = dest_dir / source.folder

    if archive.is_file() and _matches(archive, expected_sha, expected_md5):
        if (target / DONE_MARKER).is_file():
            return target
    else:
        _fetch(url, archive, progress)
        _verify(archive, expected_sha, expected_md5, url)
    _extract(archive, target)
    return target


def _digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def _matches(path: Path, sha256: str | None, md5: str | None) -> bool:
    """True when the file matches every known checksum (no checksum known: an existing file is trusted)."""
    sha, md = _digests(path)
    return (sha256 is None or sha == sha256) and (md5 is None or md == md5)


def _verify(archive: Path, sha256: str | None, md5: str | None, url: str) -> None:
    """Raise ChecksumError (removing the file) on mismatch; print the digest when none was recorded."""
    sha, md = _digests(archive)
    for kind, expected, actual in (("SHA-256", sha256, sha), ("MD5", md5, md)):
        if expected is not None and actual != expected:
            archive.unlink(missing_ok=True)
            raise ChecksumError(
                f"{kind} mismatch for {archive.name} from {url}: expected {expected}, got {actual}. "
                "The partial or corrupted file was removed; retry, or check the URL/checksum you passed."
            )
    if sha256 is None:
        print(f"{archive.name}: no SHA-256 recorded; computed sha256={sha} (record it in DATASETS)", file=sys.stderr)


def _fetch(url: str, archive: Path, progress: bool) -> None:
    """Stream `url` to `<archive>.part`, then rename; a failure leaves no partial file behind."""
    part = archive.with_name(archive.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            total = response.headers.get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True, desc=archive.name,
                      disable=not progress) as bar:
                while block := response.read(CHUNK_BYTES):
                    out.write(block)
                    bar.update(len(block))
        part.replace(archive)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _extract(archive: Path, target: Path) -> None:
    """Extract into `target` (its top-level folder stripped if the zip has one); marker written last."""
    tmp = target.with_name(f".{target.name}.extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ValueError(f"unsafe path {member!r} in {archive}; refusing to extract")
            zf.extractall(tmp)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{archive} is not a valid zip ({err}); delete it and download again") from err
    entries = [p for p in tmp.iterdir() if p.name != "__MACOSX"]
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
    shutil.rmtree(target, ignore_errors=True)
    root.rename(target)
    shutil.rmtree(tmp, ignore_errors=True)
    (target / DONE_MARKER).write_text(archive.name + "\n")


def main(argv: list[str] | None = None) -> None:
    """CLI: download NAME DEST [--url URL] [--sha256 HEX]; prints the extracted folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help=f"one of {sorted(DATASETS)} (or any name with --url)")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--url")
    parser.add_argument("--sha256")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    print(download(args.name, args.dest, url=args.url, sha256=args.sha256, progress=not args.quiet))


if __name__ == "__main__":
    main()
