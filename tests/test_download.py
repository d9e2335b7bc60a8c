"""``python -m dgdm_lib data cub``: download, checksum, safe extraction, clear errors.

Nothing here reaches the real host: a tiny ``CUB_200_2011.tgz`` is served from 127.0.0.1 by a
``ThreadingHTTPServer`` in a background thread, and every connection is checked to go there.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import socket
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from PIL import Image

from dgdm_lib.data import CUB200
from dgdm_lib.data.download import (
    CUB_ARCHIVE,
    CUB_MD5,
    CUB_URL,
    ArchiveError,
    DownloadError,
    add_data_parser,
    cmd_data,
    download_cub,
    find_cub,
)

ANNOTATIONS = {
    "images.txt": "1 001.Foo/a.jpg\n2 001.Foo/b.png\n",
    "image_class_labels.txt": "1 1\n2 1\n",
    "train_test_split.txt": "1 1\n2 0\n",
    "bounding_boxes.txt": "1 1.0 1.0 4.0 4.0\n2 0.0 0.0 3.0 3.0\n",
    "classes.txt": "1 001.Foo\n",
}


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 120, 40)).save(buffer, format=fmt)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, link, len(data), 0o755 if kind == tarfile.DIRTYPE else 0o644
    tar.addfile(info, io.BytesIO(data) if data else None)


def _make_archive(path: Path, extra: list[tuple[str, bytes, bytes, str]] = (), cub: bool = True) -> Path:
    """A gzip tar shaped like CUB_200_2011.tgz (plus ``extra`` members: name, data, type, link target)."""
    with tarfile.open(path, "w:gz") as tar:
        if cub:
            for folder in ("CUB_200_2011", "CUB_200_2011/images", "CUB_200_2011/images/001.Foo"):
                _add(tar, folder, kind=tarfile.DIRTYPE)
            for name, text in ANNOTATIONS.items():
                _add(tar, f"CUB_200_2011/{name}", text.encode())
            _add(tar, "CUB_200_2011/images/001.Foo/a.jpg", _image_bytes("JPEG"))
            _add(tar, "CUB_200_2011/images/001.Foo/b.png", _image_bytes("PNG"))
        _add(tar, "attributes.txt", b"1 has_bill_shape::curved\n")
        for name, data, kind, link in extra:
            _add(tar, name, data, kind, link)
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _leftovers(root: Path) -> list[str]:
    """Names under ``root`` other than the archives the tests put there."""
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


class Server:
    """What the local HTTP server serves and what it saw."""

    def __init__(self, archive: Path):
        self.data = archive.read_bytes()
        self.md5 = _md5(archive)
        self.requests: list[str] = []
        self.truncate = False
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/files/{CUB_ARCHIVE}"


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch):
    """No proxy, and every connection urllib opens must go to 127.0.0.1 (the test server)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    connect = socket.create_connection

    def local_only(address, *args, **kwargs):
        assert address[0] == "127.0.0.1", f"test tried to reach {address}"
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)


