"""Envelope channels: band loudness envelopes a DiT generates beside the autoencoder latents."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from prestissimo import TextToAudio
from prestissimo.models.config import ConfigError, EnvelopeSpec, ModelConfig
from prestissimo.models.envelopes import ENERGY_FLOOR, band_log_energies, envelope_channels

from conftest import bert_model_config, make_bert_model

RATE, HOP = 8000, 8
BANDS = [(0.0, 250.0), (250.0, 1000.0), (1000.0, 4000.0)]


def tone(freq: float, seconds: float = 0.5, rate: int = RATE) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return torch.sin(2 * math.pi * freq * t)


def envelope_config(bands=BANDS) -> dict:
    """bert_model_config with envelope channels: the DiT reads latent_dim + len(bands) channels."""
    c = bert_model_config()
    spec = EnvelopeSpec(bands_hz=list(bands), hop=HOP, mean=[-6.0] * len(bands), std=[4.0] * len(bands))
    c.setdefault("prestissimo", {})["envelope"] = spec.to_dict()
    c["model"]["diffusion"]["config"]["io_channels"] = c["model"]["io_channels"] + len(bands)
    return c


@pytest.fixture(scope="module")
def envelope_model_dir(tmp_path_factory):
    return make_bert_model(tmp_path_factory.mktemp("envelope_model"), envelope_config(), seed=2)


def test_a_tone_lands_in_its_band_and_silence_sits_at_the_floor():
    audio = torch.stack([tone(500.0), torch.zeros(RATE // 2)])[:, None].repeat(1, 2, 1)  # [2, stereo, T]
    env = band_log_energies(audio, RATE, BANDS, HOP)
    assert env.shape == (2, 3, RATE // 2 // HOP)
    middle = env[0, :, 10:-10]
    assert (middle[1] > middle[0] + 5).all() and (middle[1] > middle[2] + 5).all()  # e^5: 150x the power
    assert torch.allclose(env[1], torch.full_like(env[1], math.log(ENERGY_FLOOR)))


def test_envelope_frames_line_up_with_latent_frames():
    """Frame i covers the audio around sample i * hop, as latent frame i of a hop-x autoencoder does."""
    onset_frame = 100
    audio = torch.zeros(1, 1, 200 * HOP)
    audio[..., onset_frame * HOP:] = tone(600.0, 100 * HOP / RATE)
    env = band_log_energies(audio, RATE, BANDS, HOP, smoothing=1)[0, 1]
    half = (env.max() + env.min()) / 2
    assert abs(int(torch.nonzero(env > half)[0]) - onset_frame) <= 1


def test_smoothing_averages_energy_over_neighbouring_frames():
    audio = (torch.rand(1, 1, 64 * HOP) - 0.5) * torch.linspace(0, 1, 64 * HOP)
    raw = band_log_energies(audio, RATE, BANDS, HOP, smoothing=1).exp()
    smooth = band_log_energies(audio, RATE, BANDS, HOP, smoothing=3).exp()
    torch.testing.assert_close(smooth[..., 1:-1], (raw[..., :-2] + raw[..., 1:-1] + raw[..., 2:]) / 3,
                               rtol=1e-4, atol=1e-7)


def test_bad_audio_and_bad_specs_are_refused():
    with pytest.raises(ValueError, match="batch, channels, samples"):
        band_log_energies(torch.zeros(100), RATE, BANDS, HOP)
    with pytest.raises(ValueError, match="shorter than one envelope frame"):
        band_log_energies(torch.zeros(1, 1, HOP - 1), RATE, BANDS, HOP)
    with pytest.raises(ValueError, match="no statistics"):
        envelope_channels(torch.zeros(1, 1, 64), RATE, EnvelopeSpec(bands_hz=BANDS, hop=HOP))
    with pytest.raises(ValueError, match="empty"):
        EnvelopeSpec(bands_hz=[(300.0, 300.0)]).validate()
    with pytest.raises(ValueError, match="one per band"):
        EnvelopeSpec(bands_hz=BANDS, mean=[0.0], std=[1.0]).validate()
    with pytest.raises(ValueError, match="gain must be positive"):
        EnvelopeSpec(gain=0.0).validate()


def test_the_model_config_keeps_its_envelope_and_checks_the_dit_reads_it():
    cfg = ModelConfig.from_dict(envelope_config())
    assert cfg.envelope_channels == 3 and cfg.dit.io_channels == cfg.autoencoder.latent_dim + 3
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.envelope == cfg.envelope
    wrong = envelope_config()
    wrong["model"]["diffusion"]["config"]["io_channels"] -= 1
    with pytest.raises(ConfigError, match="3 envelope channels"):
        ModelConfig.from_dict(wrong)
    no_stats = envelope_config()
    no_stats["prestissimo"]["envelope"].update(mean=[], std=[])
    with pytest.raises(ConfigError, match="no mean/std"):
        ModelConfig.from_dict(no_stats)
    bad = envelope_config()
    bad["prestissimo"]["envelope"]["std"] = [1.0, 0.0, 1.0]
    with pytest.raises(ConfigError, match="std must be positive"):
        ModelConfig.from_dict(bad)


def test_a_model_with_envelopes_decodes_only_its_latent_channels(envelope_model_dir):
    tta = TextToAudio.from_pretrained(envelope_model_dir)
    latents = tta.generate_latents(["a low hum"], seconds=0.5, steps=2, seed=0)
    assert latents.shape[1] == tta.config.autoencoder.latent_dim + 3
    other = latents.clone()
    other[:, -3:] = torch.randn_like(other[:, -3:]) * 10
    torch.testing.assert_close(tta.decode(latents), tta.decode(other))
    audio = tta.generate(["a low hum"], seconds=0.5, steps=2, seed=0)
    assert audio.shape[-1] == RATE // 2 and torch.isfinite(audio).all()


def test_audio_to_audio_appends_the_init_audios_own_envelopes(envelope_model_dir):
    tta = TextToAudio.from_pretrained(envelope_model_dir)
    audio = tone(300.0, tta.config.max_seconds)[None].repeat(2, 1) * 0.5
    latents = tta.encode_audio(audio)
    d = tta.config.autoencoder.latent_dim
    assert latents.shape == (1, d + 3, tta.config.latent_length)
    expected = envelope_channels(audio[None], RATE, tta.config.envelope)
    torch.testing.assert_close(latents[:, d:], expected[..., : latents.shape[-1]])
    out = tta.generate(["a low hum"], steps=2, seed=0, init_audio=audio, init_noise_level=0.5)
    assert torch.isfinite(out).all()


def test_the_torch_free_engine_generates_what_torch_generates_with_envelopes(envelope_model_dir):
    from prestissimo.runtime.lite import LiteTextToAudio

    ours = LiteTextToAudio.from_pretrained(envelope_model_dir).generate(["a low hum"], seed=0, steps=2)
    with torch.no_grad():
        ref = TextToAudio.from_pretrained(envelope_model_dir).generate(["a low hum"], seed=0, steps=2).numpy()
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_allclose(ours, ref, atol=1e-4 * np.abs(ref).max() + 1e-6)


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """A random tiny autoencoder and 6 synthbench clips (1 s, 8 kHz) cached with and without envelopes."""
    from prestissimo.data.latents import encode_dataset
    from prestissimo.data.manifest import read_manifest
    from prestissimo.data.synthbench import SynthbenchSpec, make_synthbench
    from prestissimo.models.autoencoder import OobleckAutoencoder
    from prestissimo.models.autoencoder_io import save_autoencoder
    from prestissimo.models.presets import preset

    root = tmp_path_factory.mktemp("envelope_caches")
    manifest = make_synthbench(SynthbenchSpec(n=6, seed=5, seconds=1.0, sample_rate=RATE), root / "data",
                               workers=1, progress=False)
    cfg = ModelConfig.from_dict(preset("tiny"))
    torch.manual_seed(0)
    ae = OobleckAutoencoder(cfg.autoencoder)
    save_autoencoder(ae, cfg.sample_rate, cfg.sample_size, root / "ae")
    entries = read_manifest(manifest)
    encode_dataset(ae, RATE, entries, root / "plain", 1.0, progress=False)
    encode_dataset(ae, RATE, entries, root / "env", 1.0, progress=False, envelope=EnvelopeSpec(bands_hz=BANDS))
    return root


def test_a_cache_with_envelopes_stores_them_with_their_statistics(caches):
    from prestissimo.data.latents import LatentDataset

    index = json.loads((caches / "env" / "latents.json").read_text())
    spec = EnvelopeSpec.from_dict(index["envelope"])
    assert spec.hop == 8  # the autoencoder's downsampling ratio, whatever the spec said
    shard = load_file(str(caches / "env" / "shard_00000.safetensors"))
    plain = load_file(str(caches / "plain" / "shard_00000.safetensors"))
    torch.testing.assert_close(shard["latents"], plain["latents"])
    env = shard["envelopes"]
    assert env.shape == (6, 3, index["frames"])
    flat = env.double().permute(1, 0, 2).reshape(3, -1)  # every clip fills the 1 s window
    np.testing.assert_allclose(spec.mean, flat.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(spec.std, flat.std(1, unbiased=False).numpy(), rtol=1e-5)

    data = LatentDataset(caches / "env")
    assert data.channels == index["latent_dim"] + 3
    items = torch.stack([data.get(i, np.random.default_rng(0))["latents"] for i in range(len(data))])
    d = index["latent_dim"]
    torch.testing.assert_close(items[:, :d], shard["latents"] / data.scale)
    assert abs(float(items[:, d:].mean())) < 1e-4 and abs(float(items[:, d:].std()) - 1) < 0.01

    data.frames = index["frames"] + 10  # past the clip: silent latents, envelopes at the floor
    item = data.get(0, np.random.default_rng(0))["latents"]
    assert (item[:d, -10:] == 0).all()
    floor = (math.log(ENERGY_FLOOR) - torch.tensor(spec.mean)) / torch.tensor(spec.std)
    torch.testing.assert_close(item[d:, -10:], floor.float()[:, None].expand(3, 10))


def test_a_model_and_a_cache_that_disagree_on_envelopes_are_named(caches):
    from prestissimo.data.latents import LatentDataset
    from prestissimo.training.run import check_latent_channels

    with_env = ModelConfig.from_dict(envelope_config())
    without = ModelConfig.from_dict(bert_model_config())
    with pytest.raises(ValueError, match="--envelopes"):
        check_latent_channels(LatentDataset(caches / "plain"), with_env, caches / "plain")
    with pytest.raises(ValueError, match="without --envelopes"):
        check_latent_channels(LatentDataset(caches / "env"), without, caches / "env")
    data = LatentDataset(caches / "env")
    with_env.envelope.gain = 3.0
    check_latent_channels(data, with_env, caches / "env")
    assert data.envelope == with_env.envelope  # the model's statistics normalise the cache from now on
    raw = load_file(str(caches / "env" / "shard_00000.safetensors"))["envelopes"]
    item = data.get(0, np.random.default_rng(0))["latents"]
    torch.testing.assert_close(item[-3:], (raw[0] + 6.0) / 4.0 * 3.0)  # envelope_config's mean -6, std 4


def test_training_on_a_cache_with_envelopes_makes_a_model_that_generates_them(caches, tmp_path):
    from prestissimo.training.config import LoopConfig
    from prestissimo.training.dit import DiTTrainConfig, EvalConfig
    from prestissimo.training.run import train_dit

    cfg = DiTTrainConfig(model="tiny", autoencoder=str(caches / "ae"), envelope_gain=2.0,
                         loop=LoopConfig(max_steps=2, batch_size=2, checkpoint_every=2, log_every=1),
                         eval=EvalConfig(prompts=["a beat"], steps=1))
    model_dir = train_dit(cfg, caches / "env", tmp_path / "run", progress=False)
    tta = TextToAudio.from_pretrained(model_dir)
    index = json.loads((caches / "env" / "latents.json").read_text())
    assert tta.config.envelope == EnvelopeSpec(**{**EnvelopeSpec.from_dict(index["envelope"]).__dict__, "gain": 2.0})
    assert tta.generate_latents(["a beat"], steps=1, seed=0).shape[1] == index["latent_dim"] + 3


def test_cli_encode_envelopes(caches, tmp_path):
    from prestissimo.serve.cli import main

    rc = main(["encode", "--autoencoder", str(caches / "ae"), "--data", str(caches / "data" / "manifest.jsonl"),
               "--out", str(tmp_path / "lat"), "--seconds", "1", "--envelopes", "--quiet"])
    assert rc == 0
    index = json.loads((tmp_path / "lat" / "latents.json").read_text())
    assert len(index["envelope"]["bands_hz"]) == 4 and len(index["envelope"]["std"]) == 4


def test_the_envelope_readout_tells_a_mean_carried_envelope_from_a_power_carried_one(tmp_path):
    """benchmarks/latent_spectrum.py: latents that are the loudness itself read out from their mean;
    latents that are noise scaled by the amplitude read out only from their power."""
    import soundfile as sf
    from safetensors.torch import save_file

    from conftest import load_script

    spectrum = load_script("benchmarks/latent_spectrum.py")
    g = torch.Generator().manual_seed(0)
    frames, hop, rows = 400, 8, []
    by_kind: dict[str, list[torch.Tensor]] = {"mean": [], "power": []}
    for i in range(4):
        gain = 0.05 + 0.95 * (torch.rand(frames // 20, generator=g).repeat_interleave(20))  # notes of 20 frames
        audio = tone(440.0, frames * hop / RATE) * gain.repeat_interleave(hop)
        sf.write(tmp_path / f"{i}.wav", audio.numpy(), RATE)
        loud = band_log_energies(audio[None, None], RATE, [(0.0, float("inf"))], hop, 10)[0]
        by_kind["mean"].append(loud.repeat(3, 1))
        by_kind["power"].append(gain * torch.randn(3, frames, generator=g))
        rows.append({"caption": "x", "shard": "s.safetensors", "offset": i, "frames": frames,
                     "source": str(tmp_path / f"{i}.wav")})
    readouts = {}
    for kind, latents in by_kind.items():
        folder = tmp_path / kind
        folder.mkdir()
        save_file({"latents": torch.stack(latents).float()}, str(folder / "s.safetensors"))
        (folder / "latents.json").write_text(json.dumps({"rows": rows, "frames": frames, "sample_rate": RATE,
                                                         "frames_per_second": RATE / hop}))
        readouts[kind] = spectrum.envelope_readout(folder, clips=4)
    assert readouts["mean"][0] > 0.8
    assert readouts["power"][0] < 0.1 < 0.8 < readouts["power"][1]


def test_held_channels_end_sampling_exactly_where_they_were_held():
    """Replacement inpainting along channels: every euler step keeps the held channels on the straight
    path from their noise to the given values, whatever the model says."""
    from prestissimo.sampling.guidance import hold_channels
    from prestissimo.sampling.samplers import sample_euler
    from prestissimo.sampling.schedules import linear_schedule

    g = torch.Generator().manual_seed(0)
    noise, envelope = torch.randn(2, 5, 16, generator=g), torch.randn(2, 2, 16, generator=g)
    seen = []

    def model(x, t):
        seen.append((float(t[0]), x[:, 3:].clone()))
        return torch.randn(x.shape, generator=g)

    out = sample_euler(hold_channels(model, envelope, noise[:, 3:], 3, "rectified_flow"), noise, linear_schedule(6))
    torch.testing.assert_close(out[:, 3:], envelope)
    for t, x_env in seen:
        torch.testing.assert_close(x_env, (1 - t) * envelope + t * noise[:, 3:])


def test_the_envelope_prior_benchmark_reads_tempo_and_prints_its_table(prior_model_dir, monkeypatch, capsys):
    from conftest import load_script
    from prestissimo.evaluation.adherence import envelope_tempo

    bench = load_script("benchmarks/envelope_prior.py")
    beat_rate, bpm = 100.0, 120.0
    clicks = np.zeros((3, 500))
    clicks[:, :: int(beat_rate * 60 / bpm)] = 1.0
    regularity, found = envelope_tempo(clicks, beat_rate)
    assert regularity > 0.8 and abs(found - bpm) < 1
    assert envelope_tempo(np.zeros((3, 500)), beat_rate) == (0.0, 0.0)

    seconds = TextToAudio.from_pretrained(prior_model_dir).config.max_seconds
    monkeypatch.setattr("sys.argv", ["envelope_prior.py", "--model", str(prior_model_dir), "--seeds", "1",
                                     "--steps", "1", "--seconds", str(seconds)])
    monkeypatch.syspath_prepend("benchmarks")
    bench.main()
    table = capsys.readouterr().out
    for row in ("prior envelopes", "audio with the prior", "audio without the prior"):
        assert f"| {row} |" in table


def test_arc_posttrains_a_model_with_envelopes_from_a_manifest(caches, envelope_model_dir, tmp_path):
    """A manifest is encoded with the base's autoencoder and its envelope bands; the student keeps them."""
    from prestissimo.posttrain.arc import ARCConfig
    from prestissimo.posttrain.run import posttrain_arc
    from prestissimo.training.config import from_dict

    cfg = from_dict(ARCConfig, {"discriminator": {"hidden_layer": 0, "channels": 32, "blocks": 1},
                                "eval": {"prompts": ["a low sine note"]}, "sampling": {"steps": 2},
                                "loop": {"max_steps": 2, "batch_size": 2, "checkpoint_every": 2, "log_every": 1}})
    model_dir = posttrain_arc(cfg, envelope_model_dir, caches / "data" / "manifest.jsonl", tmp_path / "run",
                              progress=False)
    index = json.loads((tmp_path / "run" / "latents" / "latents.json").read_text())
    assert [tuple(b) for b in index["envelope"]["bands_hz"]] == BANDS
    student = TextToAudio.from_pretrained(model_dir)
    base = TextToAudio.from_pretrained(envelope_model_dir)
    assert student.config.envelope == base.config.envelope
    assert torch.isfinite(student.generate("a low sine note", seconds=0.5, seed=0)).all()


