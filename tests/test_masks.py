"""Editing masks: aligned to joint boundaries, frame ranges, composition."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance import masks
from gcdance.errors import InputError
from gcdance.motion.layout import AISTPP, FINEDANCE


def _blocks_aligned(mask: np.ndarray, layout) -> bool:
    """Each joint's 6D block is all kept or all regenerated, on every frame."""
    rot = mask[:, layout.rotations].reshape(mask.shape[0], layout.num_joints, 6)
    return bool(np.all(rot.all(-1) | ~rot.any(-1)))


def test_body_and_hands_finedance() -> None:
    body = masks.joints("body").resolve(FINEDANCE, 10)
    assert body.shape == (10, 319) and body.dtype == bool
    want = np.zeros(319, bool)
    want[0:139] = True
    assert np.array_equal(body, np.broadcast_to(want, (10, 319)))
    hands = masks.joints("hands").resolve("finedance", 10)
    assert np.array_equal(hands, ~body)


def test_body_and_hands_aistpp() -> None:
    body = masks.joints("body").resolve(AISTPP, 3)
    assert body.shape == (3, 151)
    assert body[:, :139].all() and not body[:, 139:].any()
    assert masks.joints("hands").resolve(AISTPP, 3)[:, 139:].all()


def test_single_joints_and_sets() -> None:
    knee = masks.joints("left_knee").resolve(FINEDANCE, 2)
    s = FINEDANCE.joint_slice(FINEDANCE.joint_index("left_knee"))
    assert np.flatnonzero(knee[0]).tolist() == list(range(s.start, s.stop))
    ankle = masks.joints(7).resolve(FINEDANCE, 2)  # a contact joint owns its contact flag
    assert ankle[0, 0] and ankle[0, FINEDANCE.joint_slice(7)].all() and ankle[0].sum() == 7
    pelvis = masks.joints([0], include_root=False).resolve(FINEDANCE, 1)
    assert not pelvis[0, 4:7].any() and pelvis[0].sum() == 6
    with_root = masks.joints(["pelvis"]).resolve(FINEDANCE, 1)
    assert with_root[0, 4:7].all() and with_root[0].sum() == 9


@pytest.mark.parametrize("group", sorted(FINEDANCE.groups))
def test_every_group_is_joint_aligned(group: str) -> None:
    m = masks.joints(group).resolve(FINEDANCE, 4)
    assert m.any() and _blocks_aligned(m, FINEDANCE)
    assert np.array_equal(m[0], FINEDANCE.mask(group))


def test_upper_lower_partition() -> None:
    up = masks.joints("upper_body").resolve(FINEDANCE, 1)
    lo = masks.joints("lower_body").resolve(FINEDANCE, 1)
    assert not (up & lo).any() and (up | lo).all()


def test_frame_ranges() -> None:
    m = masks.frames(0, 30).resolve(FINEDANCE, 120)
    assert m[:30].all() and not m[30:].any()
    tail = masks.frames(-30).resolve(FINEDANCE, 120)
    assert tail[90:].all() and not tail[:90].any()
    clipped = masks.frames(100, 500).resolve(FINEDANCE, 120)
    assert clipped[100:].all() and not clipped[:100].any()
    with pytest.raises(InputError, match="selects no frame"):
        masks.frames(200, 300).resolve(FINEDANCE, 120)
    with pytest.raises(InputError):
        masks.frames(1.5, 3)  # type: ignore[arg-type]


def test_composition() -> None:
    keep = masks.joints("body") | masks.frames(0, 30)
    m = keep.resolve(FINEDANCE, 120)
    assert m[:30].all()
    assert m[30:, :139].all() and not m[30:, 139:].any()
    both = (masks.joints("hands") & masks.frames(10, 20)).resolve(FINEDANCE, 40)
    assert both.sum() == 10 * 180 and both[10:20, 139:].all()
    inv = (~masks.joints("body")).resolve(FINEDANCE, 5)
    assert np.array_equal(inv, masks.joints("hands").resolve(FINEDANCE, 5))
    assert masks.everything().resolve(FINEDANCE, 2).all()
    assert not masks.nothing().resolve(FINEDANCE, 2).any()
    assert _blocks_aligned((keep & ~masks.frames(5, 7)).resolve(FINEDANCE, 50), FINEDANCE)


def test_errors() -> None:
    with pytest.raises(InputError, match="unknown joint name"):
        masks.joints("tail").resolve(FINEDANCE, 3)
    with pytest.raises(InputError):
        masks.joints([])
    with pytest.raises(InputError):
        masks.joints("body") | np.ones((3, 319), bool)  # type: ignore[operator]
    with pytest.raises(InputError):
        masks.joints("body").resolve(FINEDANCE, 0)
    with pytest.raises(InputError, match="out of range"):
        masks.joints(60).resolve(FINEDANCE, 1)


def test_resolve_arrays() -> None:
    arr = np.zeros((4, 319), bool)
    arr[1] = True
    assert np.array_equal(masks.resolve(arr, FINEDANCE, 4), arr)
    assert masks.resolve(masks.frames(1, 2), FINEDANCE, 4).sum() == 319
    with pytest.raises(InputError, match="shape"):
        masks.resolve(arr, FINEDANCE, 5)
    with pytest.raises(InputError, match="boolean"):
        masks.resolve(arr.astype(np.float32), FINEDANCE, 4)
