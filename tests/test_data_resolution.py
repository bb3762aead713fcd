"""Mirror -> cache -> download resolution, checksums, resume, and the errors users see."""
import hashlib
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from cortexbench import data
from cortexbench.data import DatasetSpec, FileSpec, resolve
from cortexbench.errors import ChecksumError, DataError
from cortexbench.plugins.benchmarks.classic_rsa import KRIEGESKORTE2008


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (as GitHub/OSF/S3 do) and records what was asked."""

    requests: list = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        start = 0
        header = self.headers.get("Range")
        type(self).requests.append(header)
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "origin"
    root.mkdir()
    _RangeHandler.requests = []
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(root), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _dataset(name: str, payload: bytes, url: str = "") -> DatasetSpec:
    return DatasetSpec(identifier=name, description="test",
                       files=(FileSpec("blob.bin", hashlib.sha256(payload).hexdigest(), len(payload), url),))


def test_resolves_from_the_shared_mirror_after_checking_the_checksum(shared_data):
    path = resolve(KRIEGESKORTE2008, "92_brainRDMs.mat")
    assert path == shared_data / "rsa92_kriegeskorte2008" / "92_brainRDMs.mat"


def test_corrupt_mirror_file_is_never_used(tmp_path, monkeypatch, shared_data):
    mirror = tmp_path / "mirror" / "rsa92_kriegeskorte2008"
    mirror.mkdir(parents=True)
    corrupt = bytearray((shared_data / "rsa92_kriegeskorte2008" / "92_brainRDMs.mat").read_bytes())
    corrupt[5000] ^= 0xFF
    (mirror / "92_brainRDMs.mat").write_bytes(bytes(corrupt))
    monkeypatch.setenv("CORTEXBENCH_MIRRORS", str(tmp_path / "mirror"))
    with pytest.raises(DataError) as info:
        resolve(KRIEGESKORTE2008, "92_brainRDMs.mat")
    message = str(info.value)
    assert "92_brainRDMs.mat" in message and "sha256" in message and "corrupt" in message
    # with the good mirror listed second, the corrupt copy is skipped and the good one used
    monkeypatch.setenv("CORTEXBENCH_MIRRORS", os.pathsep.join([str(tmp_path / "mirror"), str(shared_data)]))
    assert resolve(KRIEGESKORTE2008, "92_brainRDMs.mat").parent.parent == shared_data


def test_missing_mirror_offline_names_file_origin_and_variable(monkeypatch):
    monkeypatch.delenv("CORTEXBENCH_MIRRORS", raising=False)
    with pytest.raises(DataError) as info:
        resolve(KRIEGESKORTE2008, "92_brainRDMs.mat")
    message = str(info.value)
    assert "92_brainRDMs.mat" in message
    assert "CORTEXBENCH_MIRRORS" in message
    assert "raw.githubusercontent.com/rsagroup/rsatoolbox" in message


def test_download_resumes_a_partial_file_and_checks_the_checksum(server, monkeypatch, tmp_path):
    root, base = server
    payload = os.urandom(300_000)
    (root / "blob.bin").write_bytes(payload)
    spec = _dataset("resume", payload, f"{base}/blob.bin")
    monkeypatch.delenv("CORTEXBENCH_OFFLINE")
    monkeypatch.delenv("CORTEXBENCH_MIRRORS", raising=False)
    cached = data.config.data_cache_dir() / "resume" / "blob.bin"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.with_name("blob.bin.part").write_bytes(payload[:120_000])   # an interrupted earlier download
    path = resolve(spec, "blob.bin", progress=False)
    assert path == cached and path.read_bytes() == payload
    assert _RangeHandler.requests == ["bytes=120000-"]                # only the rest was fetched
    assert not cached.with_name("blob.bin.part").exists()


def test_download_with_wrong_bytes_is_discarded(server, monkeypatch):
    root, base = server
    (root / "blob.bin").write_bytes(b"tampered content")
    spec = _dataset("tampered", b"the declared content", f"{base}/blob.bin")
    monkeypatch.delenv("CORTEXBENCH_OFFLINE")
    monkeypatch.delenv("CORTEXBENCH_MIRRORS", raising=False)
    with pytest.raises(DataError, match="sha256"):
        resolve(spec, "blob.bin", progress=False)
    cached = data.config.data_cache_dir() / "tampered" / "blob.bin"
    assert not cached.exists() and not cached.with_name("blob.bin.part").exists()
    with pytest.raises(ChecksumError):
        data.download(f"{base}/blob.bin", cached, sha256=spec.files[0].sha256, progress=False)


def test_unreachable_origin_is_a_clear_error(monkeypatch):
    spec = _dataset("unreachable", b"x", "http://127.0.0.1:9/blob.bin")  # discard port: refused
    monkeypatch.delenv("CORTEXBENCH_OFFLINE")
    monkeypatch.delenv("CORTEXBENCH_MIRRORS", raising=False)
    with pytest.raises(DataError) as info:
        resolve(spec, "blob.bin", progress=False)
    assert "ConnectionError" in str(info.value) and "blob.bin" in str(info.value)


def test_verified_cache_copy_is_used_without_network(tmp_path, monkeypatch, shared_data):
    monkeypatch.delenv("CORTEXBENCH_MIRRORS", raising=False)
    cached = data.config.data_cache_dir() / "rsa92_kriegeskorte2008" / "92_brainRDMs.mat"
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_data / "rsa92_kriegeskorte2008" / "92_brainRDMs.mat", cached)
    assert resolve(KRIEGESKORTE2008, "92_brainRDMs.mat") == cached


def test_undeclared_file_is_a_clear_error():
    with pytest.raises(DataError, match="declares no file 'nope.mat'"):
        KRIEGESKORTE2008.file("nope.mat")
