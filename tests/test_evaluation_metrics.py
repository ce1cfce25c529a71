"""Evaluation metrics: audio loading/resampling, mel front end, Fréchet distance, MMD, KL, diversity
(CCDS), CLAP score and the embedding backends (built-in log-mel; CLAP on a tiny random checkpoint).
Invariants from docs/algorithms.md §7.6."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import soundfile as sf
import torch

from prestissimo.data.audio import AudioLoadError, load_audio, resample, save_wav
from prestissimo.data.spectral import hz_to_mel, log_mel_spectrogram, mel_filterbank, mel_to_hz
from prestissimo.evaluation.alignment import clap_score
from prestissimo.evaluation.distribution import median_heuristic_bandwidth, rbf_mmd2
from prestissimo.evaluation.diversity import conditional_diversity, unconditional_diversity
from prestissimo.evaluation.embeddings import (
    ClapEmbedding,
    EmbeddingBackend,
    EmbeddingUnavailable,
    LogMelEmbedding,
    create_embedding_backend,
)
from prestissimo.evaluation.frechet import frechet_distance, frechet_distance_between, gaussian_statistics


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


# ---------------------------------------------------------------- audio I/O


def test_load_audio_round_trip(tmp_path):
    stereo = np.stack([tone(440, 0.5, 22050), tone(660, 0.5, 22050)])
    path = save_wav(torch.from_numpy(stereo), tmp_path / "x.wav", 22050)
    audio, sr = load_audio(path)
    assert sr == 22050 and audio.dtype == np.float32 and audio.shape == stereo.shape
    np.testing.assert_allclose(audio, stereo, atol=1e-4)  # 16-bit PCM


@pytest.mark.parametrize("content", ["random", "empty", "no_frames", "missing"])
def test_load_audio_bad_files_raise_naming_the_file(tmp_path, content):
    path = tmp_path / f"{content}.wav"
    if content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "no_frames":
        sf.write(str(path), np.zeros((0, 2), np.float32), 16000)
    with pytest.raises(AudioLoadError, match=content):
        load_audio(path)
    assert issubclass(AudioLoadError, ValueError)


def test_resample_keeps_a_tone_frequency():
    x = np.stack([tone(440, 1.0, 44100), tone(1000, 1.0, 44100)])
    y = resample(x, 44100, 16000)
    assert y.shape == (2, 16000) and y.dtype == np.float32
    assert abs(peak_frequency(y[0], 16000) - 440) <= 1.0
    assert abs(peak_frequency(y[1], 16000) - 1000) <= 1.0
    assert resample(x, 44100, 44100) is x
    with pytest.raises(ValueError):
        resample(x, 0, 16000)


# ---------------------------------------------------------------- mel front end


def test_slaney_mel_scale():
    assert float(hz_to_mel(torch.tensor(1000.0))) == pytest.approx(15.0)
    assert float(hz_to_mel(torch.tensor(500.0))) == pytest.approx(7.5)  # linear below 1 kHz
    freqs = torch.tensor([0.0, 300.0, 999.0, 1000.0, 4000.0, 11025.0], dtype=torch.float64)
    torch.testing.assert_close(mel_to_hz(hz_to_mel(freqs)), freqs)


def test_mel_filterbank_properties():
    sr, n_fft, n_mels = 16000, 512, 64
    fb = mel_filterbank(sr, n_fft, n_mels)
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == torch.float32
    assert (fb >= 0).all() and (fb.sum(dim=1) > 0).all()
    peaks = fb.argmax(dim=1)
    assert (peaks[1:] >= peaks[:-1]).all() and peaks[-1] > peaks[0]
    # area normalisation: each triangle integrates to ~1 over Hz (checked on bands many bins wide)
    bin_hz = sr / n_fft
    areas = fb.double().sum(dim=1) * bin_hz
    torch.testing.assert_close(areas[32:], torch.ones(32, dtype=torch.float64), rtol=0.05, atol=0.0)
    limited = mel_filterbank(sr, n_fft, 16, f_min=100.0, f_max=4000.0)
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    assert limited[:, freqs < 100.0].abs().sum() == 0 and limited[:, freqs > 4000.0].abs().sum() == 0
    with pytest.raises(ValueError):
        mel_filterbank(sr, n_fft, n_mels, f_max=9000.0)


@pytest.mark.parametrize("freq", [150.0, 440.0, 1250.0, 3000.0, 6500.0])
def test_pure_tone_lands_in_its_band(freq):
    sr, n_fft = 16000, 512
    spec = log_mel_spectrogram(torch.from_numpy(tone(freq, 0.5, sr)), sr, n_fft=n_fft, hop_length=160)
    band = int(spec.mean(dim=-1).argmax())
    fb = mel_filterbank(sr, n_fft, 64)
    freq_bin = round(freq * n_fft / sr)
    assert fb[band, freq_bin] > 0  # the loudest band is one whose triangle covers the tone


def test_log_mel_spectrogram_shapes_and_dtypes():
    x = torch.randn(2, 3, 16000, dtype=torch.float64)
    spec = log_mel_spectrogram(x, 16000, n_fft=512, hop_length=160, n_mels=40)
    assert spec.shape == (2, 3, 40, 1 + 16000 // 160) and spec.dtype == torch.float64
    silent = log_mel_spectrogram(torch.zeros(100), 16000, n_fft=512, hop_length=160, eps=1e-5)
    assert silent.shape == (64, 1) and torch.allclose(silent, torch.full_like(silent, np.log(1e-5)))


# ---------------------------------------------------------------- Fréchet distance


def direct_frechet(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(300, 24)) * 5.0
    mu, sigma = gaussian_statistics(x)
    assert mu.dtype == np.float64 and sigma.shape == (24, 24)
    assert frechet_distance(mu, sigma, mu, sigma) < 1e-8 * np.trace(sigma)
    assert frechet_distance_between(x, x) < 1e-8 * np.trace(sigma)


def test_frechet_is_symmetric_non_negative_and_matches_sqrtm():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 12))
    y = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    fxy, fyx = frechet_distance_between(x, y), frechet_distance_between(y, x)
    assert fxy > 0 and fxy == pytest.approx(fyx, rel=1e-10)
    reference = direct_frechet(*gaussian_statistics(x), *gaussian_statistics(y))
    assert fxy == pytest.approx(reference, rel=1e-6)


def test_frechet_one_dimensional_closed_form():
    mu1, s1, mu2, s2 = 0.3, 1.7, -1.1, 0.4
    fd = frechet_distance(np.array([mu1]), np.array([[s1**2]]), np.array([mu2]), np.array([[s2**2]]))
    assert fd == pytest.approx((mu1 - mu2) ** 2 + (s1 - s2) ** 2, rel=1e-12)


def test_frechet_with_singular_covariances_is_finite():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 64)), rng.normal(size=(8, 64)) + 0.5  # N < D: rank-deficient covariances
    fd = frechet_distance_between(x, y)
    assert np.isfinite(fd) and fd > 0
    assert frechet_distance_between(x, x) < 1e-8 * np.trace(gaussian_statistics(x)[1])


def test_frechet_input_errors():
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_statistics(rng.normal(size=(1, 4)))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance_between(rng.normal(size=(5, 4)), rng.normal(size=(5, 3)))
    with pytest.raises(ValueError, match="inconsistent"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


# ---------------------------------------------------------------- MMD and KL


def test_mmd_symmetric_near_zero_for_one_distribution_positive_when_shifted():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    shifted = rng.normal(size=(300, 8)) + 1.0
    same, moved = rbf_mmd2(x, y), rbf_mmd2(x, shifted)
    assert rbf_mmd2(y, x) == pytest.approx(same, abs=1e-12)
    assert rbf_mmd2(shifted, x) == pytest.approx(moved, abs=1e-12)
    assert abs(same) < 0.01 and moved > 0.1 and moved > 20 * abs(same)
    assert median_heuristic_bandwidth(x, y) == pytest.approx(median_heuristic_bandwidth(y, x))
    assert rbf_mmd2(x, shifted, bandwidth=1.0) > 0
    with pytest.raises(ValueError):
        rbf_mmd2(x[:1], y)


# ---------------------------------------------------------------- CLAP score and diversity


def test_clap_score_bounds():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(16, 32))
    assert clap_score(a, a) == pytest.approx(1.0)
    assert clap_score(a, -a) == pytest.approx(-1.0)
    assert clap_score(a, 3.0 * a) == pytest.approx(1.0)  # scale invariant
    score = clap_score(rng.normal(size=(16, 32)), a)
    assert -1.0 <= score <= 1.0
    with pytest.raises(ValueError):
        clap_score(a, a[:3])


def test_conditional_diversity_ccds_invariants():
    rng = np.random.default_rng(7)
    base = rng.normal(size=(5, 1, 16))
    identical = np.repeat(base, 4, axis=1)
    assert conditional_diversity(identical) == pytest.approx(0.0, abs=1e-12)
    assert conditional_diversity(identical, metric="euclidean") == 0.0
    varied = rng.normal(size=(5, 4, 16))
    ccds = conditional_diversity(varied)
    assert ccds > 0
    shuffled = varied[rng.permutation(5)][:, rng.permutation(4)]
    assert conditional_diversity(shuffled) == pytest.approx(ccds, rel=1e-12)
    # explicit value: one prompt, two orthogonal generations -> cosine distance 1, euclidean sqrt(2)
    pair = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    assert conditional_diversity(pair) == pytest.approx(1.0)
    assert conditional_diversity(pair, metric="euclidean") == pytest.approx(np.sqrt(2))
    with pytest.raises(ValueError):
        conditional_diversity(varied[:, :1])  # K = 1
    with pytest.raises(ValueError):
        conditional_diversity(varied, metric="manhattan")


def test_unconditional_diversity():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(30, 8))
    assert unconditional_diversity(np.repeat(x[:1], 5, axis=0)) == pytest.approx(0.0, abs=1e-12)
    assert unconditional_diversity(x) == pytest.approx(unconditional_diversity(x[::-1]), rel=1e-12)
    assert unconditional_diversity(x, "euclidean") > unconditional_diversity(0.5 * x, "euclidean")


# ---------------------------------------------------------------- log-mel embedding


def random_tone_clips(n: int, sr: int, seconds: float, seed: int) -> list[np.ndarray]:
    """Tones and 3-note chords with random pitch, level and decay (mono [1, T])."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    clips = []
    for _ in range(n):
        freqs = 110.0 * 2 ** (rng.integers(0, 36, size=rng.choice([1, 3])) / 12)
        x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
        x = x * np.exp(-t * rng.uniform(0.5, 4.0)) * rng.uniform(0.1, 0.5) / len(freqs)
        clips.append(x[None, :].astype(np.float32))
    return clips


