"""The training loop: exact resume after SIGKILL, 2-process gloo DDP = 1 process, NaN handling,
robust datasets, objective invariants."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from prestissimo.data.datasets import AudioDataset, AudioSpec
from prestissimo.data.manifest import read_manifest
from prestissimo.models.denoiser import Conditioning, add_noise, edm_coefficients, edm_sigma
from prestissimo.training.config import LoopConfig, OptimizerConfig
from prestissimo.training.diffusion import cfg_dropout, diffusion_loss, sample_noise_levels
from prestissimo.training.loop import (Batch, Phase, Trainer, TrainingDiverged, adopt_configured_hyperparameters,
                                       build_optimizer, global_indices, lr_factor)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    """A random tiny autoencoder and the latents of 8 synthbench clips (1 s, 8 kHz)."""
    from prestissimo.data.latents import encode_dataset
    from prestissimo.data.synthbench import SynthbenchSpec, make_synthbench
    from prestissimo.models.autoencoder import OobleckAutoencoder
    from prestissimo.models.autoencoder_io import save_autoencoder
    from prestissimo.models.config import ModelConfig
    from prestissimo.models.presets import preset

    root = tmp_path_factory.mktemp("train")
    manifest = make_synthbench(SynthbenchSpec(n=8, seed=4, seconds=1.0, sample_rate=8000), root / "data",
                               workers=1, progress=False)
    cfg = ModelConfig.from_dict(preset("tiny"))
    torch.manual_seed(0)
    ae = OobleckAutoencoder(cfg.autoencoder)
    save_autoencoder(ae, cfg.sample_rate, cfg.sample_size, root / "ae")
    encode_dataset(ae, cfg.sample_rate, read_manifest(manifest), root / "latents", 1.0, progress=False)
    config = {"model": "tiny", "autoencoder": str(root / "ae"),
              "loop": {"max_steps": 12, "batch_size": 4, "checkpoint_every": 4, "log_every": 1, "ema_decay": 0.9},
              "eval": {"prompts": ["a low sine note"], "steps": 2}}
    (root / "config.json").write_text(json.dumps(config))
    return root


def _train(root: Path, out: Path, *extra: str, launcher: list[str] | None = None) -> subprocess.Popen:
    cmd = (launcher or [sys.executable, "-m", "prestissimo.serve.cli"]) + [
        "train", "dit", "--config", str(root / "config.json"), "--data", str(root / "latents"), "--out", str(out),
        "--quiet", *extra]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "step_00000012" / "modules.safetensors"))


@pytest.mark.slow
def test_sigkill_between_checkpoints_then_resume_gives_the_same_weights(latents, tmp_path):
    straight = _train(latents, tmp_path / "straight")
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    victim = _train(latents, tmp_path / "killed")
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.time() + 300
    while time.time() < deadline and not (latest.exists() and latest.read_text().strip() == "step_00000004"):
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    last = latest.read_text().strip()
    assert last in ("step_00000004", "step_00000008"), last  # killed mid-run, after the first checkpoint
    assert not (tmp_path / "killed" / "checkpoints" / "step_00000012").exists()

    refused = _train(latents, tmp_path / "killed")
    assert refused.wait(timeout=120) == 2 and "--resume" in refused.stderr.read()
    resumed = _train(latents, tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    from prestissimo.pipeline import TextToAudio

    model = TextToAudio.from_pretrained(tmp_path / "killed" / "model")
    assert model.config.objective == "rectified_flow"


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(latents, tmp_path):
    one = _train(latents, tmp_path / "one")
    assert one.wait(timeout=300) == 0, one.stderr.read()
    two = _train(latents, tmp_path / "two", launcher=[sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                      "--nproc-per-node", "2", "-m", "prestissimo.serve.cli"])
    assert two.wait(timeout=300) == 0, two.stderr.read()

    def losses(run: Path) -> list[float]:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [r["diffusion/loss"] for r in rows if "diffusion/loss" in r]

    assert len(losses(tmp_path / "one")) == 12
    np.testing.assert_allclose(losses(tmp_path / "two"), losses(tmp_path / "one"), rtol=1e-4, atol=1e-5)
    a, b = _final_weights(tmp_path / "one"), _final_weights(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_autoencoder_training_exports_a_directory_encode_reads(latents, tmp_path):
    from prestissimo.models.autoencoder_io import load_autoencoder

    config = {"preset": "tiny", "seconds": 0.5, "adversarial_start": 2, "disc_stft_sizes": [256, 128],
              "disc_channels": 8, "eval_clips": 2, "weights": {"balance": 0.5},
              "loop": {"max_steps": 4, "batch_size": 2, "checkpoint_every": 2, "log_every": 1}}
    (tmp_path / "ae.json").write_text(json.dumps(config))
    run = subprocess.run([sys.executable, "-m", "prestissimo.serve.cli", "train", "autoencoder", "--config",
                          str(tmp_path / "ae.json"), "--data", str(latents / "data" / "manifest.jsonl"), "--out",
                          str(tmp_path / "run"), "--quiet"], env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("discriminator/loss" in r for r in rows) and any("eval/mrstft" in r for r in rows)
    assert all("autoencoder/balance" in r for r in rows if "autoencoder/loss" in r)
    assert not any("discriminator/loss" in r for r in rows if r["step"] <= 2)  # warm-up: no GAN terms yet
    ae, sample_rate = load_autoencoder(tmp_path / "run" / "model")
    assert sample_rate == 8000 and (tmp_path / "run" / "model" / "reconstructions.png").is_file()


def test_multi_resolution_stft_loss_is_zero_for_identical_audio_and_grows_with_noise():
    from prestissimo.training.autoencoder import kl_divergence, multi_resolution_stft_loss

    x = torch.sin(torch.arange(4000) * 0.05).repeat(2, 2, 1) * 0.5
    sizes = [512, 256, 64]
    assert float(multi_resolution_stft_loss(x, x, sizes)) < 1e-6
    noisy = [float(multi_resolution_stft_loss(x + s * torch.randn_like(x), x, sizes)) for s in (0.01, 0.1, 1.0)]
    assert noisy[0] < noisy[1] < noisy[2]
    assert float(kl_divergence(torch.zeros(5), torch.ones(5))) == 0.0


def test_stft_loss_is_gain_invariant_and_weighs_content_over_a_quiet_noise_floor():
    from prestissimo.training.autoencoder import multi_resolution_stft_loss

    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / 8000
    tone = torch.sin(2 * torch.pi * 440 * t) * (t < 0.5)  # half a second of digital silence after
    target = torch.stack([tone, tone])[None] * 0.5  # centred: the side signal is exactly zero
    sizes = [512, 256, 64]
    pred = target + 0.3 * torch.randn(target.shape, generator=g) * target
    loss = float(multi_resolution_stft_loss(pred, target, sizes))
    assert abs(float(multi_resolution_stft_loss(pred * 0.01, target * 0.01, sizes)) - loss) < 1e-4 * loss
    quiet_noise = target + 1e-3 * 0.5 * torch.randn(target.shape, generator=g)  # 60 dB down
    assert float(multi_resolution_stft_loss(quiet_noise, target, sizes)) < float(
        multi_resolution_stft_loss(target * 0.5, target, sizes))


def test_stft_loss_tells_left_from_right():
    """Mid/side magnitudes alone are blind to a mirrored clip (|STFT(L-R)| = |STFT(R-L)|)."""
    from prestissimo.training.autoencoder import multi_resolution_stft_loss

    t = torch.arange(8000) / 8000
    tone = torch.sin(2 * torch.pi * 330 * t)
    left_heavy = torch.stack([tone, 0.2 * tone])[None]
    mirrored = left_heavy.flip(1)
    sizes = [512, 256, 64]
    assert float(multi_resolution_stft_loss(left_heavy, left_heavy, sizes)) < 1e-6
    assert float(multi_resolution_stft_loss(mirrored, left_heavy, sizes)) > 0.2


def test_stereo_balance_loss_measures_the_position_error_in_tens_of_db():
    from prestissimo.training.autoencoder import stereo_balance_loss

    tone = torch.sin(torch.arange(4000) * 0.07)
    left_heavy = torch.stack([tone, 0.1 * tone])[None]  # 20 dB to the left
    assert float(stereo_balance_loss(left_heavy, left_heavy)) < 1e-6
    assert abs(float(stereo_balance_loss(left_heavy.flip(1), left_heavy)) - 4.0) < 1e-3  # mirrored: 40 dB off
    assert abs(float(stereo_balance_loss(0.1 * left_heavy.flip(1), left_heavy)) - 4.0) < 1e-3  # gain-invariant above the floor
    assert float(stereo_balance_loss(tone[None, None], tone[None, None])) == 0.0  # mono


def test_stft_loss_makes_silence_the_worst_answer_for_a_sparse_tone():
    from prestissimo.training.autoencoder import multi_resolution_stft_loss

    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t)
    target = torch.stack([tone, 0.3 * tone])[None] * 0.3  # panned to the left
    sizes = [2048, 1024, 512, 256, 128, 64]
    spectrum = torch.fft.rfft(torch.randn(target.shape, generator=g))
    freqs = torch.fft.rfftfreq(16000, 1 / 16000)
    spectrum[..., (freqs < 380) | (freqs > 500)] = 0
    band_noise = torch.fft.irfft(spectrum, 16000)
    band_noise = band_noise / band_noise.std() * target.std()  # the right band and level, no tone
    loss = {name: float(multi_resolution_stft_loss(pred, target, sizes)) for name, pred in {
        "silence": target * 1e-4, "-20 dB": target * 0.1, "-6 dB": target * 0.5,
        "band noise": band_noise, "mono": target.mean(1, keepdim=True).expand_as(target)}.items()}
    assert loss["silence"] > loss["-20 dB"] > loss["band noise"] > loss["-6 dB"]
    assert loss["silence"] > 3 * loss["-6 dB"]
    assert loss["mono"] > loss["-6 dB"]
    # every clip of a batch weighs the same, however loud or dense: a quiet tone beside loud noise
    noise = torch.randn(target.shape, generator=g)
    pair = multi_resolution_stft_loss(torch.cat([target * 1e-4, noise * 0.9]), torch.cat([target, noise]), sizes)
    alone = [multi_resolution_stft_loss(target * 1e-4, target, sizes), multi_resolution_stft_loss(noise * 0.9, noise, sizes)]
    assert abs(float(pair) - float(sum(alone)) / 2) < 1e-4


def test_training_init_makes_the_fresh_decoder_depend_on_its_input():
    from prestissimo.models.autoencoder import OobleckAutoencoder
    from prestissimo.training.autoencoder import AETrainConfig, initialize_for_training

    torch.manual_seed(0)
    ae_cfg, _ = AETrainConfig(preset="small", overrides={"channels": 8, "strides": [2, 2, 2, 2]}).architecture()
    ae = OobleckAutoencoder(ae_cfg)
    z = torch.randn(2, ae_cfg.latent_dim, 32)

    def spread() -> float:  # how far apart two latents decode, relative to the output's size
        with torch.no_grad():
            out = ae.decode(z)
        return float((out[0] - out[1]).abs().mean() / out.abs().mean())

    before = spread()
    initialize_for_training(ae)
    assert spread() > 0.5 > before
    assert all(float(m.bias.detach().abs().max()) == 0 for m in ae.decoder.modules()
               if getattr(m, "bias", None) is not None)


def test_odd_autoencoder_strides_and_negative_loss_weights_are_refused():
    from prestissimo.training.autoencoder import AETrainConfig, LossWeights

    with pytest.raises(ValueError, match="even"):
        AETrainConfig(preset="tiny", overrides={"strides": [2, 5]}).architecture()
    with pytest.raises(ValueError, match="stft_log_weight"):
        AETrainConfig(preset="tiny", stft_log_weight=-0.1).architecture()
    with pytest.raises(ValueError, match="weights.balance"):
        AETrainConfig(preset="tiny", weights=LossWeights(balance=-1.0)).architecture()


def test_a_training_device_that_does_not_exist_is_refused():
    from prestissimo.training.config import LoopConfig

    with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
        LoopConfig(device="gpu").validate()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            LoopConfig(device="cuda").validate()


class _ToyData:
    def __init__(self, n: int = 10):
        self.x = torch.randn(n, 3, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def get(self, index, rng):
        return {"x": self.x[index]}

    @staticmethod
    def collate(items):
        return {"x": torch.stack([i["x"] for i in items])}


class _ToyTask:
    """Linear regression whose loss turns NaN from step `nan_from` on."""

    def __init__(self, nan_from: int = 10**9):
        self.net = torch.nn.Linear(3, 1)
        self.nan_from = nan_from

    def modules(self):
        return {"net": self.net}

    def ema_targets(self):
        return {"net": self.net}

    def phases(self):
        return [Phase("fit", list(self.net.parameters()), self.loss, OptimizerConfig(lr=1e-2))]

    def loss(self, batch: Batch):
        pred = self.net(batch.data["x"]).squeeze(-1)
        loss = ((pred - batch.data["x"].sum(-1)) ** 2).mean()
        if batch.step >= self.nan_from:
            loss = loss * float("nan")
        return loss, {"loss": float(loss.detach())}

    def evaluate(self, step, ema, logger):
        return {}


def test_nan_losses_skip_updates_then_stop_the_run_with_weights_untouched(tmp_path):
    task = _ToyTask(nan_from=5)
    loop = LoopConfig(max_steps=50, batch_size=2, checkpoint_every=5, max_bad_steps=3, ema_decay=0.0)
    trainer = Trainer(task, _ToyData(), loop, tmp_path, {}, progress=False)
    with pytest.raises(TrainingDiverged, match="3 consecutive steps"):
        trainer.fit()
    weights = load_file(str(tmp_path / "checkpoints" / "step_00000005" / "modules.safetensors"))
    assert torch.equal(weights["net.weight"], task.net.weight.detach())  # the NaN steps changed nothing
    assert trainer.skipped == 3


def test_gradient_accumulation_equals_the_full_batch(tmp_path):
    results = []
    for accum in (1, 2):
        torch.manual_seed(0)
        task = _ToyTask()
        loop = LoopConfig(max_steps=6, batch_size=4, grad_accum=accum, checkpoint_every=100, ema_decay=0.0)
        Trainer(task, _ToyData(), loop, tmp_path / str(accum), {}, progress=False).fit()
        results.append(task.net.weight.detach().clone())
    torch.testing.assert_close(results[0], results[1], rtol=1e-6, atol=1e-7)


def test_bf16_autocast_trains(tmp_path):
    torch.manual_seed(0)
    task = _ToyTask()
    loop = LoopConfig(max_steps=150, batch_size=4, precision="bf16", checkpoint_every=150, ema_decay=0.5, log_every=1)
    Trainer(task, _ToyData(), loop, tmp_path, {}, progress=False).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["fit/loss"] for r in rows if "fit/loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    ema = load_file(str(tmp_path / "checkpoints" / "step_00000150" / "modules.safetensors"))["ema_net.weight"]
    assert not torch.equal(ema, task.net.weight.detach())  # the EMA copy lags the weights


class _AlternatingTask(_ToyTask):
    """Two phases on alternate steps, like ARC's generator and discriminator."""

    def phases(self):
        return [Phase("even", list(self.net.parameters()), self.loss, OptimizerConfig(lr=1e-2),
                      active=lambda step: step % 2 == 0),
                Phase("odd", list(self.net.parameters()), self.loss, OptimizerConfig(lr=1e-2),
                      active=lambda step: step % 2 == 1)]


