"""Natural, varied captions for synthbench attributes.

Each attribute has several phrasings and each family several sentence templates; optional details
(loudness, panning, exact BPM, articulation ...) appear with some probability. The caption records
which attributes it mentions (`mentioned`), so adherence is only scored on what was asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prestissimo.data.synthbench.attributes import SUSTAINED_INSTRUMENTS

INSTRUMENT_WORDS = {
    "sine": ("pure sine tone", "soft sine wave", "sine synth", "clean sine"),
    "square": ("square wave lead", "chiptune square synth", "hollow square wave", "8-bit square lead"),
    "sawtooth": ("sawtooth lead", "bright sawtooth synth", "buzzy saw wave", "saw lead"),
    "pluck": ("plucked string", "guitar-like pluck", "harp-like plucked string", "plucked nylon string"),
    "bell": ("bell", "chiming bell", "FM bell", "glassy chime"),
    "organ": ("organ", "electric organ", "drawbar organ", "church-like organ"),
    # soundfont instruments (synthbench/soundfont.py)
    "piano": ("piano", "grand piano", "acoustic piano"),
    "marimba": ("marimba", "wooden marimba"),
    "guitar": ("acoustic guitar", "nylon-string guitar", "classical guitar"),
    "strings": ("string ensemble", "orchestral strings", "string section"),
    "trumpet": ("trumpet", "brass trumpet"),
    "flute": ("flute", "concert flute", "breathy flute"),
}
REGISTER_WORDS = {
    "low": ("low", "deep", "low-pitched", "bass"),
    "mid": ("mid-range", "middle-register", "medium-pitched"),
    "high": ("high", "high-pitched", "upper-register", "soaring high"),
}
TEMPO_WORDS = {
    "slow": ("slow", "leisurely", "unhurried"),
    "moderate": ("moderate", "mid-tempo", "steady-paced"),
    "fast": ("fast", "quick", "upbeat", "rapid"),
}
LOUDNESS_WORDS = {
    "quiet": ("quiet", "soft", "faint", "gentle"),
    "moderate": ("moderately loud", "medium-volume", "balanced-level"),
    "loud": ("loud", "powerful", "booming", "strong"),
}
PAN_PHRASES = {
    "left": ("panned to the left", "on the left side", "from the left channel", "placed left"),
    "center": ("in the center", "centered in the stereo field", "panned to the middle"),
    "right": ("panned to the right", "on the right side", "from the right channel", "placed right"),
}
ARTICULATION_WORDS = {
    "staccato": ("staccato", "short, detached", "choppy"),
    "legato": ("legato", "smooth, connected", "flowing"),
}
VIBRATO_PHRASES = ("with vibrato", "with a wobbly vibrato", "with gentle vibrato")
DENSITY_WORDS = {
    "sparse": ("sparse", "simple", "minimal"),
    "busy": ("busy", "dense", "driving", "intricate"),
}
DRUM_NOUNS = ("drum beat", "drum pattern", "drum groove", "percussion loop")
COLOUR_WORDS = {"white": ("white noise", "hissing white noise"), "pink": ("pink noise", "even pink noise"),
                "brown": ("brown noise", "rumbling brown noise", "deep brown noise")}
SWEEP_PHRASES = {
    "up": ("a filtered noise sweep rising upward", "noise sweeping up in pitch", "an upward filter sweep of noise", "a rising whoosh"),
    "down": ("a filtered noise sweep falling downward", "noise sweeping down in pitch", "a downward filter sweep of noise", "a falling whoosh"),
}
RAIN_PHRASES = ("rain-like crackle", "the crackle of raindrops", "a patter of rain", "crackling rain texture")
FADE_PHRASES = {"in": ("fading in", "slowly fading in", "that fades in"),
                "out": ("fading out", "slowly fading out", "that fades out"),
                "none": ("at a constant level", "steady throughout", "without any fade")}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def _join_details(details: list[str]) -> str:
    return "".join(", " + d for d in details)


def caption(attrs: dict[str, Any], rng: np.random.Generator) -> tuple[str, list[str]]:
    """(caption, mentioned attribute names) for one clip's attributes."""
    family = attrs["family"]
    mentioned = ["family"]
    details: list[str] = []
    loud_first = rng.random() < 0.5
    loud_word = _pick(rng, LOUDNESS_WORDS[attrs["loudness"]])
    say_loudness = rng.random() < 0.8
    if say_loudness:
        mentioned.append("loudness")
    if family == "tonal":
        text = _tonal(attrs, rng, mentioned, details, loud_word if say_loudness and loud_first else None)
    elif family == "drums":
        text = _drums(attrs, rng, mentioned, details, loud_word if say_loudness and loud_first else None)
    else:
        text = _noise(attrs, rng, mentioned, details, loud_word if say_loudness and loud_first else None)
    if say_loudness and not loud_first:
        details.append(_pick(rng, ("played ", "sounding ", "")) + loud_word)
    if rng.random() < 0.8:
        details.append(_pick(rng, PAN_PHRASES[attrs["pan"]]))
        mentioned.append("pan")
    order = rng.permutation(len(details))
    text = text + _join_details([details[i] for i in order])
    return text[0].upper() + text[1:], mentioned