def add_noise(clips: list[np.ndarray], snr_db: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for x in clips:
        noise = rng.standard_normal(x.shape)
        noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
        out.append((x + noise).astype(np.float32))
    return out


def test_logmel_embedding_shapes_mono_stereo_and_lengths():
    backend = LogMelEmbedding()
    assert isinstance(backend, EmbeddingBackend) and backend.name == "logmel"
    mono = tone(440, 0.7, 22050)[None]
    stereo = np.stack([tone(440, 1.3, 22050), 0.5 * tone(440, 1.3, 22050)])
    emb = backend.embed([mono, stereo, tone(300, 0.01, 22050)], 22050)
    assert emb.shape == (3, 320) and emb.dtype == np.float64 and np.isfinite(emb).all()
    np.testing.assert_array_equal(emb, backend.embed([mono, stereo, tone(300, 0.01, 22050)], 22050))
    assert backend.embed([], 16000).shape == (0, 320)
    with pytest.raises(ValueError):
        backend.embed([np.zeros((3, 100), np.float32)], 16000)


def test_logmel_embedding_sees_panning():
    backend = LogMelEmbedding()
    x = tone(440, 1.0, 16000)
    centre, left, right = (np.stack([a * x, b * x]) for a, b in [(0.5, 0.5), (0.8, 0.2), (0.2, 0.8)])
    emb = backend.embed([x[None] * 0.5, centre, left, right], 16000)
    np.testing.assert_allclose(emb[1], emb[0], atol=1e-9)  # identical channels == mono
    assert np.abs(emb[1, 256:]).max() < 1e-9
    tone_band = int(np.argmax(emb[0, :64]))
    assert emb[2, 256 + tone_band] > 1.0 and emb[3, 256 + tone_band] < -1.0
    np.testing.assert_allclose(emb[2, 256:], -emb[3, 256:], atol=1e-6)


def test_frechet_of_logmel_embeddings_grows_as_snr_falls():
    sr = 16000
    clean = random_tone_clips(40, sr, 1.0, seed=9)
    backend = LogMelEmbedding()
    reference = backend.embed(clean, sr)
    trace = np.trace(gaussian_statistics(reference)[1])
    assert frechet_distance_between(reference, backend.embed(clean, sr)) < 1e-8 * trace
    distances = [frechet_distance_between(reference, backend.embed(add_noise(clean, snr, seed=10), sr))
                 for snr in (40, 20, 10, 0)]
    assert all(np.isfinite(distances)) and distances[0] > 0
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


# ---------------------------------------------------------------- CLAP on a tiny random checkpoint


@pytest.fixture(scope="module")
def tiny_clap_dir(tmp_path_factory):
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizerFast,
    )

    root = tmp_path_factory.mktemp("tiny_clap")
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + list("abcdefghijklmnopqrstuvwxyz") + ["Ġ"]
    (root / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizerFast(str(root / "vocab.json"), str(root / "merges.txt"))
    text = ClapTextConfig(vocab_size=len(tokens), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=64, projection_dim=8)
    audio = ClapAudioConfig(depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=8,
                            hidden_size=16, num_hidden_layers=2, projection_dim=8)
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=8))
    out = root / "model"
    model.save_pretrained(out)
    ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_clap(tiny_clap_dir):
    return ClapEmbedding(tiny_clap_dir)


