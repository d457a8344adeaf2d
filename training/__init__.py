"""DK·VAE training code: drum banks, importers of real kits, models and training.

Installed as the package ``dkvae_training`` (see pyproject.toml). Nothing in here is imported by
the live daemon.
"""