@pytest.fixture
def server(tmp_path):
    """Serves the tiny archive at ``/files/CUB_200_2011.tgz``; ``truncate`` sends half of it under a full length."""
    state = Server(_make_archive(tmp_path / "served.tgz"))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.requests.append(self.path)
            if self.path != f"/files/{CUB_ARCHIVE}":
                self.send_error(404)
                return
            body = state.data[: len(state.data) // 2] if state.truncate else state.data
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(len(state.data)))
            self.end_headers()
            try:
                self.wfile.write(body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):  # torchvision's redirect probe hangs up early
                pass
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def refused_url() -> str:
    """A 127.0.0.1 URL with nothing listening (the port was bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{CUB_ARCHIVE}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dgdm_lib")
    add_data_parser(parser.add_subparsers(dest="command", required=True))
    return parser


# --- downloading -----------------------------------------------------------------------------------
def test_download_checks_md5_and_extracts_a_folder_cub200_reads(server, tmp_path):
    root = tmp_path / "data"
    folder = download_cub(root, url=server.url, md5=server.md5, progress=False)
    assert folder == root / "CUB_200_2011" and find_cub(root) == folder
    assert _leftovers(root) == ["CUB_200_2011"]  # no archive, no staging folder, no attributes.txt
    CUB200(root=folder, split="train")  # reads every annotation file
    test = CUB200(root=root, split="test")
    image, target = test[0]
    assert len(test) == 1 and tuple(image.shape) == (3, 8, 8) and target["label"] == 0


def test_second_call_does_not_touch_the_network(server, tmp_path):
    first = download_cub(tmp_path, url=server.url, md5=server.md5, progress=False)
    seen = len(server.requests)
    assert seen >= 1
    assert download_cub(tmp_path, url=server.url, md5=server.md5, progress=False) == first
    assert download_cub(first, url=server.url, md5=server.md5, progress=False) == first  # root = the folder itself
    assert len(server.requests) == seen


def test_progress_shows_steps_and_torchvisions_bar(server, tmp_path, capsys):
    download_cub(tmp_path, url=server.url, md5=server.md5, progress=True)
    out, err = capsys.readouterr()
    assert "downloading" in out and "extracting" in out and "100%" in err
    download_cub(tmp_path / "quiet", url=server.url, md5=server.md5, progress=False)
    assert capsys.readouterr() == ("", "")


def test_wrong_md5_names_url_and_md5_and_leaves_nothing(server, tmp_path):
    wrong = "0" * 32
    with pytest.raises(DownloadError) as info:
        download_cub(tmp_path / "data", url=server.url, md5=wrong, progress=False)
    message = str(info.value)
    assert server.url in message and wrong in message and "--archive PATH" in message and "\n" not in message
    assert _leftovers(tmp_path / "data") == []


@pytest.mark.parametrize("md5", ["served", None], ids=["with-md5", "without-md5"])
def test_cut_short_transfer_is_an_error_and_leaves_nothing(server, tmp_path, md5):
    server.truncate = True
    with pytest.raises(DownloadError, match="cut short") as info:
        download_cub(tmp_path / "data", url=server.url, md5=server.md5 if md5 else None, progress=False)
    assert "\n" not in str(info.value)
    assert _leftovers(tmp_path / "data") == []


def test_connection_refused_names_the_url_and_what_to_do(refused_url, tmp_path):
    with pytest.raises(DownloadError) as info:
        download_cub(tmp_path / "data", url=refused_url, progress=False)
    message = str(info.value)
    assert refused_url in message and "refused" in message.lower() and "re-run" in message and "--archive" in message
    assert _leftovers(tmp_path / "data") == []


def test_missing_file_on_the_server_is_an_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download_cub(tmp_path, url=server.url.replace(CUB_ARCHIVE, "nope.tgz"), progress=False)
    assert _leftovers(tmp_path) == ["served.tgz"]


def test_verified_archive_left_by_an_interrupted_run_is_reused_offline(tmp_path, refused_url):
    archive = _make_archive(tmp_path / "served.tgz")
    work = tmp_path / "data" / ".CUB_200_2011.download"
    work.mkdir(parents=True)
    (work / CUB_ARCHIVE).write_bytes(archive.read_bytes())
    folder = download_cub(tmp_path / "data", url=refused_url, md5=_md5(archive), progress=False)
    assert _leftovers(tmp_path / "data") == ["CUB_200_2011"] and len(CUB200(folder, "test")) == 1


def test_incomplete_existing_folder_is_never_overwritten(server, tmp_path):
    (tmp_path / "CUB_200_2011").mkdir()
    (tmp_path / "CUB_200_2011" / "mine.txt").write_text("keep me")
    with pytest.raises(DownloadError, match="Move it away or delete it"):
        download_cub(tmp_path, url=server.url, md5=server.md5, progress=False)
    assert server.requests == [] and (tmp_path / "CUB_200_2011" / "mine.txt").read_text() == "keep me"


# --- local archives and unsafe archives ------------------------------------------------------------
def test_local_archive_is_checked_and_extracted_without_network(tmp_path, refused_url):
    archive = _make_archive(tmp_path / "mine.tgz")
    folder = download_cub(tmp_path / "data", url=refused_url, md5=_md5(archive), progress=False, archive=archive)
    assert len(CUB200(folder, "test")) == 1 and archive.exists()
    with pytest.raises(DownloadError, match=f"expected {CUB_MD5}.*{CUB_URL}") as info:
        download_cub(tmp_path / "other", archive=archive, progress=False)
    assert "the file was left in place" in str(info.value) and archive.exists()
    assert _leftovers(tmp_path / "other") == []
    with pytest.raises(FileNotFoundError, match="nowhere.tgz"):
        download_cub(tmp_path / "other", archive=tmp_path / "nowhere.tgz", progress=False)


@pytest.mark.parametrize("member", [
    ("../evil.txt", b"x", tarfile.REGTYPE, ""),
    ("CUB_200_2011/../../evil.txt", b"x", tarfile.REGTYPE, ""),
    ("/tmp/evil.txt", b"x", tarfile.REGTYPE, ""),
    ("CUB_200_2011/images/link", b"", tarfile.SYMTYPE, "../../../../evil.txt"),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink-out"])
def test_unsafe_members_are_refused_and_nothing_is_left(tmp_path, member):
    archive = _make_archive(tmp_path / "evil.tgz", extra=[member])
    root = tmp_path / "a" / "b"
    with pytest.raises(ArchiveError, match="unsafe member"):
        download_cub(root, archive=archive, md5=None, progress=False)
    assert _leftovers(root) == [] and not list(tmp_path.rglob("evil.txt"))


def test_archive_without_cub_folder_or_not_a_tar_is_refused(tmp_path):
    with pytest.raises(ArchiveError, match="not the CUB-200-2011 archive"):
        download_cub(tmp_path / "d", archive=_make_archive(tmp_path / "x.tgz", cub=False), md5=None, progress=False)
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ArchiveError, match="not a readable tar archive"):
        download_cub(tmp_path / "d", archive=junk, md5=None, progress=False)
    assert _leftovers(tmp_path / "d") == []


# --- command line ----------------------------------------------------------------------------------
def test_data_command_help_documents_every_option():
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["data"]
    assert [a.option_strings or a.dest for a in sub._actions if not a.help] == []
    text = sub.format_help()
    usage = "usage: python -m dgdm_lib data [-h] cub [--root DIR] [--archive PATH] [--url URL] [--md5 HEX] [--no-progress]"
    assert usage in text
    args = parser.parse_args(["data", "cub"])
    assert (args.command, args.dataset, args.root, args.archive, args.url, args.md5, args.progress) == \
        ("data", "cub", None, None, CUB_URL, CUB_MD5, True)


def _main(argv: list[str], capsys) -> tuple[int, str, str]:
    """What ``dgdm_lib.cli.main`` does with the data command: errors become one ``error:`` line, exit 2."""
    try:
        code = cmd_data(_parser().parse_args(argv))
    except (DownloadError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


def test_data_command_downloads_then_reports_it_is_there(server, tmp_path, capsys):
    root = tmp_path / "data"
    argv = ["data", "cub", "--root", str(root), "--url", server.url, "--md5", server.md5, "--no-progress"]
    code, out, err = _main(argv, capsys)
    folder = root / "CUB_200_2011"
    assert (code, err) == (0, "") and f"ready at {folder}" in out
    assert f"--dataset cub --data-root {folder}" in out and f"DGDM_CUB_ROOT={folder}" in out
    seen = len(server.requests)
    code, out, _ = _main(argv, capsys)
    assert code == 0 and f"already at {folder}" in out and len(server.requests) == seen


def test_data_command_default_root_is_dgdm_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("DGDM_CUB_ROOT", raising=False)
    archive = _make_archive(tmp_path / "mine.tgz")
    code, out, _ = _main(["data", "cub", "--archive", str(archive), "--md5", _md5(archive), "--no-progress"], capsys)
    assert code == 0 and f"ready at {tmp_path / 'data' / 'CUB_200_2011'}" in out and "without --data-root)" in out
    assert len(CUB200(split="test")) == 1
    monkeypatch.setenv("DGDM_CUB_ROOT", str(tmp_path / "data" / "CUB_200_2011"))
    code, out, _ = _main(["data", "cub", "--no-progress"], capsys)
    assert code == 0 and f"already at {tmp_path / 'data' / 'CUB_200_2011'}" in out


@pytest.mark.parametrize("case", ["refused", "bad-md5", "no-archive"])
def test_data_command_errors_are_one_line_and_exit_2(case, server, refused_url, tmp_path, capsys):
    argv = {"refused": ["--url", refused_url],
            "bad-md5": ["--url", server.url],  # the official MD5 cannot match the tiny archive
            "no-archive": ["--archive", str(tmp_path / "nowhere.tgz")]}[case]
    code, out, err = _main(["data", "cub", "--root", str(tmp_path / "data"), "--no-progress", *argv], capsys)
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert (refused_url if case == "refused" else server.url if case == "bad-md5" else "nowhere.tgz") in err
    assert _leftovers(tmp_path / "data") == []
