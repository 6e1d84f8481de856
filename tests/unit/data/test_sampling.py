"""Properties of ssv2_fixtures.data.sampling (pure functions, no decoding)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssv2_fixtures.data.sampling import MODES, consecutive_indices, sample_indices, segment_indices

lengths = st.integers(min_value=1, max_value=600)  # SSv2: ~20 to a few hundred frames
frames = st.integers(min_value=1, max_value=64)
strides = st.integers(min_value=1, max_value=8)
seeds = st.integers(min_value=0, max_value=2**32 - 1)

FAST = settings(max_examples=300, deadline=None)


class EdgeRNG:
    """A ``Generator`` stand-in that returns one fixed draw, to hit the ends of the random ranges.

    ``default_rng().random()`` can return exactly 0.0 (and values within an ulp of 1.0), but far too
    rarely for any test to see it; these are the draws where float rounding misplaces an index.
    """

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self, n: int) -> np.ndarray:
        return np.full(n, self.u)

    def integers(self, low: int, high: int) -> int:
        return low if self.u < 0.5 else high - 1


EDGE_DRAWS = (0.0, 0.5, float(np.nextafter(1.0, 0.0)))


def _basic(idx: np.ndarray, n: int, t: int) -> None:
    assert isinstance(idx, np.ndarray) and idx.dtype == np.int64
    assert idx.shape == (t,)
    assert np.all(np.diff(idx) >= 0), f"not sorted: {idx}"
    assert idx.min() >= 0 and idx.max() < n, f"out of [0, {n}): {idx}"


def _segment_coverage(idx: np.ndarray, n: int, t: int) -> None:
    k = np.arange(t)
    lo = (k * n) // t  # floor(k n / T), exact
    hi = ((k + 1) * n) // t + 1  # floor((k+1) n / T) + 1, exact
    bad = np.flatnonzero((idx < lo) | (idx >= hi))
    assert bad.size == 0, f"n={n} T={t}: index {bad[0]}={idx[bad[0]]} not in segment [{lo[bad[0]]}, {hi[bad[0]]})"


@FAST
@given(n=lengths, t=frames, stride=strides, mode=st.sampled_from(MODES), train=st.booleans(), seed=seeds)
def test_sorted_in_range_length_t(n, t, stride, mode, train, seed):
    idx = sample_indices(n, t, mode=mode, stride=stride, train=train, rng=np.random.default_rng(seed))
    _basic(idx, n, t)


@FAST
@given(n=lengths, t=frames, stride=strides, mode=st.sampled_from(MODES), s1=seeds, s2=seeds)
def test_eval_is_deterministic(n, t, stride, mode, s1, s2):
    a = sample_indices(n, t, mode=mode, stride=stride, train=False, rng=np.random.default_rng(s1))
    b = sample_indices(n, t, mode=mode, stride=stride, train=False, rng=np.random.default_rng(s2))
    c = sample_indices(n, t, mode=mode, stride=stride, train=False)
    assert np.array_equal(a, b) and np.array_equal(a, c)


@FAST
@given(n=lengths, t=frames, mode=st.sampled_from(MODES), seed=seeds)
def test_train_is_reproducible_from_the_rng(n, t, mode, seed):
    a = sample_indices(n, t, mode=mode, train=True, rng=np.random.default_rng(seed))
    b = sample_indices(n, t, mode=mode, train=True, rng=np.random.default_rng(seed))
    assert np.array_equal(a, b)


@FAST
@given(data=st.data(), train=st.booleans(), seed=seeds)
def test_segment_k_lies_in_segment_k(data, train, seed):
    t = data.draw(frames, label="T")
    n = data.draw(st.integers(min_value=t, max_value=600), label="n")
    idx = segment_indices(n, t, train=train, rng=np.random.default_rng(seed))
    _basic(idx, n, t)
    _segment_coverage(idx, n, t)


@pytest.mark.parametrize("u", EDGE_DRAWS)
def test_segment_coverage_at_extreme_draws(u):
    # Exhaustive over the sizes where k*n/T is an integer for some k: the float form
    # floor(k * (n / T) + u * (n / T)) used to land one frame early (e.g. n=30, T=22, k=11, u=0).
    for n in range(1, 250):
        for t in range(1, 49):
            idx = segment_indices(n, t, train=True, rng=EdgeRNG(u))
            _basic(idx, n, t)
            if n >= t:
                _segment_coverage(idx, n, t)


def test_segment_eval_is_the_centre():
    assert segment_indices(40, 4, train=False).tolist() == [5, 15, 25, 35]
    assert segment_indices(30, 22, train=False).tolist()[11] == 15  # 11 * 30/22 = 15 exactly


@FAST
@given(data=st.data(), mode=st.sampled_from(MODES), train=st.booleans(), stride=strides, seed=seeds)
def test_short_videos_repeat_and_never_crash(data, mode, train, stride, seed):
    t = data.draw(st.integers(min_value=2, max_value=64), label="T")
    n = data.draw(st.integers(min_value=1, max_value=t - 1), label="n")
    idx = sample_indices(n, t, mode=mode, stride=stride, train=train, rng=np.random.default_rng(seed))
    _basic(idx, n, t)
    assert len(np.unique(idx)) <= n < t  # pigeonhole: some index repeats
    assert idx[0] == 0  # the first frame is always in


def test_one_frame_video():
    for mode in MODES:
        for train in (False, True):
            assert sample_indices(1, 8, mode=mode, train=train).tolist() == [0] * 8


@FAST
@given(data=st.data(), train=st.booleans(), seed=seeds)
def test_consecutive_stride_respected_when_span_fits(data, train, seed):
    t = data.draw(frames, label="T")
    stride = data.draw(strides, label="stride")
    span = (t - 1) * stride + 1
    n = data.draw(st.integers(min_value=span, max_value=span + 300), label="n")
    idx = consecutive_indices(n, t, stride=stride, train=train, rng=np.random.default_rng(seed))
    _basic(idx, n, t)
    assert np.all(np.diff(idx) == stride)
    if not train:
        assert idx[0] == (n - span) // 2  # centred


@pytest.mark.parametrize("u", EDGE_DRAWS)
def test_consecutive_train_start_reaches_both_ends(u):
    idx = consecutive_indices(20, 4, stride=3, train=True, rng=EdgeRNG(u))
    assert idx.tolist() in ([0, 3, 6, 9], [10, 13, 16, 19])


@FAST
@given(data=st.data(), train=st.booleans())
def test_consecutive_too_short_spreads_over_video(data, train):
    t = data.draw(st.integers(min_value=2, max_value=64), label="T")
    stride = data.draw(st.integers(min_value=2, max_value=8), label="stride")
    span = (t - 1) * stride + 1
    n = data.draw(st.integers(min_value=1, max_value=span - 1), label="n")
    idx = consecutive_indices(n, t, stride=stride, train=train)
    _basic(idx, n, t)
    assert idx[0] == 0 and idx[-1] == n - 1


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(video_len=0, num_frames=8), "video_len"),
        (dict(video_len=-5, num_frames=8), "video_len"),
        (dict(video_len=30, num_frames=0), "num_frames"),
        (dict(video_len=30, num_frames=-1), "num_frames"),
        (dict(video_len=30, num_frames=2.5), "num_frames"),  # np.arange(2.5) would give 3 frames
        (dict(video_len=30.0, num_frames=8), "video_len"),
        (dict(video_len=30, num_frames=True), "num_frames"),
        (dict(video_len=30, num_frames=8, mode="consecutive", stride=0), "stride"),
        (dict(video_len=30, num_frames=8, mode="consecutive", stride=-2), "stride"),
        (dict(video_len=30, num_frames=8, mode="consecutive", stride=1.5), "stride"),
        (dict(video_len=30, num_frames=8, mode="dense"), "mode"),
    ],
)
@pytest.mark.parametrize("train", [False, True])
def test_bad_inputs_raise_value_error(kwargs, needle, train):
    with pytest.raises(ValueError, match=needle):
        sample_indices(train=train, **kwargs)


def test_numpy_integers_accepted():
    idx = sample_indices(np.int64(30), np.int32(4), mode="consecutive", stride=np.int64(2))
    assert idx.tolist() == [11, 13, 15, 17]  # room 23, start 23 // 2


# --------------------------------------------------------------------------- the endless index sampler

from itertools import islice  # noqa: E402

from ssv2_fixtures.data.sampling import EndlessSampler, distinct_drawn  # noqa: E402

splits = st.integers(min_value=1, max_value=40)


def _draws(n: int, count: int, *, shuffle: bool = True, seed: int = 0) -> list[int]:
    return list(islice(iter(EndlessSampler(n, shuffle=shuffle, seed=seed)), count))


@FAST
@given(n=splits, rounds=st.integers(1, 5), seed=seeds, shuffle=st.booleans())
def test_every_aligned_window_of_n_draws_is_a_permutation(n: int, rounds: int, seed: int, shuffle: bool) -> None:
    draws = _draws(n, n * rounds, shuffle=shuffle, seed=seed)
    assert all(isinstance(i, int) for i in draws)
    for k in range(rounds):
        assert sorted(draws[k * n : (k + 1) * n]) == list(range(n)), k
    if not shuffle:
        assert draws == list(range(n)) * rounds


@FAST
@given(n=splits, count=st.integers(0, 200), seed=seeds)
def test_distinct_drawn_is_what_the_sampler_draws(n: int, count: int, seed: int) -> None:
    assert distinct_drawn(n, count) == len(set(_draws(n, count, seed=seed))) == min(n, count)


@FAST
@given(n=splits, count=st.integers(1, 120), seed=seeds)
def test_same_seed_same_stream_and_each_iter_restarts_it(n: int, count: int, seed: int) -> None:
    s = EndlessSampler(n, seed=seed)
    a = list(islice(iter(s), count))
    assert a == list(islice(iter(s), count)) == _draws(n, count, seed=seed)


def test_the_seed_changes_the_order() -> None:
    a = _draws(20, 60, seed=1)
    assert any(_draws(20, 60, seed=s) != a for s in (2, 3, 4))
    # and successive permutations differ from each other (not one order repeated)
    assert a[:20] != a[20:40] or a[20:40] != a[40:60]


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_an_empty_or_bad_split_is_refused(n: object) -> None:
    with pytest.raises(ValueError, match="at least one item"):
        EndlessSampler(n)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), bs=st.integers(1, 30), batches=st.integers(1, 8), shuffle=st.booleans())
def test_batches_from_a_dataloader_are_always_full(n: int, bs: int, batches: int, shuffle: bool) -> None:
    """Through torch's own DataLoader/BatchSampler: a batch larger than the split is full too, and the
    batches' indices are the sampler's stream cut into batch_size pieces."""
    import torch

    loader = torch.utils.data.DataLoader(
        list(range(n)), batch_size=bs, drop_last=True, sampler=EndlessSampler(n, shuffle=shuffle, seed=7)
    )
    got = [b.tolist() for b in islice(iter(loader), batches)]
    assert [len(b) for b in got] == [bs] * batches
    assert sum(got, []) == _draws(n, bs * batches, shuffle=shuffle, seed=7)