def test_log_lines_average_the_window_and_report_phases_that_run_on_alternate_steps(tmp_path):
    loop = LoopConfig(max_steps=8, batch_size=2, checkpoint_every=100, ema_decay=0.0, log_every=4)
    Trainer(_AlternatingTask(), _ToyData(), loop, tmp_path, {}, progress=False).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 4, 8]
    assert all("even/loss" in r and "odd/loss" in r for r in rows[1:])


def test_the_ema_follows_only_steps_of_phases_that_update_it(tmp_path):
    class FrozenOdd(_AlternatingTask):
        def phases(self):
            even, odd = super().phases()
            return [even, dataclasses.replace(odd, parameters=[torch.nn.Parameter(torch.zeros(1))], updates_ema=False)]

    torch.manual_seed(0)
    task = FrozenOdd()
    loop = LoopConfig(max_steps=2, batch_size=2, checkpoint_every=100, ema_decay=0.5, ema_warmup_power=0.0)
    trainer = Trainer(task, _ToyData(), loop, tmp_path, {}, progress=False)
    start = task.net.weight.detach().clone()
    trainer.fit()
    # one update after step 0 (decay 0.5); step 1's phase does not update the EMA, so no second pull
    torch.testing.assert_close(trainer.ema["net"].weight, 0.5 * start + 0.5 * task.net.weight.detach())