def _tonal(attrs: dict[str, Any], rng: np.random.Generator, mentioned: list[str], details: list[str],
           loud: str | None) -> str:
    instrument = _pick(rng, INSTRUMENT_WORDS[attrs["instrument"]])
    register = _pick(rng, REGISTER_WORDS[attrs["register"]])
    mentioned += ["instrument", "register"]
    lead = f"{loud} " if loud else ""
    if attrs["vibrato"] and rng.random() < 0.9:
        details.append(_pick(rng, VIBRATO_PHRASES))
        mentioned.append("vibrato")
    elif not attrs["vibrato"] and attrs["instrument"] in SUSTAINED_INSTRUMENTS and rng.random() < 0.2:
        details.append("without vibrato")
        mentioned.append("vibrato")
    if attrs["kind"] == "note":
        template = _pick(rng, ("{a} {register} {instrument} holding a single note",
                               "a single sustained {register} note on {a_instrument}",
                               "{a} {register} {instrument} note"))
        return template.format(a=_article(lead + register)[:2].strip(), register=(lead + register),
                               instrument=instrument, a_instrument=_article(instrument)).replace("a a ", "a ")
    tempo = _pick(rng, TEMPO_WORDS[attrs["tempo"]])
    key = f"{attrs['tonic']} {attrs['mode']}"
    mentioned += ["tempo", "tonic", "mode"]
    articulation = ""
    if rng.random() < 0.7:
        articulation = _pick(rng, ARTICULATION_WORDS[attrs["articulation"]]) + " "
        mentioned.append("articulation")
    if rng.random() < 0.5:
        details.append(f"{attrs['bpm']} BPM")
    template = int(rng.integers(3))
    if template == 0:
        text = f"{_article(lead + register + ' ' + instrument)} playing {_article(tempo + ' ' + articulation + 'melody')} in {key}"
    elif template == 1:
        text = f"{_article(tempo + ' ' + articulation + 'melody')} in {key} on {_article(lead + register + ' ' + instrument)}"
    else:
        text = f"{_article(lead + register + ' ' + instrument)} melody in {key}, {tempo} and {articulation or 'tuneful '}".rstrip()
    return " ".join(text.split())


def _drums(attrs: dict[str, Any], rng: np.random.Generator, mentioned: list[str], details: list[str],
           loud: str | None) -> str:
    tempo = _pick(rng, TEMPO_WORDS[attrs["tempo"]])
    density = _pick(rng, DENSITY_WORDS[attrs["density"]])
    noun = _pick(rng, DRUM_NOUNS)
    mentioned += ["tempo", "density"]
    if rng.random() < 0.6:
        details.append(f"{attrs['bpm']} BPM")
    lead = f"{loud} " if loud else ""
    template = int(rng.integers(3))
    if template == 0:
        return _article(f"{lead}{tempo} {density} {noun}")
    if template == 1:
        return _article(f"{lead}{density} {noun}") + f" at {_article(tempo)} tempo"
    return f"{_article(lead + tempo + ' ' + noun)} with {density} hi-hats, kick and snare"


def _noise(attrs: dict[str, Any], rng: np.random.Generator, mentioned: list[str], details: list[str],
           loud: str | None) -> str:
    mentioned.append("texture")
    lead = f"{loud} " if loud else ""
    texture = attrs["texture"]
    if texture == "steady":
        mentioned.append("colour")
        body = _article(lead + _pick(rng, COLOUR_WORDS[attrs["colour"]]))
    elif texture == "sweep":
        mentioned.append("direction")
        phrase = _pick(rng, SWEEP_PHRASES[attrs["direction"]])
        body = phrase if not lead else _article(lead + phrase.split(" ", 1)[1])
    else:
        phrase = _pick(rng, RAIN_PHRASES)
        body = (_article(lead + phrase) if not phrase.startswith(("a ", "the ")) else
                (phrase if not lead else _article(lead + phrase.split(" ", 1)[1])))
    if attrs["fade"] != "none" or rng.random() < 0.5:
        details.append(_pick(rng, FADE_PHRASES[attrs["fade"]]))
        mentioned.append("fade")
    return body
