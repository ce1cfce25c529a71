"""The ``prestissimo`` command: generate audio, inspect and create models.

Errors a user can fix (bad arguments, missing model, unreadable checkpoint) end the program with a
one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Sequence

EXIT_USAGE = 2


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
    g.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    g.add_argument("--batch-size", type=int, default=4, help="prompts per forward pass with --prompts-file")
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

    from ..runtime import RuntimeOptions

    options = RuntimeOptions(precision=args.precision, compile=args.compile, decode_chunk_frames=args.decode_chunk)
    options.validate()
    tta = _load(args.model, args.device)
    # Validate every argument before the first (slow) forward pass.
    req = tta.request(prompts, args.seconds, args.steps, args.sampler, args.cfg_scale, args.seed)
    if not args.reference_path:
        tta.optimize(options)
    steps, sampler = req.steps, req.sampler
    batches = [prompts[k:k + args.batch_size] for k in range(0, len(prompts), args.batch_size)]
    bar = tqdm(total=steps * len(batches), desc="sampling", unit="step", disable=args.quiet, file=sys.stderr)
    written: list[Path] = []
    start = time.perf_counter()
    try:
        for b, batch in enumerate(batches):
            seed = None if args.seed is None else args.seed + b
            audio = tta.generate(batch, seconds=args.seconds, steps=steps, sampler=sampler,
                                 cfg_scale=args.cfg_scale, seed=seed, progress=lambda i, n: bar.update(1))
            if batch_mode:
                for j, (prompt, clip) in enumerate(zip(batch, audio)):
                    index = b * args.batch_size + j
                    written += tta.save_wav(clip, out / f"{index:03d}_{_slug(prompt)}.wav")
            else:
                written += tta.save_wav(audio[0], out)
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
        "latent": f"{cfg.dit.io_channels} x {cfg.latent_length} (downsampling {cfg.autoencoder.downsampling_ratio}x)",
        "dit": f"embed {cfg.dit.embed_dim}, depth {cfg.dit.depth}, heads {cfg.dit.num_heads}",
        "text_encoder": ", ".join(f"{c.config.get('t5_model_name')} (max {c.config.get('max_length')} tokens)"
                                  for c in text) or "none",
        "sampling_defaults": f"{cfg.sampling.sampler}, {cfg.sampling.steps} steps, cfg {cfg.sampling.cfg_scale}",
        "parameters": {k: v for k, v in counts.items() if k != "text_encoder"},
    }
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


COMMANDS = {"generate": cmd_generate, "info": cmd_info, "bench": cmd_bench, "create-model": cmd_create_model}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..models.conditioners import ConditionerUnavailable
    from ..models.config import ConfigError
    from ..models.loading import ModelLoadError

    try:
        return COMMANDS[args.command](args)
    except (UserError, ValueError, ModelLoadError, ConfigError, ConditionerUnavailable, OSError) as e:
        sys.stderr.write(f"prestissimo: error: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("prestissimo: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