def test_a_phase_lr_scale_multiplies_the_scheduled_rate_of_the_steps_it_covers(tmp_path):
    class TwoStage(_ToyTask):
        def phases(self):
            cfg = OptimizerConfig(lr=1e-2, warmup_steps=2)
            return [Phase("fit", list(self.net.parameters()), self.loss, cfg,
                          lr_scale=lambda step: 4.0 if step < 3 else 1.0)]

    loop = LoopConfig(max_steps=6, batch_size=2, checkpoint_every=100, ema_decay=0.0, log_every=1)
    Trainer(TwoStage(), _ToyData(), loop, tmp_path, {}, progress=False).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # steps 0..5: linear warm-up 0.5, 1, then 1; times 4 for steps 0..2 only, never compounded
    assert [r["fit/lr"] for r in rows] == pytest.approx([2e-2, 4e-2, 4e-2, 1e-2, 1e-2, 1e-2])


def test_a_phase_precision_sets_autocast_for_the_steps_it_covers(tmp_path, monkeypatch):
    from prestissimo.runtime import hardware

    seen: list[bool] = []
    probes: list[str] = []
    monkeypatch.setattr(hardware, "warn_if_bf16_is_slow", lambda device, log: probes.append(device))

    class TwoStage(_ToyTask):
        def loss(self, batch):
            seen.append(torch.is_autocast_enabled("cpu"))
            return super().loss(batch)

        def phases(self):
            return [Phase("fit", list(self.net.parameters()), self.loss, OptimizerConfig(lr=1e-2),
                          precision=lambda step: "bf16" if step < 2 else "fp32")]

    loop = LoopConfig(max_steps=4, batch_size=2, checkpoint_every=100, ema_decay=0.0, precision="fp32")
    Trainer(TwoStage(), _ToyData(), loop, tmp_path, {}, progress=False).fit()
    assert seen == [True, True, False, False]
    assert probes == ["cpu"]  # the bf16 speed check runs once, although the loop's precision is fp32


