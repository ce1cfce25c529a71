"""Evaluate a model (or a folder of audio) on a manifest of prompts: Fréchet distance and MMD
against the manifest's reference audio, prompt adherence (synthbench attributes), diversity,
CLAP score, latency.

Generated files are named `<key>_s<k>.wav` (key = the reference file's stem, k = seed index), the
same names `--audio DIR` expects, so a model's outputs can be scored again without regenerating.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prestissimo.data.audio import AudioLoadError, load_audio, resample, save_wav
from prestissimo.data.manifest import ManifestEntry
from prestissimo.evaluation import adherence
from prestissimo.evaluation.audio_features import analyse
from prestissimo.evaluation.distribution import rbf_mmd2
from prestissimo.evaluation.diversity import conditional_diversity, unconditional_diversity
from prestissimo.evaluation.embeddings import EmbeddingBackend
from prestissimo.evaluation.frechet import frechet_distance_between

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    steps: int | None = None
    sampler: str | None = None
    cfg_scale: float | None = None
    eta: float | None = None
    seconds: float | None = None
    seeds_per_prompt: int = 1
    batch_size: int = 8
    seed: int = 0
    envelope_prior: bool = True  # a model with an envelope prior uses it (False: its DiT alone)

    def __post_init__(self) -> None:
        if self.seeds_per_prompt < 1 or self.batch_size < 1:
            raise ValueError("seeds per prompt and batch size must be >= 1")


def clip_name(entry: ManifestEntry, k: int) -> str:
    return f"{entry.key}_s{k}.wav"


def generate_for_manifest(tta: Any, entries: Sequence[ManifestEntry], settings: GenerationSettings,
                          out_dir: str | Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate `seeds_per_prompt` clips per entry into out_dir; returns timing facts.

    Seed k of every prompt uses generator seed `settings.seed + 1000 * k + batch index`, so runs
    are reproducible and the K clips of one prompt differ only by their noise.
    """
    out = Path(out_dir)
    req = tta.request([e.caption for e in entries[:1]], settings.seconds, settings.steps, settings.sampler,
                      settings.cfg_scale, settings.seed, eta=settings.eta)
    elapsed = 0.0
    n_clips = 0
    for k in range(settings.seeds_per_prompt):
        for b in range(0, len(entries), settings.batch_size):
            batch = entries[b:b + settings.batch_size]
            # Rows ask for their reference's length; a model with a shorter window makes what it can.
            seconds = settings.seconds if settings.seconds is not None else min(
                batch[0].seconds or tta.config.max_seconds, tta.config.max_seconds)
            start = time.perf_counter()
            audio = tta.generate([e.caption for e in batch], seconds=seconds, steps=req.steps, sampler=req.sampler,
                                 cfg_scale=req.cfg_scale, seed=settings.seed + 1000 * k + b, eta=settings.eta,
                                 use_envelope_prior=settings.envelope_prior)
            elapsed += time.perf_counter() - start
            for entry, clip in zip(batch, audio):
                save_wav(clip, out / clip_name(entry, k), tta.sample_rate)
            n_clips += len(batch)
            if progress:
                progress(len(batch))
    nfe = req.steps * (1 if req.cfg_scale == 1.0 else 2)
    prior = tta.config.envelope_prior if settings.envelope_prior else None
    return {"steps": req.steps, "sampler": req.sampler, "cfg_scale": req.cfg_scale,
            **({"eta": req.eta} if req.sampler == "pingpong" else {}),
            **({} if prior is None else {"envelope_prior_evaluations_per_clip":
                                         prior.steps * (1 if prior.cfg_scale == 1.0 else 2)}),
            "network_evaluations_per_clip": nfe, "seconds_per_clip": elapsed / max(n_clips, 1),
            "batch_size": settings.batch_size, "clips": n_clips}


def load_clip_sets(entries: Sequence[ManifestEntry], audio_dir: str | Path,
                   seeds_per_prompt: int) -> tuple[list[list[np.ndarray]], int]:
    """The generated clips of each entry, [entry][seed] -> [C, T], resampled to one rate.

    For one seed per prompt, `<key>.wav` is accepted as well as `<key>_s0.wav`. A missing file is
    an error naming it (scores over a silently partial set would mislead)."""
    folder = Path(audio_dir)
    sets: list[list[np.ndarray]] = []
    rate = 0
    for entry in entries:
        clips = []
        for k in range(seeds_per_prompt):
            path = folder / clip_name(entry, k)
            if not path.exists() and k == 0 and (folder / f"{entry.key}.wav").exists():
                path = folder / f"{entry.key}.wav"
            if not path.exists():
                raise FileNotFoundError(f"no generated audio for {entry.caption!r}: expected {path}")
            audio, sr = load_audio(path)
            rate = rate or sr
            clips.append(audio if sr == rate else resample(audio, sr, rate))
        sets.append(clips)
    return sets, rate


def load_references(entries: Sequence[ManifestEntry]) -> tuple[list[np.ndarray | None], int]:
    """Reference audio of each entry (None where missing or unreadable, counted in a warning)."""
    refs: list[np.ndarray | None] = []
    rate = 0
    bad = 0
    for entry in entries:
        try:
            audio, sr = load_audio(entry.path)
        except (AudioLoadError, FileNotFoundError, OSError):
            refs.append(None)
            bad += 1
            continue
        rate = rate or sr
        refs.append(audio if sr == rate else resample(audio, sr, rate))
    if bad:
        log.warning("%d of %d reference files missing or unreadable: left out of FD/MMD", bad, len(entries))
    return refs, rate


