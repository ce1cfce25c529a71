"""ARC post-training: the spec's invariants (algorithms.md §2), both heads, the CLI end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from prestissimo.posttrain.arc import (ARCConfig, ARCDiscriminator, ARCTask, DiscriminatorConfig,
                                       approximate_gradient_penalty, contrastive_loss, mismatched_pairing,
                                       relativistic_discriminator_loss, relativistic_generator_loss)
from prestissimo.training.config import LoopConfig
from prestissimo.training.loop import Batch, frozen_parameters

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
PROMPTS = ["a low sine note", "a fast drum beat", "white noise fading in", "a high bell"]


def test_losses_equal_log2_at_equal_scores_and_mirror_each_other():
    d = torch.randn(3, 1, 5)
    for loss in (relativistic_generator_loss(d, d), relativistic_discriminator_loss(d, d), contrastive_loss(d, d)):
        assert float(loss) == pytest.approx(math.log(2))
    r, f = torch.randn(4, 1, 6), torch.randn(4, 1, 6)
    assert torch.allclose(relativistic_generator_loss(r, f), relativistic_discriminator_loss(f, r))
    # softplus(x) - softplus(-x) = x: the two players' losses differ by the mean score gap
    gap = relativistic_generator_loss(r, f) - relativistic_discriminator_loss(r, f)
    assert float(gap) == pytest.approx(float((r - f).mean()), abs=1e-6)
    # the generator gains by outscoring its real partner, the discriminator by the opposite
    assert float(relativistic_generator_loss(r, r + 1)) < math.log(2) < float(relativistic_discriminator_loss(r, r + 1))


def test_mismatched_pairing_never_pairs_an_item_with_its_own_prompt():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 12))
        prompts = [f"p{int(k)}" for k in rng.integers(0, max(2, n // 2 + 1), n)]
        counts = np.unique(prompts, return_counts=True)[1]
        if counts.max() > n // 2:  # then no valid pairing exists
            with pytest.raises(ValueError, match="mismatched"):
                mismatched_pairing(prompts, rng)
            continue
        partner = mismatched_pairing(prompts, rng)
        assert sorted(partner) == list(range(n))
        assert all(partner[i] != i and prompts[partner[i]] != prompts[i] for i in range(n))
    with pytest.raises(ValueError, match="two items"):
        mismatched_pairing(["only one"], rng)


def test_gradient_penalty_approximates_the_squared_gradient_norm_of_a_linear_discriminator():
    w = torch.randn(1, 4, 8)
    linear = lambda x: (x * w).sum(dim=(1, 2)).view(-1, 1, 1)  # noqa: E731
    x = torch.randn(4000, 4, 8)
    penalty = approximate_gradient_penalty(linear, x, generator=torch.Generator().manual_seed(0), std=0.05)
    assert float(penalty) == pytest.approx(0.05**2 * float(w.pow(2).sum()), rel=0.1)


@pytest.mark.parametrize("head", ["convnext", "conv"])
def test_discriminator_reads_a_hidden_layer_and_scores_positions(tiny_model_dir, head):
    from prestissimo.pipeline import TextToAudio

    tta = TextToAudio.from_pretrained(tiny_model_dir)
    disc = ARCDiscriminator(tta.model.model, DiscriminatorConfig(hidden_layer=0, head=head, channels=32, blocks=1))
    assert len(disc.trunk.transformer.layers) == 1  # blocks after the read-out layer are dropped
    tokens, global_cond = tta.conditioning_tokens(PROMPTS[:2], 1.0)
    logits = disc(torch.randn(2, 8, 64), torch.rand(2), tokens, global_cond)
    assert logits.shape[:2] == (2, 1) and 1 <= logits.shape[-1] <= 65 // 16 + 1
    with pytest.raises(ValueError, match="hidden_layer"):
        ARCDiscriminator(tta.model.model, DiscriminatorConfig(hidden_layer=2))


def _task(model_dir, tmp_path, **overrides) -> ARCTask:
    cfg = ARCConfig(discriminator=DiscriminatorConfig(hidden_layer=0, channels=32, blocks=1),
                    loop=LoopConfig(batch_size=4), **overrides)
    return ARCTask(cfg, tmp_path, model_dir)


def _batch(step: int) -> Batch:
    latents = torch.randn(4, 8, 64, generator=torch.Generator().manual_seed(step))
    data = {"latents": latents, "caption": PROMPTS, "seconds_total": [1.0] * 4, "seconds_start": [0.0] * 4}
    return Batch(data, [0, 1, 2, 3], step, seed=0, weight=1.0)


def _grads(params) -> list[bool]:
    return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params]


@pytest.mark.parametrize("checkpointing", [False, True])
def test_each_phase_sends_gradients_only_to_its_own_network(tiny_model_dir, tmp_path, checkpointing):
    task = _task(tiny_model_dir, tmp_path, activation_checkpointing=checkpointing)
    generator, discriminator = task.phases()
    assert generator.active(0) and not generator.active(1) and discriminator.active(1) and not discriminator.active(0)

    assert generator.frozen == [task.disc] and not discriminator.frozen
    with frozen_parameters(generator.frozen):  # as the loop runs the phase
        loss, logs = task.generator_loss(_batch(0))
        loss.backward()
    assert any(_grads(generator.parameters)) and not any(_grads(discriminator.parameters))
    assert {"d_real", "d_fake"} <= set(logs)
    for p in generator.parameters + discriminator.parameters:
        p.grad = None

    loss, logs = task.discriminator_loss(_batch(1))
    loss.backward()
    assert any(_grads(discriminator.parameters)) and not any(_grads(generator.parameters))
    assert {"relativistic", "contrastive", "d_mismatched"} <= set(logs)
    assert all(p.requires_grad for p in discriminator.parameters)  # re-enabled after the generator phase


def test_contrastive_switch_and_gradient_penalty(tiny_model_dir, tmp_path):
    from prestissimo.posttrain.arc import LossWeights

    plain = _task(tiny_model_dir, tmp_path, contrastive=False)
    _, logs = plain.discriminator_loss(_batch(1))
    assert "contrastive" not in logs
    penalised = _task(tiny_model_dir, tmp_path, weights=LossWeights(gradient_penalty=1.0))
    loss, logs = penalised.discriminator_loss(_batch(1))
    assert logs["gradient_penalty"] > 0 and torch.isfinite(loss)


def test_mismatched_prompts_reach_the_discriminator_pooled_prompt_too(pooled_model_dir, tmp_path):
    task = _task(pooled_model_dir, tmp_path)
    seen = []
    forward = task.disc.forward
    task.disc.forward = lambda x, s, tokens, global_cond: seen.append((tokens, global_cond)) or forward(
        x, s, tokens, global_cond)
    task.discriminator_loss(_batch(1))
    (tokens, glob), (_, glob_fake), (wrong_tokens, wrong_glob) = seen
    d = task.tta.config.cond_dim
    assert torch.equal(glob, glob_fake) and not torch.equal(tokens, wrong_tokens)
    assert not torch.allclose(glob[:, :d], wrong_glob[:, :d]) and torch.equal(glob[:, d:], wrong_glob[:, d:])


def test_ode_warmup_regresses_the_generator_before_the_adversarial_phase(tiny_model_dir, tmp_path):
    from prestissimo.posttrain.arc import ODEWarmup

    task = _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=2, teacher_steps=3, cfg_scale=2.0))
    generator, discriminator = task.phases()
    assert [generator.active(s) for s in range(5)] == [True, True, True, False, True]
    assert [discriminator.active(s) for s in range(5)] == [False, False, False, True, False]
    loss, logs = task.generator_loss(_batch(0))
    assert "ode_warmup" in logs
    loss.backward()
    assert any(_grads(generator.parameters)) and not any(_grads(task.teacher.parameters()))


def test_discriminator_warmup_trains_only_the_discriminator_between_ode_warmup_and_alternation(tiny_model_dir,
                                                                                                tmp_path):
    from prestissimo.posttrain.arc import ODEWarmup

    task = _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=2, teacher_steps=3), discriminator_warmup=3)
    generator, discriminator = task.phases()
    expected = [True, True, False, False, False, True, False, True, False]
    assert [generator.active(s) for s in range(9)] == expected
    assert [discriminator.active(s) for s in range(9)] == [not g for g in expected]
    with pytest.raises(ValueError, match="discriminator_warmup"):
        _task(tiny_model_dir, tmp_path, discriminator_warmup=-1)


def test_the_ode_warmup_runs_at_its_own_learning_rate_and_the_adversarial_steps_at_optim_lr(tiny_model_dir,
                                                                                             tmp_path):
    from prestissimo.posttrain.arc import ODEWarmup

    task = _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=2, teacher_steps=3, lr=4e-5))
    generator, _ = task.phases()
    assert [generator.lr_scale(s) * task.cfg.optim.lr for s in range(4)] == pytest.approx([4e-5, 4e-5] + [
        task.cfg.optim.lr] * 2)
    assert _task(tiny_model_dir, tmp_path).phases()[0].lr_scale(0) == 1.0  # lr None: optim.lr throughout
    with pytest.raises(ValueError, match="ode_warmup.lr"):
        _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=1, lr=0.0))


def test_the_ode_warmup_can_run_in_bf16_while_the_adversarial_steps_keep_the_loop_precision(tiny_model_dir,
                                                                                            tmp_path):
    from prestissimo.posttrain.arc import ODEWarmup

    task = _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=2, teacher_steps=3, trajectory_variants=1,
                                                                precision="bf16"))
    generator, _ = task.phases()
    assert [generator.precision(s) for s in range(4)] == ["bf16", "bf16", "fp32", "fp32"]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what the loop does at those steps
        loss, _ = task.generator_loss(_batch(0))
    assert torch.isfinite(loss)
    loss.backward()
    assert any(_grads(generator.parameters))
    generator, _ = _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=2)).phases()
    assert [generator.precision(s) for s in range(4)] == ["fp32"] * 4  # None: loop.precision throughout
    with pytest.raises(ValueError, match="ode_warmup.precision"):
        _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=1, precision="fp16"))


def test_trajectory_cache_computes_each_key_once_from_noise_fixed_by_the_key():
    from prestissimo.posttrain.trajectories import TrajectoryCache

    calls = []

    def compute(noise, rows):  # a fake two-state "teacher": states noise and noise / 2, end noise / 4
        calls.append(rows)
        return torch.stack([noise, noise / 2], 1), torch.tensor([[1.0, 0.5]] * len(rows)), noise / 4

    cache = TrajectoryCache(seed=3)
    first = cache.fetch([("a", 0), ("b", 0), ("a", 0)], (2, 5), compute)
    assert calls == [[0, 1]] and len(cache) == 2  # the repeated key is computed once, from its first row
    assert first[0] is first[2] and not torch.equal(first[0].end, first[1].end)
    assert torch.equal(first[0].states[0], cache.start_noise(("a", 0), (2, 5)))
    again = cache.fetch([("b", 0), ("c", 1)], (2, 5), compute)
    assert calls[1:] == [[1]] and again[0] is first[1]  # only the new key runs the teacher
    other = TrajectoryCache(seed=3)  # a resumed run starts every key from the same noise
    assert torch.equal(other.start_noise(("c", 1), (2, 5)), again[1].states[0])
    assert not torch.equal(TrajectoryCache(seed=4).start_noise(("c", 1), (2, 5)), again[1].states[0])


def test_saved_trajectories_are_read_back_instead_of_computed_and_a_damaged_file_is_skipped(tmp_path, caplog):
    from prestissimo.posttrain.trajectories import TrajectoryCache

    calls = []

    def compute(noise, rows):
        calls.append(rows)
        return torch.stack([noise, noise / 2], 1), torch.tensor([[1.0, 0.5]] * len(rows)), noise / 4

    folder = tmp_path / "trajectories" / "abc"
    first = TrajectoryCache(seed=3, folder=folder)
    made = first.fetch([("a cat", 5.0, 0.0, 0), ("b", 5.0, 0.0, 0)], (2, 5), compute)
    first.fetch([("c", 1.0, 0.0, 1)], (2, 5), compute)
    assert len(calls) == 2 and len(list(folder.glob("*.safetensors"))) == 2
    assert not list(folder.glob(".*"))  # written atomically: no temporary file left

    resumed = TrajectoryCache(seed=3, folder=folder)  # a resumed run: everything read, nothing computed
    got = resumed.fetch([("b", 5.0, 0.0, 0), ("a cat", 5.0, 0.0, 0), ("c", 1.0, 0.0, 1)], (2, 5), compute)
    assert len(calls) == 2 and len(resumed) == 3
    assert torch.equal(got[1].states, made[0].states) and torch.equal(got[1].end, made[0].end)
    assert torch.equal(got[0].levels, made[1].levels)

    damaged = sorted(folder.glob("*.safetensors"))[0]
    damaged.write_bytes(damaged.read_bytes()[:40])
    with caplog.at_level("WARNING"):
        partial = TrajectoryCache(seed=3, folder=folder)
    assert "skipping unreadable trajectory file" in caplog.text and str(damaged) in caplog.text
    assert len(partial) in (1, 2)  # the other file's trajectories are still read
    partial.fetch([("a cat", 5.0, 0.0, 0), ("b", 5.0, 0.0, 0), ("c", 1.0, 0.0, 1)], (2, 5), compute)
    assert len(calls) == 3 and len(partial) == 3  # only the damaged file's keys ran the teacher again


def test_the_warmup_saves_trajectories_in_a_folder_named_by_its_teacher(tiny_model_dir, tmp_path):
    from prestissimo.posttrain.arc import ODEWarmup

    wu = ODEWarmup(steps=2, teacher_steps=3, trajectory_variants=1)
    task = _task(tiny_model_dir, tmp_path, ode_warmup=wu)
    task.generator_loss(_batch(0))
    folder = task.trajectories.folder
    assert folder.parent == tmp_path / "trajectories" and len(list(folder.glob("*.safetensors"))) == 1

    resumed = _task(tiny_model_dir, tmp_path, ode_warmup=wu)
    assert resumed.trajectories.folder == folder and len(resumed.trajectories) == 4
    resumed.teacher.forward = lambda *a, **k: pytest.fail("a saved trajectory ran the teacher again")
    loss, _ = resumed.generator_loss(_batch(1))
    assert torch.isfinite(loss)

    other = _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=2, teacher_steps=4, trajectory_variants=1))
    assert other.trajectories.folder != folder and len(other.trajectories) == 0  # another teacher: nothing stale
    unsaved = _task(tiny_model_dir, tmp_path / "u", ode_warmup=ODEWarmup(steps=2, teacher_steps=3,
                                                                        trajectory_variants=1, save_trajectories=False))
    unsaved.generator_loss(_batch(0))
    assert unsaved.trajectories.folder is None and not (tmp_path / "u" / "trajectories").exists()


def test_cached_ode_warmup_regresses_onto_the_teachers_trajectory_and_reuses_it(tiny_model_dir, tmp_path):
    from prestissimo.posttrain.arc import ODEWarmup

    wu = ODEWarmup(steps=4, teacher_steps=3, cfg_scale=2.0, trajectory_variants=1)
    task = _task(tiny_model_dir, tmp_path, ode_warmup=wu)
    teacher_calls = []
    forward = task.teacher.forward
    task.teacher.forward = lambda *a, **k: teacher_calls.append(1) or forward(*a, **k)
    loss, logs = task.generator_loss(_batch(0))
    assert len(teacher_calls) == 3 and logs["trajectories"] == 4  # CFG runs both halves in one call per step
    loss.backward()
    assert any(_grads(task.generator_params)) and not any(_grads(task.teacher.parameters()))
    task.generator_loss(_batch(1))  # the same four prompts: no teacher call
    assert len(teacher_calls) == 3 and len(task.trajectories) == 4
    # Each cached end point is the guided Euler sample from that prompt's own start noise.
    key = (PROMPTS[2], 1.0, 0.0, 0)
    cond = task.tta.conditioning(PROMPTS[2:3], [1.0], [0.0])
    _, _, end = task._teacher_trajectories(cond, task.trajectories.start_noise(key, (8, 64))[None])
    assert torch.allclose(task.trajectories.entries[key].end, end[0], atol=1e-5)
    with pytest.raises(ValueError, match="trajectory_variants"):
        _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=1, trajectory_variants=-1))


def test_the_teacher_trajectory_visits_the_levels_of_its_schedule(tiny_model_dir, tmp_path):
    from prestissimo.posttrain.arc import ODEWarmup
    from prestissimo.sampling.schedules import linear_schedule, logsnr_schedule

    for schedule, times in [("linear", linear_schedule(4)), ("logsnr", logsnr_schedule(4, "rectified_flow"))]:
        task = _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=1, teacher_steps=4, teacher_schedule=schedule))
        cond = task.tta.conditioning(PROMPTS[:2], [1.0, 1.0], [0.0, 0.0])
        states, levels, end = task._teacher_trajectories(cond, torch.randn(2, 8, 64))
        assert states.shape == (2, 4, 8, 64) and end.shape == (2, 8, 64)
        torch.testing.assert_close(levels[0].double(), times[:-1], atol=1e-6, rtol=0)  # queried at every t but 0
    with pytest.raises(ValueError, match="teacher_schedule"):
        _task(tiny_model_dir, tmp_path, ode_warmup=ODEWarmup(steps=1, teacher_schedule="cosine"))


def test_the_export_carries_the_sampling_defaults_and_bad_ones_are_refused_before_training(tiny_model_dir, tmp_path):
    from prestissimo.pipeline import TextToAudio
    from prestissimo.posttrain.arc import ARCSampling

    task = _task(tiny_model_dir, tmp_path, sampling=ARCSampling(steps=4, eta=0.9))
    out = task.export({"generator": task.tta.model, "conditioner": task.tta.conditioner}, tmp_path / "model")
    s = TextToAudio.from_pretrained(out).config.sampling
    assert (s.sampler, s.steps, s.cfg_scale, s.eta) == ("pingpong", 4, 1.0, 0.9)
    for bad, message in [(ARCSampling(eta=1.5), "sampling: eta must be"),
                         (ARCSampling(sampler="euler", eta=0.5), "sampling: eta applies to the pingpong"),
                         (ARCSampling(steps=0), "sampling: steps")]:
        with pytest.raises(ValueError, match=message):
            _task(tiny_model_dir, tmp_path, sampling=bad)


def test_ema_warmup_decay():
    loop = LoopConfig(ema_decay=0.9999, ema_warmup_power=0.75)
    assert loop.ema_decay_at(0) == 0.0  # the first update copies the weights
    assert loop.ema_decay_at(1) == pytest.approx(1 - 2**-0.75)
    assert loop.ema_decay_at(10**9) == 0.9999
    assert LoopConfig(ema_decay=0.99).ema_decay_at(3) == 0.99


def test_a_non_flow_base_model_is_refused(tiny_v_model_dir, tmp_path):
    with pytest.raises(ValueError, match="rectified-flow"):
        _task(tiny_v_model_dir, tmp_path)


@pytest.fixture(scope="module")
def base_and_latents(tmp_path_factory):
    """The tiny random rectified-flow model and latents of 8 one-second synthbench clips."""
    from prestissimo.data.latents import encode_dataset
    from prestissimo.data.manifest import read_manifest
    from prestissimo.data.synthbench import SynthbenchSpec, make_synthbench
    from prestissimo.models.factory import create_random_model
    from prestissimo.pipeline import TextToAudio

    root = tmp_path_factory.mktemp("arc")
    base = create_random_model("tiny", root / "base", seed=0)
    manifest = make_synthbench(SynthbenchSpec(n=8, seed=5, seconds=1.0, sample_rate=8000), root / "data",
                               workers=1, progress=False)
    ae = TextToAudio.from_pretrained(base, load_text_encoder=False).pretransform.model
    encode_dataset(ae, 8000, read_manifest(manifest), root / "latents", 1.0, progress=False)
    config = {"discriminator": {"hidden_layer": 0, "channels": 32, "blocks": 1},
              "eval": {"prompts": ["a low sine note"]},
              "loop": {"max_steps": 4, "batch_size": 4, "checkpoint_every": 2, "log_every": 1},
              "sampling": {"steps": 4}}
    (root / "arc.json").write_text(json.dumps(config))
    return root


def _posttrain(root, out, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prestissimo.serve.cli", "posttrain", "arc", "--base",
                           str(root / "base"), "--config", str(root / "arc.json"), "--out", str(out), "--quiet",
                           *extra], env=ENV, capture_output=True, text=True, timeout=600)


def test_cli_posttrains_and_exports_a_pingpong_model(base_and_latents, tmp_path):
    from prestissimo.pipeline import TextToAudio

    root = base_and_latents
    run = _posttrain(root, tmp_path / "run", "--data", str(root / "latents"))
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("generator/loss" in r for r in rows) and any("discriminator/contrastive" in r for r in rows)
    model = TextToAudio.from_pretrained(tmp_path / "run" / "model")
    assert model.config.objective == "rf_denoiser"
    assert (model.config.sampling.sampler, model.config.sampling.steps, model.config.sampling.cfg_scale) == \
        ("pingpong", 4, 1.0)
    audio = model.generate("a low sine note", seconds=0.5, seed=0)
    assert audio.shape == (1, 2, 4000) and torch.isfinite(audio).all()
    assert (tmp_path / "run" / "samples" / "step_00000004" / "spectrograms.png").is_file()

    again = _posttrain(root, tmp_path / "run", "--data", str(root / "latents"))
    assert again.returncode != 0 and "--resume" in again.stderr  # an existing run is never overwritten


def test_cli_encodes_a_manifest_once_with_the_base_autoencoder(base_and_latents, tmp_path):
    root = base_and_latents
    run = _posttrain(root, tmp_path / "run", "--data", str(root / "data" / "manifest.jsonl"))
    assert run.returncode == 0, run.stderr
    index = json.loads((tmp_path / "run" / "latents" / "latents.json").read_text())
    assert len(index["rows"]) == 8 and index["latent_dim"] == 8


def test_audio_to_audio_starts_from_the_noised_input(tiny_model_dir):
    from prestissimo.pipeline import TextToAudio
    from prestissimo.sampling.schedules import linear_schedule, logsnr_schedule

    ts = logsnr_schedule(4, "rf_denoiser", t_start=0.5)
    assert float(ts[0]) == 0.5 and float(ts[-1]) == 0.0 and bool((ts[1:] < ts[:-1]).all())
    assert float(linear_schedule(4, 0.25)[0]) == 0.25
    with pytest.raises(ValueError, match="noise level"):
        logsnr_schedule(4, "rf_denoiser", t_start=0.0)

    tta = TextToAudio.from_pretrained(tiny_model_dir)
    clip = torch.sin(torch.arange(8192) * 0.05).repeat(2, 1) * 0.3
    init = tta.encode_audio(clip)
    # a one-step ping-pong from level t is one denoise of (1 - t) init + t noise
    seen = []
    original = tta.model.forward
    tta.model.forward = lambda x, t, cond: (seen.append((x.clone(), t.clone())), original(x, t, cond))[1]
    tta.generate_latents(["a note"], steps=1, seed=3, init_audio=clip, init_noise_level=0.25)
    (x, t), = seen
    noise = torch.randn(init.shape, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(t, torch.tensor([0.25]))
    assert torch.allclose(x, 0.75 * init + 0.25 * noise, atol=1e-5)
    with pytest.raises(ValueError, match="init_noise_level"):
        tta.generate_latents(["a note"], steps=1, init_audio=clip, init_noise_level=1.5)


def test_cli_audio_to_audio(tiny_model_dir, tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "in.wav", (np.sin(np.arange(4000) * 0.05) * 0.3).astype(np.float32), 4000)  # mono, 4 kHz
    run = subprocess.run([sys.executable, "-m", "prestissimo.serve.cli", "generate", "a note", "--model",
                          str(tiny_model_dir), "--init-audio", str(tmp_path / "in.wav"), "--init-noise-level", "0.5",
                          "--seconds", "0.5", "--seed", "0", "-o", str(tmp_path / "out.wav"), "--quiet"],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    audio, rate = sf.read(tmp_path / "out.wav")
    assert rate == 8000 and audio.shape == (4000, 2)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    bad = subprocess.run([sys.executable, "-m", "prestissimo.serve.cli", "generate", "a note", "--model",
                          str(tiny_model_dir), "--init-audio", str(tmp_path / "bad.wav"), "-o",
                          str(tmp_path / "x.wav"), "--quiet"], env=ENV, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "bad.wav" in bad.stderr