def test_resuming_a_finished_run_runs_its_last_evaluation_again(tmp_path):
    """The last evaluation exports the model; a run stopped between its last checkpoint and that export
    must still export when resumed."""
    class Counting(_ToyTask):
        def __init__(self):
            super().__init__()
            self.evaluated: list[int] = []

        def evaluate(self, step, ema, logger):
            self.evaluated.append(step)
            return {}

    loop = LoopConfig(max_steps=4, batch_size=2, checkpoint_every=2, eval_every=2, ema_decay=0.0)
    first = Counting()
    Trainer(first, _ToyData(), loop, tmp_path, {}, progress=False).fit()
    assert first.evaluated == [2, 4]  # every eval_every steps, and once at the end
    again = Counting()
    trainer = Trainer(again, _ToyData(), loop, tmp_path, {}, progress=False)
    assert trainer.resume() and trainer.step == 4
    trainer.fit()
    assert again.evaluated == [4]


def test_batch_noise_depends_on_position_not_on_the_split():
    whole = Batch({}, [0, 1, 2, 3], step=7, seed=1, weight=1.0).randn((2, 5))
    half = Batch({}, [2, 3], step=7, seed=1, weight=0.5).randn((2, 5))
    assert torch.equal(whole[2:], half)


def test_the_data_stream_visits_every_item_once_per_epoch():
    seen = [i for step in range(5) for i in global_indices(step, 4, 10, seed=3)]
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))


