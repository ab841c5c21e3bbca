"""Class 7 of issue 11: names fitted to the file system in bytes, UTF-8 safe, unique, NFC.

Real folders in tmp_path: 250-byte names, multi-byte UTF-8 (2, 3 and 4 bytes per character),
combining accents, and the same name in NFC and NFD.
"""

from __future__ import annotations

import random
import unicodedata

import pytest

from tests.helpers.daemon_harness import make_job, speech_clip, write_config
from watcher.config import load_config
from watcher.jobfolder import parse_job_folder
from watcher.names import (
    NAME_MAX_FALLBACK,
    cut_utf8,
    fit,
    fit_file,
    name_max,
    nfc,
    numbered,
    rename_unique,
    reserve_dir,
    unique,
    utf8_len,
)

ALPHABET = ["a", "Z", " ", ".", "é", "ß", "日", "本", "😀", "🎬", "e\u0301", "o\u0308\u0304", "-"]


def random_name(rng: random.Random, max_chars: int = 120) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, max_chars)))


def test_cut_never_splits_a_code_point_or_a_glyph():
    """2000 generated names cut at every kind of limit: whole code points, whole glyphs."""
    rng = random.Random(7)
    for _ in range(2000):
        name = random_name(rng)
        limit = rng.randint(0, utf8_len(name) + 3)
        cut = cut_utf8(name, limit)
        raw = cut.encode("utf-8")
        assert len(raw) <= limit
        assert name.startswith(cut)
        assert raw.decode("utf-8") == cut  # a whole number of code points
        rest = name[len(cut) :]
        assert not rest or not unicodedata.combining(rest[0]), (name, limit, cut)


@pytest.mark.parametrize("suffix", ["", " (2)", " (137)", ".mp4"])
def test_fit_keeps_the_suffix_and_the_byte_limit(suffix):
    rng = random.Random(len(suffix))
    for _ in range(500):
        name = random_name(rng, 200)
        limit = rng.choice([255, 100, 32, 16])
        fitted = fit(name, limit, suffix)
        assert utf8_len(fitted) <= limit
        assert fitted.endswith(suffix)
        assert fitted[: len(fitted) - len(suffix)]  # never an empty stem
        if utf8_len(name + suffix) <= limit:
            assert fitted == name + suffix  # short names are left alone


def test_fit_file_keeps_the_extension():
    name = "é" * 200 + ".mp4"  # 404 bytes
    fitted = fit_file(name, 255)
    assert fitted.endswith(".mp4") and utf8_len(fitted) <= 255
    assert fit_file("hello.mp4", 255) == "hello.mp4"


def test_numbered_candidates():
    assert [numbered("job", n, 255) for n in (1, 2, 3)] == ["job", "job (2)", "job (3)"]
    long = "x" * 253  # 253 + " (2)" = 257 bytes: the name is cut to make room
    assert utf8_len(numbered(long, 2, 255)) == 255
    assert numbered(long, 2, 255).endswith(" (2)")


def test_unique_compares_in_nfc():
    taken = {nfc("Cafe\u0301")}
    assert unique("Café", lambda n: nfc(n) in taken, 255) == "Café (2)"
    assert nfc("Cafe\u0301") == nfc("Caf\u00e9")  # NFD from macOS equals NFC from Linux


def test_name_max_of_a_real_folder_and_the_fallback(tmp_path):
    assert name_max(tmp_path) >= 255
    assert name_max(tmp_path / "does-not-exist") == NAME_MAX_FALLBACK


@pytest.mark.parametrize(
    "name",
    [
        "j" * 250,  # the crash-loop of the issue: 250 bytes, "(2)" would make 254... and more
        "j" * 255,
        "日本語の仕事" * 14,  # 252 bytes of 3-byte characters
        "🎬" * 63,  # 252 bytes of 4-byte characters
        "e\u0301" * 80,  # 240 bytes of NFD letters with accents
    ],
)
def test_reserve_dir_fits_long_names_on_a_real_disk(tmp_path, name):
    parent = tmp_path / "outbox"
    made = [reserve_dir(parent, name) for _ in range(12)]
    assert len({p.name for p in made}) == 12
    for path in made:
        assert path.is_dir()
        assert utf8_len(path.name) <= name_max(parent)
        path.name.encode("utf-8").decode("utf-8")
    assert made[1].name.endswith(" (2)") and made[11].name.endswith(" (12)")


def test_reserve_dir_treats_nfd_and_nfc_as_the_same_name(tmp_path):
    parent = tmp_path / "outbox"
    parent.mkdir()
    (parent / unicodedata.normalize("NFD", "Café")).mkdir()  # as macOS wrote it
    made = reserve_dir(parent, unicodedata.normalize("NFC", "Café"))
    assert made.name == "Café (2)"


def test_rename_unique_moves_a_long_named_folder(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    name = "ü" * 127  # 254 bytes
    (inbox / name).mkdir()
    for i in range(3):
        src = tmp_path / f"staging{i}"
        src.mkdir()
        (src / "job.yaml").write_text("")
        dest = rename_unique(src, inbox, name)
        assert (dest / "job.yaml").is_file() and not src.exists()
        assert utf8_len(dest.name) <= 255 and dest.name.endswith(f" ({i + 2})")


def test_a_250_byte_job_name_gets_an_output_name_that_fits(
    tmp_path, monkeypatch, astronaut_path, speech_path
):
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    config = load_config(write_config(tmp_path / "root"), home=tmp_path / "home")
    voice = speech_clip(speech_path, tmp_path / "v.wav", 0.5)
    name = "ö" * 125  # 250 bytes: a legal folder, but "<name>.mp4" is 254, "<name> (2)" 254...
    folder = make_job(tmp_path / "jobs", name, astronaut_path, voice)
    parsed = parse_job_folder(folder, config)
    assert parsed.spec.output_name.endswith(".mp4")
    assert utf8_len(parsed.spec.output_name) <= 255
    (folder / "job.yaml").write_text(f"output: {'x' * 300}.mp4\n")
    with pytest.raises(Exception, match="bytes long") as info:
        parse_job_folder(folder, config)
    assert "shorter output name" in info.value.user_message()
