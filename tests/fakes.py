"""Stand-ins shared by several test modules."""

from __future__ import annotations

import zlib

import numpy as np


class FakeTextEncoder:
    """A deterministic 384-dim text encoder (stands in for MiniLM: keeps tests fast and lets them
    run where its weights are not installed); the same text gives the same vector in every
    process (crc32, not the salted ``hash``)."""

    name, dim = "minilm", 384

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim)
                        for t in texts]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)