def test_corrupt_silent_and_short_files_are_skipped_and_counted(tmp_path):
    sr = 8000
    rows = []
    for name, audio in [("good", 0.3 * np.sin(np.arange(sr) * 0.1)), ("silent", np.zeros(sr)),
                        ("short", 0.3 * np.ones(100))]:
        sf.write(tmp_path / f"{name}.wav", audio, sr)
        rows.append({"path": f"{name}.wav", "caption": name})
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....garbage")
    rows.append({"path": "corrupt.wav", "caption": "corrupt"})
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    data = AudioDataset(read_manifest(tmp_path / "m.jsonl"), AudioSpec(sr, 2, 0.5))
    assert len(data) == 2 and data.skipped == {"unreadable": 1, "too short": 1}
    items = [data.get(i, np.random.default_rng(0)) for i in range(len(data))]
    assert items[1] is None and data.skipped["silent"] == 1
    assert items[0]["audio"].shape == (2, 4000)


def test_a_resumed_optimizer_takes_the_configs_learning_rate_and_keeps_its_moments():
    weight = torch.nn.Parameter(torch.ones(3))
    old = OptimizerConfig(lr=5e-5, warmup_steps=4)
    opt, sched = build_optimizer([weight], old, 100)
    for _ in range(2):
        weight.grad = torch.ones(3)
        opt.step()
        sched.step()
    saved = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}

    new = OptimizerConfig(lr=1e-5, betas=(0.5, 0.9), warmup_steps=4)
    weight2 = torch.nn.Parameter(weight.detach().clone())
    opt2, sched2 = build_optimizer([weight2], new, 100)
    opt2.load_state_dict(saved["optimizer"])
    sched2.load_state_dict(saved["scheduler"])
    assert opt2.param_groups[0]["lr"] == pytest.approx(5e-5 * lr_factor(2, old, 100))  # the saved rate, unfixed
    changed = adopt_configured_hyperparameters(opt2, sched2, new)
    assert [c.split()[0] for c in changed] == ["lr", "betas"]
    assert opt2.param_groups[0]["lr"] == pytest.approx(1e-5 * lr_factor(2, new, 100))
    assert opt2.param_groups[0]["betas"] == (0.5, 0.9)
    assert torch.equal(opt2.state[weight2]["exp_avg"], opt.state[weight]["exp_avg"])
    weight2.grad = torch.ones(3)
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(1e-5 * lr_factor(3, new, 100))
    assert adopt_configured_hyperparameters(opt2, sched2, new) == []


