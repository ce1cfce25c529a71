"""The ``prestissimo`` command: generate audio, inspect and create models, make synthbench data, evaluate.

Errors a user can fix (bad arguments, missing model, unreadable checkpoint) end the program with a
one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import torch

EXIT_USAGE = 2
SOUNDFONT_HELP = ("a General MIDI .sf2 file: tonal clips also play piano, marimba, guitar, strings, trumpet and flute "
                  "(needs pyfluidsynth + FluidSynth); 'auto' uses an installed one if there is one")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


class UserError(Exception):
    """An error caused by the input, reported as one line."""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


ETA_HELP = ("ping-pong only: share of fresh noise when re-noising, in [0, 1]; 1 = ping-pong, 0 = deterministic "
            "(default: the model's)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prestissimo", description="Fast text-to-audio generation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="text in, .wav out")
    g.add_argument("prompt", nargs="?", help="what the audio should sound like")
    g.add_argument("-o", "--output", default=None,
                   help="output .wav (one prompt) or folder (with --prompts-file); default out.wav / out/")
    g.add_argument("--prompts-file", type=Path, help="text file with one prompt per line (batch generation)")
    g.add_argument("--model", default=None, help="model directory or Hugging Face repo id")
    g.add_argument("--seconds", type=_number, default=None, help="length of the clip (default: model window)")
    g.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    g.add_argument("--sampler", default=None, help="pingpong | euler | dpmpp-2m (default: the model's)")
    g.add_argument("--cfg-scale", type=_number, default=None, help="classifier-free guidance scale; 1 = off")
    g.add_argument("--eta", type=_number, default=None, help=ETA_HELP)
    g.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    g.add_argument("--no-envelope-prior", dest="envelope_prior", action="store_false",
                   help="a model with an envelope prior: let its DiT generate the envelope channels itself")
    g.add_argument("--init-audio", type=Path, default=None,
                   help="audio-to-audio: start from this file (resampled, cropped/padded to the window)")
    g.add_argument("--init-noise-level", type=_number, default=0.7,
                   help="with --init-audio: noise level t in (0, 1] to start from (1 = ignore the input)")
    g.add_argument("--batch-size", type=int, default=4, help="prompts per forward pass with --prompts-file")
    g.add_argument("--engine", choices=("auto", "torch", "numpy"), default="auto",
                   help="numpy: torch-free, starts ~2 s sooner (rectified-flow models with a BERT text encoder, "
                        "fp32 CPU); auto (default): numpy when it can run the request, else torch")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    g.add_argument("--precision", default="fp32", help="fp32 | int8 (CPU, DiT only) | bf16 (GPU / AVX-512 BF16 CPUs)")
    g.add_argument("--compile", action="store_true", help="fuse the decoder's activations with torch.compile")
    g.add_argument("--decode-chunk", type=int, default=None,
                   help="decode this many latent frames at a time (bounded memory for long clips)")
    g.add_argument("--reference-path", action="store_true", help="run the plain modules instead of the fast path")
    g.add_argument("--quiet", action="store_true", help="no progress bar")

    i = sub.add_parser("info", help="describe a model: architecture, parameter counts, sampling defaults")
    i.add_argument("--model", required=True,
                   help="model directory, Hugging Face repo id, or a preset name (sao-small, sao-1.0, tiny ...) "
                        "to describe an architecture without weights")
    i.add_argument("--json", action="store_true", help="print JSON instead of a table")

    b = sub.add_parser("bench", help="speed table: per-stage latency, real-time factor, memory, GFLOP/s")
    b.add_argument("--model", default="sao-small", help="preset name (random weights) or model directory")
    b.add_argument("--seconds", type=_number, default=None, help="audio length (default: the model window)")
    b.add_argument("--steps", type=int, default=8)
    b.add_argument("--sampler", default="pingpong", help="recorded in the report; every sampler makes one call per step")
    b.add_argument("--cfg-scale", type=_number, default=1.0, help="!= 1 doubles the batch of each denoiser call")
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--precision", default="fp32,int8", help="comma list of fast-path precisions: fp32,bf16,int8")
    b.add_argument("--compile", action="store_true", help="also torch.compile the fast path")
    b.add_argument("--compare-reference", action="store_true", help="time diffusers' implementation with the same weights")
    b.add_argument("--runs", type=int, default=3, help="timed runs per stage (median), after one warm-up")
    b.add_argument("--device", default="cpu")
    b.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    b.add_argument("--json", type=Path, default=None, help="also write the results here")

    s = sub.add_parser("synthbench", help="procedural captioned audio: make a dataset, calibrate the estimators")
    s_sub = s.add_subparsers(dest="synthbench_command", required=True, parser_class=_Parser)
    sm = s_sub.add_parser("make", help="write N clips (WAV) and manifest.jsonl into a folder")
    sm.add_argument("--n", type=int, required=True, help="number of clips")
    sm.add_argument("--out", type=Path, required=True, help="output folder")
    sm.add_argument("--seed", type=int, default=0)
    sm.add_argument("--seconds", type=_number, default=5.0)
    sm.add_argument("--sample-rate", type=int, default=44100)
    sm.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    sm.add_argument("--soundfont", default=None, help=SOUNDFONT_HELP)
    sm.add_argument("--quiet", action="store_true")
    sc = s_sub.add_parser("calibrate", help="accuracy of every attribute estimator on ground-truth clips")
    sc.add_argument("--n", type=int, default=1000)
    sc.add_argument("--seed", type=int, default=2024)
    sc.add_argument("--seconds", type=_number, default=5.0)
    sc.add_argument("--sample-rate", type=int, default=44100)
    sc.add_argument("--soundfont", default=None, help=SOUNDFONT_HELP)
    sc.add_argument("--json", type=Path, default=None, help="also write the table here")
    sc.add_argument("--quiet", action="store_true")

    e = sub.add_parser("eval", help="score a model (or existing audio) on a manifest of prompts")
    e.add_argument("--prompts", type=Path, required=True, help="manifest (.jsonl or .csv) with captions and reference audio")
    e.add_argument("--model", default=None, help="model directory or hub id (default: the shipped model)")
    e.add_argument("--audio", type=Path, default=None, help="score existing files <key>_s<k>.wav in this folder instead")
    e.add_argument("--out", type=Path, default=Path("eval-out"), help="folder for audio, metrics.json, spectrograms.png")
    e.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    e.add_argument("--seeds", type=int, default=1, help="clips per prompt (>= 2 gives per-prompt diversity)")
    e.add_argument("--steps", type=int, default=None)
    e.add_argument("--sampler", default=None)
    e.add_argument("--cfg-scale", type=_number, default=None)
    e.add_argument("--eta", type=_number, default=None, help=ETA_HELP)
    e.add_argument("--no-envelope-prior", dest="envelope_prior", action="store_false",
                   help="a model with an envelope prior: let its DiT generate the envelope channels itself")
    e.add_argument("--seconds", type=_number, default=None, help="default: each row's seconds, else the model window")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--embedding", default="logmel", help="logmel (built in) | clap:DIR (local CLAP weights)")
    e.add_argument("--clap", type=Path, default=None, help="local CLAP model directory for the CLAP score")
    e.add_argument("--device", default="cpu")
    e.add_argument("--precision", default="fp32", help="fp32 | int8 | bf16 (fast path)")
    e.add_argument("--grid", type=int, default=6, help="clips in the spectrogram picture (0 = none)")
    e.add_argument("--quiet", action="store_true")

    enc = sub.add_parser("encode", help="run an autoencoder over a dataset once and cache the latents")
    enc.add_argument("--autoencoder", type=Path, required=True, help="autoencoder directory (train autoencoder export)")
    enc.add_argument("--data", type=Path, required=True, help="manifest (.jsonl / .csv)")
    enc.add_argument("--out", type=Path, required=True, help="folder for latent shards + latents.json")
    enc.add_argument("--seconds", type=_number, default=5.0, help="length encoded per clip (zero-padded)")
    enc.add_argument("--batch-size", type=int, default=8)
    enc.add_argument("--envelopes", action="store_true",
                     help="also cache band loudness envelopes, which a DiT trained on the cache generates beside "
                          "the latents (models/envelopes.py says why)")
    enc.add_argument("--quiet", action="store_true")

    t = sub.add_parser("train", help="train an autoencoder, a base DiT or an envelope prior for a DiT "
                       "(resumable; torchrun for several processes)")
    t.add_argument("what", choices=["autoencoder", "dit", "envelope-prior"], help="what to train")
    t.add_argument("--config", type=Path, default=None, help="JSON config (defaults: the dataclass defaults)")
    t.add_argument("--data", type=Path, required=True,
                   help="autoencoder: a manifest (.jsonl / .csv); dit, envelope-prior: a latent folder from "
                        "`prestissimo encode` (envelope-prior: with --envelopes)")
    t.add_argument("--base", default=None, help="envelope-prior: the model (DiT with envelope channels) it is "
                   "trained for and attached to in the export; resuming a finished run with another --base "
                   "attaches the prior to that one")
    t.add_argument("--out", type=Path, required=True, help="run directory: checkpoints, logs, exported model")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    t.add_argument("--quiet", action="store_true")

    pt = sub.add_parser("posttrain", help="post-train a base model into a few-step generator (resumable)")
    pt.add_argument("method", choices=["arc"], help="arc: adversarial relativistic-contrastive")
    pt.add_argument("--base", required=True, help="base rectified-flow model directory (train dit export)")
    pt.add_argument("--data", type=Path, required=True,
                    help="a latent folder from `prestissimo encode` (with the base's autoencoder) or a manifest")
    pt.add_argument("--config", type=Path, default=None, help="JSON config (defaults: the dataclass defaults)")
    pt.add_argument("--out", type=Path, required=True, help="run directory: checkpoints, logs, exported model")
    pt.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    pt.add_argument("--quiet", action="store_true")

    x = sub.add_parser("export", help="copy a model for release: smaller weight storage, model card, size budget")
    x.add_argument("model", help="model directory or hub id")
    x.add_argument("--out", type=Path, required=True)
    x.add_argument("--storage", default="fp16", help="fp16 | bf16 | fp32: the dtype the weights are stored in "
                   "(loading casts back to fp32 on CPU)")
    x.add_argument("--card", type=Path, default=None, help="model card (markdown), stored as README.md")
    x.add_argument("--max-mb", type=_number, default=None, help="refuse an export larger than this")
    x.add_argument("--overwrite", action="store_true", help="replace --out if it holds a model")
    x.add_argument("--decoder", type=Path, default=None,
                   help="autoencoder directory whose decoder replaces the model's (one fine-tuned behind the model's "
                   "own frozen encoder: `train autoencoder` with init_from and train_encoder false)")
    x.add_argument("--sampler", default=None, help="default sampler saved with the export (pingpong | euler | dpmpp-2m)")
    x.add_argument("--steps", type=int, default=None, help="default sampling steps saved with the export")
    x.add_argument("--cfg-scale", type=_number, default=None, help="default CFG scale saved with the export")
    x.add_argument("--eta", type=_number, default=None,
                   help="default ping-pong eta saved with the export (1 = ping-pong)")
    x.add_argument("--prior-steps", type=int, default=None,
                   help="Euler steps of the model's envelope prior saved with the export")

    c = sub.add_parser("create-model", help="write a model directory with random weights (tests, demos, benchmarks)")
    c.add_argument("out", type=Path, help="directory to create")
    c.add_argument("--preset", default="tiny", help="tiny | tiny-1.0 | sao-small | sao-1.0")
    c.add_argument("--seed", type=int, default=0)
    return parser


def _load(model: str | None, device: str = "cpu", load_text_encoder: bool = True):
    from ..models.loading import default_model_dir
    from ..pipeline import TextToAudio

    source = model if model is not None else default_model_dir()
    if source is None:
        raise UserError("no default model ships with this version yet: pass --model DIR "
                        "(make one with `prestissimo create-model DIR`)")
    return TextToAudio.from_pretrained(source, device=device, load_text_encoder=load_text_encoder)


def _read_prompts(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(f"prompts file {path} does not exist")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise UserError(f"prompts file {path} has no prompts")
    return prompts


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "clip"


def _read_init_audio(path: Path, tta: Any) -> torch.Tensor:
    """An audio file as the model's [channels, samples] at its sample rate."""
    import torch

    from ..data.audio import AudioLoadError, load_audio, resample
    from ..data.datasets import fit_channels

    try:
        audio, rate = load_audio(path)
    except AudioLoadError as err:
        raise UserError(str(err)) from err
    audio = fit_channels(resample(audio, rate, tta.sample_rate), tta.config.audio_channels)
    return torch.from_numpy(audio.copy())


