"""verify() finds missing, short and changed files; import_dir() finds files by name or content."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.errors import WeightsError
from pipeline.weights.manifest import Licence, WeightFile
from pipeline.weights.verify import State, import_dir, verify

LIC = Licence("Test-1.0", "https://example.invalid/licence")


def _entries(tmp: Path) -> tuple[list[WeightFile], dict[str, bytes]]:
    bodies = {"alpha": bytes(range(256)) * 40, "beta": b"\x80\x02" + bytes(5000),
              "gamma": b"TFL3" * 999}
    entries = [WeightFile(n, "g", f"g/{n}.pth", len(b), hashlib.sha256(b).hexdigest(), LIC,
                          url="http://x.invalid") for n, b in bodies.items()]
    return entries, bodies


def _install(root: Path, entries: list[WeightFile], bodies: dict[str, bytes]) -> None:
    for e in entries:
        (root / e.relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / e.relpath).write_bytes(bodies[e.name])


def test_verify_reports_each_state(tmp_path: Path) -> None:
    entries, bodies = _entries(tmp_path)
    _install(tmp_path, entries, bodies)
    assert [s.state for s in verify(tmp_path, entries)] == [State.OK] * 3
    # one changed byte, same size
    data = bytearray(bodies["alpha"])
    data[4321] ^= 0x01
    (tmp_path / "g/alpha.pth").write_bytes(bytes(data))
    (tmp_path / "g/beta.pth").write_bytes(bodies["beta"][:-1])
    (tmp_path / "g/gamma.pth").unlink()
    alpha, beta, gamma = verify(tmp_path, entries)
    assert alpha.state is State.HASH_MISMATCH and not alpha.ok
    assert hashlib.sha256(bytes(data)).hexdigest() in alpha.detail
    assert "weights fetch alpha" in alpha.fix
    assert beta.state is State.SIZE_MISMATCH and "5,001 bytes, expected 5,002" in beta.detail
    assert gamma.state is State.MISSING and "weights import" in gamma.fix
    # a size-only check cannot see the changed byte; the hash check can
    assert verify(tmp_path, entries[:1], hash_files=False)[0].ok


def test_unpinned_file_is_reported_with_its_hash(tmp_path: Path) -> None:
    entry = WeightFile("u", "g", "g/u.pth", None, None, LIC)
    (tmp_path / "g").mkdir()
    (tmp_path / "g/u.pth").write_bytes(b"abc")
    (status,) = verify(tmp_path, [entry])
    assert status.state is State.UNPINNED and status.ok
    assert hashlib.sha256(b"abc").hexdigest() in status.detail


def test_import_by_name_and_by_content(tmp_path: Path) -> None:
    entries, bodies = _entries(tmp_path)
    src = tmp_path / "downloads"
    (src / "deep" / "er").mkdir(parents=True)
    (src / "alpha.pth").write_bytes(bodies["alpha"])  # by name
    (src / "deep" / "er" / "Renamed_Beta.PTH").write_bytes(bodies["beta"])  # by size + hash
    (src / "gamma.pth").write_bytes(b"TFL3" * 998 + b"XXXX")  # right name, wrong content
    weights = tmp_path / "weights"
    results = import_dir(src, weights, entries)
    assert [r.status for r in results] == ["imported", "imported", "rejected"]
    assert results[1].source == src / "deep" / "er" / "Renamed_Beta.PTH"
    assert "not the official file" in results[2].detail
    assert [s.state for s in verify(weights, entries)] == [State.OK, State.OK, State.MISSING]
    assert not list(weights.rglob("*.partial"))
    again = import_dir(src, weights, entries)
    assert [r.status for r in again] == ["present", "present", "rejected"]


def test_import_of_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="is not a folder"):
        import_dir(tmp_path / "nope", tmp_path / "w", [])