def evaluate_clip_sets(entries: Sequence[ManifestEntry], clip_sets: list[list[np.ndarray]], sample_rate: int,
                       backend: EmbeddingBackend, references: list[np.ndarray | None] | None = None,
                       reference_rate: int = 0, clap: Any | None = None, chance_seed: int = 0) -> dict[str, Any]:
    """All metrics for generated clips (first seed per prompt for distribution metrics)."""
    report: dict[str, Any] = {"n_prompts": len(entries), "seeds_per_prompt": len(clip_sets[0]),
                              "sample_rate": sample_rate, "embedding": backend.name}
    first = [clips[0] for clips in clip_sets]
    k = len(clip_sets[0])
    embeddings = backend.embed([c for clips in clip_sets for c in clips], sample_rate).reshape(len(clip_sets), k, -1)
    gen_emb = embeddings[:, 0]
    if references is not None:
        refs = [r for r in references if r is not None]
        if len(refs) >= 2 and len(first) >= 2:
            ref_emb = backend.embed(refs, reference_rate)
            report["fd"] = frechet_distance_between(gen_emb, ref_emb)
            report["mmd"] = rbf_mmd2(gen_emb, ref_emb)
            report["n_reference"] = len(refs)
        else:
            report["fd"] = report["mmd"] = None
            report["fd_note"] = "needs at least two generated and two reference clips"
    metric = "cosine" if backend.name.startswith("clap") else "euclidean"
    report["diversity_metric"] = metric
    if len(first) >= 2:
        report["diversity_unconditional"] = unconditional_diversity(gen_emb, metric)
    if k >= 2:
        report["diversity_conditional"] = conditional_diversity(embeddings, metric)
    if any(e.attributes for e in entries):
        features: dict[int, Any] = {}  # each clip analysed once, scored against many prompts
        estimates: dict[int, dict[str, Any]] = {}

        def analysed(i: int) -> Any:
            if i not in features:
                features[i] = analyse(first[i], sample_rate)
            return features[i]

        def check(i: int, entry: ManifestEntry) -> dict[str, bool]:
            if not adherence.applicable(entry.attributes, mentioned=entry.mentioned or None):
                return {}
            if i not in estimates:
                estimates[i] = adherence.estimate_attributes(analysed(i))
            return adherence.check_estimates(estimates[i], entry.attributes, entry.mentioned or None)

        summary = adherence.summarize([check(i, e) for i, e in enumerate(entries)])
        report["adherence"] = summary.score
        report["adherence_attributes"] = {n: summary.accuracy(n) for n in sorted(summary.totals)}
        # How many clips each attribute was judged on: 38 clips move an accuracy by 0.026 each.
        report["adherence_attribute_clips"] = {n: summary.totals[n] for n in sorted(summary.totals)}
        if len(entries) >= 2 and not np.isnan(summary.score):
            chance = adherence.chance_level(
                lambda perm: adherence.summarize([check(i, entries[j]) for i, j in enumerate(perm)]).score,
                len(entries), summary.score, seed=chance_seed)
            report["adherence_chance"] = chance.mean
            report["adherence_chance_p95"] = chance.p95
            report["adherence_p_value"] = chance.p_value
        rhythmic = [i for i, e in enumerate(entries) if "tempo" in e.attributes]  # melodies and grooves
        if rhythmic:
            report["beat_regularity"] = float(np.mean([adherence.beat_regularity(analysed(i)) for i in rhythmic]))
            report["beat_regularity_clips"] = len(rhythmic)
    if clap is not None:
        from prestissimo.evaluation.alignment import clap_score

        report["clap_score"] = clap_score(clap.embed_text([e.caption for e in entries]), clap.embed(first, sample_rate))
    return report


def format_report(report: dict[str, Any]) -> str:
    """A two-column table of the headline numbers."""
    rows = [("prompts x seeds", f"{report['n_prompts']} x {report['seeds_per_prompt']}")]
    if "steps" in report:
        eta = f" (eta {report['eta']:g})" if report.get("eta", 1.0) != 1.0 else ""
        rows += [("sampler / steps / cfg", f"{report['sampler']}{eta} / {report['steps']} / {report['cfg_scale']:g}"),
                 ("network evaluations / clip", str(report["network_evaluations_per_clip"])),
                 ("seconds / clip", f"{report['seconds_per_clip']:.3f}")]
    names = {"fd": f"Fréchet distance ({report['embedding']})", "mmd": f"MMD² ({report['embedding']})",
             "adherence": "prompt adherence", "adherence_chance": "adherence, mismatched prompts (chance)",
             "adherence_chance_p95": "  chance, 95th percentile", "adherence_p_value": "  p-value (permutation test)",
             "diversity_conditional": f"diversity per prompt ({report['diversity_metric']})",
             "diversity_unconditional": f"diversity overall ({report['diversity_metric']})",
             "beat_regularity": "beat regularity (melodies, grooves)", "clap_score": "CLAP score"}
    for key, label in names.items():
        value = report.get(key)
        if isinstance(value, float):
            rows.append((label, f"{value:.4f}"))
    for name, acc in report.get("adherence_attributes", {}).items():
        rows.append((f"  {name}", f"{acc:.3f}"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)