def prior_train_config(steps: int = 2) -> "EnvelopePriorTrainConfig":
    from prestissimo.training.config import from_dict
    from prestissimo.training.envelope_prior import EnvelopePriorTrainConfig

    return from_dict(EnvelopePriorTrainConfig, {
        "architecture": {"embed_dim": 64, "depth": 1, "num_heads": 2, "patch_size": 2, "pool": 2},
        "sampling_steps": 2, "eval": {"prompts": ["a beat"]},
        "loop": {"max_steps": steps, "batch_size": 2, "checkpoint_every": 2, "log_every": 1}})


@pytest.fixture(scope="module")
def prior_model_dir(caches, envelope_model_dir, tmp_path_factory):
    """envelope_model_dir with an envelope prior trained for 2 steps on the tiny cache."""
    from prestissimo.training.run import train_envelope_prior

    run = tmp_path_factory.mktemp("prior_run")
    return train_envelope_prior(prior_train_config(), envelope_model_dir, caches / "env", run, progress=False)


def test_an_envelope_prior_trains_only_itself_and_is_attached_to_its_base(prior_model_dir, envelope_model_dir):
    base, tta = TextToAudio.from_pretrained(envelope_model_dir), TextToAudio.from_pretrained(prior_model_dir)
    spec = tta.config.envelope_prior
    assert spec is not None and spec.pool == 2 and spec.prompt_id == "prompt" and spec.dit.io_channels == 3
    for name, value in base.state_dict().items():  # the base is frozen: only the prior was trained
        torch.testing.assert_close(tta.state_dict()[name], value)
    weights = load_file(str(prior_model_dir / "model.safetensors"))
    assert any(k.startswith("envelope_prior.net.") for k in weights)
    assert tta.parameter_counts()["envelope_prior"] > 0


