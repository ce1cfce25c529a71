"""Post-training methods that turn a base model into a few-step generator, each a task on the shared
training loop (`prestissimo.training.loop`): ARC (`arc`)."""
