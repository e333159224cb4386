"""Multi30k (Elliott et al. 2016; WMT16-18 multimodal translation, task 1): image descriptions in English with
German, French and Czech translations; 29,000 training pairs, 1,014 validation, 1,000 in each test set.

Read from a local folder of the repository's `data/task1/raw/*.gz` files. When a file is missing and `download` is
set, it is fetched from the dataset's public repository at a pinned commit and checked against its sha256.
"""
from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from zoo.data.text import DataError, TextSplit, describe_files, sha256

LANGUAGES = ("en", "de", "fr", "cs")
SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr", "test2017": "test_2017_flickr"}
URL = "https://raw.githubusercontent.com/multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw"
SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
}


def fetch(name: str, root: Path) -> None:
    """Download one file into `root`, keeping it only if its sha256 matches."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.part"
    try:
        with urllib.request.urlopen(f"{URL}/{name}", timeout=60) as response:
            tmp.write_bytes(response.read())
    except OSError as e:  # URLError, timeouts, refused connections
        tmp.unlink(missing_ok=True)
        raise DataError(f"{URL}/{name}: download failed ({e}); copy the files into {root} instead") from None
    digest = sha256(tmp)
    if digest != SHA256[name]:
        tmp.unlink()
        raise DataError(f"{URL}/{name}: sha256 {digest} does not match the expected {SHA256[name]}")
    os.replace(tmp, root / name)


@dataclass(frozen=True)
class Multi30k:
    root: str
    src_lang: str = "en"
    tgt_lang: str = "de"
    download: bool = False  # fetch missing files (the only network access in the zoo, and only when asked)

    def __post_init__(self):
        for lang in (self.src_lang, self.tgt_lang):
            if lang not in LANGUAGES:
                raise ValueError(f"Multi30k has no language {lang!r}; choose from {list(LANGUAGES)}")
        if self.src_lang == self.tgt_lang:
            raise ValueError(f"src_lang and tgt_lang are both {self.src_lang!r}")

    def files(self) -> dict[str, tuple[Path, Path]]:
        """Each split's (source, target) files; a test set lacking either language (no cs for 2017) is left out."""
        root = Path(self.root)
        return {split: (root / f"{stem}.{self.src_lang}.gz", root / f"{stem}.{self.tgt_lang}.gz")
                for split, stem in SPLITS.items()
                if f"{stem}.{self.src_lang}.gz" in SHA256 and f"{stem}.{self.tgt_lang}.gz" in SHA256}

    def ensure_files(self) -> None:
        missing = [p for pair in self.files().values() for p in pair if not p.is_file()]
        if missing and not self.download:
            raise DataError(f"Multi30k {self.src_lang}-{self.tgt_lang}: missing {', '.join(map(str, missing))} in "
                            f"{self.root}; point data.root at the folder holding them, "
                            f"or set data.source.download=true")
        for path in missing:
            fetch(path.name, Path(self.root))

    def fingerprint(self) -> dict:
        self.ensure_files()
        return {split: describe_files(pair) for split, pair in self.files().items()}

    def text_splits(self) -> dict[str, TextSplit]:
        self.ensure_files()
        return {split: TextSplit.from_files(src, tgt) for split, (src, tgt) in self.files().items()}