def test_a_prior_envelope_is_held_to_the_end_of_sampling(prior_model_dir):
    """Whatever the sampler, the generated envelope channels are the prior's layout, silent past the
    requested seconds; the prior's noise comes after the DiT's, so the latents' noise is unchanged."""
    tta = TextToAudio.from_pretrained(prior_model_dir)
    d, length = tta.config.autoencoder.latent_dim, tta.config.latent_length
    g = torch.Generator().manual_seed(3)
    torch.randn(1, tta.config.dit.io_channels, length, generator=g)
    prior_noise = torch.randn(1, 3, length // 2, generator=g)
    seconds = tta.config.max_seconds / 2
    expected = tta.prior_envelope(["a beat"], seconds, prior_noise)
    for sampler in ("euler", "pingpong", "dpmpp-2m"):
        latents = tta.generate_latents(["a beat"], seconds=seconds, steps=3, sampler=sampler, seed=3)
        torch.testing.assert_close(latents[:, d:], expected, msg=sampler)
    from prestissimo.models.envelopes import silence

    audible = math.ceil(seconds * tta.sample_rate / tta.config.autoencoder.downsampling_ratio)
    torch.testing.assert_close(expected[..., audible:], silence(tta.config.envelope).view(1, -1, 1).expand(1, 3, length - audible))
    free = tta.generate_latents(["a beat"], seconds=seconds, steps=3, sampler="euler", seed=3, use_envelope_prior=False)
    assert not torch.allclose(free[:, d:], expected)


def test_a_prior_trained_for_one_base_is_refused_by_another(prior_model_dir, caches, tmp_path):
    """Resuming a finished prior run with another --base attaches the prior to it only when the
    envelope statistics and the text conditioner are the same."""
    import shutil

    from prestissimo.training.run import train_envelope_prior

    other = envelope_config()
    other["prestissimo"]["envelope"]["mean"] = [-5.0] * 3
    other_dir = make_bert_model(tmp_path / "other", other, seed=4)
    run = tmp_path / "run"
    shutil.copytree(prior_model_dir.parent, run)
    with pytest.raises(ValueError, match="other envelope"):
        train_envelope_prior(prior_train_config(), other_dir, caches / "env", run, resume=True, progress=False)


def test_an_envelope_prior_needs_a_model_with_envelope_channels(caches, bert_model_dir, tmp_path):
    from prestissimo.training.run import train_envelope_prior

    with pytest.raises(ConfigError, match="no envelope channels"):
        train_envelope_prior(prior_train_config(), bert_model_dir, caches / "env", tmp_path / "run", progress=False)


@pytest.mark.parametrize("architecture, match", [({"pool": 0}, "pool and steps must be >= 1"),
                                                 ({"num_heads": 3}, "not divisible by num_heads"),
                                                 ({"patch_size": 0}, "patch_size must be >= 1")])
def test_a_nonsense_prior_architecture_is_refused_before_training(architecture, match, envelope_model_dir, caches,
                                                                   tmp_path):
    from prestissimo.training.run import train_envelope_prior

    cfg = prior_train_config()
    cfg.architecture.__dict__.update(architecture)
    with pytest.raises(ConfigError, match=match):
        train_envelope_prior(cfg, envelope_model_dir, caches / "env", tmp_path / "run", progress=False)


def test_the_torch_free_engine_samples_the_envelope_prior_as_torch_does(prior_model_dir):
    from prestissimo.runtime.lite import LiteTextToAudio
    from prestissimo.runtime.lite.engine import upsample_frames

    x = np.random.default_rng(0).normal(size=(2, 3, 7)).astype(np.float32)
    from prestissimo.models.envelope_prior import upsample_frames as torch_upsample

    np.testing.assert_allclose(upsample_frames(x, 5), torch_upsample(torch.from_numpy(x), 5).numpy(), atol=1e-6)
    lite, tta = LiteTextToAudio.from_pretrained(prior_model_dir), TextToAudio.from_pretrained(prior_model_dir)
    seconds = tta.config.max_seconds / 2
    req = lite.request(["a low hum"], seconds=seconds, steps=2, seed=1)
    ours = lite.generate_latents(req)
    with torch.no_grad():
        ref = tta.generate_latents(["a low hum"], seconds=seconds, steps=2, seed=1).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4 * np.abs(ref).max() + 1e-6)


