"""Genre classifier P (paper Eq. 1-2) and the control-embedding table C_E.

    python -m training.genre_classifier            # train both heads, write the artifacts, evaluate
    python -m training.genre_classifier --eval     # evaluate the shipped artifacts (no torch)
    python -m training.genre_classifier --encoder clip --clip-checkpoint ViT-B-32.safetensors \
        --out-dir DIR [--control-only]              # with the CLIP text tower (or only its C_E)

P = frozen sentence encoder + MLP head (embedding -> 256 -> genres, ReLU), one head per dataset,
trained with BCE against one-hot labels on the corpus's train split only, so the held-out numbers
describe the shipped head. Equivalent genres share descriptions across datasets (AIST++ "Break"
learns from FineDance "Breaking" texts; FineDance "Jazz" from AIST++ "Street Jazz" and
"Ballet Jazz"; see :data:`EQUIVALENT`). C_E holds one row per genre: the template
"This is a {genre} type of music." encoded by the same encoder.

Artifacts (``.npz``, no pickle): ``genre_classifier.npz`` (heads + metadata) and
``genre_control_<encoder>.npz`` (C_E per dataset), written to ``--out-dir`` (default: the gcdance
cache's ``genre_classifier/``). P ships inside bundles: ``python -m export.bundle ...
--classifier DIR/genre_classifier.npz`` (the default, ``package``, is the default bundle's P);
the MiniLM C_E table that random bundles use is ``gcdance/data/genre_control_minilm.npz``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gcdance.cache import cache_dir
from gcdance.conditioning.genre_classifier import CLASSIFIER_PATH, DATA_DIR, GenreClassifier
from gcdance.conditioning.genres import DATASETS, REGISTRY, control_prompt
from gcdance.conditioning.text_encoder import TextEncoder, load_text_encoder
from gcdance.errors import DataFormatError, GCDanceError

CORPUS_PATH = DATA_DIR / "genre_descriptions.jsonl"
MIN_PER_GENRE = 40
MIN_TEST_FRACTION = 0.2

# (dataset, genre) -> genres of the other dataset that the same descriptions describe.
EQUIVALENT: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("finedance", "Breaking"): (("aistpp", "Break"),),
    ("finedance", "Popping"): (("aistpp", "Pop"),),
    ("finedance", "Locking"): (("aistpp", "Lock"),),
    ("aistpp", "Middle Hip-hop"): (("finedance", "Hiphop"),),
    ("aistpp", "LA-style Hip-hop"): (("finedance", "Hiphop"),),
    ("aistpp", "Street Jazz"): (("finedance", "Jazz"),),
    ("aistpp", "Ballet Jazz"): (("finedance", "Jazz"),),
}


@dataclass(frozen=True)
class Description:
    id: str
    dataset: str
    genre: str
    split: str
    text: str


# --------------------------------------------------------------------------- corpus


def load_corpus(path: str | os.PathLike[str] = CORPUS_PATH) -> list[Description]:
    """Read and validate the description corpus (JSON lines)."""
    path = Path(path)
    out: list[Description] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataFormatError(f"cannot read genre corpus {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = Description(**json.loads(line))
        except (ValueError, TypeError) as exc:
            raise DataFormatError(f"{path}:{n}: not a description record ({exc})") from exc
        if d.split not in ("train", "test"):
            raise DataFormatError(f"{path}:{n}: split must be 'train' or 'test'")
        if d.genre not in REGISTRY.names(d.dataset):
            raise DataFormatError(f"{path}:{n}: unknown {d.dataset} genre {d.genre!r}")
        out.append(d)
    return out


def examples(corpus: Sequence[Description], dataset: str, split: str | None = None,
             native_only: bool = False) -> tuple[list[str], np.ndarray]:
    """Texts and genre ids for ``dataset``: its own descriptions plus equivalent genres'."""
    names = REGISTRY.names(dataset)
    texts: list[str] = []
    labels: list[int] = []
    for d in corpus:
        if split is not None and d.split != split:
            continue
        shared = () if native_only else EQUIVALENT.get((d.dataset, d.genre), ())
        targets = [(d.dataset, d.genre), *shared]
        for ds, genre in targets:
            if ds == dataset:
                texts.append(d.text)
                labels.append(names.index(genre))
    return texts, np.asarray(labels, dtype=np.int64)


