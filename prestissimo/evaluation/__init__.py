"""Measuring quality: distributions (Fréchet distance, MMD), embeddings, prompt adherence, diversity."""