def test_cli_generate_and_eval_use_the_prior_unless_told_not_to(prior_model_dir, caches, tmp_path):
    import soundfile as sf

    from prestissimo.serve.cli import main

    clips = {}
    for engine in ("numpy", "torch"):
        for flag in ([], ["--no-envelope-prior"]):
            out = tmp_path / f"{engine}{len(flag)}.wav"
            assert main(["generate", "a beat", "--model", str(prior_model_dir), "--seed", "0", "--steps", "2",
                         "--engine", engine, "-o", str(out), "--quiet", *flag]) == 0
            clips[engine, bool(flag)] = sf.read(out)[0]
    for flag in (False, True):  # both engines make the same clip either way
        np.testing.assert_allclose(clips["numpy", flag], clips["torch", flag], atol=2e-3)
    assert not np.allclose(clips["torch", False], clips["torch", True], atol=1e-3)

    manifest = caches / "data" / "manifest.jsonl"
    assert main(["eval", "--model", str(prior_model_dir), "--prompts", str(manifest), "--limit", "2", "--steps", "1",
                 "--out", str(tmp_path / "ev"), "--quiet", "--grid", "0"]) == 0
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["envelope_prior_evaluations_per_clip"] == 2 * 2  # 2 prior steps, with CFG
    assert main(["eval", "--model", str(prior_model_dir), "--prompts", str(manifest), "--limit", "2", "--steps", "1",
                 "--out", str(tmp_path / "ev0"), "--quiet", "--grid", "0", "--no-envelope-prior"]) == 0
    assert "envelope_prior_evaluations_per_clip" not in json.loads((tmp_path / "ev0" / "metrics.json").read_text())


