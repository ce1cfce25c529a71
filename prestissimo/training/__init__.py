"""Training: one resumable, distributed loop (`loop.py`) and the tasks that plug into it
(autoencoder, base DiT; the post-training methods in `prestissimo.posttrain` reuse the same loop)."""