def test_noise_level_distributions_respect_their_ranges():
    u = torch.linspace(0.001, 0.999, 999)
    t = sample_noise_levels(u, "truncated_logit_normal", t_min=0.2, t_max=0.9)
    assert t.min() >= 0.2 and t.max() <= 0.9 and torch.all(t[1:] >= t[:-1])
    assert torch.allclose(sample_noise_levels(u, "uniform"), u)
    lam = sample_noise_levels(u, "logsnr_uniform", logsnr_range=(-6, 2))
    assert lam.min() > 0 and lam.max() < 1
    assert abs(float(sample_noise_levels(torch.tensor([0.5]), "logit_normal")) - 0.5) < 1e-6


def test_an_oracle_velocity_has_zero_rectified_flow_loss():
    x0, noise = torch.randn(3, 4, 8), torch.randn(3, 4, 8)
    t = torch.tensor([0.1, 0.5, 0.9])

    class Oracle(torch.nn.Module):
        def velocity(self, x_t, t, cond):
            return noise - x0

    cond = Conditioning(context=None, global_cond=torch.zeros(3, 1))
    assert torch.allclose(diffusion_loss(Oracle(), x0, noise, t, cond, "rectified_flow"), torch.zeros(3))
    assert torch.allclose(add_noise(x0, noise, t, "rectified_flow")[1], 0.5 * x0[1] + 0.5 * noise[1])


def test_edm_preconditioning_identities():
    sigma = torch.tensor([0.01, 0.5, 10.0])
    c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, 0.5)
    # Karras et al. eq. 7: unit-variance training target and input
    assert torch.allclose(c_in**2 * (sigma**2 + 0.25), torch.ones(3))
    assert torch.allclose(c_skip * (sigma**2 + 0.25), torch.full((3,), 0.25))
    assert torch.allclose(c_out**2, c_skip * sigma**2)
    assert torch.allclose(c_noise, sigma.log() / 4)
    assert torch.allclose(edm_sigma(torch.atan(sigma) * 2 / torch.pi), sigma, rtol=1e-5)


def test_cfg_dropout_zeroes_only_the_dropped_contexts():
    cond = Conditioning(context=torch.ones(3, 2, 4), global_cond=torch.ones(3, 5))
    out = cfg_dropout(cond, torch.tensor([False, True, False]))
    assert out.context[1].abs().sum() == 0 and out.context[0].abs().sum() == 8
    assert torch.equal(out.global_cond, cond.global_cond)


def test_cfg_dropout_zeroes_the_pooled_prompt_but_not_the_seconds_of_dropped_items():
    mask = torch.tensor([True, True, False])  # two prompt dims, one seconds dim
    cond = Conditioning(context=torch.ones(2, 2, 4), global_cond=torch.ones(2, 3), global_prompt_mask=mask)
    out = cfg_dropout(cond, torch.tensor([True, False]))
    assert out.global_cond.tolist() == [[0, 0, 1], [1, 1, 1]] and out.context[0].abs().sum() == 0


def test_a_run_can_start_from_a_trained_models_weights_and_a_mismatched_one_is_named(tmp_path):
    from prestissimo.models.factory import create_random_model
    from prestissimo.models.loading import ModelLoadError, read_state_dict
    from prestissimo.training.dit import DiTTrainConfig, prepare_init_dir

    trained = create_random_model("tiny", tmp_path / "trained", seed=5)
    init = prepare_init_dir(DiTTrainConfig(model="tiny", init_from=str(trained)), tmp_path / "run")
    ours, theirs = read_state_dict(init), read_state_dict(trained)
    fresh = read_state_dict(prepare_init_dir(DiTTrainConfig(model="tiny"), tmp_path / "fresh"))
    for key in ours:
        if not key.startswith("pretransform."):
            assert torch.equal(ours[key], theirs[key]), key
    assert any(not torch.equal(fresh[k], theirs[k]) for k in fresh if k.startswith("model."))
    other = create_random_model("tiny-1.0", tmp_path / "other", seed=0)
    with pytest.raises(ModelLoadError, match=r"init_from .*other.*(missing|unexpected|shape)"):
        prepare_init_dir(DiTTrainConfig(model="tiny", init_from=str(other)), tmp_path / "run2")