def corpus_digest(corpus: Sequence[Description]) -> str:
    h = hashlib.sha256()
    for d in corpus:
        h.update(json.dumps(asdict(d), sort_keys=True).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- embeddings


def embed_cached(encoder: TextEncoder, texts: Sequence[str], tag: str) -> np.ndarray:
    """Encoder embeddings of unique ``texts``, cached on disk by content (frozen encoder)."""
    key = hashlib.sha256(("\n".join([tag, *texts])).encode()).hexdigest()[:16]
    path = cache_dir() / "embeddings" / f"{encoder.name}-{key}.npy"
    if path.is_file():
        emb = np.load(path, allow_pickle=False)
        if emb.shape == (len(texts), encoder.dim):
            return emb
    emb = encoder.encode(list(texts)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, emb, allow_pickle=False)
    return emb


class TorchTextEncoder:
    """Adapter: a PyTorch encoder from ``training.text_encoders`` as a :class:`TextEncoder`."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.name: str = model.name
        self.dim: int = model.dim
        self._tok = model.tokenizer()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from training.text_encoders import encode

        return encode(self.model, list(texts), self._tok).numpy()


# --------------------------------------------------------------------------- head


@dataclass(frozen=True)
class HeadConfig:
    hidden: int = 256
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-2
    epochs: int = 300
    batch_size: int = 64
    seed: int = 0


def train_head(x: np.ndarray, y: np.ndarray, n_classes: int,
               cfg: HeadConfig = HeadConfig()) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train the MLP head with BCE on one-hot targets (Eq. 2); returns [(W, b), ...]."""
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(x.shape[1], cfg.hidden), nn.ReLU(),
                         nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, n_classes))
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    loss_fn = nn.BCEWithLogitsLoss()
    xt = torch.from_numpy(x)
    target = torch.nn.functional.one_hot(torch.from_numpy(y), n_classes).float()
    head.train()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(cfg.batch_size):
            opt.zero_grad()
            loss_fn(head(xt[idx]), target[idx]).backward()
            opt.step()
        sched.step()
    head.eval()
    linears = [m for m in head if isinstance(m, nn.Linear)]
    return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears]