def _lite_blockers(args: argparse.Namespace) -> list[str]:
    """The generate options that only the torch engine has (the numpy engine runs fp32 on the CPU)."""
    blockers = []
    if args.device != "cpu":
        blockers.append(f"--device {args.device}")
    if args.precision != "fp32":
        blockers.append(f"--precision {args.precision}")
    for flag, name in ((args.compile, "--compile"), (args.decode_chunk is not None, "--decode-chunk"),
                       (args.reference_path, "--reference-path"), (args.init_audio is not None, "--init-audio")):
        if flag:
            blockers.append(name)
    return blockers


def _load_lite(args: argparse.Namespace, prompts: list[str]) -> Any:
    """The numpy engine for this model and request, or None when ``--engine auto`` should use torch.

    Loading the numpy engine imports no torch, which is what makes the shipped model's command start in
    a fraction of a second; anything it cannot run goes to torch under ``auto`` and is an error under ``numpy``.
    """
    if args.engine == "torch":
        return None
    blockers = _lite_blockers(args)
    if blockers:
        if args.engine == "numpy":
            raise UserError(f"the numpy engine does not support {', '.join(blockers)}; use --engine torch")
        return None
    if "numpy" not in sys.modules:
        # Single-threaded BLAS unless the user says otherwise: on 2 cores a second OpenBLAS thread saves
        # ~0.2 s on an idle CPU but doubles the command's time when another process holds a core
        # (benchmarks/generate_wall_time.py --busy 1, docs/runtime.md). torch's MKL threads are unaffected.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ..models.loading import ModelLoadError
    from ..runtime.allocator import retain_freed_memory
    from ..runtime.lite import LiteTextToAudio, LiteUnsupported

    # Before the first large array; a command owns its process. The torch engine did not gain (docs/runtime.md).
    retain_freed_memory()
    try:
        lite = LiteTextToAudio.from_pretrained(args.model)
        lite.request(prompts, args.seconds, args.steps, args.sampler, args.cfg_scale, args.seed, eta=args.eta)
    except (LiteUnsupported, ModelLoadError):  # auto: torch runs it, or reports every mismatched key
        if args.engine == "numpy":
            raise
        return None
    return lite


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.prompts_file is not None and args.prompt is not None:
        raise UserError("give either a prompt or --prompts-file, not both")
    if args.prompts_file is None and args.prompt is None:
        raise UserError("no prompt given")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    batch_mode = args.prompts_file is not None
    prompts = _read_prompts(args.prompts_file) if batch_mode else [args.prompt]
    if not batch_mode and not prompts[0].strip():
        raise UserError("prompt is empty")
    out = Path(args.output or ("out" if batch_mode else "out.wav"))
    if not batch_mode and out.suffix.lower() != ".wav":
        raise UserError(f"output must be a .wav file, got {out}")
    if not 0.0 < args.init_noise_level <= 1.0:
        raise UserError(f"--init-noise-level must be in (0, 1], got {args.init_noise_level}")

    model = _load_lite(args, prompts)
    on_torch = model is None
    if on_torch:
        from ..runtime import RuntimeOptions

        options = RuntimeOptions(precision=args.precision, compile=args.compile, decode_chunk_frames=args.decode_chunk)
        options.validate()
        model = _load(args.model, args.device)
    # Validate every argument before the first (slow) forward pass.
    steps = model.request(prompts, args.seconds, args.steps, args.sampler, args.cfg_scale, args.seed,
                          eta=args.eta).steps
    extra: dict[str, Any] = {}
    if on_torch:
        if args.init_audio is not None:
            extra = {"init_audio": _read_init_audio(args.init_audio, model), "init_noise_level": args.init_noise_level}
        if not args.reference_path:
            model.optimize(options)
    from ..data.audio import save_wav

    batches = [prompts[k:k + args.batch_size] for k in range(0, len(prompts), args.batch_size)]
    bar = tqdm(total=steps * len(batches), desc="sampling", unit="step", disable=args.quiet, file=sys.stderr)
    written: list[Path] = []
    start = time.perf_counter()
    try:
        for b, batch in enumerate(batches):
            seed = None if args.seed is None else args.seed + b
            audio = model.generate(batch, seconds=args.seconds, steps=args.steps, sampler=args.sampler,
                                   cfg_scale=args.cfg_scale, seed=seed, progress=lambda i, n: bar.update(1),
                                   eta=args.eta, use_envelope_prior=args.envelope_prior, **extra)
            if batch_mode:
                for j, (prompt, clip) in enumerate(zip(batch, audio)):
                    index = b * args.batch_size + j
                    written.append(save_wav(clip, out / f"{index:03d}_{_slug(prompt)}.wav", model.sample_rate))
            else:
                written.append(save_wav(audio[0], out, model.sample_rate))
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    for path in written:
        print(path)
    if not args.quiet:
        print(f"{len(written)} clip(s) in {elapsed:.2f} s", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..models.presets import PRESETS

    if args.model in PRESETS and not Path(args.model).exists():
        from ..pipeline import TextToAudio

        tta = TextToAudio.from_preset(args.model, device="meta")
    else:
        tta = _load(args.model, load_text_encoder=False)
    cfg = tta.config
    counts = tta.parameter_counts()
    text = [c for c in cfg.conditioners if c.type == "t5"]
    info = {
        "objective": cfg.objective,
        "sample_rate": cfg.sample_rate,
        "audio_channels": cfg.audio_channels,
        "window_seconds": round(cfg.max_seconds, 3),
        "latent": f"{cfg.dit.io_channels} x {cfg.latent_length} (downsampling {cfg.autoencoder.downsampling_ratio}x"
                  + (f"; {cfg.envelope_channels} of the channels are band envelopes)" if cfg.envelope else ")"),
        "dit": f"embed {cfg.dit.embed_dim}, depth {cfg.dit.depth}, heads {cfg.dit.num_heads}",
        "text_encoder": ", ".join(f"{c.config.get('t5_model_name')} (max {c.config.get('max_length')} tokens)"
                                  for c in text) or "none",
        "sampling_defaults": f"{cfg.sampling.sampler}, {cfg.sampling.steps} steps, cfg {cfg.sampling.cfg_scale}"
                             + (f", eta {cfg.sampling.eta:g}" if cfg.sampling.sampler == "pingpong" else ""),
        "parameters": {k: v for k, v in counts.items() if k != "text_encoder"},
    }
    if cfg.envelope_prior is not None:
        prior = cfg.envelope_prior
        info["envelope_prior"] = (f"embed {prior.dit.embed_dim}, depth {prior.dit.depth}, every {prior.pool} frames; "
                                  f"euler {prior.steps} steps, cfg {prior.cfg_scale:g}")
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "parameters":
            continue
        print(f"{key:>18}: {value}")
    print(f"{'parameters':>18}:")
    for key, value in info["parameters"].items():
        print(f"{key:>18}  {value:>13,}  ({value / 1e6:.1f} M)")
    print(f"{'':>18}  (the text encoder is not stored in the checkpoint and not counted)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import platform

    import torch

    from ..models.denoiser import Conditioning
    from ..models.presets import PRESETS
    from ..pipeline import TextToAudio
    from ..runtime import PRECISIONS, RuntimeOptions
    from ..runtime.bench import (BenchSetup, bench_prestissimo, bench_reference, count_flops, format_table, make_probe,
                                 to_json)

    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    for p in precisions:
        if p not in PRECISIONS:
            raise UserError(f"unknown precision {p!r} (choose from {', '.join(PRECISIONS)})")
    if args.steps < 1 or args.batch < 1 or args.runs < 1:
        raise UserError("--steps, --batch and --runs must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.model in PRESETS and not Path(args.model).exists() and args.model.startswith("tiny"):
        import tempfile

        from ..models.factory import create_random_model

        tta = TextToAudio.from_pretrained(create_random_model(args.model, tempfile.mkdtemp(prefix="prestissimo-")),
                                          device=args.device)
        text_available = True
    elif args.model in PRESETS and not Path(args.model).exists():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            tta = TextToAudio.from_preset(args.model).eval().requires_grad_(False).to(args.device)
        text_available = False
    else:
        tta = _load(args.model, args.device, load_text_encoder=True)
        text_available = True
    cfg = tta.config
    req = tta.request(["benchmark"], args.seconds, args.steps, args.sampler, args.cfg_scale)
    setup = BenchSetup(seconds=req.seconds, steps=req.steps, cfg_scale=req.cfg_scale, batch=args.batch, runs=args.runs)
    gen = torch.Generator().manual_seed(0)
    n_tokens = sum(int(c.config.get("max_length", 128)) if c.type == "t5" else 1
                   for c in cfg.conditioners if c.id in cfg.cross_attention_cond_ids)
    tokens = (torch.randn(args.batch, n_tokens, cfg.dit.cond_token_dim, generator=gen) * 0.1).to(tta.device)
    glob = (torch.randn(args.batch, cfg.dit.global_cond_dim, generator=gen) * 0.1).to(tta.device)
    random_cond = lambda: Conditioning(context=tta.model.model.embed_context(tokens), global_cond=glob)  # noqa: E731

    results = []
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    with torch.no_grad():
        flops = count_flops(tta, setup, random_cond())
        probe = make_probe(tta, setup, random_cond())
    log("timing prestissimo, plain modules ...")
    results.append(bench_prestissimo(tta, setup, None, "prestissimo plain fp32", text_available, random_cond, flops,
                                     probe))
    for p in precisions:
        label = f"prestissimo fast {p}" + (" +compile" if args.compile else "")
        log(f"timing {label} ...")
        opts = RuntimeOptions(precision=p, compile=args.compile)
        results.append(bench_prestissimo(tta, setup, opts, label, text_available, random_cond, flops, probe))
    if args.compare_reference:
        log("timing reference (diffusers) ...")
        try:
            results.insert(0, bench_reference(tta, setup, lambda: (tokens, glob), flops, results[0].conditioning_s,
                                              probe))
        except ImportError:
            raise UserError("--compare-reference needs diffusers: pip install diffusers") from None
    base = results[0]
    for r in results:
        r.speedup_vs_reference = base.end_to_end_s / r.end_to_end_s
    title = (f"{args.model}: {setup.seconds:.2f} s of {cfg.sample_rate} Hz x{cfg.audio_channels}, {setup.steps} "
             f"{args.sampler} steps, cfg {setup.cfg_scale}, batch {setup.batch}, {args.device}, "
             f"{torch.get_num_threads()} threads, median of {setup.runs} (speedup vs {base.mode})")
    print(format_table(results, title))
    for r in results:
        for note in r.notes:
            print(f"note ({r.mode}): {note}")
    if args.json:
        meta = {"model": args.model, "sampler": args.sampler, "device": args.device,
                "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                "threads": torch.get_num_threads()}
        args.json.write_text(to_json(results, setup, meta))
    return 0


def cmd_create_model(args: argparse.Namespace) -> int:
    from ..models.factory import create_random_model

    if args.out.exists() and any(args.out.iterdir()):
        raise UserError(f"{args.out} exists and is not empty")
    path = create_random_model(args.preset, args.out, seed=args.seed)
    print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..models.export import directory_bytes, export_model

    sampling = {k: v for k, v in (("sampler", args.sampler), ("steps", args.steps), ("cfg_scale", args.cfg_scale),
                                  ("eta", args.eta)) if v is not None}
    out = export_model(args.model, args.out, storage=args.storage, card=args.card, max_megabytes=args.max_mb,
                       overwrite=args.overwrite, sampling=sampling, decoder=args.decoder, prior_steps=args.prior_steps)
    print(f"{out} ({directory_bytes(out) / 1e6:.1f} MB)")
    return 0


def _soundfont(choice: str | None) -> str | None:
    """--soundfont: None, a path (must work), or "auto" (one installed in a standard place, if FluidSynth is there)."""
    from ..data.synthbench.soundfont import find_soundfont, fluidsynth_available

    if choice != "auto":
        return choice
    found = find_soundfont()
    if found is None or not fluidsynth_available():
        missing = "no GM soundfont in a standard place" if found is None else "pyfluidsynth/FluidSynth not installed"
        print(f"--soundfont auto: {missing}; synthetic instruments only", file=sys.stderr)
        return None
    print(f"--soundfont auto: {found}", file=sys.stderr)
    return str(found)


def cmd_synthbench(args: argparse.Namespace) -> int:
    from ..data.synthbench import SynthbenchSpec, iter_clips, make_synthbench

    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    spec = SynthbenchSpec(n=args.n, seed=args.seed, seconds=args.seconds, sample_rate=args.sample_rate,
                          soundfont=_soundfont(args.soundfont))
    if args.synthbench_command == "make":
        if args.workers is not None and args.workers < 1:
            raise UserError("--workers must be >= 1")
        start = time.perf_counter()
        manifest = make_synthbench(spec, args.out, workers=args.workers, progress=not args.quiet)
        elapsed = time.perf_counter() - start
        print(manifest)
        print(f"{spec.n} clips of {spec.seconds:g} s in {elapsed:.1f} s ({spec.n / elapsed:.1f} clips/s)", file=sys.stderr)
        return 0
    from tqdm import tqdm

    from ..evaluation.adherence import CALIBRATION_THRESHOLD, SCORED_ATTRIBUTES, calibrate

    clips = ((audio, row["attributes"]) for audio, row in
             tqdm(iter_clips(spec), total=spec.n, desc="calibrating", unit="clip", disable=args.quiet, file=sys.stderr))
    report = calibrate(clips, spec.sample_rate)
    print(f"estimator accuracy on {spec.n} ground-truth synthbench clips (seed {spec.seed}, {spec.seconds:g} s, "
          f"{spec.sample_rate} Hz)")
    print(f"| attribute | clips | accuracy | >= {CALIBRATION_THRESHOLD:.0%} | in the adherence score |")
    print("| --- | ---: | ---: | --- | --- |")
    for name in sorted(report.totals):
        acc = report.accuracy(name)
        passes = "yes" if acc >= CALIBRATION_THRESHOLD else "NO"
        print(f"| {name} | {report.totals[name]} | {acc:.3f} | {passes} | {'yes' if name in SCORED_ATTRIBUTES else 'no'} |")
    if args.json:
        args.json.write_text(json.dumps({"spec": dataclasses.asdict(spec),
                                         **report.to_dict()}, indent=2) + "\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.manifest import read_manifest
    from ..evaluation.embeddings import ClapEmbedding, create_embedding_backend
    from ..evaluation.plots import spectrogram_grid
    from ..evaluation.runner import (GenerationSettings, evaluate_clip_sets, format_report, generate_for_manifest,
                                     load_clip_sets, load_references)

    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be >= 1")
    entries = read_manifest(args.prompts)[: args.limit]
    settings = GenerationSettings(steps=args.steps, sampler=args.sampler, cfg_scale=args.cfg_scale, eta=args.eta,
                                  seconds=args.seconds, seeds_per_prompt=args.seeds, batch_size=args.batch_size,
                                  seed=args.seed, envelope_prior=args.envelope_prior)
    backend = create_embedding_backend(args.embedding)
    clap = ClapEmbedding(args.clap) if args.clap is not None else None
    timing: dict = {}
    audio_dir = args.audio
    if audio_dir is None:
        from ..runtime import RuntimeOptions

        options = RuntimeOptions(precision=args.precision)
        options.validate()
        tta = _load(args.model, args.device)
        tta.request(["check"], args.seconds, args.steps, args.sampler, args.cfg_scale, eta=args.eta)  # before compute
        tta.optimize(options)
        audio_dir = args.out / "audio"
        with tqdm(total=len(entries) * args.seeds, desc="generating", unit="clip", disable=args.quiet,
                  file=sys.stderr) as bar:
            timing = generate_for_manifest(tta, entries, settings, audio_dir, progress=bar.update)
    clip_sets, rate = load_clip_sets(entries, audio_dir, args.seeds)
    references, ref_rate = load_references(entries)
    report = {**timing, **evaluate_clip_sets(entries, clip_sets, rate, backend, references, ref_rate, clap)}
    report["prompts"] = str(args.prompts)
    report["audio_dir"] = str(audio_dir)
    if args.audio is None:
        report["model"] = str(args.model) if args.model else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    if args.grid > 0:
        shown = list(range(min(args.grid, len(entries))))
        picture = spectrogram_grid([clip_sets[i][0] for i in shown], rate, [entries[i].caption for i in shown],
                                   args.out / "spectrograms.png")
        print(f"wrote {args.out / 'metrics.json'} and {picture}", file=sys.stderr)
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from ..models.config import EnvelopeSpec
    from ..data.latents import encode_dataset
    from ..data.manifest import read_manifest
    from ..models.autoencoder_io import load_autoencoder

    if args.batch_size < 1 or args.seconds <= 0:
        raise UserError("--batch-size must be >= 1 and --seconds > 0")
    ae, sample_rate = load_autoencoder(args.autoencoder)
    index = encode_dataset(ae, sample_rate, read_manifest(args.data), args.out, args.seconds, args.batch_size,
                           progress=not args.quiet, envelope=EnvelopeSpec() if args.envelopes else None)
    print(index)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.autoencoder import AETrainConfig
    from ..training.config import load_config
    from ..training.dit import DiTTrainConfig
    from ..training.run import train_autoencoder, train_dit

    if args.what != "envelope-prior" and args.base is not None:
        raise UserError("--base is for `train envelope-prior` only")
    if args.what == "autoencoder":
        model_dir = train_autoencoder(load_config(AETrainConfig, args.config), args.data, args.out,
                                      resume=args.resume, progress=not args.quiet)
    elif args.what == "envelope-prior":
        from ..training.envelope_prior import EnvelopePriorTrainConfig
        from ..training.run import train_envelope_prior

        if args.base is None:
            raise UserError("train envelope-prior needs --base: the model the prior is for")
        model_dir = train_envelope_prior(load_config(EnvelopePriorTrainConfig, args.config), args.base, args.data,
                                         args.out, resume=args.resume, progress=not args.quiet)
    else:
        model_dir = train_dit(load_config(DiTTrainConfig, args.config), args.data, args.out, resume=args.resume,
                              progress=not args.quiet)
    print(model_dir)
    return 0


def cmd_posttrain(args: argparse.Namespace) -> int:
    from ..posttrain.arc import ARCConfig
    from ..posttrain.run import posttrain_arc
    from ..training.config import load_config

    model_dir = posttrain_arc(load_config(ARCConfig, args.config), args.base, args.data, args.out,
                              resume=args.resume, progress=not args.quiet)
    print(model_dir)
    return 0


COMMANDS = {"generate": cmd_generate, "info": cmd_info, "bench": cmd_bench, "create-model": cmd_create_model,
            "synthbench": cmd_synthbench, "eval": cmd_eval, "encode": cmd_encode, "train": cmd_train,
            "posttrain": cmd_posttrain, "export": cmd_export}


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Error types that mean bad input, from the modules this run imported. A module not imported cannot
    have raised its error, and importing it here would pull torch into the torch-free generate path."""
    types: list[type[BaseException]] = [UserError, ValueError, OSError]
    for module, name in (("prestissimo.models.loading", "ModelLoadError"),
                         ("prestissimo.models.conditioners", "ConditionerUnavailable"),
                         ("prestissimo.evaluation.embeddings", "EmbeddingUnavailable"),
                         ("prestissimo.data.synthbench.soundfont", "FluidSynthUnavailable")):
        if module in sys.modules:
            types.append(getattr(sys.modules[module], name))
    return tuple(types)  # ConfigError, ManifestError and LiteUnsupported are ValueErrors


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        sys.stderr.write("prestissimo: interrupted\n")
        return 130
    except Exception as e:
        if isinstance(e, _user_error_types()):
            sys.stderr.write(f"prestissimo: error: {e}\n")
            return EXIT_USAGE
        if isinstance(e, RuntimeError):  # a run that failed on its own (diverged training, unreadable checkpoint)
            from ..training.checkpoint import CheckpointError
            from ..training.loop import TrainingDiverged

            if isinstance(e, (TrainingDiverged, CheckpointError)):
                sys.stderr.write(f"prestissimo: error: {e}\n")
                return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