def test_a_run_may_add_named_modules_to_the_weights_it_starts_from(tmp_path):
    from prestissimo.models.factory import create_random_model
    from prestissimo.models.loading import ModelLoadError, read_state_dict
    from prestissimo.models.presets import preset
    from prestissimo.training.dit import DiTTrainConfig, prepare_init_dir

    trained = create_random_model("tiny", tmp_path / "trained", seed=5)
    with_positions = preset("tiny")
    with_positions["model"]["diffusion"]["config"]["use_sinusoidal_emb"] = True
    with pytest.raises(ModelLoadError, match="missing keys.*pos_emb.scale"):
        prepare_init_dir(DiTTrainConfig(model=with_positions, init_from=str(trained)), tmp_path / "strict")
    init = prepare_init_dir(DiTTrainConfig(model=with_positions, init_from=str(trained),
                                           init_new_keys=["model.model.transformer.pos_emb."]), tmp_path / "run")
    ours, theirs = read_state_dict(init), read_state_dict(trained)
    assert set(ours) - set(theirs) == {"model.model.transformer.pos_emb.scale"}
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if not k.startswith("pretransform."))
    with pytest.raises(ModelLoadError, match="missing keys"):  # a prefix covers only what it names
        prepare_init_dir(DiTTrainConfig(model=with_positions, init_from=str(trained),
                                        init_new_keys=["model.model.transformer.layers."]), tmp_path / "wrong")
    with pytest.raises(ModelLoadError, match="name no key"):
        prepare_init_dir(DiTTrainConfig(model=with_positions, init_from=str(trained),
                                        init_new_keys=["model.model.pos_emb."]), tmp_path / "typo")
    with pytest.raises(ValueError, match="non-empty"):  # "" would let every key go missing
        DiTTrainConfig(init_from=str(trained), init_new_keys=[""]).validate()
    with pytest.raises(ValueError, match="set init_from"):
        DiTTrainConfig(init_new_keys=["model.model.transformer.pos_emb."]).validate()


def test_frozen_keys_keep_their_initial_values_through_training(latents, tmp_path):
    from prestissimo.models.loading import read_state_dict
    from prestissimo.models.presets import preset
    from prestissimo.training.dit import DiTTrainConfig, EvalConfig
    from prestissimo.training.run import train_dit

    with_positions = preset("tiny")
    with_positions["model"]["diffusion"]["config"]["use_sinusoidal_emb"] = True
    key = "model.model.transformer.pos_emb.scale"
    loop = LoopConfig(max_steps=3, batch_size=2, checkpoint_every=3, log_every=1)
    runs = {}
    for name, frozen in (("free", []), ("frozen", [key])):
        cfg = DiTTrainConfig(model=with_positions, autoencoder=str(latents / "ae"), frozen_keys=frozen, loop=loop,
                             eval=EvalConfig(prompts=["a beat"], steps=1))
        train_dit(cfg, latents / "latents", tmp_path / name, progress=False)
        runs[name] = load_file(str(tmp_path / name / "checkpoints" / "step_00000003" / "modules.safetensors"))
    init = float(read_state_dict(tmp_path / "frozen" / "init")[key])
    assert float(runs["frozen"]["dit.model.transformer.pos_emb.scale"]) == init
    assert float(runs["free"]["dit.model.transformer.pos_emb.scale"]) != init
    others = [k for k in runs["frozen"] if k.startswith("dit.") and "pos_emb" not in k]
    init_state = read_state_dict(tmp_path / "frozen" / "init")
    assert any(not torch.equal(runs["frozen"][k], init_state["model." + k[len("dit."):]]) for k in others
               if "model." + k[len("dit."):] in init_state)  # the rest still trains
    with pytest.raises(ValueError, match="name no parameter"):
        train_dit(DiTTrainConfig(model="tiny", autoencoder=str(latents / "ae"), frozen_keys=[key], loop=loop),
                  latents / "latents", tmp_path / "typo", progress=False)
    with pytest.raises(ValueError, match="non-empty"):
        DiTTrainConfig(frozen_keys=[""]).validate()


def test_latent_cache_stores_raw_means_whatever_the_pretransform_scale(latents, tmp_path):
    from prestissimo.data.latents import encode_dataset
    from prestissimo.models.autoencoder_io import load_autoencoder

    ae, rate = load_autoencoder(latents / "ae")
    entries = read_manifest(latents / "data" / "manifest.jsonl")[:2]
    encode_dataset(ae, rate, entries, tmp_path / "a", 1.0, progress=False)
    ae.cfg.scale = 4.0
    encode_dataset(ae, rate, entries, tmp_path / "b", 1.0, progress=False)
    a, b = (load_file(str(tmp_path / d / "shard_00000.safetensors"))["latents"] for d in "ab")
    assert torch.allclose(a, b, atol=1e-5)


