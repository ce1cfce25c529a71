"""The fast paths against fp32: each switch keeps the output (bf16 < 1e-2, int8 < 5e-2 relative)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from prestissimo.models.factory import randomize_
from prestissimo import TextToAudio
from prestissimo.models import AutoencoderConfig, OobleckAutoencoder
from prestissimo.runtime.decoder import FastDecoder, decode_chunked, receptive_margin
from prestissimo.serve.cli import main

THRESHOLDS = {"fp32": 1e-5, "bf16": 1e-2, "int8": 5e-2}


def rel(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.fixture(scope="module")
def randomized(tiny_model_dir):
    """A tiny model with every weight random (fresh models zero some branches, hiding errors)."""
    tta = TextToAudio.from_pretrained(tiny_model_dir)
    randomize_(tta.model, seed=1)
    randomize_(tta.pretransform, seed=2)
    return tta


def probe_inputs(tta, batch=2):
    g = torch.Generator().manual_seed(0)
    cfg = tta.config
    x = torch.randn(batch, cfg.dit.io_channels, cfg.latent_length, generator=g)
    t = torch.rand(batch, generator=g)
    cond = tta.encode_conditioning(["a bell", "fast drums"][:batch], 0.8)
    z = torch.randn(1, cfg.autoencoder.latent_dim, 24, generator=g)
    return x, t, cond, z


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_fast_path_matches_fp32(randomized, precision):
    tta = randomized
    x, t, cond, z = probe_inputs(tta)
    with torch.no_grad():
        ref_x0, ref_audio = tta.model(x, t, cond), tta.pretransform.model.decode(z)
        fast = tta.optimize(precision=precision).fast
        x0 = fast.denoise(x, t, fast.prepare(cond))
        audio = fast.decode(z)
    tta.unoptimize()
    assert rel(x0, ref_x0) < THRESHOLDS[precision]
    assert rel(audio, ref_audio) < THRESHOLDS["fp32"]  # the decoder stays fp32 in every mode


def test_fast_decoder_alone_and_chunked_decode_are_exact():
    cfg = AutoencoderConfig(audio_channels=2, channels=16, c_mults=[1, 2, 4], strides=[2, 4, 4], latent_dim=8)
    ae = randomize_(OobleckAutoencoder(cfg)).eval()
    z = torch.randn(1, 8, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = ae.decode(z)
        # "Exact" up to fp32 rounding, which reaches ~1e-5 through this stack on either path: each fp32
        # decode is held to a float64 decode, the fast one no further from it than twice the reference.
        exact = copy.deepcopy(ae).double().decode(z.double())
        rounding = rel(ref, exact)
        fast = FastDecoder(ae.decoder)
        assert rel(fast(z), exact) < 2 * rounding
        margin = receptive_margin(fast, 8)
        assert 1 <= margin < 20
        chunked = decode_chunked(fast, z, chunk_frames=7, margin=margin)
        assert chunked.shape == ref.shape and rel(chunked, exact) < 2 * rounding
        # too little context is visibly wrong: the margin matters
        assert rel(decode_chunked(fast, z, chunk_frames=7, margin=0), ref) > 1e-3


def test_cached_kv_and_no_cfg_batch(randomized):
    tta = randomized
    calls = []
    tta.optimize()
    fast = tta.fast
    original = fast.denoise
    fast.denoise = lambda x, t, c: (calls.append((x.shape[0], c.context_kv is not None)), original(x, t, c))[1]
    try:
        tta.generate("rain", seconds=0.5, steps=3, seed=0, cfg_scale=1.0)
        assert calls == [(1, True)] * 3  # one batch-1 call per step, K/V precomputed
        calls.clear()
        tta.generate("rain", seconds=0.5, steps=2, seed=0, cfg_scale=3.0)
        assert calls == [(2, True)] * 2  # CFG: cond + uncond batched into one call
    finally:
        tta.unoptimize()


def test_optimized_generation_follows_the_plain_path(randomized):
    tta = randomized
    plain = tta.generate(["wind", "a bell"], seconds=0.5, steps=4, seed=3)
    fast = tta.optimize(decode_chunk_frames=200).generate(["wind", "a bell"], seconds=0.5, steps=4, seed=3)
    tta.unoptimize()
    assert rel(fast, plain) < 1e-4


def test_int8_generation_stays_close_in_latent_space(randomized):
    # One step from pure noise (t = 1, where x0 = noise - v is all network): the DiT's int8 error alone;
    # the fp32 decoder is checked separately, and a random decoder amplifies any latent difference.
    tta = randomized
    plain = tta.generate_latents(["wind", "a bell"], seconds=0.5, steps=1, seed=3)
    fast = tta.optimize(precision="int8").generate_latents(["wind", "a bell"], seconds=0.5, steps=1, seed=3)
    tta.unoptimize()
    assert rel(fast, plain) < 1e-1


def test_bad_runtime_options_are_rejected(randomized):
    with pytest.raises(ValueError, match="precision"):
        randomized.optimize(precision="fp8")
    with pytest.raises(ValueError, match="chunk"):
        randomized.optimize(decode_chunk_frames=0)


@pytest.mark.slow
def test_compile_runs_or_falls_back(randomized):
    tta = randomized
    plain = tta.generate("rain", seconds=0.5, steps=2, seed=0)
    out = tta.optimize(compile=True).generate("rain", seconds=0.5, steps=2, seed=0)
    tta.unoptimize()
    assert rel(out, plain) < 1e-4


def test_bench_command_prints_a_table_and_json(tmp_path, capsys):
    report = tmp_path / "bench.json"
    code = main(["bench", "--model", "tiny", "--runs", "1", "--steps", "2", "--precision", "fp32,int8",
                 "--compare-reference", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    for mode in ("reference (diffusers)", "prestissimo plain fp32", "prestissimo fast fp32", "prestissimo fast int8"):
        assert mode in out
    data = json.loads(report.read_text())
    by_mode = {r["mode"]: r for r in data["results"]}
    assert by_mode["prestissimo plain fp32"]["denoise_rel_err"] == 0.0
    assert by_mode["reference (diffusers)"]["denoise_rel_err"] < 1e-4
    assert by_mode["prestissimo fast int8"]["denoise_rel_err"] < 5e-2
    for r in data["results"]:
        assert r["end_to_end_s"] > 0 and r["peak_gflops"] > 0 and r["dit_gflops"] > 0


def test_bench_rejects_bad_options(capsys):
    assert main(["bench", "--model", "tiny", "--precision", "fp64"]) == 2
    assert "unknown precision" in capsys.readouterr().err


def test_slow_bf16_is_announced_on_cpu_only(monkeypatch, caplog):
    import logging

    from prestissimo.runtime import hardware

    log = logging.getLogger("test-bf16")
    monkeypatch.setattr(hardware, "bf16_speedup", lambda device="cpu": 0.05)
    with caplog.at_level(logging.WARNING, logger="test-bf16"):
        hardware.warn_if_bf16_is_slow("cpu", log)
        hardware.warn_if_bf16_is_slow("cuda", log)
    assert len(caplog.records) == 1 and "0.05x" in caplog.records[0].getMessage()
    caplog.clear()
    monkeypatch.setattr(hardware, "bf16_speedup", lambda device="cpu": 2.0)
    with caplog.at_level(logging.WARNING, logger="test-bf16"):
        hardware.warn_if_bf16_is_slow("cpu", log)
    assert not caplog.records