def test_a_model_config_with_an_envelope_prior_round_trips_and_names_what_does_not_fit():
    from prestissimo.models.config import DiTConfig, EnvelopePriorSpec

    c = envelope_config()
    dit = DiTConfig(io_channels=3, embed_dim=64, depth=1, num_heads=2, cond_token_dim=c["model"]["conditioning"]["cond_dim"],
                    global_cond_dim=c["model"]["conditioning"]["cond_dim"], global_cond_type="adaLN", patch_size=2)
    c["prestissimo"]["envelope_prior"] = EnvelopePriorSpec(dit=dit, pool=2, steps=7).to_dict()
    cfg = ModelConfig.from_dict(c)
    assert cfg.envelope_prior.steps == 7 and ModelConfig.from_dict(cfg.to_dict()).envelope_prior == cfg.envelope_prior

    def refused(change, match):
        bad = json.loads(json.dumps(c))
        change(bad)
        with pytest.raises(ConfigError, match=match):
            ModelConfig.from_dict(bad)

    def without_envelopes(d):
        d["prestissimo"].pop("envelope")
        d["model"]["diffusion"]["config"]["io_channels"] = d["model"]["io_channels"]

    refused(without_envelopes, "no envelope channels")
    refused(lambda d: d["prestissimo"]["envelope_prior"]["dit"].update(io_channels=4), "io_channels 4 != the envelope's 3")
    refused(lambda d: d["prestissimo"]["envelope_prior"].update(prompt_id="seconds_total"), "not a text conditioner")
    refused(lambda d: d["prestissimo"]["envelope_prior"].update(pool=7), "multiple of pool 7")
    refused(lambda d: d["prestissimo"]["envelope_prior"].update(speed=2), r"unknown keys \['speed'\]")
    refused(lambda d: d["prestissimo"]["envelope_prior"].pop("dit"), "no 'dit'")
    refused(lambda d: d["prestissimo"]["envelope_prior"].update(steps=0), "must be >= 1")


def test_export_sets_the_prior_steps_and_refuses_them_for_a_model_without_a_prior(prior_model_dir, bert_model_dir,
                                                                                 tmp_path):
    from prestissimo.models.export import ExportError, export_model

    out = export_model(prior_model_dir, tmp_path / "more", storage="fp32", prior_steps=5)
    more, original = TextToAudio.from_pretrained(out), TextToAudio.from_pretrained(prior_model_dir)
    assert more.config.envelope_prior.steps == 5 and original.config.envelope_prior.steps == 2
    noise = torch.randn(1, 3, more.config.latent_length // 2, generator=torch.Generator().manual_seed(0))
    seconds = more.config.max_seconds
    assert not torch.allclose(more.prior_envelope(["a beat"], seconds, noise),
                              original.prior_envelope(["a beat"], seconds, noise))
    with pytest.raises(ExportError, match="no envelope prior"):
        export_model(bert_model_dir, tmp_path / "none", prior_steps=2)
    with pytest.raises(ExportError, match="prior steps must be >= 1"):
        export_model(prior_model_dir, tmp_path / "zero", prior_steps=0)
    assert not (tmp_path / "none").exists() and not (tmp_path / "zero").exists()
