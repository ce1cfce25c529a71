"""Attribute estimators (calibrated on ground truth) and the adherence score."""

from __future__ import annotations

import numpy as np
import pytest

from prestissimo.data.synthbench import SynthbenchSpec, iter_clips, synthesize
from prestissimo.data.synthbench.render import clip_rng, render_clip
from prestissimo.evaluation import adherence
from prestissimo.evaluation.audio_features import analyse, yin


def test_every_scored_estimator_reads_ground_truth_at_95_percent_or_better():
    spec = SynthbenchSpec(n=60, seed=77, seconds=5.0, sample_rate=44100)
    report = adherence.calibrate(((a, row["attributes"]) for a, row in iter_clips(spec)), spec.sample_rate)
    assert set(report.totals) == set(adherence.ESTIMATORS)
    for name in adherence.SCORED_ATTRIBUTES:
        assert report.accuracy(name) >= adherence.CALIBRATION_THRESHOLD, (name, report.to_dict()["attributes"][name])


@pytest.mark.parametrize("hz", [65.4, 220.0, 880.0, 1760.0])
def test_yin_finds_the_period_of_a_square_wave(hz):
    sr = 16000
    t = np.arange(sr) / sr
    f0, aperiodicity = yin(np.sign(np.sin(2 * np.pi * hz * t)) * 0.3, sr)
    assert abs(np.median(f0) / hz - 1) < 0.01 and np.median(aperiodicity) < 0.1


def test_white_noise_is_not_periodic():
    f0, aperiodicity = yin(np.random.default_rng(0).standard_normal(16000), 16000)
    assert np.median(aperiodicity) > 0.4


def test_a_clip_without_pitch_has_no_register_so_it_cannot_match_a_low_prompt():
    noise = np.random.default_rng(0).standard_normal((2, 16000)) * 0.3
    features = analyse(noise, 16000)
    assert adherence.estimate_register(features) == ""
    checks = adherence.check_features(features, {"family": "tonal", "register": "low"}, names=["register"])
    assert checks == {"register": False}
    assert adherence.estimate_vibrato(features) is None  # nor a vibrato reading, so "no vibrato" fails too


def test_check_clip_scores_only_mentioned_applicable_attributes():
    spec = SynthbenchSpec(n=1, seed=5)
    audio, row = synthesize(spec, 0)
    checks = adherence.check_clip(audio, spec.sample_rate, row["attributes"], row["mentioned"])
    assert set(checks) == {n for n in row["mentioned"] if n in adherence.ESTIMATORS}
    assert all(checks.values())


def test_a_clip_scored_against_another_family_fails_family():
    rng = clip_rng(0, 0)
    from prestissimo.data.synthbench.attributes import draw_attributes

    drums = draw_attributes(rng, "drums")
    audio = render_clip(drums, rng, 44100, 5.0)  # the estimators are calibrated on 5 s clips
    noise_attrs = draw_attributes(np.random.default_rng(1), "noise")
    assert adherence.check_clip(audio, 44100, noise_attrs, ["family"]) == {"family": False}


def test_summarize_averages_per_clip_then_over_clips():
    report = adherence.summarize([{"a": True, "b": False}, {"a": True}, {}])
    assert report.score == pytest.approx((0.5 + 1.0) / 2)
    assert report.hits == {"a": 2, "b": 0} and report.totals == {"a": 2, "b": 1} and report.n_clips == 2


@pytest.mark.parametrize("n", range(2, 12))
def test_derangement_has_no_fixed_point(n):
    for seed in range(5):
        perm = adherence.derangement(n, np.random.default_rng(seed))
        assert sorted(perm) == list(range(n)) and not np.any(perm == np.arange(n))
    with pytest.raises(ValueError):
        adherence.derangement(1, np.random.default_rng(0))
    rng = np.random.default_rng(0)  # uniform: both derangements of 3 items show up, about equally often
    counts = {}
    for _ in range(400):
        key = tuple(adherence.derangement(3, rng))
        counts[key] = counts.get(key, 0) + 1
    assert set(counts) == {(1, 2, 0), (2, 0, 1)} and min(counts.values()) > 150


def test_chance_level_is_a_permutation_test():
    labels = np.arange(20) % 5  # each clip shows its own label; three other clips share it
    matches = lambda perm: float(np.mean(labels[perm] == labels))  # noqa: E731
    perfect = adherence.chance_level(matches, 20, observed=1.0, n_derangements=199)
    assert perfect.p_value == pytest.approx(1 / 200) and perfect.n_derangements == 199
    assert abs(perfect.mean - 3 / 19) < 0.03  # a random other clip shares the label 3 times in 19
    assert perfect.mean <= perfect.p95 < 1.0
    blind = adherence.chance_level(lambda perm: 0.4, 20, observed=0.4, n_derangements=99)
    assert blind.mean == pytest.approx(0.4) and blind.p_value == 1.0  # a prompt-blind score is never significant


def test_estimates_score_like_features():
    audio = np.sin(2 * np.pi * 220 * np.arange(22050) / 22050)[None].repeat(2, 0) * 0.3
    features = analyse(audio, 22050)
    attrs = {"family": "tonal", "loudness": "loud", "pan": "center", "register": "mid"}
    assert adherence.check_estimates(adherence.estimate_attributes(features), attrs) == \
        adherence.check_features(features, attrs)


def test_beat_regularity_separates_a_beat_from_onsets_at_random_times():
    spec = SynthbenchSpec(n=40, seed=3, seconds=5.0, sample_rate=16000)
    rhythmic = [adherence.beat_regularity(analyse(a, spec.sample_rate))
                for a, row in iter_clips(spec) if "tempo" in row["attributes"]]
    assert len(rhythmic) >= 10 and min(rhythmic) > 0.45 and np.mean(rhythmic) > 0.7
    sr, rng = 16000, np.random.default_rng(0)
    t = np.arange(int(0.15 * sr)) / sr
    burst = 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-20 * t)
    for _ in range(3):  # the same plucks, at unrelated times
        x = np.zeros(5 * sr)
        for start in rng.uniform(0.1, 4.7, 10):
            x[int(start * sr):int(start * sr) + t.size] += burst
        assert adherence.beat_regularity(analyse(np.stack([x, x]), sr)) < 0.3
    assert adherence.beat_regularity(analyse(np.zeros((2, 5 * sr)), sr)) == 0.0