def save_classifier(path: str | os.PathLike[str], encoder: TextEncoder,
                    heads: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                    extra: dict[str, Any]) -> Path:
    """Write heads + metadata as ``.npz`` (the format :class:`GenreClassifier` reads)."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"format": 1, "encoder": encoder.name, "dim": encoder.dim,
                            "activation": "relu", "output": "normalized sigmoid", "heads": {}}
    for ds, layers in heads.items():
        meta["heads"][ds] = {"genres": list(REGISTRY.names(ds)), "layers": len(layers)}
        for i, (w, b) in enumerate(layers):
            arrays[f"{ds}.w{i}"] = w.astype(np.float32)
            arrays[f"{ds}.b{i}"] = b.astype(np.float32)
    meta.update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    return path


def save_control_embeddings(path: str | os.PathLike[str], encoder: TextEncoder) -> Path:
    """C_E: "This is a {genre} type of music." encoded, one row per genre, per dataset."""
    tables = {ds: encoder.encode([control_prompt(g) for g in REGISTRY.names(ds)])
              .astype(np.float32) for ds in DATASETS}
    meta = {"format": 1, "encoder": encoder.name, "dim": encoder.dim,
            "template": control_prompt("{genre}"),
            "genres": {ds: list(REGISTRY.names(ds)) for ds in DATASETS}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, meta=np.array(json.dumps(meta, sort_keys=True)), **tables)
    return path


# --------------------------------------------------------------------------- evaluation


@dataclass
class Report:
    dataset: str
    n: int
    top1: float
    top3: float
    per_genre: dict[str, tuple[int, float]]  # genre -> (count, top-1 accuracy)
    confusions: list[tuple[str, str, str]]  # (text, truth, predicted)

    def format(self) -> str:
        lines = [f"{self.dataset}: held-out n={self.n}  top-1 {self.top1:.1%}  "
                 f"top-3 {self.top3:.1%}"]
        width = max(len(g) for g in self.per_genre)
        for genre, (n, acc) in self.per_genre.items():
            lines.append(f"  {genre:<{width}}  {acc:6.1%}  (n={n})")
        return "\n".join(lines)


def evaluate(probs: np.ndarray, labels: np.ndarray, dataset: str,
             texts: Sequence[str] = ()) -> Report:
    """Top-1, top-3 and per-genre top-1 accuracy of genre distributions ``probs`` (N, G)."""
    names = REGISTRY.names(dataset)
    order = np.argsort(-probs, axis=1)
    hit1 = order[:, 0] == labels
    hit3 = (order[:, :3] == labels[:, None]).any(1)
    per = {names[g]: (int((labels == g).sum()), float(hit1[labels == g].mean()))
           for g in range(len(names)) if (labels == g).any()}
    conf = [(t, names[y], names[p]) for t, y, p, h in zip(texts, labels, order[:, 0], hit1,
                                                         strict=False) if not h]
    return Report(dataset, len(labels), float(hit1.mean()), float(hit3.mean()), per, conf)


def evaluate_classifier(classifier: GenreClassifier, corpus: Sequence[Description],
                        dataset: str, split: str = "test", native_only: bool = False) -> Report:
    """Evaluate a classifier (inference path) on the corpus's ``split``.

    ``native_only`` keeps only descriptions written for ``dataset`` itself (no shared ones).
    """
    texts, labels = examples(corpus, dataset, split, native_only)
    return evaluate(classifier.predict_proba(texts, dataset), labels, dataset, texts)


# --------------------------------------------------------------------------- entry


def train(encoder: TextEncoder, corpus: Sequence[Description], out_dir: Path,
          cfg: HeadConfig = HeadConfig()) -> tuple[Path, Path, dict[str, Report]]:
    """Train one head per dataset on the train split; write classifier and C_E; evaluate."""
    unique = sorted({d.text for d in corpus})
    emb = embed_cached(encoder, unique, tag=encoder.name)
    row = {t: i for i, t in enumerate(unique)}
    heads, reports = {}, {}
    for ds in DATASETS:
        texts, labels = examples(corpus, ds, "train")
        if len(set(labels.tolist())) < len(REGISTRY.names(ds)):
            print(f"skipping {ds}: the corpus does not cover all its genres", file=sys.stderr)
            continue
        heads[ds] = train_head(emb[[row[t] for t in texts]], labels, len(REGISTRY.names(ds)),
                               cfg)
    suffix = "" if encoder.name == "minilm" else f"_{encoder.name}"
    extra = {"corpus_sha256": corpus_digest(corpus), "config": asdict(cfg)}
    clf_path = save_classifier(out_dir / f"genre_classifier{suffix}.npz", encoder, heads, extra)
    classifier = GenreClassifier(clf_path, encoder=_PrecomputedEncoder(encoder, unique, emb))
    metrics = {}
    for ds in heads:
        reports[ds] = evaluate_classifier(classifier, corpus, ds)
        metrics[ds] = {"top1": round(reports[ds].top1, 4), "top3": round(reports[ds].top3, 4),
                       "n_test": reports[ds].n}
    extra["heldout"] = metrics
    save_classifier(clf_path, encoder, heads, extra)
    ce_path = save_control_embeddings(out_dir / f"genre_control_{encoder.name}.npz", encoder)
    return clf_path, ce_path, reports


class _PrecomputedEncoder:
    """Serves cached embeddings for known texts, encodes the rest."""

    def __init__(self, encoder: TextEncoder, texts: Sequence[str], emb: np.ndarray) -> None:
        self.name, self.dim, self._enc = encoder.name, encoder.dim, encoder
        self._row = {t: i for i, t in enumerate(texts)}
        self._emb = emb

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if all(t in self._row for t in texts):
            return self._emb[[self._row[t] for t in texts]]
        return self._enc.encode(texts)


def corpus_summary(corpus: Sequence[Description]) -> str:
    counts = Counter((d.dataset, d.split) for d in corpus)
    return ", ".join(f"{ds}: {counts[(ds, 'train')]} train / {counts[(ds, 'test')]} test"
                     for ds in DATASETS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.genre_classifier",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", action="store_true",
                        help="evaluate the classifier at --classifier (no training, no torch)")
    parser.add_argument("--classifier", type=Path, default=CLASSIFIER_PATH,
                        help="the classifier --eval reads (default: the default bundle's P)")
    parser.add_argument("--encoder", choices=("minilm", "clip"), default="minilm")
    parser.add_argument("--clip-checkpoint", help="open_clip ViT-B-32 weights (--encoder clip)")
    parser.add_argument("--corpus", type=Path, default=CORPUS_PATH)
    parser.add_argument("--out-dir", type=Path, default=cache_dir() / "genre_classifier",
                        help="where training writes P and C_E (default: the gcdance cache)")
    parser.add_argument("--errors", action="store_true", help="list misclassified texts")
    parser.add_argument("--control-only", action="store_true",
                        help="only write the C_E table of --encoder (e.g. CLIP C_E next to the "
                             "MiniLM classifier)")
    args = parser.parse_args(argv)
    try:
        corpus = load_corpus(args.corpus)
        print(f"corpus {args.corpus}: {corpus_summary(corpus)}")
        if args.eval:
            classifier = GenreClassifier(args.classifier)
            reports = {ds: evaluate_classifier(classifier, corpus, ds)
                       for ds in DATASETS if ds in classifier.layers}
        else:
            from training.text_encoders import load_encoder

            if args.encoder == "minilm":
                encoder: TextEncoder = load_text_encoder("minilm", backend="numpy")
            else:
                encoder = TorchTextEncoder(load_encoder("clip", args.clip_checkpoint))
            if args.control_only:
                ce = save_control_embeddings(
                    args.out_dir / f"genre_control_{encoder.name}.npz", encoder)
                print(f"wrote {ce} ({ce.stat().st_size / 1024:.0f} KiB)")
                return 0
            clf, ce, reports = train(encoder, corpus, args.out_dir)
            classifier = GenreClassifier(clf, encoder=encoder)
            for p in (clf, ce):
                print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB)")
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for ds, rep in reports.items():
        print(rep.format())
        if ds == "finedance":
            native = evaluate_classifier(classifier, corpus, ds, native_only=True)
            print(f"  (FineDance's own descriptions only: n={native.n}  top-1 {native.top1:.1%}"
                  f"  top-3 {native.top3:.1%})")
        if args.errors:
            for text, truth, pred in rep.confusions:
                print(f"    {truth} -> {pred}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
