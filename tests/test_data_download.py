"""Downloader: against a local file:// zip built here (never the network)."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from unisr_data import download as dl
from unisr_data.download import DATASETS, ChecksumError, download


def _zip(tmp_path: Path, top_folder: str | None = "ml-tiny") -> tuple[str, str]:
    """A small zip (optionally under one top folder); returns (file:// URL, its SHA-256)."""
    archive = tmp_path / "origin" / "ml-tiny.zip"
    archive.parent.mkdir(parents=True)
    prefix = f"{top_folder}/" if top_folder else ""
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{prefix}ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
        zf.writestr(f"{prefix}movies.csv", "movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    return archive.as_uri(), hashlib.sha256(archive.read_bytes()).hexdigest()


def test_good_checksum_downloads_and_extracts(tmp_path):
    url, sha = _zip(tmp_path)
    folder = download("ml-tiny", tmp_path / "dest", url=url, sha256=sha, progress=False)
    assert folder == tmp_path / "dest" / "ml-tiny"
    assert (folder / "ratings.csv").read_text().startswith("userId,movieId")
    assert (tmp_path / "dest" / "ml-tiny.zip").is_file()
    assert not list((tmp_path / "dest").glob("*.part"))


def test_bad_checksum_fails_and_removes_the_file(tmp_path):
    url, sha = _zip(tmp_path)
    with pytest.raises(ChecksumError, match="SHA-256 mismatch.*ml-tiny.zip") as err:
        download("ml-tiny", tmp_path / "dest", url=url, sha256="0" * 64, progress=False)
    assert sha in str(err.value)
    assert not (tmp_path / "dest" / "ml-tiny.zip").exists()
    assert not (tmp_path / "dest" / "ml-tiny").exists()


def test_second_call_neither_downloads_nor_extracts(tmp_path, monkeypatch):
    url, sha = _zip(tmp_path)
    folder = download("ml-tiny", tmp_path / "dest", url=url, sha256=sha, progress=False)
    stamp = (folder / "ratings.csv").stat().st_mtime_ns

    def no_fetch(*args, **kwargs):
        raise AssertionError("archive present and verified: must not download again")

    monkeypatch.setattr(dl, "_fetch", no_fetch)
    monkeypatch.setattr(dl, "_extract", no_fetch)
    assert download("ml-tiny", tmp_path / "dest", url=url, sha256=sha, progress=False) == folder
    assert (folder / "ratings.csv").stat().st_mtime_ns == stamp


def test_interrupted_extraction_is_redone_and_corrupt_archive_refetched(tmp_path, capsys):
    url, sha = _zip(tmp_path, top_folder=None)  # a zip without a top folder (MIND's layout)
    folder = download("ml-tiny", tmp_path / "dest", url=url, progress=False)
    assert sha in capsys.readouterr().err  # no checksum recorded: the digest is printed to record
    (folder / dl.DONE_MARKER).unlink()  # as if extraction had been interrupted
    (folder / "movies.csv").unlink()
    download("ml-tiny", tmp_path / "dest", url=url, sha256=sha, progress=False)
    assert (folder / "movies.csv").is_file()
    (tmp_path / "dest" / "ml-tiny.zip").write_bytes(b"truncated")
    download("ml-tiny", tmp_path / "dest", url=url, sha256=sha, progress=False)
    assert hashlib.sha256((tmp_path / "dest" / "ml-tiny.zip").read_bytes()).hexdigest() == sha


def test_registry_and_unknown_names():
    assert {"ml-latest-small", "ml-100k", "ml-25m", "mind-small-train"} <= set(DATASETS)
    for source in DATASETS.values():
        assert source.url.startswith("https://") and source.url.endswith(source.file)
        assert source.sha256 is None or len(source.sha256) == 64
    with pytest.raises(KeyError, match="unknown dataset"):
        download("no-such-set", Path("/nonexistent"), progress=False)