def test_clap_embeddings_shapes_norms_and_determinism(tiny_clap):
    assert isinstance(tiny_clap, EmbeddingBackend) and tiny_clap.sample_rate == 48000
    rng = np.random.default_rng(11)
    clips = [tone(440, 1.0, 16000)[None], np.stack([tone(220, 2.0, 16000), tone(330, 2.0, 16000)]),
             0.1 * rng.standard_normal((1, 16000 * 11)).astype(np.float32)]  # > 10 s: cropped by the extractor
    state = np.random.get_state()
    audio = tiny_clap.embed(clips, 16000)
    after = np.random.get_state()
    assert np.array_equal(after[1], state[1]) and after[2] == state[2]  # caller's numpy RNG untouched
    assert audio.shape == (3, 8) and audio.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(audio, tiny_clap.embed(clips, 16000))
    texts = ["a dog barks", "rain on a roof", "a sine tone"]
    text = tiny_clap.embed_text(texts)
    assert text.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(text, tiny_clap.embed_text(texts))
    assert -1.0 <= clap_score(text, audio) <= 1.0


def test_clap_missing_directory_says_what_to_download(tmp_path):
    with pytest.raises(EmbeddingUnavailable, match="laion/clap-htsat-unfused") as info:
        ClapEmbedding(tmp_path / "nope")
    assert "save_pretrained" in str(info.value) and isinstance(info.value, RuntimeError)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    with pytest.raises(EmbeddingUnavailable, match="model weights"):
        ClapEmbedding(partial)


def test_create_embedding_backend(tiny_clap_dir):
    assert isinstance(create_embedding_backend("logmel"), LogMelEmbedding)
    assert isinstance(create_embedding_backend(""), LogMelEmbedding)
    assert isinstance(create_embedding_backend(f"clap:{tiny_clap_dir}"), ClapEmbedding)
    with pytest.raises(ValueError, match="logmel"):
        create_embedding_backend("vggish")
    with pytest.raises(ValueError, match="directory"):
        create_embedding_backend("clap")