def test_a_decoder_fine_tune_keeps_the_encoder_and_changes_only_the_decoder(latents, tmp_path):
    """init_from + train_encoder false: the latents cached with the encoder stay the DiT's latents."""
    from prestissimo.models.autoencoder_io import load_autoencoder
    from prestissimo.training.autoencoder import AETrainConfig
    from prestissimo.training.run import train_autoencoder

    cfg = AETrainConfig(preset="tiny", seconds=0.25, init_from=str(latents / "ae"), train_encoder=False,
                        latent_noise=0.5, eval_clips=1,
                        loop=LoopConfig(max_steps=2, batch_size=2, checkpoint_every=2, log_every=1, ema_decay=0.0))
    out = train_autoencoder(cfg, latents / "data" / "manifest.jsonl", tmp_path / "run", progress=False)
    before, after = (load_autoencoder(d)[0].state_dict() for d in (latents / "ae", out))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))


def test_latent_noise_perturbs_what_the_decoder_sees_by_at_most_its_share_of_the_latent_std(latents):
    from prestissimo.training.autoencoder import AETrainConfig, AutoencoderTask

    audio = torch.randn(4, 2, 2048) * 0.1
    batch = Batch(data={"audio": audio}, positions=[0, 1, 2, 3], step=3, seed=0, weight=1.0)
    seen = {}

    def decoder_inputs(noise: float) -> torch.Tensor:
        task = AutoencoderTask(AETrainConfig(preset="tiny", init_from=str(latents / "ae"), train_encoder=False,
                                             latent_noise=noise), Path("unused"))
        task.ae.decoder.register_forward_hook(lambda module, args, out: seen.__setitem__("z", args[0]))
        with torch.no_grad():
            _, mean, _ = task.reconstruct(audio, batch)
        return seen["z"], mean

    plain, mean = decoder_inputs(0.0)
    noisy, _ = decoder_inputs(0.5)
    offsets = (noisy - plain).std(dim=(1, 2))
    assert (offsets > 0).all() and (offsets <= 0.5 * mean.std() * 1.2).all()
    assert offsets.std() > 0  # each clip draws its own level


def test_decoder_fine_tune_settings_are_checked():
    from prestissimo.training.autoencoder import AETrainConfig

    with pytest.raises(ValueError, match="needs init_from"):
        AETrainConfig(preset="tiny", train_encoder=False).architecture()
    with pytest.raises(ValueError, match="latent_noise"):
        AETrainConfig(preset="tiny", latent_noise=-0.1).architecture()


def test_a_fine_tune_from_an_autoencoder_of_another_architecture_names_what_differs(latents):
    from prestissimo.training.autoencoder import AETrainConfig, AutoencoderTask

    with pytest.raises(ValueError, match="latent_dim"):
        AutoencoderTask(AETrainConfig(preset="tiny", overrides={"latent_dim": 4}, init_from=str(latents / "ae")),
                        Path("unused"))


@pytest.mark.parametrize("speedup, expected", [(3.0, "bf16"), (0.13, "fp32")])
def test_auto_precision_takes_bf16_only_where_it_is_faster_than_fp32(tmp_path, monkeypatch, caplog, speedup,
                                                                     expected):
    from prestissimo.runtime import hardware

    monkeypatch.setattr(hardware, "bf16_speedup", lambda device="cpu": speedup)  # an AVX-512 BF16 / an AVX2 CPU
    assert hardware.resolve_precision("auto") == expected
    assert hardware.resolve_precision("fp32") == "fp32" and hardware.resolve_precision("bf16") == "bf16"
    seen: list[bool] = []

    class Probe(_ToyTask):
        def loss(self, batch):
            seen.append(torch.is_autocast_enabled("cpu"))
            return super().loss(batch)

    loop = LoopConfig(max_steps=2, batch_size=2, checkpoint_every=100, ema_decay=0.0, precision="auto")
    with caplog.at_level("WARNING"):
        Trainer(Probe(), _ToyData(), loop, tmp_path, {}, progress=False).fit()
    assert seen == [expected == "bf16"] * 2
    assert f"precision auto: {expected} on this cpu" in caplog.text
    with pytest.raises(ValueError, match="precision"):
        LoopConfig(precision="fp16").validate()
