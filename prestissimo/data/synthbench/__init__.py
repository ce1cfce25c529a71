"""synthbench: procedural captioned audio whose ground truth we control (tones and melodies,
drum patterns, noises and textures), for training and evaluating text-to-audio offline."""

from prestissimo.data.synthbench.attributes import draw_attributes
from prestissimo.data.synthbench.make import MANIFEST_NAME, SynthbenchSpec, iter_clips, make_synthbench, synthesize
from prestissimo.data.synthbench.render import render_clip

__all__ = ["MANIFEST_NAME", "SynthbenchSpec", "draw_attributes", "iter_clips", "make_synthbench", "render_clip", "synthesize"]
